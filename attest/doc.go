// Package attest is device attestation: TPM access, quotes, and their
// verification against a site's policy. It knows nothing of libp2p or
// Raft (tests/deps_test.go keeps it that way): a peer id is a string here,
// and what a verifier does with a Result is its caller's business.
//
// Nouns:
//
//   - A TPM is an open connection to one TPM: the kernel's device
//     (OpenDevice, /dev/tpmrm0), swtpm or the reference simulator over the
//     TCP simulator protocol (OpenTCP), or the in-process simulator
//     (OpenSimulator, only in builds with the tpmsim tag, which need cgo).
//   - The AK (attestation key) is a restricted ECDSA P-256 signing key,
//     the primary key of the endorsement hierarchy for a fixed template, so
//     LoadAK gives the same key on the same TPM every time. Its
//     Fingerprint, the hex SHA-256 of its PKIX DER, is its identity in a
//     policy.
//   - A challenge is ChallengeSize fresh random bytes from the verifier.
//     The Nonce of a challenge and a peer id is
//     sha256("meshcast/attest/1\x00" ‖ challenge ‖ peer id).
//   - A Quote is the TPM's signed TPMS_ATTEST over a PCRSelection of the
//     SHA-256 bank with that nonce, plus the AK and the PCR values the node
//     read. Its wire encoding is versioned ("MCQ" 1, testdata/quote-v1.golden)
//     and at most MaxQuoteSize bytes.
//   - A Policy (YAML) names the PCRs every quote covers, the Golden sets of
//     values they may hold, the enrolled AKs (EnrolledAK: by fingerprint or
//     PEM, and whether the key is a seeder's), an admission Lifetime and
//     whether an insecure, TPM-less mode is allowed.
//   - Freshness is the TPM clock, reset count and restart count a quote
//     reports; a verifier keeps the last accepted one per AK.
//
// Guarantees:
//
//   - Verify accepts a quote only if its AK is enrolled, the signature is
//     the AK's over the attest bytes, those bytes are a TPM-generated quote,
//     the nonce is the one of this challenge and this peer id (so a quote
//     cannot be replayed, nor used by another peer), the quoted selection
//     is the policy's, the reported PCR values hash to the quoted digest,
//     they equal one golden set, and the TPM's Freshness is strictly after
//     the last accepted one. Each refusal is its own sentinel error
//     (ErrUnknownAK … ErrStale), wrapped with what differed.
//   - Verify is pure Go: no TPM, no cgo, no I/O. It trusts no field of a
//     quote before the signature checks, and a hostile quote is refused,
//     never a panic (UnmarshalQuote, ParsePolicy and the TPM structure
//     decoders are fuzzed).
//   - UnmarshalQuote and ParsePolicy are strict and bounded: unknown
//     fields, trailing bytes and oversized input are refused, and policy
//     errors name the field.
//
// Not here yet: proving an AK lives in a genuine TPM at enrollment (EK
// certificates and credential activation), and admission records.
package attest
