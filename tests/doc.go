// Package tests holds the checks that span packages: the architecture rules
// of docs/DESIGN.md (which package may import which, every package has its
// doc.go), end-to-end tests of the real meshcast binary (the CLI, sites of
// separate processes with a leader killed, mDNS discovery in a network
// namespace), the site scenarios on the in-process harness (distribution,
// a corrupting peer banned, a node resuming after a kill, a late joiner,
// leader failover, a partition), the delta scenario on small trees, and
// an interoperability test that verifies an origin with tuf-js, an
// independent TUF client (tests/tufjs; run `npm ci --prefix tests/tufjs`
// first).
//
// Below it: the site harness (tests/sitetest), the measured scenarios
// (tests/scenario) and the benchmark command that runs them (tests/bench),
// the off-the-shelf baselines they compare with (tests/baseline), and the
// generator of their input trees (tests/treegen).
//
// Production code never imports this package or anything under it; the
// dependency test enforces that. The tests check, when they end, that no
// goroutine is left running.
package tests
