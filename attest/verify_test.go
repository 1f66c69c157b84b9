package attest

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"
)

const (
	peerA = "12D3KooWPeerA"
	peerB = "12D3KooWPeerB"
)

var testSel = PCRSelection{0, 7}

// softSite is a policy enrolling one soft TPM, as node-1.
func softSite(t testing.TB) (*softTPM, *Policy) {
	s := newSoftTPM(t)
	return s, mustPolicy(t, policyYAML(testSel, s.values(testSel), map[string]string{"node-1": s.pem()}))
}

func TestVerifyAcceptsGoodQuote(t *testing.T) {
	s, p := softSite(t)
	c := NewChallenge()
	res, err := Verify(p, s.quote(t, testSel, c, peerA), c, peerA, nil)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := Result{AK: "node-1", Fingerprint: Fingerprint(s.der), Golden: "fw-1.0", Freshness: s.clock, Lifetime: p.Lifetime}
	if res != want {
		t.Errorf("Result = %+v, want %+v", res, want)
	}
	prev := res.Freshness
	c2 := NewChallenge()
	if _, err := Verify(p, s.quote(t, testSel, c2, peerA), c2, peerA, &prev); err != nil {
		t.Errorf("Verify of a later quote: %v", err)
	}
}

// TestVerifyRefusals makes each refusal of Verify happen once, and checks it
// is the documented sentinel with a message naming what differed.
func TestVerifyRefusals(t *testing.T) {
	c := NewChallenge()
	for _, tc := range []struct {
		name     string
		mutate   func(t *testing.T, s *softTPM, p *Policy) (*Quote, []byte, string, *Freshness)
		want     error
		mentions string
	}{
		{"unenrolled ak", func(t *testing.T, _ *softTPM, _ *Policy) (*Quote, []byte, string, *Freshness) {
			return newSoftTPM(t).quote(t, testSel, c, peerA), c, peerA, nil
		}, ErrUnknownAK, "fingerprint"},
		{"flipped signature byte", func(t *testing.T, s *softTPM, _ *Policy) (*Quote, []byte, string, *Freshness) {
			q := s.quote(t, testSel, c, peerA)
			q.Signature[len(q.Signature)-1] ^= 1
			return q, c, peerA, nil
		}, ErrBadSignature, ""},
		{"tampered attest", func(t *testing.T, s *softTPM, _ *Policy) (*Quote, []byte, string, *Freshness) {
			q := s.quote(t, testSel, c, peerA)
			q.Attest[len(q.Attest)-1] ^= 1
			return q, c, peerA, nil
		}, ErrBadSignature, ""},
		{"signature of another key", func(t *testing.T, s *softTPM, _ *Policy) (*Quote, []byte, string, *Freshness) {
			q := newSoftTPM(t).quote(t, testSel, c, peerA)
			q.AK = s.der
			return q, c, peerA, nil
		}, ErrBadSignature, ""},
		{"garbage signature", func(t *testing.T, s *softTPM, _ *Policy) (*Quote, []byte, string, *Freshness) {
			q := s.quote(t, testSel, c, peerA)
			q.Signature = []byte{0x00, 0x18, 0xff}
			return q, c, peerA, nil
		}, ErrBadSignature, ""},
		{"wrong magic", func(t *testing.T, s *softTPM, _ *Policy) (*Quote, []byte, string, *Freshness) {
			a := s.attest(testSel, Nonce(c, peerA))
			a.Magic = 0x12345678
			return s.sign(t, tpm2.Marshal(a), s.values(testSel)), c, peerA, nil
		}, ErrNotTPMGenerated, "magic 0x12345678"},
		{"not a quote", func(t *testing.T, s *softTPM, _ *Policy) (*Quote, []byte, string, *Freshness) {
			a := s.attest(testSel, Nonce(c, peerA))
			a.Type = tpm2.TPMSTAttestTime
			a.Attested = tpm2.NewTPMUAttest(tpm2.TPMSTAttestTime, &tpm2.TPMSTimeAttestInfo{})
			return s.sign(t, tpm2.Marshal(a), s.values(testSel)), c, peerA, nil
		}, ErrNotTPMGenerated, "ATTEST_QUOTE"},
		{"replayed challenge", func(t *testing.T, s *softTPM, _ *Policy) (*Quote, []byte, string, *Freshness) {
			return s.quote(t, testSel, c, peerA), NewChallenge(), peerA, nil
		}, ErrNonce, peerA},
		{"quote of peer A presented as peer B", func(t *testing.T, s *softTPM, _ *Policy) (*Quote, []byte, string, *Freshness) {
			return s.quote(t, testSel, c, peerA), c, peerB, nil
		}, ErrNonce, peerB},
		{"short challenge", func(t *testing.T, s *softTPM, _ *Policy) (*Quote, []byte, string, *Freshness) {
			return s.quote(t, testSel, c, peerA), c[:16], peerA, nil
		}, ErrNonce, "challenge of 16 bytes"},
		{"other pcr selection", func(t *testing.T, s *softTPM, _ *Policy) (*Quote, []byte, string, *Freshness) {
			return s.quote(t, PCRSelection{0, 7, 8}, c, peerA), c, peerA, nil
		}, ErrPCRSelection, "quoted [0 7 8], policy [0 7]"},
		{"a reported value missing", func(t *testing.T, s *softTPM, _ *Policy) (*Quote, []byte, string, *Freshness) {
			q := s.quote(t, testSel, c, peerA)
			delete(q.PCRs, 7)
			return q, c, peerA, nil
		}, ErrPCRSelection, "values reported for [0]"},
		{"reported values not those quoted", func(t *testing.T, s *softTPM, _ *Policy) (*Quote, []byte, string, *Freshness) {
			q := s.quote(t, testSel, c, peerA)
			q.PCRs[7] = make([]byte, 32)
			return q, c, peerA, nil
		}, ErrPCRDigest, ""},
		{"pcr 7 extended", func(t *testing.T, s *softTPM, _ *Policy) (*Quote, []byte, string, *Freshness) {
			s.extend(7, "secure boot off")
			return s.quote(t, testSel, c, peerA), c, peerA, nil
		}, ErrPCRMismatch, `nearest is "fw-1.0": pcr 7 is`},
		{"same freshness as the last accepted", func(t *testing.T, s *softTPM, _ *Policy) (*Quote, []byte, string, *Freshness) {
			q := s.quote(t, testSel, c, peerA)
			prev := s.clock
			return q, c, peerA, &prev
		}, ErrStale, "node-1"},
		{"older than the last accepted after a reboot", func(t *testing.T, s *softTPM, _ *Policy) (*Quote, []byte, string, *Freshness) {
			q := s.quote(t, testSel, c, peerA)
			prev := Freshness{Clock: 1, ResetCount: s.clock.ResetCount + 1}
			return q, c, peerA, &prev
		}, ErrStale, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, p := softSite(t)
			q, challenge, peer, prev := tc.mutate(t, s, p)
			_, err := Verify(p, q, challenge, peer, prev)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.mentions) {
				t.Errorf("Verify = %q, want it to mention %q", err, tc.mentions)
			}
		})
	}
}

func TestVerifyNeedsParsedPolicy(t *testing.T) {
	s := newSoftTPM(t)
	c := NewChallenge()
	if _, err := Verify(&Policy{}, s.quote(t, testSel, c, peerA), c, peerA, nil); err == nil {
		t.Error("Verify with an unparsed Policy: no error")
	}
}

func TestFreshnessAfter(t *testing.T) {
	base := Freshness{Clock: 100, ResetCount: 2, RestartCount: 1}
	for _, tc := range []struct {
		f    Freshness
		want bool
	}{
		{base, false},
		{Freshness{Clock: 101, ResetCount: 2, RestartCount: 1}, true},
		{Freshness{Clock: 99, ResetCount: 2, RestartCount: 1}, false},
		{Freshness{Clock: 1, ResetCount: 2, RestartCount: 2}, true},
		{Freshness{Clock: 500, ResetCount: 2, RestartCount: 0}, false},
		{Freshness{Clock: 1, ResetCount: 3}, true},
		{Freshness{Clock: 500, ResetCount: 1, RestartCount: 9}, false},
	} {
		if got := tc.f.After(base); got != tc.want {
			t.Errorf("%+v.After(%+v) = %v, want %v", tc.f, base, got, tc.want)
		}
	}
}
