package attest

import (
	"bytes"
	"crypto/ecdsa"
	"os"
	"strings"
	"testing"
)

// FuzzUnmarshalQuote: decoding never panics, a decoded quote encodes back
// to the same bytes (the encoding is unique), and Verify of whatever
// decodes refuses or accepts without panicking, through go-tpm's decoders
// of TPMS_ATTEST and TPMT_SIGNATURE.
func FuzzUnmarshalQuote(f *testing.F) {
	golden, err := os.ReadFile("testdata/quote-v1.golden")
	if err != nil {
		f.Fatal(err)
	}
	p, err := LoadPolicy("testdata/policy-golden.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(golden)
	f.Add(golden[:len(golden)-1])
	f.Add(append(bytes.Clone(golden), 0))
	f.Add([]byte("MCQ\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := UnmarshalQuote(b)
		if err != nil {
			return
		}
		again, err := q.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a decoded quote: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("decode-encode changed the bytes:\n%x\n%x", b, again)
		}
		Verify(p, q, goldenChallenge(), goldenPeer, nil)
	})
}

// FuzzParsePolicy: parsing never panics, and a policy it accepts has a
// selection, golden sets and AKs.
func FuzzParsePolicy(f *testing.F) {
	golden, err := os.ReadFile("testdata/policy-golden.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(golden)
	f.Add([]byte(basePolicy))
	f.Add([]byte(strings.Replace(basePolicy, "pcrs: [0, 7]", "pcrs: [0, 7]\nlifetime: 1h\nallow_insecure: true", 1)))
	f.Add([]byte("pcrs: &a [0]\ngolden: *a\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePolicy(b)
		if err != nil {
			return
		}
		if len(p.Selection()) == 0 || len(p.golden) != len(p.Golden) || len(p.byFP) != len(p.AKs) || p.Lifetime <= 0 {
			t.Fatalf("accepted an incomplete policy: %+v", p)
		}
	})
}

// FuzzTPMDecoders reaches what FuzzUnmarshalQuote cannot past the
// signature check: go-tpm's decoders of TPMS_ATTEST and TPMT_SIGNATURE on
// hostile bytes refuse without panicking.
func FuzzTPMDecoders(f *testing.F) {
	golden, err := os.ReadFile("testdata/quote-v1.golden")
	if err != nil {
		f.Fatal(err)
	}
	q, err := UnmarshalQuote(golden)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(q.Attest)
	f.Add(q.Signature)
	f.Fuzz(func(t *testing.T, b []byte) {
		if att, err := parseAttest(b); err == nil {
			att.Attested.Quote()
		}
		checkSignature(newSoftTPM(t).key.Public().(*ecdsa.PublicKey), q.Attest, b)
	})
}
