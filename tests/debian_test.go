package tests

import (
	"encoding/json"
	"log/slog"
	"os"
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
	}, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range res.Published {
		t.Logf("published from %s: %d entries' index of %d bytes, %d chunks, %d input bytes, %d new bytes", []string{"a directory", "a tar"}[i],
			len(before)-1, p.IndexBytes, p.Chunks, p.InputBytes, p.NewBytes)
	}
	// Every chunk of the tar's release, its index's included, was the
	// directory's: the same bytes and the same entries.
	if res.Published[1].NewBytes != 0 || res.Published[1].IndexBytes != res.Published[0].IndexBytes {
		t.Errorf("the tar of the tree published %d new bytes and an index of %d bytes, want 0 and the directory's %d: the same entries",
			res.Published[1].NewBytes, res.Published[1].IndexBytes, res.Published[0].IndexBytes)
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

// TestDebianRootfsUnprivileged fetches the Debian root filesystem with
// meshcast fetch as an unprivileged user (65534, no capabilities), as
// documented: the tree with device nodes is refused, naming the first;
// without them, the setuid files are refused, naming the first, unless
// --drop-privileges; with it, the tree is identical but for owners (the
// user's), setuid and setgid bits and file capabilities.
func TestDebianRootfsUnprivileged(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a Debian root filesystem takes minutes to build the first time")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skipf("setpriv (util-linux) runs meshcast without privileges: %v", err)
	}
	tree := rootfs.Build(t, rootfs.Bookworm)
	mc := buildMeshcast(t)
	dir := t.TempDir()
	keys, originDir := filepath.Join(dir, "keys"), filepath.Join(dir, "origin")
	mc.ok(t, "keys", "init", "--dir", keys)
	mc.ok(t, "repo", "init", "--repo", originDir, "--keys", keys)
	mc.ok(t, "publish", "--repo", originDir, "--keys", keys, "--name", "rootfs", "--version", "1.0.0", "--artifact", "linux/amd64="+tree)
	devices := removeDevices(t, tree)
	before, err := rootfs.List(tree)
	if err != nil {
		t.Fatal(err)
	}
	mc.ok(t, "publish", "--repo", originDir, "--keys", keys, "--name", "rootfs", "--version", "1.0.1", "--artifact", "linux/amd64="+tree)
	url := mc.serveCDN(t, originDir)

	nobody := unprivileged(t, mc)
	trust := filepath.Join(nobody.home, "root.json")
	if b, err := os.ReadFile(filepath.Join(originDir, "metadata", "1.root.json")); err != nil || os.WriteFile(trust, b, 0o644) != nil {
		t.Fatalf("copy the trusted root where 65534 reads it: %v", err)
	}
	fetch := func(version, out string, extra ...string) runResult {
		state := nobody.dir(t, "state-"+out)
		return nobody.run(t, append([]string{"fetch", "--cdn", url, "--trust", trust,
			"--state", state, "--release", "rootfs@" + version, "--platform", "linux/amd64", "--out", filepath.Join(nobody.home, out)}, extra...)...)
	}
	if r := fetch("1.0.0", "with-devices"); r.code == 0 || !strings.Contains(r.stderr, devices[0]) {
		t.Errorf("fetch of a tree with device nodes as 65534: exit %d, want a refusal naming %s:\n%s", r.code, devices[0], r.stderr)
	} else {
		t.Logf("with device nodes: %s", lastLine(r.stderr))
	}
	if r := fetch("1.0.1", "no-drop"); r.code == 0 || !strings.Contains(r.stderr, "setuid") || !strings.Contains(r.stderr, "--drop-privileges") {
		t.Errorf("fetch of a tree with setuid files as 65534: exit %d, want a refusal naming the first and --drop-privileges:\n%s", r.code, r.stderr)
	} else {
		t.Logf("with setuid files: %s", lastLine(r.stderr))
	}
	r := fetch("1.0.1", "dropped", "--drop-privileges")
	if r.code != 0 {
		t.Fatalf("fetch --drop-privileges as 65534: exit %d\n%s", r.code, r.stderr)
	}
	out := filepath.Join(nobody.home, "dropped")
	after, err := rootfs.List(out)
	if err != nil {
		t.Fatal(err)
	}
	if d := rootfs.Diff(before, after, rootfs.IgnoreOwner|rootfs.IgnoreSetID|rootfs.IgnoreNonUserXattrs); d != "" {
		t.Errorf("assembled as 65534, the tree differs beyond owners, setuid bits and capabilities:\n%s", d)
	}
	for _, e := range after {
		if e.UID != 65534 || e.GID != 65534 || e.Mode&0o6000 != 0 {
			t.Errorf("%s: owner %d:%d, mode %04o; want 65534:65534 and no setuid or setgid bit", e.Path, e.UID, e.GID, e.Mode)
			break
		}
	}
}

// removeDevices deletes the device nodes of tree and returns their paths,
// sorted.
func removeDevices(t *testing.T, tree string) []string {
	t.Helper()
	entries, err := rootfs.List(tree)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range entries {
		if e.Type == rootfs.Char || e.Type == rootfs.Block {
			paths = append(paths, e.Path)
			if err := os.Remove(filepath.Join(tree, e.Path)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(paths) == 0 {
		t.Fatal("the Debian tree has no device node")
	}
	return paths
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}

// nobodyRunner runs the meshcast binary as 65534 with no capabilities,
// in a home directory it owns.
type nobodyRunner struct {
	bin, home string
}

func unprivileged(t *testing.T, mc *meshcast) *nobodyRunner {
	t.Helper()
	home, err := os.MkdirTemp("", "meshcast-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	bin := filepath.Join(home, "meshcast")
	b, err := os.ReadFile(mc.path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(home, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(home, 0o755); err != nil {
		t.Fatal(err)
	}
	return &nobodyRunner{bin: bin, home: home}
}

func (n *nobodyRunner) dir(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(n.home, name)
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	return p
}

func (n *nobodyRunner) run(t *testing.T, args ...string) runResult {
	t.Helper()
	mc := &meshcast{path: "setpriv"}
	return mc.run(t, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--", n.bin}, args...)...)
}
