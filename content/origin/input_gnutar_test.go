package origin_test

import (
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshcast/meshcast/content"
)

// TestPublishSparseTar publishes sparse files archived by GNU tar in each
// of its sparse formats (old GNU, PAX 0.0, 0.1 and 1.0): archive/tar reads
// them as the logical file, holes as zeros, and so does the publish.
func TestPublishSparseTar(t *testing.T) {
	t.Parallel()
	gnuTar := requireGNUTar(t)
	work := t.TempDir()
	tree := filepath.Join(work, "tree")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	const size = 8 << 20
	logical := make([]byte, size)
	f, err := os.Create(filepath.Join(tree, "disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []int{0, 3 << 20, size - 5} {
		copy(logical[at:], "data!")
		if _, err := f.WriteAt([]byte("data!"), int64(at)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	artifacts := map[string]string{}
	for pl, args := range map[string][]string{
		"linux/amd64":   {"--format=gnu"},
		"linux/arm64":   {"--format=pax", "--sparse-version=0.0"},
		"linux/arm/v7":  {"--format=pax", "--sparse-version=0.1"},
		"linux/riscv64": {"--format=pax", "--sparse-version=1.0"},
	} {
		out := filepath.Join(work, filepath.Base(pl)+".tar")
		cmd := exec.Command(gnuTar, append(append([]string{"--sparse", "-cf", out}, args...), "-C", tree, "disk.img")...)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, b)
		}
		if fi, err := os.Stat(out); err != nil || fi.Size() > 1<<20 {
			t.Fatalf("%s: %v, %d bytes: not a sparse archive", out, err, fi.Size())
		}
		artifacts[pl] = out
	}
	o := newTestOrigin(t)
	_, m := o.manifest(t, o.mustPublish(t, "app", "1.0.0", artifacts))
	for pl := range artifacts {
		fs := m.Platforms[pl].Files
		if len(fs) != 1 || fs[0].Path != "disk.img" || fs[0].Type != content.TypeFile || fs[0].Size != size || fs[0].SHA256 != content.Digest(sha256.Sum256(logical)) {
			t.Errorf("%s: %+v, want disk.img of %d bytes, holes as zeros", pl, fs, size)
		}
	}
}

// requireGNUTar returns the path of GNU tar, or skips t.
func requireGNUTar(t *testing.T) string {
	t.Helper()
	gnuTar, err := exec.LookPath("tar")
	if err != nil {
		t.Skip("no tar on the PATH")
	}
	if out, err := exec.Command(gnuTar, "--version").Output(); err != nil || !strings.HasPrefix(string(out), "tar (GNU tar)") {
		t.Skip("tar is not GNU tar")
	}
	return gnuTar
}

// TestPublishGNUTarGlobalHeader publishes a PAX archive that GNU tar
// starts with a global header, named /tmp/GlobalHead.PID.N: a header that
// describes no entry, whose name is no path.
func TestPublishGNUTarGlobalHeader(t *testing.T) {
	t.Parallel()
	gnuTar := requireGNUTar(t)
	work := t.TempDir()
	tree := filepath.Join(work, "tree")
	writeTree(t, tree, 1)
	archive := filepath.Join(work, "global.tar")
	cmd := exec.Command(gnuTar, "--format=pax", "--pax-option=globexthdr.comment=made by GNU tar", "-cf", archive, "-C", tree, ".")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, b)
	}
	if b, err := os.ReadFile(archive); err != nil || !strings.HasPrefix(string(b), "/tmp/GlobalHead.") {
		t.Fatalf("%s does not start with GNU tar's global header (%v)", archive, err)
	}
	o := newTestOrigin(t)
	_, m := o.manifest(t, o.mustPublish(t, "app", "1.0.0", map[string]string{"linux/amd64": tree, "linux/arm64": archive}))
	dir, tarred := m.Platforms["linux/amd64"], m.Platforms["linux/arm64"]
	if len(tarred.Files) != len(dir.Files) || tarred.Files[0].Path != content.RootPath {
		t.Errorf("the archive gives %d entries, the directory %d", len(tarred.Files), len(dir.Files))
	}
}
