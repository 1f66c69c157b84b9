// Package mesh wires one meshcast node (or seeder) together and owns its
// lifecycle: the libp2p host (mesh/p2p), the chunk store, the chunk
// exchange (mesh/exchange), the peer file service (mesh/meta), gossip,
// the release follower (deploy.Follower) and, on a seeder, the CDN client
// (seeder/cdn), the site's Raft and the leader loop (seeder.Leader). cmd
// and tests start nodes only through New and Run, and read them through
// the status API's types (mesh/api).
//
// A Node decides nothing itself. The follower decides which release to
// stage, the leader what the site stages and what to fetch from the CDN,
// the exchange what to fetch from peers; mesh hands each the small
// interfaces it declares, through adapters that only translate.
//
// Lifecycle: New builds the node and starts only the libp2p host
// listening, so that its addresses are known; Run starts gossip, Raft and
// every loop under one errgroup, closes Ready once they run, and stops
// them all, in reverse order, before it returns. Leave, called before
// Run's context ends, says goodbye to the site (leadership hand-off,
// gossip leave); without it the node stops as a crash would. Test seams
// are Options given to New (GossipTransport), never methods of Node.
//
// Guarantees: Run stops every part it started before it returns; a node
// stores and serves only chunks that verified against their ids, and
// trusts only metadata that verified against its root.
package mesh
