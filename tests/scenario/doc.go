// Package scenario holds the measured scenarios that the benchmark command
// (tests/bench) runs and prints, and that the tests run and assert bounds
// on (TestDelta): the same code in both. Everything runs on loopback in
// directories the caller owns.
//
// Nouns:
//   - PublishSpeed: a first publish of a disk-image-like file, against the
//     zstd CLI compressing the same file, alternating runs.
//   - Delta: a tree and its upgrade (tests/treegen) published one after
//     the other: what publishing the upgrade wrote, and what a node holding
//     the first version fetched for it, against each changed file
//     compressed alone with zstd -19.
//   - Site: a site on the harness (tests/sitetest): a run with the CDN
//     capped (amplification, completion, duplicates, seeder upload, CPU,
//     memory), a direct fetch from the same CDN, and an uncapped run
//     against a raw libp2p stream and bitswap (tests/baseline).
//
// Guarantees: Delta checks the tree the node assembled against its input
// (SameTree: paths, types, permission bits, link targets and bytes) and
// fails when they differ.
package scenario
