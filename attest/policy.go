package attest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ErrInvalidPolicy wraps every refusal of ParsePolicy; the message names
// the field.
var ErrInvalidPolicy = errors.New("invalid attestation policy")

// DefaultLifetime is how long an admission lasts when the policy does not
// say.
const DefaultLifetime = 24 * time.Hour

// MaxPolicySize bounds a policy file.
const MaxPolicySize = 1 << 20

// Policy is a site's attestation policy: which PCRs a quote covers, the
// values they may have, and which attestation keys may join. Only
// ParsePolicy and LoadPolicy make a usable Policy; it is valid and is not
// changed afterwards.
type Policy struct {
	// PCRs is the SHA-256 bank selection every quote covers.
	PCRs []int `yaml:"pcrs"`
	// Golden lists the accepted sets of PCR values; a quote must match one
	// of them entirely.
	Golden []Golden `yaml:"golden"`
	// AKs is the allowlist of attestation keys.
	AKs []EnrolledAK `yaml:"aks"`
	// Lifetime is how long an admission lasts before the node attests
	// again; zero means DefaultLifetime.
	Lifetime time.Duration `yaml:"lifetime"`
	// AllowInsecure lets nodes without a TPM join (development only).
	AllowInsecure bool `yaml:"allow_insecure"`

	selection PCRSelection
	golden    []map[int][]byte       // parallel to Golden, decoded
	byFP      map[string]*EnrolledAK // by fingerprint
}

// Golden is one accepted set of PCR values, named for the firmware or
// image it measures.
type Golden struct {
	Name string         `yaml:"name"`
	PCRs map[int]string `yaml:"pcrs"` // hex SHA-256 value of each PCR of the selection
}

// EnrolledAK is an attestation key allowed to join, given by fingerprint
// (hex SHA-256 of its PKIX DER), by PEM, or both (then they must agree).
type EnrolledAK struct {
	Name        string `yaml:"name"`
	Fingerprint string `yaml:"fingerprint"`
	PEM         string `yaml:"pem"`
	Seeder      bool   `yaml:"seeder"` // the key is a seeder's

	key *ecdsa.PublicKey // from PEM, or from the quote once the fingerprint matched
}

// LoadPolicy reads and parses a policy file.
func LoadPolicy(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load policy: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxPolicySize+1))
	if err != nil {
		return nil, fmt.Errorf("load policy %s: %w", path, err)
	}
	p, err := ParsePolicy(b)
	if err != nil {
		return nil, fmt.Errorf("load policy %s: %w", path, err)
	}
	return p, nil
}

// ParsePolicy parses a YAML policy strictly: unknown fields, a second
// document and any invalid value are refused, each error naming the field.
func ParsePolicy(b []byte) (*Policy, error) {
	if len(b) > MaxPolicySize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidPolicy, len(b), MaxPolicySize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var p Policy
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidPolicy, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: more than one YAML document", ErrInvalidPolicy)
	}
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidPolicy, err)
	}
	return &p, nil
}

func (p *Policy) validate() error {
	sel, err := NewPCRSelection(p.PCRs...)
	if err != nil {
		return fmt.Errorf("pcrs: %v", err)
	}
	p.selection = sel
	if err := p.validateGolden(); err != nil {
		return err
	}
	if err := p.validateAKs(); err != nil {
		return err
	}
	switch {
	case p.Lifetime == 0:
		p.Lifetime = DefaultLifetime
	case p.Lifetime < time.Minute:
		return fmt.Errorf("lifetime: %v: need at least 1m (write a unit: 24h)", p.Lifetime)
	}
	return nil
}

func (p *Policy) validateGolden() error {
	if len(p.Golden) == 0 {
		return fmt.Errorf("golden: empty: no node could be admitted")
	}
	names := map[string]bool{}
	for i, g := range p.Golden {
		field := fmt.Sprintf("golden[%d]", i)
		if strings.TrimSpace(g.Name) == "" {
			return fmt.Errorf("%s.name: empty", field)
		}
		if names[g.Name] {
			return fmt.Errorf("%s.name: %q used twice", field, g.Name)
		}
		names[g.Name] = true
		values := make(map[int][]byte, len(g.PCRs))
		for pcr, h := range g.PCRs {
			if !p.selection.contains(pcr) {
				return fmt.Errorf("%s (%s).pcrs: pcr %d is not in pcrs %v", field, g.Name, pcr, p.selection)
			}
			v, err := hex.DecodeString(h)
			if err != nil || len(v) != 32 {
				return fmt.Errorf("%s (%s).pcrs[%d]: %q is not 64 hex digits", field, g.Name, pcr, h)
			}
			values[pcr] = v
		}
		for _, pcr := range p.selection {
			if _, ok := values[pcr]; !ok {
				return fmt.Errorf("%s (%s).pcrs: no value for pcr %d", field, g.Name, pcr)
			}
		}
		p.golden = append(p.golden, values)
	}
	return nil
}

func (p *Policy) validateAKs() error {
	if len(p.AKs) == 0 {
		return fmt.Errorf("aks: empty: no node could be admitted")
	}
	names := map[string]bool{}
	p.byFP = map[string]*EnrolledAK{}
	for i := range p.AKs {
		ak := &p.AKs[i]
		field := fmt.Sprintf("aks[%d]", i)
		if strings.TrimSpace(ak.Name) == "" {
			return fmt.Errorf("%s.name: empty", field)
		}
		if names[ak.Name] {
			return fmt.Errorf("%s.name: %q used twice", field, ak.Name)
		}
		names[ak.Name] = true
		if err := ak.resolve(); err != nil {
			return fmt.Errorf("%s (%s).%v", field, ak.Name, err)
		}
		if other, ok := p.byFP[ak.Fingerprint]; ok {
			return fmt.Errorf("%s (%s): the same key as %s", field, ak.Name, other.Name)
		}
		p.byFP[ak.Fingerprint] = ak
	}
	return nil
}

// resolve checks the fingerprint and PEM and fills in one from the other.
func (ak *EnrolledAK) resolve() error {
	if ak.Fingerprint == "" && ak.PEM == "" {
		return fmt.Errorf("fingerprint: need a fingerprint or a pem")
	}
	if ak.Fingerprint != "" {
		fp := strings.ToLower(ak.Fingerprint)
		if b, err := hex.DecodeString(fp); err != nil || len(b) != 32 {
			return fmt.Errorf("fingerprint: %q is not 64 hex digits", ak.Fingerprint)
		}
		ak.Fingerprint = fp
	}
	if ak.PEM == "" {
		return nil
	}
	key, der, err := parseAKPEM(ak.PEM)
	if err != nil {
		return fmt.Errorf("pem: %v", err)
	}
	if fp := Fingerprint(der); ak.Fingerprint != "" && ak.Fingerprint != fp {
		return fmt.Errorf("fingerprint: %s, but the pem's key has %s", ak.Fingerprint, fp)
	} else {
		ak.Fingerprint = fp
	}
	ak.key = key
	return nil
}

// parseAKPEM reads one PEM "PUBLIC KEY" block holding an ECDSA P-256 key.
func parseAKPEM(s string) (*ecdsa.PublicKey, []byte, error) {
	block, rest := pem.Decode([]byte(s))
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, nil, fmt.Errorf("not a PEM PUBLIC KEY block")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, nil, fmt.Errorf("trailing data after the PUBLIC KEY block")
	}
	key, err := parseAKDER(block.Bytes)
	return key, block.Bytes, err
}

// parseAKDER reads a PKIX ECDSA P-256 public key.
func parseAKDER(der []byte) (*ecdsa.PublicKey, error) {
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, err
	}
	ec, ok := k.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%T key, want ECDSA P-256", k)
	}
	return ec, nil
}

// Selection returns the policy's PCR selection.
func (p *Policy) Selection() PCRSelection { return append(PCRSelection(nil), p.selection...) }

func (s PCRSelection) contains(pcr int) bool {
	for _, p := range s {
		if p == pcr {
			return true
		}
	}
	return false
}

// enrolledKey is an allowlisted AK with the key to check a quote with.
type enrolledKey struct {
	*EnrolledAK
	verifyKey *ecdsa.PublicKey
}

// enrolled finds the AK of a quote in the allowlist.
func (p *Policy) enrolled(der []byte) (enrolledKey, error) {
	fp := Fingerprint(der)
	ak, ok := p.byFP[fp]
	if !ok {
		return enrolledKey{}, fmt.Errorf("%w: fingerprint %s", ErrUnknownAK, fp)
	}
	key := ak.key
	if key == nil {
		k, err := parseAKDER(der)
		if err != nil {
			return enrolledKey{}, fmt.Errorf("%w: ak %s: %v", ErrMalformed, ak.Name, err)
		}
		key = k
	}
	return enrolledKey{EnrolledAK: ak, verifyKey: key}, nil
}

// match returns the name of the golden set values match, or ErrPCRMismatch
// naming the PCRs that differ from the nearest set.
func (p *Policy) match(values map[int][]byte) (string, error) {
	best, bestDiff := -1, []int(nil)
	for i, g := range p.golden {
		var diff []int
		for _, pcr := range p.selection {
			if !bytes.Equal(g[pcr], values[pcr]) {
				diff = append(diff, pcr)
			}
		}
		if len(diff) == 0 {
			return p.Golden[i].Name, nil
		}
		if best < 0 || len(diff) < len(bestDiff) {
			best, bestDiff = i, diff
		}
	}
	pcr := bestDiff[0]
	return "", fmt.Errorf("%w: nearest is %q: pcr %d is %x, golden %x (pcrs differing: %v)",
		ErrPCRMismatch, p.Golden[best].Name, pcr, values[pcr], p.golden[best][pcr], bestDiff)
}
