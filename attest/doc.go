// Package attest will own device attestation: TPM access (a device, the
// simulator, swtpm's TCP protocol), quotes, their verification against the
// site policy (attestation key allowlist, PCR golden values, a nonce bound to
// the peer id) and admission records. It will know nothing of libp2p or Raft.
//
// Not built yet: see issues [2/6]–[6/6] and docs/DESIGN.md.
package attest
