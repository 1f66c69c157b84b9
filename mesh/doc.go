// Package mesh will own mesh.Node, the composition root: it wires one node
// (or seeder) together from the subsystems and owns its lifecycle, deciding
// nothing itself. Only cmd and tests import it. Its subpackages will hold the
// libp2p host (QUIC only), the chunk exchange protocol and the peer RPCs; they
// know nothing of Raft.
//
// Not built yet: see issues [2/6]–[6/6] and docs/DESIGN.md.
package mesh
