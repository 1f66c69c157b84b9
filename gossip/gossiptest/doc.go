// Package gossiptest is test support for code that runs gossip members:
// Links, a seam that cuts a member's gossip links as a network partition
// would, given to gossip.New through gossip.WrapTransport. Production code
// must not import it.
//
// Guarantees: a cut loses every packet silently and fails every stream
// dial across it, both ways, while links on the same side work; Heal
// restores them all. Links is safe for concurrent use.
package gossiptest
