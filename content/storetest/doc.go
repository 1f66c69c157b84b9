// Package storetest is the conformance suite for content.Store: every
// implementation runs the same tests, so callers may rely on the contract
// written on the interface and nothing else.
//
// Nouns:
//   - Run: the suite. Each part of the contract (round trip, Has,
//     idempotent Put, copies in and out, corrupt and badly encoded chunks
//     refused, Walk, GC, Remove, concurrent use) is a parallel subtest on a
//     fresh store. A store that writes behind and has a Flush method is
//     flushed at chosen points, so that committed and pending chunks are
//     tested together.
//   - Test data: RandomData (does not compress), TextData (compresses),
//     RawChunk and ZstdChunk (a chunk of each encoding), Chunks (n
//     distinct chunks, alternating the two).
//
// Guarantees: the test data is deterministic, the same for the same seed
// on every run. Production code must not import storetest (it links
// package testing).
package storetest
