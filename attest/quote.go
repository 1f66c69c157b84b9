package attest

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"slices"

	"github.com/google/go-tpm/tpm2"
)

// ChallengeSize is the length of a verifier's challenge. A fixed length
// keeps challenge ‖ peer id unambiguous in the nonce.
const ChallengeSize = 32

// MaxPCR is the highest PCR index a selection may name (a PC client TPM
// has PCRs 0 to 23).
const MaxPCR = 23

// nonceLabel separates meshcast's quote nonces from any other use of
// the same hash.
const nonceLabel = "meshcast/attest/1\x00"

// NewChallenge returns ChallengeSize random bytes for one attestation.
func NewChallenge() []byte {
	c := make([]byte, ChallengeSize)
	rand.Read(c) // never fails (crypto/rand)
	return c
}

// Nonce returns the qualifying data a quote for challenge and peerID
// carries: sha256("meshcast/attest/1\x00" ‖ challenge ‖ peerID). It binds
// the quote to the verifier's fresh challenge and to the peer id the node
// connects with.
func Nonce(challenge []byte, peerID string) []byte {
	h := sha256.New()
	h.Write([]byte(nonceLabel))
	h.Write(challenge)
	h.Write([]byte(peerID))
	return h.Sum(nil)
}

// PCRSelection is a set of PCRs of the SHA-256 bank, in ascending order.
type PCRSelection []int

// NewPCRSelection returns the selection of pcrs, sorted, checking each is
// 0..MaxPCR and appears once.
func NewPCRSelection(pcrs ...int) (PCRSelection, error) {
	sel := slices.Sorted(slices.Values(pcrs))
	for i, p := range sel {
		if p < 0 || p > MaxPCR {
			return nil, fmt.Errorf("pcr %d: need 0..%d", p, MaxPCR)
		}
		if i > 0 && sel[i-1] == p {
			return nil, fmt.Errorf("pcr %d: selected twice", p)
		}
	}
	if len(sel) == 0 {
		return nil, fmt.Errorf("no pcr selected")
	}
	return PCRSelection(sel), nil
}

// tpml returns the selection as the TPM writes it.
func (s PCRSelection) tpml() tpm2.TPMLPCRSelection {
	idx := make([]uint, len(s))
	for i, p := range s {
		idx[i] = uint(p)
	}
	return tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{
		{Hash: tpm2.TPMAlgSHA256, PCRSelect: tpm2.PCClientCompatible.PCRs(idx...)},
	}}
}

// Quote is one TPM quote as a node sends it: the AK it was signed with,
// the TPMS_ATTEST the TPM produced, the signature over it, and the PCR
// values the node read for the quoted selection. Nothing in it is trusted
// until Verify accepts it.
type Quote struct {
	AK        []byte         // PKIX DER of the AK's public key
	Attest    []byte         // TPMS_ATTEST, as the TPM marshaled it
	Signature []byte         // TPMT_SIGNATURE, as the TPM marshaled it
	PCRs      map[int][]byte // SHA-256 bank values of the selection
}

// quoteAttempts bounds the retries when a PCR changes between reading the
// PCRs and quoting them.
const quoteAttempts = 3

// Quote has the TPM sign the selected PCRs with the nonce for challenge and
// peerID, and reads their values to send along.
func (ak *AK) Quote(sel PCRSelection, challenge []byte, peerID string) (*Quote, error) {
	if len(challenge) != ChallengeSize {
		return nil, fmt.Errorf("tpm %s: quote: challenge of %d bytes, want %d", ak.tpm.name, len(challenge), ChallengeSize)
	}
	for range quoteAttempts {
		values, err := ak.tpm.readPCRs(sel)
		if err != nil {
			return nil, err
		}
		rsp, err := tpm2.Quote{
			SignHandle:     tpm2.AuthHandle{Handle: ak.handle, Name: ak.name, Auth: tpm2.PasswordAuth(nil)},
			QualifyingData: tpm2.TPM2BData{Buffer: Nonce(challenge, peerID)},
			InScheme:       tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
			PCRSelect:      sel.tpml(),
		}.Execute(ak.tpm.t)
		if err != nil {
			return nil, fmt.Errorf("tpm %s: quote: %w", ak.tpm.name, err)
		}
		q := &Quote{
			AK:        ak.DER(),
			Attest:    rsp.Quoted.Bytes(),
			Signature: tpm2.Marshal(rsp.Signature),
			PCRs:      values,
		}
		info, err := quoteInfo(q.Attest)
		if err != nil {
			return nil, fmt.Errorf("tpm %s: quote: %w", ak.tpm.name, err)
		}
		if bytes.Equal(info.PCRDigest.Buffer, pcrDigest(sel, values)) {
			return q, nil
		}
		// A PCR was extended between the read and the quote: again.
	}
	return nil, fmt.Errorf("tpm %s: quote: pcrs kept changing while quoting (%d attempts)", ak.tpm.name, quoteAttempts)
}

// ReadPCRs reads the current SHA-256 bank values of sel's PCRs from tpm,
// the values a quote of sel would carry (and what a golden set records).
// sel is checked as NewPCRSelection checks it.
func ReadPCRs(tpm *TPM, sel PCRSelection) (map[int][]byte, error) {
	s, err := NewPCRSelection(sel...)
	if err != nil {
		return nil, fmt.Errorf("tpm %s: read pcrs: %w", tpm.name, err)
	}
	return tpm.readPCRs(s)
}

// readPCRs reads the selection's SHA-256 values, at most eight a command
// (what a TPM returns at once).
func (t *TPM) readPCRs(sel PCRSelection) (map[int][]byte, error) {
	values := make(map[int][]byte, len(sel))
	for chunk := range slices.Chunk(sel, 8) {
		rsp, err := tpm2.PCRRead{PCRSelectionIn: chunk.tpml()}.Execute(t.t)
		if err != nil {
			return nil, fmt.Errorf("tpm %s: read pcrs %v: %w", t.name, chunk, err)
		}
		got := rsp.PCRValues.Digests
		if len(got) != len(chunk) {
			return nil, fmt.Errorf("tpm %s: read pcrs %v: got %d values", t.name, chunk, len(got))
		}
		for i, p := range chunk {
			if len(got[i].Buffer) != sha256.Size {
				return nil, fmt.Errorf("tpm %s: read pcr %d: %d bytes", t.name, p, len(got[i].Buffer))
			}
			values[p] = got[i].Buffer
		}
	}
	return values, nil
}

// pcrDigest is what a quote signs for the PCRs: the SHA-256 of their
// values concatenated in selection order.
func pcrDigest(sel PCRSelection, values map[int][]byte) []byte {
	h := sha256.New()
	for _, p := range sel {
		h.Write(values[p])
	}
	return h.Sum(nil)
}
