// Package baseline measures what meshcast's chunk exchange is compared with:
// the same job done by an off-the-shelf protocol, boxo's bitswap, on the
// same libp2p QUIC hosts and topology as a meshcast site, and the plain
// libp2p stream that is the ceiling of anything running over those hosts.
// The benchmark command (tests/bench) and tests import it; production code
// never does.
//
// Nouns:
//   - Seeder: the one host that holds every block at the start.
//   - Node: a host that starts empty and fetches every block with one
//     bitswap session. Nodes also serve the blocks they hold, so they fetch
//     from each other as well as from the seeder (a swarm).
//   - Mesh: seeder and nodes, each a host built with mesh/p2p.New on
//     127.0.0.1 with an open gater, every host connected to every other,
//     like the members of a meshcast site.
//   - Goodput: the block bytes every node ends up holding, summed over the
//     nodes, divided by the time until the last node holds them all.
//
// Guarantees:
//   - Bitswap returns a result only if every node's blockstore holds every
//     block, byte for byte.
//   - RawStream returns a throughput only if the receiving host read
//     exactly the n bytes sent, then the end of the stream.
//   - Nothing Bitswap or RawStream starts outlives the call: bitswap
//     instances, blockservices and hosts are closed before they return,
//     whether they succeed or fail (the package tests check for leaked
//     goroutines).
package baseline
