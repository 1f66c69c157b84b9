package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshcast/meshcast/content/origin"
)

// execute runs the CLI in-process, as main does, and returns its error and
// stdout.
func execute(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	root := newRootCmd(&stdout, &stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(t.Context())
	return stdout.String(), err
}

func TestMissingFlagsNamedOnce(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"publish"}, "publish: missing --repo, --keys, --name, --version, --artifact"},
		{[]string{"repo", "init", "--keys", "k"}, "repo init: missing --repo"},
		{[]string{"fetch", "--cdn", "http://x", "--out", "o"}, "fetch: missing --trust, --state, --release"},
		{[]string{"cdn", "serve"}, "cdn serve: missing --dir"},
	} {
		_, err := execute(t, c.args...)
		// main prints "meshcast: " in front; the message must not repeat it.
		if err == nil || err.Error() != c.want {
			t.Errorf("meshcast %s: got %v, want %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		err  string
	}{
		{in: "0", want: 0},
		{in: "4096", want: 4096},
		{in: "64k", want: 64 << 10},
		{in: " 12M ", want: 12 << 20},
		{in: "2G", want: 2 << 30},
		{in: "8589934591G", want: 8589934591 << 30},
		{in: "8589934592G", err: `"8589934592G" is too large`},
		{in: "-5K", err: `"-5K" is not a size`},
		{in: "fast", err: `"fast" is not a size`},
		{in: "", err: `"" is not a size`},
	} {
		got, err := parseSize(c.in)
		switch {
		case c.err != "" && (err == nil || err.Error() != c.err):
			t.Errorf("parseSize(%q) = %d, %v; want error %s", c.in, got, err, c.err)
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("parseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
}

func TestParseChunkingAndWaves(t *testing.T) {
	if c, err := parseChunking("16K/64K/256K"); err != nil || c.Min != 16<<10 || c.Avg != 64<<10 || c.Max != 256<<10 {
		t.Errorf("parseChunking(16K/64K/256K) = %+v, %v", c, err)
	}
	for _, bad := range []string{"64K/16K", "a/b/c", "256K/64K/16K"} {
		if _, err := parseChunking(bad); err == nil {
			t.Errorf("parseChunking(%q) accepted it", bad)
		}
	}
	if w, err := parseInts(" 1, 10 ,100"); err != nil || len(w) != 3 || w[2] != 100 {
		t.Errorf("parseInts = %v, %v", w, err)
	}
	if _, err := parseInts("10,,100"); err == nil {
		t.Error("parseInts accepted an empty element")
	}
}

// TestDemoWorkDir checks that the demo never removes what it did not make.
func TestDemoWorkDir(t *testing.T) {
	base := t.TempDir()

	full := filepath.Join(base, "full")
	if err := os.MkdirAll(full, 0o755); err != nil {
		t.Fatal(err)
	}
	precious := filepath.Join(full, "precious")
	if err := os.WriteFile(precious, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := demoWorkDir(full); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("demoWorkDir on a directory with a file: %v; want a refusal", err)
	}
	if _, err := os.Stat(precious); err != nil {
		t.Errorf("the refused directory lost its file: %v", err)
	}

	fresh := filepath.Join(base, "new", "work")
	dir, cleanup, err := demoWorkDir(fresh)
	if err != nil || dir != fresh {
		t.Fatalf("demoWorkDir(%s) = %s, %v", fresh, dir, err)
	}
	os.WriteFile(filepath.Join(dir, "f"), nil, 0o644)
	cleanup()
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Errorf("cleanup left the directory it created: %v", err)
	}

	empty := filepath.Join(base, "empty")
	os.Mkdir(empty, 0o755)
	dir, cleanup, err = demoWorkDir(empty)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "keys", "x"), 0o755)
	cleanup()
	if ents, err := os.ReadDir(empty); err != nil || len(ents) != 0 {
		t.Errorf("cleanup of a given empty directory: %v, %d entries left; want it kept and empty", err, len(ents))
	}
}

// TestRefreshRefusesUnusableTargetsKey: a targets key that is there but
// cannot be loaded is an error, not a silently skipped renewal.
func TestRefreshRefusesUnusableTargetsKey(t *testing.T) {
	dir := t.TempDir()
	keyDir, repo := filepath.Join(dir, "keys"), filepath.Join(dir, "origin")
	keys, err := origin.GenerateKeys(keyDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := origin.Init(repo, keys, origin.DefaultExpiries(), time.Now()); err != nil {
		t.Fatal(err)
	}
	tk := origin.KeyFile(keyDir, "targets")
	if err := os.Chmod(tk, 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := runRepoRefresh(repo, keyDir, origin.DefaultExpiries(), false, &out); err == nil || !strings.Contains(err.Error(), "targets") {
		t.Errorf("refresh with a world-readable targets key: %v; want an error about it", err)
	}
	if err := os.Remove(tk); err != nil {
		t.Fatal(err)
	}
	if err := runRepoRefresh(repo, keyDir, origin.DefaultExpiries(), true, &out); err != nil {
		t.Errorf("refresh without a targets key (kept offline): %v", err)
	}
}

// A typo in a subcommand fails, rather than printing help and exiting 0.
func TestUnknownSubcommandFails(t *testing.T) {
	for _, group := range []string{"rollout", "keys", "repo", "cdn"} {
		_, err := execute(t, group, "explode")
		if err == nil || !strings.Contains(err.Error(), `unknown command "explode" for "meshcast `+group+`"`) {
			t.Errorf("meshcast %s explode: %v", group, err)
		}
		if out, err := execute(t, group); err != nil || !strings.Contains(out, "Usage:") {
			t.Errorf("meshcast %s: %v, printed %q; want its help", group, err, out)
		}
	}
}
