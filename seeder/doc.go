// Package seeder will own what only a site's seeders do: Raft (a transport
// over the streams the mesh hands it, the raft-wal store, an FSM that applies
// deploy commands, snapshots) and the leader loop that watches the CDN,
// fetches what the site lacks and opens and gates waves. It talks no QUIC
// itself: it declares the small interfaces it needs and mesh wires them in.
//
// Not built yet: see issues [2/6]–[6/6] and docs/DESIGN.md. The CDN client
// (TUF refresh, coalesced Range fetch, retries, resume) is built: it is
// package seeder/cdn.
package seeder
