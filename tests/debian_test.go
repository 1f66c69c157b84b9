package tests

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshcast/meshcast/tests/rootfs"
	"github.com/meshcast/meshcast/tests/scenario"
)

// TestDebianRootfs publishes a real Debian root filesystem, built from
// Debian's packages, from a directory and from a tar of it, fetches both
// from the CDN as a node would (as root), and compares a listing of every
// entry before and after: type, mode, owner, link target, xattrs,
// hard-link groups, device numbers, size, sha256 and mtime.
func TestDebianRootfs(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a Debian root filesystem takes minutes to build the first time")
	}
	tree := rootfs.Build(t, rootfs.Bookworm)
	before, err := rootfs.List(tree)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tarball := filepath.Join(dir, "rootfs.tar")
	tarTree(t, tree, tarball)
	res, err := scenario.Series(t.Context(), scenario.SeriesOptions{
		Dir: filepath.Join(dir, "work"), Trees: []string{tree, tarball}, Steps: [][2]int{{-1, 0}, {-1, 1}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range res.Published {
		t.Logf("published from %s: %d entries' index of %d bytes, %d chunks, %d input bytes, %d new bytes", []string{"a directory", "a tar"}[i],
			len(before)-1, p.IndexBytes, p.Chunks, p.InputBytes, p.NewBytes)
	}
	if res.Published[0].ReleaseID == res.Published[1].ReleaseID || res.Published[1].NewBytes != 0 {
		t.Errorf("the tar of the tree published %d new bytes, want 0: the same entries as the directory", res.Published[1].NewBytes)
	}
	for i, step := range res.Steps {
		after, err := rootfs.List(step.Out)
		if err != nil {
			t.Fatal(err)
		}
		if d := rootfs.Diff(before, after, 0); d != "" {
			t.Errorf("assembled from %s, the tree differs:\n%s", []string{"the directory", "the tar"}[i], d)
		}
		out, err := exec.Command("getcap", filepath.Join(step.Out, "usr/bin/ping")).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "cap_net_raw") {
			t.Errorf("getcap usr/bin/ping: %s (%v), want cap_net_raw", out, err)
		}
	}
}

// tarTree writes a tar of dir as GNU tar makes one of a root filesystem:
// numeric owners, every xattr, nanosecond mtimes (PAX).
func tarTree(t *testing.T, dir, out string) {
	t.Helper()
	cmd := exec.Command("tar", "--create", "--file", out, "--format=pax", "--xattrs", "--xattrs-include=*", "--numeric-owner",
		"--sort=name", "-C", dir, ".")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, b)
	}
}

// TestDebianDelta publishes a series of real Debian updates of that root
// filesystem (rootfs.UpdateSeries) and measures what a node fetches from
// the CDN for a security update of one package, and after skipping
// several releases, against the changed files compressed alone at
// zstd -19.
func TestDebianDelta(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the Debian trees take minutes to build the first time")
	}
	if _, err := exec.LookPath("zstd"); err != nil {
		t.Fatalf("the baseline needs the zstd command (%v): apt-get install zstd", err)
	}
	series := rootfs.UpdateSeries(t)
	trees := make([]string, series.Len())
	for i := range trees {
		trees[i] = series.Tree(t, i)
	}
	last := len(trees) - 1
	res, err := scenario.Series(t.Context(), scenario.SeriesOptions{
		Dir: t.TempDir(), Trees: trees, Steps: [][2]int{{0, 1}, {0, last}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Steps {
		b, _ := json.Marshal(s)
		what := "update of " + series.Steps[s.To-1].String()
		if s.To-s.From > 1 {
			what = "skipping " + strings.Repeat("a release, ", s.To-s.From-1) + "then " + what
		}
		t.Logf("%s (%d → %d): %s", what, s.From, s.To, b)
		want := series.Listing(t, s.To)
		got, err := rootfs.List(s.Out)
		if err != nil {
			t.Fatal(err)
		}
		if d := rootfs.Diff(want, got, 0); d != "" {
			t.Errorf("%d → %d: the assembled tree differs:\n%s", s.From, s.To, d)
		}
		if s.Ratio > 1.3 || s.Requests > 16 {
			t.Errorf("%s: %d bytes from the CDN in %d requests, %.3f times the %d bytes of the %d changed files compressed alone; want at most 1.3 and 16",
				what, s.BytesFromCDN, s.Requests, s.Ratio, s.BaselineBytes, s.ChangedFiles)
		}
	}
}
