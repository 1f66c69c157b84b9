package treegen

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var small = Options{Seed: 1, Files: 300, Bytes: 20 << 20}

// walk describes a tree on disk: slash path → type, permissions, link target
// and content digest.
func walk(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		desc := info.Mode().String()
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			desc += " " + hex.EncodeToString(sum[:])
		}
		out[filepath.ToSlash(rel)] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// digest hashes a walk in path order.
func digest(w map[string]string) string {
	h := sha256.New()
	for _, p := range slices.Sorted(func(yield func(string) bool) {
		for p := range w {
			if !yield(p) {
				return
			}
		}
	}) {
		h.Write([]byte(p + "\x00" + w[p] + "\n"))
	}
	return hex.EncodeToString(h.Sum(nil))
}

func generate(t testing.TB, opt Options) (*Tree, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "v1")
	tr, err := Generate(dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	return tr, dir
}

func TestGenerateIsDeterministic(t *testing.T) {
	_, a := generate(t, small)
	_, b := generate(t, small)
	other := small
	other.Seed = 2
	_, c := generate(t, other)
	da, db, dc := digest(walk(t, a)), digest(walk(t, b)), digest(walk(t, c))
	if da != db {
		t.Errorf("same seed, different trees: %s vs %s", da, db)
	}
	if da == dc {
		t.Errorf("seeds 1 and 2 gave the same tree")
	}
}

func TestGenerateRefusesNonEmptyDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(dir, small); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("Generate into a non-empty dir: %v, want ErrNotEmpty", err)
	}
}

func within(got, want int64, pct int64) bool {
	return got*100 >= want*(100-pct) && got*100 <= want*(100+pct)
}

func TestGenerateShape(t *testing.T) {
	tr, dir := generate(t, small)
	if !within(int64(tr.Files), int64(small.Files), 15) {
		t.Errorf("files = %d, want %d ± 15%%", tr.Files, small.Files)
	}
	if !within(tr.Bytes, small.Bytes, 15) {
		t.Errorf("bytes = %d, want %d ± 15%%", tr.Bytes, small.Bytes)
	}
	t.Logf("%d files, %d bytes, by model %v, %d packages", tr.Files, tr.Bytes, tr.ModelBytes, len(tr.Packages))
	if share := tr.ModelBytes[Random] * 100 / tr.Bytes; share < 8 || share > 18 {
		t.Errorf("random share %d%%, want 8-18%%", share)
	}

	// the description matches the disk
	disk := walk(t, dir)
	if len(disk) != len(tr.Entries) {
		t.Errorf("%d paths on disk, %d entries", len(disk), len(tr.Entries))
	}
	var empty, emptyDirs, links, secret, exec int
	for _, e := range tr.Entries {
		d, ok := disk[e.Path]
		if !ok {
			t.Errorf("%s: described, not on disk", e.Path)
			continue
		}
		if info, err := os.Lstat(filepath.Join(dir, e.Path)); err != nil {
			t.Error(err)
		} else if info.Mode().Type() != e.Type || (e.Type != fs.ModeSymlink && info.Mode().Perm() != e.Perm) ||
			(e.Type == 0 && info.Size() != e.Size) {
			t.Errorf("%s: disk %s size %d, described %v %v size %d", e.Path, d, info.Size(), e.Type, e.Perm, e.Size)
		}
		switch {
		case e.Type == 0 && e.Size == 0:
			empty++
		case e.Type == fs.ModeDir:
			if entries, _ := os.ReadDir(filepath.Join(dir, e.Path)); len(entries) == 0 {
				emptyDirs++
			}
		case e.Type == fs.ModeSymlink:
			links++
		}
		if e.Type == 0 && e.Perm == 0o600 {
			secret++
		}
		if e.Type == 0 && e.Perm == 0o755 {
			exec++
		}
	}
	if empty == 0 || emptyDirs == 0 || links == 0 || secret == 0 || exec == 0 {
		t.Errorf("empty files %d, empty dirs %d, symlinks %d, 0600 files %d, executables %d: want some of each",
			empty, emptyDirs, links, secret, exec)
	}
	for _, p := range []string{"usr/bin", "usr/sbin", "usr/lib/" + triplet, "usr/share/doc", "usr/share/locale",
		"usr/lib/python3/dist-packages", "etc", "var/lib/dpkg/status"} {
		if _, ok := disk[p]; !ok {
			t.Errorf("no %s", p)
		}
	}
	// a library with its version chain
	chain := false
	for _, e := range tr.Entries {
		if e.Type == fs.ModeSymlink && strings.HasSuffix(e.Path, ".so") {
			mid := path.Join(path.Dir(e.Path), e.Target)
			if m, ok := disk[mid]; ok && strings.Contains(m, "->") {
				chain = true
			}
		}
	}
	if !chain {
		t.Error("no libfoo.so -> libfoo.so.N -> libfoo.so.N.N.N chain")
	}
}

func TestSymlinksStayInside(t *testing.T) {
	tr, dir := generate(t, small)
	for _, e := range tr.Entries {
		if e.Type != fs.ModeSymlink {
			continue
		}
		if path.IsAbs(e.Target) {
			t.Errorf("%s -> %s: absolute", e.Path, e.Target)
		}
		to := path.Join(path.Dir(e.Path), e.Target)
		if to == ".." || strings.HasPrefix(to, "../") {
			t.Errorf("%s -> %s: leaves the tree", e.Path, e.Target)
		}
		if _, err := os.Stat(filepath.Join(dir, e.Path)); err != nil {
			t.Errorf("%s -> %s: dangling: %v", e.Path, e.Target, err)
		}
	}
}

func TestUpgrade(t *testing.T) {
	_, v1 := generate(t, small)
	v2 := filepath.Join(t.TempDir(), "v2")
	const maxFiles = 40
	ch, err := Upgrade(v1, v2, 9, maxFiles)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("modified %d %v", len(ch.Modified), ch.Modified)
	t.Logf("added %v", ch.Added)
	t.Logf("removed %v", ch.Removed)
	if ch.Len() > maxFiles || ch.Len() < maxFiles/2 {
		t.Errorf("touched %d paths, want at most %d and not far below", ch.Len(), maxFiles)
	}
	checkChange(t, walk(t, v1), walk(t, v2), ch)

	// the showcase of a package upgrade
	var rebuilt, renamed, changelog bool
	for _, p := range ch.Modified {
		if strings.Contains(p, "bin/") {
			old, _ := os.ReadFile(filepath.Join(v1, p))
			nb, _ := os.ReadFile(filepath.Join(v2, p))
			checkRebuild(t, p, old, nb)
			rebuilt = true
		}
		changelog = changelog || strings.HasSuffix(p, "changelog.Debian")
	}
	for _, p := range ch.Added {
		if isVersionedLib(p) {
			renamed = true
			if _, err := elf.Open(filepath.Join(v2, p)); err != nil {
				t.Errorf("%s: %v", p, err)
			}
		}
	}
	if !rebuilt || !renamed || !changelog || len(ch.Removed) == 0 {
		t.Errorf("rebuilt binary %v, renamed library %v, changelog %v, removed %d: want all", rebuilt, renamed, changelog, len(ch.Removed))
	}

	// deterministic, and the result can be upgraded again
	v2b := filepath.Join(t.TempDir(), "v2")
	if _, err := Upgrade(v1, v2b, 9, maxFiles); err != nil {
		t.Fatal(err)
	}
	if digest(walk(t, v2)) != digest(walk(t, v2b)) {
		t.Error("same seed, different upgrades")
	}
	v3 := filepath.Join(t.TempDir(), "v3")
	ch3, err := Upgrade(v2, v3, 10, 12)
	if err != nil {
		t.Fatal(err)
	}
	if ch3.Len() > 12 || ch3.Len() == 0 {
		t.Errorf("second upgrade touched %d paths, want 1-12", ch3.Len())
	}
	checkChange(t, walk(t, v2), walk(t, v3), ch3)
}

// checkChange verifies that exactly the paths in ch differ between a and b.
func checkChange(t *testing.T, a, b map[string]string, ch *Change) {
	t.Helper()
	kind := map[string]string{}
	for _, p := range ch.Modified {
		kind[p] = "modified"
	}
	for _, p := range ch.Added {
		kind[p] = "added"
	}
	for _, p := range ch.Removed {
		kind[p] = "removed"
	}
	for p, da := range a {
		db, ok := b[p]
		switch k := kind[p]; {
		case !ok && k != "removed":
			t.Errorf("%s: gone but %q", p, k)
		case ok && da != db && k != "modified":
			t.Errorf("%s: changed but %q", p, k)
		case ok && da == db && k != "":
			t.Errorf("%s: unchanged but %q", p, k)
		}
	}
	for p := range b {
		if _, ok := a[p]; !ok && kind[p] != "added" && !strings.HasSuffix(b[p], "d") && !strings.HasPrefix(b[p], "d") {
			t.Errorf("%s: new but not added", p)
		}
	}
}

func checkRebuild(t *testing.T, name string, old, nb []byte) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(nb))
	if err != nil {
		t.Fatalf("%s: rebuilt binary does not parse: %v", name, err)
	}
	if _, err := f.DynamicSymbols(); err != nil {
		t.Errorf("%s: %v", name, err)
	}
	same := 0
	for i := range min(len(old), len(nb)) {
		if old[i] == nb[i] {
			same++
		}
	}
	t.Logf("%s: %d -> %d bytes, %.0f%% of bytes equal at the same offset", name, len(old), len(nb), 100*float64(same)/float64(max(len(old), 1)))
}

func TestUpgradeSmallBudget(t *testing.T) {
	_, v1 := generate(t, Options{Seed: 3, Files: 100, Bytes: 2 << 20})
	for _, max := range []int{1, 4} {
		v2 := filepath.Join(t.TempDir(), "v2")
		ch, err := Upgrade(v1, v2, 4, max)
		if err != nil {
			t.Fatal(err)
		}
		if ch.Len() > max {
			t.Errorf("maxFiles %d: touched %d", max, ch.Len())
		}
	}
}

func TestImage(t *testing.T) {
	dir := t.TempDir()
	size := int64(40<<20 + 12345)
	a, b := filepath.Join(dir, "a.img"), filepath.Join(dir, "b.img")
	for _, p := range []string{a, b} {
		if err := Image(p, size, 5); err != nil {
			t.Fatal(err)
		}
	}
	da, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	db, _ := os.ReadFile(b)
	if int64(len(da)) != size {
		t.Fatalf("image is %d bytes, want %d", len(da), size)
	}
	if !bytes.Equal(da, db) {
		t.Error("same seed, different images")
	}
	if da[1080] != 0x53 || da[1081] != 0xef {
		t.Error("no ext4 superblock magic")
	}
	zero, total := zeroBlocks(da)
	share := float64(zero) / float64(total)
	t.Logf("%d of %d blocks zero (%.1f%%)", zero, total, 100*share)
	if share < 0.22 || share > 0.40 {
		t.Errorf("zero blocks %.1f%%, want about 25-35%%", 100*share)
	}
	if _, err := os.Stat("/usr/sbin/e2fsck"); err == nil {
		out, err := exec.Command("/usr/sbin/e2fsck", "-fn", a).CombinedOutput()
		if err != nil {
			t.Errorf("e2fsck -fn: %v\n%s", err, out)
		}
	}
	for _, s := range []int64{0, 1, 4095, 4097, 3 << 20} {
		p := filepath.Join(dir, "s.img")
		if err := Image(p, s, 6); err != nil {
			t.Fatal(err)
		}
		if info, err := os.Stat(p); err != nil || info.Size() != s {
			t.Errorf("Image(%d): %v %v", s, info.Size(), err)
		}
	}
}

// TestContentIndependentOfHistory guards determinism under parallel writing:
// a file's bytes must not depend on what its worker generated before.
func TestContentIndependentOfHistory(t *testing.T) {
	p := newPlan(small)
	shared := newGen()
	var buf []byte
	for _, n := range p.nodes {
		if n.typ != 0 {
			continue
		}
		shared.reset(seedOf(p.seed, n.path))
		buf = shared.content(buf[:0], n, p)
		fresh := newGen()
		fresh.reset(seedOf(p.seed, n.path))
		if !bytes.Equal(buf, fresh.content(nil, n, p)) {
			t.Errorf("%s: content depends on the generator's history", n.path)
		}
	}
}
