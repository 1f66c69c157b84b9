package attest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"
)

// softTPM stands in for a TPM in tests that need no simulator: a software
// ECDSA key that signs TPMS_ATTEST structures the test builds, so tests can
// also make the structures a real restricted key would refuse to sign.
type softTPM struct {
	key   *ecdsa.PrivateKey
	der   []byte
	pcrs  map[int][]byte
	clock Freshness
}

func newSoftTPM(t testing.TB) *softTPM {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	s := &softTPM{key: key, der: der, pcrs: map[int][]byte{}, clock: Freshness{Clock: 1000, ResetCount: 3}}
	for p := range MaxPCR + 1 {
		s.pcrs[p] = make([]byte, 32)
	}
	s.extend(0, "firmware 1.0")
	s.extend(7, "secure boot on")
	return s
}

func (s *softTPM) extend(pcr int, measurement string) {
	d := sha256.Sum256([]byte(measurement))
	v := sha256.Sum256(append(s.pcrs[pcr], d[:]...))
	s.pcrs[pcr] = v[:]
}

func (s *softTPM) pem() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: s.der}))
}

// attest builds the TPMS_ATTEST a TPM would for a quote of sel.
func (s *softTPM) attest(sel PCRSelection, nonce []byte) tpm2.TPMSAttest {
	s.clock.Clock += 10
	values := s.values(sel)
	return tpm2.TPMSAttest{
		Magic:           tpm2.TPMGeneratedValue,
		Type:            tpm2.TPMSTAttestQuote,
		QualifiedSigner: tpm2.TPM2BName{Buffer: []byte{0, 0x0b, 1, 2, 3}},
		ExtraData:       tpm2.TPM2BData{Buffer: nonce},
		ClockInfo: tpm2.TPMSClockInfo{
			Clock: s.clock.Clock, ResetCount: s.clock.ResetCount, RestartCount: s.clock.RestartCount, Safe: true,
		},
		FirmwareVersion: 0x2026,
		Attested: tpm2.NewTPMUAttest(tpm2.TPMSTAttestQuote, &tpm2.TPMSQuoteInfo{
			PCRSelect: sel.tpml(),
			PCRDigest: tpm2.TPM2BDigest{Buffer: pcrDigest(sel, values)},
		}),
	}
}

func (s *softTPM) values(sel PCRSelection) map[int][]byte {
	v := map[int][]byte{}
	for _, p := range sel {
		v[p] = append([]byte(nil), s.pcrs[p]...)
	}
	return v
}

// sign makes a Quote of attest bytes as they are.
func (s *softTPM) sign(t testing.TB, attest []byte, values map[int][]byte) *Quote {
	t.Helper()
	d := sha256.Sum256(attest)
	r, ss, err := ecdsa.Sign(rand.Reader, s.key, d[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := tpm2.TPMTSignature{
		SigAlg: tpm2.TPMAlgECDSA,
		Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgECDSA, &tpm2.TPMSSignatureECC{
			Hash:       tpm2.TPMAlgSHA256,
			SignatureR: tpm2.TPM2BECCParameter{Buffer: r.FillBytes(make([]byte, 32))},
			SignatureS: tpm2.TPM2BECCParameter{Buffer: ss.FillBytes(make([]byte, 32))},
		}),
	}
	return &Quote{AK: s.der, Attest: attest, Signature: tpm2.Marshal(sig), PCRs: values}
}

// quote is what a TPM would answer for sel, challenge and peerID.
func (s *softTPM) quote(t testing.TB, sel PCRSelection, challenge []byte, peerID string) *Quote {
	t.Helper()
	return s.sign(t, tpm2.Marshal(s.attest(sel, Nonce(challenge, peerID))), s.values(sel))
}

// policyYAML writes a policy for sel whose one golden set is values and
// whose AK allowlist is aks (name → PEM).
func policyYAML(sel PCRSelection, values map[int][]byte, aks map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "pcrs: %v\n", strings.ReplaceAll(fmt.Sprint([]int(sel)), " ", ", "))
	b.WriteString("golden:\n  - name: fw-1.0\n    pcrs:\n")
	for _, p := range sel {
		fmt.Fprintf(&b, "      %d: %s\n", p, hex.EncodeToString(values[p]))
	}
	b.WriteString("aks:\n")
	for name, pemText := range aks {
		fmt.Fprintf(&b, "  - name: %s\n    seeder: %v\n    pem: |\n", name, strings.HasPrefix(name, "seeder"))
		for line := range strings.Lines(pemText) {
			b.WriteString("      " + line)
		}
	}
	b.WriteString("lifetime: 12h\n")
	return b.String()
}

func mustPolicy(t testing.TB, y string) *Policy {
	t.Helper()
	p, err := ParsePolicy([]byte(y))
	if err != nil {
		t.Fatalf("ParsePolicy: %v\n%s", err, y)
	}
	return p
}
