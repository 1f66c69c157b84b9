package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseMTime(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Time
		err  string
	}{
		{in: "1700000000", want: time.Unix(1700000000, 0)},
		{in: "0", want: time.Unix(0, 0)},
		{in: "2023-11-14T22:13:20Z", want: time.Unix(1700000000, 0)},
		{in: "2023-11-14T23:13:20.5+01:00", want: time.Unix(1700000000, 5e8)},
		{in: "yesterday", err: "want unix seconds"},
		{in: "2023-11-14", err: "RFC 3339"},
	} {
		got, err := parseMTime(c.in)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("parseMTime(%q) = %v, %v; want an error holding %q", c.in, got, err, c.err)
		case c.err == "" && (err != nil || !got.Equal(c.want)):
			t.Errorf("parseMTime(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

func TestPublishMTimeFlag(t *testing.T) {
	_, err := execute(t, "publish", "--repo", t.TempDir(), "--keys", t.TempDir(), "--name", "app", "--version", "1.0.0",
		"--artifact", "linux/amd64="+t.TempDir(), "--mtime", "soon")
	if err == nil || !strings.Contains(err.Error(), `--mtime "soon": want unix seconds`) {
		t.Fatalf("publish --mtime soon: %v, want an error naming the flag", err)
	}
}

// TestPublishMTimeReproducible publishes a tree, touches every file and
// publishes it again as the same version: with --mtime the release is
// the same, nothing is written; without, it is other content.
func TestPublishMTimeReproducible(t *testing.T) {
	dir := t.TempDir()
	keys, repo, tree := filepath.Join(dir, "keys"), filepath.Join(dir, "origin"), filepath.Join(dir, "tree")
	if err := os.MkdirAll(filepath.Join(tree, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "etc", "motd"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"keys", "init", "--dir", keys}, {"repo", "init", "--repo", repo, "--keys", keys}} {
		if _, err := execute(t, args...); err != nil {
			t.Fatal(err)
		}
	}
	publish := func(version string, extra ...string) (string, error) {
		args := append([]string{"publish", "--repo", repo, "--keys", keys, "--name", "app", "--version", version,
			"--artifact", "linux/amd64=" + tree}, extra...)
		return execute(t, args...)
	}
	touch := func() {
		later := time.Now().Add(time.Hour)
		for _, p := range []string{tree, filepath.Join(tree, "etc"), filepath.Join(tree, "etc", "motd")} {
			if err := os.Chtimes(p, later, later); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := publish("1.0.0", "--mtime", "1700000000"); err != nil {
		t.Fatal(err)
	}
	touch()
	out, err := publish("1.0.0", "--mtime", "2023-11-14T22:13:20Z")
	if err != nil || !strings.Contains(out, "already published with this content") {
		t.Fatalf("the touched tree with the same --mtime: %q, %v; want the same release", out, err)
	}
	if _, err := publish("1.1.0"); err != nil {
		t.Fatal(err)
	}
	touch()
	if _, err := publish("1.1.0"); err == nil || !strings.Contains(err.Error(), "already published with other content") {
		t.Fatalf("the touched tree without --mtime: %v, want other content", err)
	}
}
