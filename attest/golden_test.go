package attest

import (
	"bytes"
	"crypto/sha256"
	"os"
	"testing"
)

const goldenPeer = "12D3KooWGoldenPeer"

func goldenChallenge() []byte {
	c := sha256.Sum256([]byte("meshcast golden challenge"))
	return c[:]
}

// TestGoldenQuote decodes and verifies the quote a simulated TPM made
// (testdata/quote-v1.golden, against testdata/policy-golden.yaml): the v1
// encoding and the verification of a real TPM's structures cannot change
// without this failing. It needs no TPM.
func TestGoldenQuote(t *testing.T) {
	b, err := os.ReadFile("testdata/quote-v1.golden")
	if err != nil {
		t.Fatal(err)
	}
	p, err := LoadPolicy("testdata/policy-golden.yaml")
	if err != nil {
		t.Fatal(err)
	}
	q, err := UnmarshalQuote(b)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Verify(p, q, goldenChallenge(), goldenPeer, nil)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if res.AK != "node-1" || res.Golden != "fw-1.0" || res.Seeder {
		t.Errorf("Result = %+v", res)
	}
	again, err := q.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, b) {
		t.Errorf("Marshal(UnmarshalQuote(golden)) differs from the golden bytes")
	}
	if _, err := Verify(p, q, goldenChallenge(), "12D3KooWSomeoneElse", nil); err == nil {
		t.Errorf("the golden quote verified for another peer id")
	}
}

func BenchmarkVerify(b *testing.B) {
	raw, err := os.ReadFile("testdata/quote-v1.golden")
	if err != nil {
		b.Fatal(err)
	}
	p, err := LoadPolicy("testdata/policy-golden.yaml")
	if err != nil {
		b.Fatal(err)
	}
	c := goldenChallenge()
	for b.Loop() {
		q, err := UnmarshalQuote(raw)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Verify(p, q, c, goldenPeer, nil); err != nil {
			b.Fatal(err)
		}
	}
}
