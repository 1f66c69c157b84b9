package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPublishBadPolicy publishes with bad rollout policies: each is
// refused with what was wrong, and the origin is left as it was (nothing
// signed, no pack written).
func TestPublishBadPolicy(t *testing.T) {
	dir := t.TempDir()
	keys, repo, tree := filepath.Join(dir, "keys"), filepath.Join(dir, "origin"), filepath.Join(dir, "tree")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "app"), []byte("app v1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"keys", "init", "--dir", keys}, {"repo", "init", "--repo", repo, "--keys", keys}} {
		if _, err := execute(t, args...); err != nil {
			t.Fatal(err)
		}
	}
	before := listFiles(t, repo)
	for _, c := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--waves", ""}, `--waves "": "" is not a number`},
		{[]string{"--waves", "0,100"}, "rollout: wave 0 is 0%; waves must increase within 1..100"},
		{[]string{"--waves", "10,150"}, "rollout: wave 1 is 150%; waves must increase within 1..100"},
		{[]string{"--waves", "50,10,100"}, "rollout: wave 1 is 10%; waves must increase within 1..100"},
		{[]string{"--waves", "10,50"}, "rollout: the last wave is 50%, want 100"},
		{[]string{"--wave-nodes", "5,5"}, "rollout: wave 1 is 5 nodes; counts must increase"},
		{[]string{"--soak", "-1s"}, "rollout: soak -1s out of range"},
		{[]string{"--health-timeout", "0s"}, "rollout: health timeout 0s out of range"},
		{[]string{"--failure-threshold", "1.5"}, "rollout: failure threshold 1.5 out of range [0, 1]"},
		{[]string{"--security-floor", "2.0.0"}, "rollout: security floor 2.0.0 is above the release version 1.0.0"},
	} {
		args := append([]string{"publish", "--repo", repo, "--keys", keys, "--name", "app", "--version", "1.0.0",
			"--artifact", "linux/amd64=" + tree}, c.flags...)
		if _, err := execute(t, args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("publish %s: %v, want an error holding %q", strings.Join(c.flags, " "), err, c.want)
		}
	}
	if after := listFiles(t, repo); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("refused publishes changed the origin:\nbefore %q\nafter  %q", before, after)
	}
}

func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
