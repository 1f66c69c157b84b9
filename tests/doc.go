// Package tests holds the checks that span packages: the architecture rules
// of docs/DESIGN.md (which package may import which, every package has its
// doc.go), end-to-end tests of the real meshcast binary, and an
// interoperability test that verifies an origin with tuf-js, an independent
// TUF client (tests/tufjs; run `npm ci --prefix tests/tufjs` first). The
// site harness and the fault and benchmark scenarios will live here too;
// tests/treegen generates their input trees.
//
// Production code never imports this package or anything under it; the
// dependency test enforces that.
package tests
