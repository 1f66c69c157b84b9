package attest

import (
	"errors"
	"testing"

	"github.com/meshcast/meshcast/attest/attesttest"
)

func TestSwtpmQuoteVerifies(t *testing.T) {
	addr := attesttest.StartSwtpm(t)
	tpm, err := OpenTCP(addr)
	if err != nil {
		t.Fatalf("OpenTCP(%s): %v", addr, err)
	}
	defer tpm.Close()
	for pcr, m := range map[int]string{0: "firmware 1.0", 7: "secure boot on"} {
		if err := tpm.ExtendPCR(pcr, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	ak, err := LoadAK(tpm)
	if err != nil {
		t.Fatal(err)
	}
	defer ak.Close()
	values, err := ReadPCRs(tpm, testSel)
	if err != nil {
		t.Fatal(err)
	}
	p := mustPolicy(t, policyYAML(testSel, values, map[string]string{"seeder-1": string(ak.PEM())}))
	c := NewChallenge()
	q, err := ak.Quote(testSel, c, peerA)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Verify(p, q, c, peerA, nil)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !res.Seeder || res.AK != "seeder-1" {
		t.Errorf("Result = %+v", res)
	}
	if _, err := Verify(p, q, c, peerB, nil); !errors.Is(err, ErrNonce) {
		t.Errorf("Verify as peer B = %v, want ErrNonce", err)
	}
	// A second connection to the same swtpm: OpenTCP's Startup meets a
	// started TPM, and the AK is the same key.
	tpm.Close()
	tpm2, err := OpenTCP(addr)
	if err != nil {
		t.Fatalf("OpenTCP again: %v", err)
	}
	defer tpm2.Close()
	ak2, err := LoadAK(tpm2)
	if err != nil {
		t.Fatal(err)
	}
	defer ak2.Close()
	if ak2.Fingerprint() != ak.Fingerprint() {
		t.Errorf("AK after reconnect %s, want %s", ak2.Fingerprint(), ak.Fingerprint())
	}
}

// ReadPCRs checks its selection, and ExtendPCR its index, before asking
// the TPM; an extended PCR reads differently.
func TestSwtpmReadExtendPCRs(t *testing.T) {
	tpm, err := OpenTCP(attesttest.StartSwtpm(t))
	if err != nil {
		t.Fatal(err)
	}
	defer tpm.Close()
	for _, sel := range []PCRSelection{nil, {24}, {3, 3}} {
		if _, err := ReadPCRs(tpm, sel); err == nil {
			t.Errorf("ReadPCRs(%v): no error", sel)
		}
	}
	if err := tpm.ExtendPCR(24, []byte("x")); err == nil {
		t.Error("ExtendPCR(24): no error")
	}
	sel := PCRSelection{0, 1, 2, 3, 4, 5, 6, 7, 8, 16}
	before, err := ReadPCRs(tpm, sel)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != len(sel) {
		t.Fatalf("ReadPCRs: %d values, want %d", len(before), len(sel))
	}
	if err := tpm.ExtendPCR(16, []byte("debug")); err != nil {
		t.Fatal(err)
	}
	after, err := ReadPCRs(tpm, sel)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range sel {
		if changed := string(before[p]) != string(after[p]); changed != (p == 16) {
			t.Errorf("pcr %d: changed %v after extending pcr 16", p, changed)
		}
	}
}
