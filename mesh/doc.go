// Package mesh wires one meshcast node (or seeder) together and owns its
// lifecycle: the libp2p host (mesh/p2p), the chunk store, the chunk
// exchange (mesh/exchange), the peer file service (mesh/meta) and, on a
// seeder, the CDN client (seeder/cdn). cmd and tests start nodes only
// through New and Run. A Node decides nothing itself: the release to stage
// is the highest signed version of the configured release (issue [3/6]
// moves that decision to the site's Raft), the chunks to fetch come from
// the exchange and the store.
//
// Guarantees: Run stops every part it started, in reverse order, before it
// returns; a node stores and serves only chunks that verified against
// their ids, and trusts only metadata that verified against its root.
package mesh
