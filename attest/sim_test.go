//go:build tpmsim

package attest

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// update rewrites the golden files from the simulator.
var update = flag.Bool("update", false, "rewrite testdata/quote-v1.golden and testdata/policy-golden.yaml")

// goldenSeed fixes the simulator's seeds, so the AK of the golden files is
// the same on every -update.
const goldenSeed = 20261207

// simTPM opens the simulator with seed, measures a "boot" into PCRs 0 and
// 7, and closes it at the end of the test. Only one simulator runs at a
// time: close one before opening the next.
func simTPM(t testing.TB, seed int64) *TPM {
	t.Helper()
	tpm, err := OpenSimulatorSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tpm.Close() })
	measureBoot(t, tpm)
	return tpm
}

// measureBoot extends PCRs 0 and 7 as firmware would.
func measureBoot(t testing.TB, tpm *TPM) {
	t.Helper()
	for pcr, m := range map[int]string{0: "firmware 1.0", 7: "secure boot on"} {
		if err := tpm.ExtendPCR(pcr, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
}

func loadAK(t testing.TB, tpm *TPM) *AK {
	t.Helper()
	ak, err := LoadAK(tpm)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ak.Close() })
	return ak
}

// enroll returns a policy whose golden set is tpm's PCRs now and which
// enrolls ak.
func enroll(t testing.TB, tpm *TPM, ak *AK) *Policy {
	t.Helper()
	values, err := tpm.readPCRs(testSel)
	if err != nil {
		t.Fatal(err)
	}
	return mustPolicy(t, policyYAML(testSel, values, map[string]string{"node-1": string(ak.PEM())}))
}

func quote(t testing.TB, ak *AK, challenge []byte, peer string) *Quote {
	t.Helper()
	q, err := ak.Quote(testSel, challenge, peer)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestSimulatorQuoteVerifies(t *testing.T) {
	tpm := simTPM(t, 1)
	ak := loadAK(t, tpm)
	again := loadAK(t, tpm)
	if ak.Fingerprint() != again.Fingerprint() {
		t.Fatalf("LoadAK twice: fingerprints %s and %s, want the same key", ak.Fingerprint(), again.Fingerprint())
	}
	p := enroll(t, tpm, ak)
	c := NewChallenge()
	q := quote(t, ak, c, peerA)
	b, err := q.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	q2, err := UnmarshalQuote(b)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Verify(p, q2, c, peerA, nil)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if res.AK != "node-1" || res.Golden != "fw-1.0" || res.Fingerprint != ak.Fingerprint() {
		t.Errorf("Result = %+v", res)
	}
	t.Logf("quote: %d bytes encoded, freshness %+v", len(b), res.Freshness)
}

// TestSimulatorRefusals presents a real TPM's quotes in each way Verify
// must refuse.
func TestSimulatorRefusals(t *testing.T) {
	tpm := simTPM(t, 2)
	ak := loadAK(t, tpm)
	p := enroll(t, tpm, ak)
	c := NewChallenge()
	good := quote(t, ak, c, peerA)
	accepted, err := Verify(p, good, c, peerA, nil)
	if err != nil {
		t.Fatalf("Verify of a good quote: %v", err)
	}
	later := quote(t, ak, c, peerA)

	flipped := *good
	flipped.Signature = bytes.Clone(good.Signature)
	flipped.Signature[len(flipped.Signature)-1] ^= 0x01
	tampered := *good
	tampered.Attest = bytes.Clone(good.Attest)
	tampered.Attest[len(tampered.Attest)-9] ^= 0x01 // in the clock info

	for _, tc := range []struct {
		name      string
		q         *Quote
		challenge []byte
		peer      string
		prev      *Freshness
		want      error
	}{
		{"replayed: the verifier expects a fresh challenge", good, NewChallenge(), peerA, nil, ErrNonce},
		{"quote for peer A presented as peer B", good, c, peerB, nil, ErrNonce},
		{"flipped signature byte", &flipped, c, peerA, nil, ErrBadSignature},
		{"tampered attest bytes", &tampered, c, peerA, nil, ErrBadSignature},
		{"the accepted quote again", good, c, peerA, &accepted.Freshness, ErrStale},
		{"an older quote after a later one was accepted", good, c, peerA, freshnessOf(t, p, later, c), ErrStale},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Verify(p, tc.q, tc.challenge, tc.peer, tc.prev); !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func freshnessOf(t *testing.T, p *Policy, q *Quote, c []byte) *Freshness {
	t.Helper()
	res, err := Verify(p, q, c, peerA, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &res.Freshness
}

func TestSimulatorUnexpectedPCR(t *testing.T) {
	tpm := simTPM(t, 3)
	ak := loadAK(t, tpm)
	p := enroll(t, tpm, ak)
	if err := tpm.ExtendPCR(7, []byte("secure boot off")); err != nil {
		t.Fatal(err)
	}
	c := NewChallenge()
	_, err := Verify(p, quote(t, ak, c, peerA), c, peerA, nil)
	if !errors.Is(err, ErrPCRMismatch) || !strings.Contains(err.Error(), "pcr 7 is") {
		t.Fatalf("Verify = %v, want ErrPCRMismatch naming pcr 7", err)
	}
}

func TestSimulatorUnenrolledAK(t *testing.T) {
	var p *Policy
	func() { // the enrolled TPM, closed before the other one opens
		tpm, err := OpenSimulatorSeed(4)
		if err != nil {
			t.Fatal(err)
		}
		defer tpm.Close()
		measureBoot(t, tpm)
		ak, err := LoadAK(tpm)
		if err != nil {
			t.Fatal(err)
		}
		defer ak.Close()
		p = enroll(t, tpm, ak)
	}()
	other := simTPM(t, 5) // another TPM: same template, another endorsement seed
	c := NewChallenge()
	if _, err := Verify(p, quote(t, loadAK(t, other), c, peerA), c, peerA, nil); !errors.Is(err, ErrUnknownAK) {
		t.Fatalf("Verify = %v, want ErrUnknownAK", err)
	}
}

// TestSimulatorGolden writes the golden quote and policy with -update; the
// pure-Go TestGoldenQuote checks them on every run.
func TestSimulatorGolden(t *testing.T) {
	if !*update {
		t.Skip("run with -update to rewrite testdata/quote-v1.golden and testdata/policy-golden.yaml")
	}
	tpm := simTPM(t, goldenSeed)
	ak := loadAK(t, tpm)
	p := enroll(t, tpm, ak)
	q := quote(t, ak, goldenChallenge(), goldenPeer)
	if _, err := Verify(p, q, goldenChallenge(), goldenPeer, nil); err != nil {
		t.Fatal(err)
	}
	b, err := q.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	values, err := tpm.readPCRs(testSel)
	if err != nil {
		t.Fatal(err)
	}
	y := policyYAML(testSel, values, map[string]string{"node-1": string(ak.PEM())})
	for name, data := range map[string][]byte{"quote-v1.golden": b, "policy-golden.yaml": []byte(y)} {
		if err := os.WriteFile(filepath.Join("testdata", name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func BenchmarkQuote(b *testing.B) {
	tpm := simTPM(b, 6)
	ak := loadAK(b, tpm)
	c := NewChallenge()
	for b.Loop() {
		if _, err := ak.Quote(testSel, c, peerA); err != nil {
			b.Fatal(err)
		}
	}
}
