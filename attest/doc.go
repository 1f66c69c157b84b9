// Package attest is where device attestation belongs: TPM access (a
// device, the simulator, swtpm's TCP protocol), quotes, their verification
// against the site policy (attestation key allowlist, PCR golden values, a
// nonce bound to the peer id) and admission records.
//
// Nothing is built here yet: the package holds only this comment, and
// issue [7/10] fills it (see docs/DESIGN.md). It imports nothing of
// libp2p or Raft; tests/deps_test.go keeps it that way.
package attest
