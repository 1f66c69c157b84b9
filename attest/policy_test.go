package attest

import (
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	zeros = "0000000000000000000000000000000000000000000000000000000000000000"
	ones  = "1111111111111111111111111111111111111111111111111111111111111111"
)

// basePolicy is valid; the bad cases below replace one line of it.
var basePolicy = `pcrs: [0, 7]
golden:
  - name: fw-1.0
    pcrs: {0: ` + zeros + `, 7: ` + ones + `}
aks:
  - name: node-1
    fingerprint: ` + ones + `
`

func TestParsePolicy(t *testing.T) {
	p, err := ParsePolicy([]byte(basePolicy))
	if err != nil {
		t.Fatal(err)
	}
	if p.Lifetime != DefaultLifetime || p.AllowInsecure {
		t.Errorf("defaults: lifetime %v, allow_insecure %v", p.Lifetime, p.AllowInsecure)
	}
	if got := p.Selection(); len(got) != 2 || got[0] != 0 || got[1] != 7 {
		t.Errorf("Selection() = %v", got)
	}
	up := strings.Replace(basePolicy, "fingerprint: "+ones, "fingerprint: "+strings.ToUpper("ab"+ones[2:]), 1)
	if p, err := ParsePolicy([]byte(up)); err != nil || p.AKs[0].Fingerprint != "ab"+ones[2:] {
		t.Errorf("upper-case fingerprint: %v, %+v", err, p)
	}
	y := strings.Replace(basePolicy, "pcrs: [0, 7]", "pcrs: [7, 0]\nlifetime: 90m\nallow_insecure: true", 1)
	if p, err := ParsePolicy([]byte(y)); err != nil || p.Lifetime != 90*time.Minute || !p.AllowInsecure {
		t.Errorf("lifetime and allow_insecure: %v, %+v", err, p)
	}
}

func TestLoadPolicy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(basePolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPolicy(path); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPolicy(path + ".missing"); err == nil {
		t.Error("LoadPolicy of a missing file: no error")
	}
}

// TestParsePolicyRefusals: each invalid policy is ErrInvalidPolicy with a
// message naming the field.
func TestParsePolicyRefusals(t *testing.T) {
	s := newSoftTPM(t)
	pemBlock := "    pem: |\n      " + strings.ReplaceAll(strings.TrimSpace(s.pem()), "\n", "\n      ") + "\n"
	for _, tc := range []struct {
		name, old, new, mentions string
	}{
		{"no pcrs", "pcrs: [0, 7]", "pcrs: []", "pcrs: no pcr"},
		{"pcr out of range", "pcrs: [0, 7]", "pcrs: [0, 24]", "pcrs: pcr 24"},
		{"pcr twice", "pcrs: [0, 7]", "pcrs: [0, 7, 7]", "pcrs: pcr 7: selected twice"},
		{"unknown field", "pcrs: [0, 7]", "pcrs: [0, 7]\npcr_bank: sha1", "field pcr_bank not found"},
		{"no golden", "  - name: fw-1.0\n    pcrs: {0: " + zeros + ", 7: " + ones + "}\n", "", "golden: empty"},
		{"golden without name", "name: fw-1.0", "name: ''", "golden[0].name: empty"},
		{"golden short hex", "7: " + ones + "}", "7: abcd}", "golden[0] (fw-1.0).pcrs[7]"},
		{"golden missing a pcr", ", 7: " + ones + "}", "}", "golden[0] (fw-1.0).pcrs: no value for pcr 7"},
		{"golden extra pcr", ", 7: " + ones + "}", ", 7: " + ones + ", 8: " + ones + "}", "pcr 8 is not in pcrs"},
		{"golden name twice", "aks:", "  - name: fw-1.0\n    pcrs: {0: " + zeros + ", 7: " + ones + "}\naks:", `golden[1].name: "fw-1.0" used twice`},
		{"no aks", "  - name: node-1\n    fingerprint: " + ones + "\n", "", "aks: empty"},
		{"ak without name", "name: node-1", "name: ' '", "aks[0].name: empty"},
		{"ak without key", "    fingerprint: " + ones + "\n", "", "aks[0] (node-1).fingerprint: need a fingerprint or a pem"},
		{"ak fingerprint not hex", "fingerprint: " + ones, "fingerprint: xyz", "aks[0] (node-1).fingerprint"},
		{"ak pem garbage", "    fingerprint: " + ones + "\n", "    pem: hello\n", "aks[0] (node-1).pem"},
		{"ak pem and fingerprint disagree", "    fingerprint: " + ones + "\n", "    fingerprint: " + ones + "\n" + pemBlock, "but the pem's key has"},
		{"same ak twice", "    fingerprint: " + ones + "\n", "    fingerprint: " + ones + "\n  - name: node-2\n    fingerprint: " + ones + "\n", "aks[1] (node-2): the same key as node-1"},
		{"lifetime without unit", "pcrs: [0, 7]", "pcrs: [0, 7]\nlifetime: 3600", "into time.Duration"},
		{"negative lifetime", "pcrs: [0, 7]", "pcrs: [0, 7]\nlifetime: -1h", "lifetime"},
		{"two documents", "pcrs: [0, 7]", "pcrs: [0, 7]\n---\npcrs: [1]\n", "more than one YAML document"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := strings.Replace(basePolicy, tc.old, tc.new, 1)
			if y == basePolicy && tc.old != tc.new {
				t.Fatalf("the case changes nothing: %q not in the base policy", tc.old)
			}
			_, err := ParsePolicy([]byte(y))
			if !errors.Is(err, ErrInvalidPolicy) || !strings.Contains(err.Error(), tc.mentions) {
				t.Fatalf("ParsePolicy = %v, want ErrInvalidPolicy mentioning %q\n%s", err, tc.mentions, y)
			}
		})
	}
	if _, err := ParsePolicy(make([]byte, MaxPolicySize+1)); !errors.Is(err, ErrInvalidPolicy) {
		t.Errorf("oversized policy: %v", err)
	}
}

// TestPolicyFingerprintOnly: an AK enrolled by fingerprint alone verifies
// with the key the quote carries.
func TestPolicyFingerprintOnly(t *testing.T) {
	s := newSoftTPM(t)
	v := s.values(testSel)
	y := "pcrs: [0, 7]\ngolden:\n  - name: fw-1.0\n    pcrs: {0: " + hex.EncodeToString(v[0]) + ", 7: " + hex.EncodeToString(v[7]) + "}\n" +
		"aks:\n  - name: node-1\n    fingerprint: " + Fingerprint(s.der) + "\n"
	p := mustPolicy(t, y)
	c := NewChallenge()
	if _, err := Verify(p, s.quote(t, testSel, c, peerA), c, peerA, nil); err != nil {
		t.Fatalf("Verify: %v\n%s", err, y)
	}
}
