package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "node.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigFileSetsFlags(t *testing.T) {
	cmd := newNodeCmd(&globals{stderr: io.Discard}, io.Discard)
	p := writeConfig(t, "site: plant-7\nstate: /var/lib/x\nrefresh: 5s\npeer:\n  - /ip4/10.0.0.1/udp/4433/quic-v1/p2p/a\n  - /ip4/10.0.0.2/udp/4433/quic-v1/p2p/b\nupload_rate: 10M\n")
	if err := cmd.Flags().Parse([]string{"--site", "from-flag"}); err != nil {
		t.Fatal(err)
	}
	if err := applyConfigFile(cmd, p); err != nil {
		t.Fatal(err)
	}
	get := func(name string) string { return cmd.Flags().Lookup(name).Value.String() }
	if get("site") != "from-flag" {
		t.Errorf("site = %q: a flag on the command line must win over the file", get("site"))
	}
	if get("state") != "/var/lib/x" || get("refresh") != "5s" || get("upload-rate") != "10M" {
		t.Errorf("state %q refresh %q upload-rate %q", get("state"), get("refresh"), get("upload-rate"))
	}
	if got := get("peer"); !strings.Contains(got, "10.0.0.1") || !strings.Contains(got, "10.0.0.2") {
		t.Errorf("peer = %q, want both list items", got)
	}
}

func TestConfigFileBadInput(t *testing.T) {
	for name, tc := range map[string]struct{ text, want string }{
		"unknown key":        {"site: a\ncolour: blue\n", `node.yaml:2: colour: unknown key`},
		"bad duration":       {"refresh: often\n", `node.yaml:1: refresh: `},
		"list for one value": {"state: [a, b]\n", "takes one value, not a list"},
		"key twice":          {"site: a\nsite: b\n", "given twice"},
		"nested mapping":     {"gossip:\n  port: 1\n", "unknown key"},
		"not a mapping":      {"- a\n- b\n", "want a mapping"},
		"bad yaml":           {"site: [\n", "node.yaml"},
		"bad bool":           {"open: maybe\n", "open: "},
		"help is no key":     {"help: true\n", "unknown key"},
	} {
		t.Run(name, func(t *testing.T) {
			cmd := newNodeCmd(&globals{stderr: io.Discard}, io.Discard)
			err := applyConfigFile(cmd, writeConfig(t, tc.text))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	cmd := newNodeCmd(&globals{stderr: io.Discard}, io.Discard)
	if err := applyConfigFile(cmd, filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("a missing file is not an error")
	}
}
