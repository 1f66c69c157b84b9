// Package p2ptest gives the tests of the protocols over libp2p
// (mesh/meta, mesh/control) real hosts on loopback and a logger that
// writes to the test's log.
//
// Nouns: NewHost (a QUIC host on 127.0.0.1 that admits every peer),
// Connect, Log.
//
// Guarantees: every host it starts is closed when its test ends, and
// nothing is logged to a test after its cleanups ran. Only tests import
// it.
package p2ptest
