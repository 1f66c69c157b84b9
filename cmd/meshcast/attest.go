package main

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/meshcast/meshcast/attest"
)

// defaultPCRs is the selection of a policy the attest command creates:
// the PC client firmware, boot loader and secure boot PCRs.
var defaultPCRs = []int{0, 1, 2, 3, 4, 5, 6, 7}

const attestPolicyNote = `The policy is read strictly (as a verifier reads it) and rewritten in its own
field order: pcrs, golden, aks, lifetime, allow_insecure. Comments and
formatting of an existing file are not kept. The new file is checked before it
atomically replaces the old one (a temporary file, then a rename), so an
invalid result never replaces a valid file, and an invalid file is refused
untouched. A policy still without an AK or a golden set admits nothing; both
commands say what is missing.`

// tpmFlags selects the TPM a command reads: a device or swtpm over TCP.
type tpmFlags struct{ device, tcp string }

func (f *tpmFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.device, "tpm", "", "TPM device (e.g. "+attest.DefaultDevice+")")
	cmd.Flags().StringVar(&f.tcp, "tpm-tcp", "", "TPM speaking the TCP simulator protocol (swtpm), HOST:PORT")
}

// check fails unless exactly one of --tpm and --tpm-tcp is given.
func (f *tpmFlags) check(cmd *cobra.Command) error {
	sub := strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
	switch {
	case f.device != "" && f.tcp != "":
		return fmt.Errorf("%s: give --tpm or --tpm-tcp, not both", sub)
	case f.device == "" && f.tcp == "":
		return fmt.Errorf("%s: missing --tpm or --tpm-tcp", sub)
	}
	return nil
}

func (f *tpmFlags) open() (*attest.TPM, error) {
	if f.device != "" {
		return attest.OpenDevice(f.device)
	}
	return attest.OpenTCP(f.tcp)
}

func newAttestCmd(_ *globals, stdout io.Writer) *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "attest",
		Short: "Build a site's attestation policy from known-good devices",
		Long: `Builds the site policy (YAML) seeders check TPM quotes against: the PCR
selection, the golden PCR values, the enrolled attestation keys, the admission
lifetime and whether TPM-less nodes may join (allow_insecure, off unless
edited in by hand).

` + attestPolicyNote,
	})
	cmd.AddCommand(newAttestEnrollCmd(stdout), newAttestGoldenCmd(stdout))
	return cmd
}

func newAttestEnrollCmd(stdout io.Writer) *cobra.Command {
	var policy, name string
	var seeder bool
	var tf tpmFlags
	c := &cobra.Command{
		Use:   "enroll --policy FILE --name NAME [--seeder] (--tpm DEVICE | --tpm-tcp HOST:PORT)",
		Short: "Add this device's attestation key to the policy (by fingerprint and PEM)",
		Long: `Loads the device's attestation key (the same key every time on the same TPM)
and adds it to FILE under NAME, by fingerprint and PEM; --seeder enrolls it as
a seeder's. A name or a key already enrolled is refused. A missing FILE is
created: pcrs [0..7], lifetime 24h, allow_insecure false. Prints the name and
the fingerprint.

` + attestPolicyNote,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "policy", "name"); err != nil {
				return err
			}
			if err := tf.check(cmd); err != nil {
				return err
			}
			return runAttestEnroll(cmd, &tf, policy, name, seeder, stdout)
		},
	}
	c.Flags().StringVar(&policy, "policy", "", "policy file to add the key to (created if missing)")
	c.Flags().StringVar(&name, "name", "", "name of the device in the policy")
	c.Flags().BoolVar(&seeder, "seeder", false, "enroll the key as a seeder's")
	tf.add(c)
	return c
}

func newAttestGoldenCmd(stdout io.Writer) *cobra.Command {
	var policy, name, pcrs string
	var tf tpmFlags
	c := &cobra.Command{
		Use:   "golden --policy FILE --name NAME (--tpm DEVICE | --tpm-tcp HOST:PORT) [--pcrs 0,1,...]",
		Short: "Add this device's current PCR values to the policy as a golden set",
		Long: `Reads the device's current values of the policy's PCRs and adds them to FILE
as golden set NAME. A name already used is refused; if a set with the same
values exists under another name, says so and adds nothing. A missing FILE is
created with --pcrs (default 0,1,2,3,4,5,6,7), lifetime 24h and allow_insecure
false; --pcrs on an existing file must be its selection.

` + attestPolicyNote,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "policy", "name"); err != nil {
				return err
			}
			if err := tf.check(cmd); err != nil {
				return err
			}
			var sel []int
			if cmd.Flags().Changed("pcrs") {
				s, err := parsePCRList(pcrs)
				if err != nil {
					return fmt.Errorf("attest golden: --pcrs %q: %w", pcrs, err)
				}
				sel = s
			}
			return runAttestGolden(cmd, &tf, policy, name, sel, stdout)
		},
	}
	c.Flags().StringVar(&policy, "policy", "", "policy file to add the golden set to (created if missing)")
	c.Flags().StringVar(&name, "name", "", "name of the golden set (the firmware or image it measures)")
	c.Flags().StringVar(&pcrs, "pcrs", "", "PCR selection of a new policy file, e.g. 0,2,4,7 (default 0..7)")
	tf.add(c)
	return c
}

// parsePCRList reads "0,1,7" as a valid PCR selection.
func parsePCRList(s string) ([]int, error) {
	var pcrs []int
	for _, f := range strings.Split(s, ",") {
		p, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("%q is not a PCR number", f)
		}
		pcrs = append(pcrs, p)
	}
	sel, err := attest.NewPCRSelection(pcrs...)
	return []int(sel), err
}

func runAttestEnroll(cmd *cobra.Command, tf *tpmFlags, path, name string, seeder bool, stdout io.Writer) error {
	doc, err := loadPolicyDoc(path, defaultPCRs)
	if err != nil {
		return err
	}
	tpm, err := tf.open()
	if err != nil {
		return err
	}
	defer tpm.Close()
	ak, err := attest.LoadAK(tpm)
	if err != nil {
		return err
	}
	fp, akPEM := ak.Fingerprint(), string(ak.PEM())
	if err := ak.Close(); err != nil {
		return err
	}
	if err := doc.addAK(akDoc{Name: name, Fingerprint: fp, PEM: akPEM, Seeder: seeder}); err != nil {
		return fmt.Errorf("attest enroll: %s: %w", path, err)
	}
	if err := doc.write(path); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s %s\n", name, fp)
	doc.warnIncomplete(cmd.ErrOrStderr(), path)
	return nil
}

func runAttestGolden(cmd *cobra.Command, tf *tpmFlags, path, name string, pcrs []int, stdout io.Writer) error {
	doc, err := loadPolicyDoc(path, pcrs)
	if err != nil {
		return err
	}
	if pcrs != nil && !slices.Equal(pcrs, doc.PCRs) {
		return fmt.Errorf("attest golden: %s selects pcrs %v, not --pcrs %v (--pcrs is for a new file)", path, doc.PCRs, pcrs)
	}
	tpm, err := tf.open()
	if err != nil {
		return err
	}
	defer tpm.Close()
	values, err := attest.ReadPCRs(tpm, doc.PCRs)
	if err != nil {
		return err
	}
	g := attest.Golden{Name: name, PCRs: map[int]string{}}
	for p, v := range values {
		g.PCRs[p] = hex.EncodeToString(v)
	}
	same, err := doc.addGolden(g)
	if err != nil {
		return fmt.Errorf("attest golden: %s: %w", path, err)
	}
	if same != "" {
		fmt.Fprintf(stdout, "%s: golden set %q already has these values; nothing added\n", path, same)
		return nil
	}
	if err := doc.write(path); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s pcrs %v\n", name, doc.PCRs)
	doc.warnIncomplete(cmd.ErrOrStderr(), path)
	return nil
}

// policyDoc is a policy file as the attest command edits it: attest.Policy's
// fields in its order, the lifetime written with its unit.
type policyDoc struct {
	PCRs          []int           `yaml:"pcrs,flow"`
	Golden        []attest.Golden `yaml:"golden"`
	AKs           []akDoc         `yaml:"aks"`
	Lifetime      lifetime        `yaml:"lifetime"`
	AllowInsecure bool            `yaml:"allow_insecure"`
}

// akDoc is attest.EnrolledAK without the empty fields.
type akDoc struct {
	Name        string `yaml:"name"`
	Fingerprint string `yaml:"fingerprint,omitempty"`
	PEM         string `yaml:"pem,omitempty"`
	Seeder      bool   `yaml:"seeder"`
}

// lifetime is a duration written as "24h" or "1h30m", not "24h0m0s".
type lifetime time.Duration

func (l lifetime) MarshalYAML() (any, error) {
	s := time.Duration(l).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s, nil
}

func (l *lifetime) UnmarshalYAML(n *yaml.Node) error {
	var d time.Duration
	if err := n.Decode(&d); err != nil {
		return err
	}
	*l = lifetime(d)
	return nil
}

// loadPolicyDoc reads the policy file at path, strictly, and checks it; a
// missing file is a new policy selecting pcrs (defaultPCRs if nil).
func loadPolicyDoc(path string, pcrs []int) (*policyDoc, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if pcrs == nil {
			pcrs = defaultPCRs
		}
		return &policyDoc{PCRs: slices.Clone(pcrs), Lifetime: lifetime(attest.DefaultLifetime)}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var doc policyDoc
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("policy %s: %w: %v (not changed)", path, attest.ErrInvalidPolicy, err)
	}
	if doc.Lifetime == 0 {
		doc.Lifetime = lifetime(attest.DefaultLifetime)
	}
	if _, err := doc.check(); err != nil {
		return nil, fmt.Errorf("policy %s: %w (not changed)", path, err)
	}
	return &doc, nil
}

// placeholder stands in for a missing AK or golden set while checking a
// policy still being built, so that everything else is checked as
// attest.ParsePolicy checks it.
const placeholder = "\x00placeholder"

// check validates the policy with attest.ParsePolicy, standing in for an
// empty AK list or golden list, and returns the parsed policy (whose AKs
// all have their fingerprint).
func (d *policyDoc) check() (*attest.Policy, error) {
	c := *d
	if len(c.Golden) == 0 {
		g := attest.Golden{Name: placeholder, PCRs: map[int]string{}}
		for _, p := range c.PCRs {
			g.PCRs[p] = strings.Repeat("00", 32)
		}
		c.Golden = []attest.Golden{g}
	}
	if len(c.AKs) == 0 {
		c.AKs = []akDoc{{Name: placeholder, Fingerprint: strings.Repeat("00", 32)}}
	}
	b, err := yaml.Marshal(&c)
	if err != nil {
		return nil, err
	}
	return attest.ParsePolicy(b)
}

// addAK enrolls ak, refusing a name or a key already enrolled.
func (d *policyDoc) addAK(ak akDoc) error {
	p, err := d.check()
	if err != nil {
		return err
	}
	for _, e := range p.AKs {
		switch {
		case e.Name == placeholder:
		case e.Name == ak.Name:
			return fmt.Errorf("an AK named %q is enrolled already (fingerprint %s)", ak.Name, e.Fingerprint)
		case strings.EqualFold(e.Fingerprint, ak.Fingerprint):
			return fmt.Errorf("this key (fingerprint %s) is enrolled already, as %q", ak.Fingerprint, e.Name)
		}
	}
	d.AKs = append(d.AKs, ak)
	return nil
}

// addGolden adds g, refusing a name already used; if a set has the same
// values, it adds nothing and returns that set's name.
func (d *policyDoc) addGolden(g attest.Golden) (string, error) {
	for _, e := range d.Golden {
		if e.Name == g.Name {
			return "", fmt.Errorf("a golden set named %q exists already", g.Name)
		}
	}
	for _, e := range d.Golden {
		if maps.EqualFunc(e.PCRs, g.PCRs, strings.EqualFold) {
			return e.Name, nil
		}
	}
	d.Golden = append(d.Golden, g)
	return "", nil
}

// write checks the policy and atomically replaces path with it: a
// temporary file in the same directory, synced, then renamed over path.
func (d *policyDoc) write(path string) error {
	if _, err := d.check(); err != nil {
		return fmt.Errorf("policy %s: the result would be invalid, not written: %w", path, err)
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := errors.Join(enc.Encode(d), enc.Close()); err != nil {
		return fmt.Errorf("policy %s: %w", path, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("policy %s: %w", path, err)
	}
	defer os.Remove(f.Name()) // after the rename, fails harmlessly
	_, err = f.Write(b.Bytes())
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("policy %s: %w", path, err)
	}
	return nil
}

// warnIncomplete says what the policy still lacks to admit a node.
func (d *policyDoc) warnIncomplete(w io.Writer, path string) {
	if len(d.AKs) == 0 {
		fmt.Fprintf(w, "%s: no AK enrolled yet: run meshcast attest enroll on a known-good device\n", path)
	}
	if len(d.Golden) == 0 {
		fmt.Fprintf(w, "%s: no golden set yet: run meshcast attest golden on a known-good device\n", path)
	}
}
