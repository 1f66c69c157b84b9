package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshcast/meshcast/attest"
	"github.com/meshcast/meshcast/attest/attesttest"
)

func TestAttestFlags(t *testing.T) {
	p := filepath.Join(t.TempDir(), "policy.yaml")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"attest", "enroll", "--name", "n"}, "attest enroll: missing --policy"},
		{[]string{"attest", "enroll", "--policy", p, "--name", "n"}, "attest enroll: missing --tpm or --tpm-tcp"},
		{[]string{"attest", "golden", "--policy", p, "--name", "g"}, "attest golden: missing --tpm or --tpm-tcp"},
		{[]string{"attest", "golden", "--policy", p, "--name", "g", "--tpm", "/dev/x", "--tpm-tcp", "h:1"},
			"attest golden: give --tpm or --tpm-tcp, not both"},
		{[]string{"attest", "golden", "--policy", p, "--name", "g", "--tpm-tcp", "h:1", "--pcrs", "0,24"},
			`attest golden: --pcrs "0,24": pcr 24: need 0..23`},
	} {
		if _, err := execute(t, c.args...); err == nil || err.Error() != c.want {
			t.Errorf("meshcast %s: %v, want %q", strings.Join(c.args, " "), err, c.want)
		}
	}
	if _, err := os.Stat(p); err == nil {
		t.Errorf("%s written by a command that failed", p)
	}
	if _, err := execute(t, "attest", "explode"); err == nil || !strings.Contains(err.Error(), `unknown command "explode" for "meshcast attest"`) {
		t.Errorf("meshcast attest explode: %v", err)
	}
}

// An invalid policy file is refused before the TPM is touched, named, and
// left as it was.
func TestAttestInvalidPolicyUntouched(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"unknown.yaml":  "pcrs: [0]\nfavourite_colour: blue\n",
		"badpcr.yaml":   "pcrs: [0, 99]\n",
		"badak.yaml":    "pcrs: [0]\naks:\n  - name: a\n    fingerprint: zz\n",
		"lifetime.yaml": "pcrs: [0]\nlifetime: 1s\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, sub := range []string{"enroll", "golden"} {
			// The address is never dialled: the policy is read first.
			_, err := execute(t, "attest", sub, "--policy", p, "--name", "x", "--tpm-tcp", "127.0.0.1:1")
			if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "invalid") {
				t.Errorf("attest %s on %s: %v, want an error naming the file", sub, name, err)
			}
			if b, _ := os.ReadFile(p); string(b) != body {
				t.Errorf("attest %s changed %s to %q", sub, name, b)
			}
		}
	}
}

func TestAttestLifetimeYAML(t *testing.T) {
	for d, want := range map[time.Duration]string{
		24 * time.Hour: "24h", 90 * time.Minute: "1h30m", 10 * time.Minute: "10m", 90 * time.Second: "1m30s",
	} {
		if got, _ := lifetime(d).MarshalYAML(); got != want {
			t.Errorf("lifetime(%v) = %q, want %q", d, got, want)
		}
	}
}

// Enroll and golden against swtpm build a policy a quote of the same TPM
// verifies against; after a PCR is extended, golden adds a different set.
func TestAttestSwtpmPolicy(t *testing.T) {
	addr := attesttest.StartSwtpm(t)
	p := filepath.Join(t.TempDir(), "site", "policy.yaml")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := execute(t, "attest", "enroll", "--policy", p, "--name", "seeder-1", "--seeder", "--tpm-tcp", addr)
	if err != nil || !strings.HasPrefix(out, "seeder-1 ") || len(strings.Fields(out)) != 2 {
		t.Fatalf("enroll: %v, printed %q", err, out)
	}
	fp := strings.Fields(out)[1]
	if _, err := execute(t, "attest", "enroll", "--policy", p, "--name", "seeder-2", "--tpm-tcp", addr); err == nil ||
		!strings.Contains(err.Error(), `enrolled already, as "seeder-1"`) {
		t.Errorf("enroll the same key again: %v", err)
	}
	if _, err := execute(t, "attest", "golden", "--policy", p, "--name", "fw-1", "--tpm-tcp", addr); err != nil {
		t.Fatalf("golden: %v", err)
	}
	if _, err := execute(t, "attest", "golden", "--policy", p, "--name", "fw-1", "--tpm-tcp", addr); err == nil ||
		!strings.Contains(err.Error(), `"fw-1" exists already`) {
		t.Errorf("golden with a name used: %v", err)
	}
	if out, err := execute(t, "attest", "golden", "--policy", p, "--name", "fw-copy", "--tpm-tcp", addr); err != nil ||
		!strings.Contains(out, `"fw-1" already has these values; nothing added`) {
		t.Errorf("golden with the same values: %v, printed %q", err, out)
	}
	b, _ := os.ReadFile(p)
	for _, want := range []string{"pcrs: [0, 1, 2, 3, 4, 5, 6, 7]\ngolden:\n", "- name: fw-1\n", "fingerprint: " + fp + "\n",
		"pem: |\n", "seeder: true\n", "lifetime: 24h\nallow_insecure: false\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("policy lacks %q:\n%s", want, b)
		}
	}
	res := quoteAndVerify(t, addr, p, 7)
	if res.AK != "seeder-1" || !res.Seeder || res.Fingerprint != fp || res.Golden != "fw-1" || res.Lifetime != 24*time.Hour {
		t.Errorf("Verify = %+v", res)
	}
	if _, err := execute(t, "attest", "golden", "--policy", p, "--name", "fw-2", "--tpm-tcp", addr); err != nil {
		t.Fatalf("golden after extending pcr 7: %v", err)
	}
	if res := quoteAndVerify(t, addr, p, -1); res.Golden != "fw-2" {
		t.Errorf("after extending pcr 7, Verify = %+v, want golden fw-2", res)
	}
	pol, err := attest.LoadPolicy(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(pol.Golden) != 2 || pol.Golden[0].PCRs[7] == pol.Golden[1].PCRs[7] || pol.Golden[0].PCRs[0] != pol.Golden[1].PCRs[0] {
		t.Errorf("golden sets %+v: want two, differing in pcr 7 only", pol.Golden)
	}
}

// quoteAndVerify loads the policy at path, has the TPM at addr quote its
// selection and verifies the quote; then it extends pcr, if not -1.
func quoteAndVerify(t *testing.T, addr, path string, pcr int) attest.Result {
	t.Helper()
	pol, err := attest.LoadPolicy(path)
	if err != nil {
		t.Fatalf("LoadPolicy: %v", err)
	}
	tpm, err := attest.OpenTCP(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer tpm.Close()
	ak, err := attest.LoadAK(tpm)
	if err != nil {
		t.Fatal(err)
	}
	defer ak.Close()
	c := attest.NewChallenge()
	q, err := ak.Quote(pol.Selection(), c, "peer-a")
	if err != nil {
		t.Fatal(err)
	}
	res, err := attest.Verify(pol, q, c, "peer-a", nil)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if pcr >= 0 {
		if err := tpm.ExtendPCR(pcr, []byte("secure boot off")); err != nil {
			t.Fatal(err)
		}
	}
	return res
}

func TestAttestAddAKDuplicateName(t *testing.T) {
	d := &policyDoc{PCRs: defaultPCRs, Lifetime: lifetime(attest.DefaultLifetime)}
	if err := d.addAK(akDoc{Name: "a", Fingerprint: strings.Repeat("ab", 32)}); err != nil {
		t.Fatal(err)
	}
	if err := d.addAK(akDoc{Name: "a", Fingerprint: strings.Repeat("cd", 32)}); err == nil ||
		!strings.Contains(err.Error(), `an AK named "a" is enrolled already`) {
		t.Errorf("a second AK named a: %v", err)
	}
	if err := d.addAK(akDoc{Name: "b", Fingerprint: strings.Repeat("AB", 32)}); err == nil ||
		!strings.Contains(err.Error(), `enrolled already, as "a"`) {
		t.Errorf("the same key (upper case) as b: %v", err)
	}
	if len(d.AKs) != 1 {
		t.Errorf("AKs = %+v", d.AKs)
	}
}
