package cdntest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// The test tree, small enough for -race: about 1.5 MiB in 42 entries, 30
// of them regular files.
//
//	bin/app                 1.25 MiB machine-code-like bytes, 0755 (zstd chunks)
//	bin/run.sh              a script, 0755
//	current -> bin/app
//	data/blob.bin           192 KiB of random bytes (raw chunks)
//	data/empty              an empty file
//	docs/page00..23.txt     text, 1–6 KiB each
//	etc/app.conf            0600, in a 0750 directory
//	lib/a/b/c/deep.txt
//	lib/a/b/c/docs -> ../../../../docs
//	var/empty/              an empty directory, 0700
const (
	// TreeApp is the path of the big compressible file in the tree.
	TreeApp = "bin/app"
	// TreeBlob is the path of the incompressible file, whose chunks are
	// stored raw.
	TreeBlob = "data/blob.bin"

	appSize  = 1280 << 10
	blobSize = 192 << 10
	docs     = 24
)

// WriteTree writes the test tree into dir, which must not exist or be
// empty. The same call always writes the same bytes, modes and links.
func WriteTree(t testing.TB, dir string) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	w := treeWriter{t: t, dir: dir}
	w.dir0("bin", 0o755)
	w.file(TreeApp, machineCode(r, appSize), 0o755)
	w.file("bin/run.sh", []byte("#!/bin/sh\nexec \"$(dirname \"$0\")/app\" \"$@\"\n"), 0o755)
	w.symlink("current", "bin/app")
	w.dir0("data", 0o755)
	blob := make([]byte, blobSize)
	for i := range blob {
		blob[i] = byte(r.Uint32())
	}
	w.file(TreeBlob, blob, 0o644)
	w.file("data/empty", nil, 0o644)
	w.dir0("docs", 0o755)
	for i := range docs {
		w.file(fmt.Sprintf("docs/page%02d.txt", i), prose(r, 1<<10+r.IntN(5<<10)), 0o644)
	}
	w.dir0("etc", 0o750)
	w.file("etc/app.conf", []byte("listen = 127.0.0.1:8080\nworkers = 4\n"), 0o600)
	for _, d := range []string{"lib", "lib/a", "lib/a/b", "lib/a/b/c"} {
		w.dir0(d, 0o755)
	}
	w.file("lib/a/b/c/deep.txt", prose(r, 3000), 0o644)
	w.symlink("lib/a/b/c/docs", "../../../../docs")
	w.dir0("var", 0o755)
	w.dir0("var/empty", 0o700)
}

// Mutate changes the tree as a small upgrade would: 8 KiB in the middle
// of bin/app rewritten, one page rewritten, one removed, one file added.
func Mutate(t testing.TB, dir string) {
	t.Helper()
	r := rand.New(rand.NewPCG(3, 4))
	app := filepath.Join(dir, filepath.FromSlash(TreeApp))
	b, err := os.ReadFile(app)
	if err != nil {
		t.Fatal(err)
	}
	copy(b[len(b)/2:], machineCode(r, 8<<10))
	w := treeWriter{t: t, dir: dir}
	w.rewrite(TreeApp, b)
	w.rewrite("docs/page03.txt", prose(r, 4000))
	if err := os.Remove(filepath.Join(dir, "docs", "page07.txt")); err != nil {
		t.Fatal(err)
	}
	w.file("docs/added.txt", prose(r, 2500), 0o644)
}

type treeWriter struct {
	t   testing.TB
	dir string
}

func (w treeWriter) path(rel string) string { return filepath.Join(w.dir, filepath.FromSlash(rel)) }

func (w treeWriter) dir0(rel string, mode os.FileMode) {
	w.t.Helper()
	p := w.path(rel)
	if err := os.MkdirAll(p, 0o755); err != nil {
		w.t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // no umask
		w.t.Fatal(err)
	}
}

func (w treeWriter) file(rel string, data []byte, mode os.FileMode) {
	w.t.Helper()
	p := w.path(rel)
	if err := os.WriteFile(p, data, mode); err != nil {
		w.t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		w.t.Fatal(err)
	}
}

// rewrite replaces a file's bytes, keeping its mode.
func (w treeWriter) rewrite(rel string, data []byte) {
	w.t.Helper()
	fi, err := os.Stat(w.path(rel))
	if err != nil {
		w.t.Fatal(err)
	}
	w.file(rel, data, fi.Mode().Perm())
}

func (w treeWriter) symlink(rel, target string) {
	w.t.Helper()
	if err := os.Symlink(target, w.path(rel)); err != nil {
		w.t.Fatal(err)
	}
}

// machineCode returns n bytes that look like code: a few hundred
// instruction patterns drawn with a skew, some with random 4-byte
// operands. It compresses to about half, like real binaries.
func machineCode(r *rand.Rand, n int) []byte {
	pr := rand.New(rand.NewPCG(42, 42)) // the "instruction set" is fixed
	patterns := make([][]byte, 256)
	for i := range patterns {
		p := make([]byte, 1+pr.IntN(7))
		for j := range p {
			p[j] = byte(pr.Uint32())
		}
		patterns[i] = p
	}
	b := make([]byte, 0, n+16)
	for len(b) < n {
		i := int(float64(len(patterns)) * r.Float64() * r.Float64()) // skewed to low indices
		b = append(b, patterns[i]...)
		if i%5 == 0 {
			b = append(b, byte(r.Uint32()), byte(r.Uint32()), 0, 0)
		}
	}
	return b[:n]
}

var words = []string{
	"the", "chunk", "release", "seeder", "gateway", "site", "wave", "manifest", "signed",
	"verify", "store", "fetch", "origin", "metadata", "of", "and", "a", "to", "is", "every",
	"rollout", "health", "timeout", "peer", "mesh", "quorum", "leader", "pack", "range", "byte",
}

// prose returns n bytes of text in lines of about 70 characters.
func prose(r *rand.Rand, n int) []byte {
	var b bytes.Buffer
	col := 0
	for b.Len() < n {
		w := words[int(float64(len(words))*r.Float64()*r.Float64())]
		if col+len(w) > 70 {
			b.WriteByte('\n')
			col = 0
		} else if col > 0 {
			b.WriteByte(' ')
			col++
		}
		b.WriteString(w)
		col += len(w)
	}
	return append(b.Bytes()[:n-1], '\n')
}

// TreeEntry describes one entry of a tree for comparison.
type TreeEntry struct {
	Type   string // "file", "dir" or "symlink"
	Mode   fs.FileMode
	Size   int64
	SHA256 string // files
	Target string // symlinks
}

// ReadTree describes every entry below dir (not dir itself) by its
// slash-separated relative path.
func ReadTree(t testing.TB, dir string) map[string]TreeEntry {
	t.Helper()
	out := map[string]TreeEntry{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		var e TreeEntry
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			e = TreeEntry{Type: "file", Mode: fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky), Size: fi.Size(), SHA256: hex.EncodeToString(sum[:])}
		case fi.IsDir():
			e = TreeEntry{Type: "dir", Mode: fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)}
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			e = TreeEntry{Type: "symlink", Target: target}
		default:
			e = TreeEntry{Type: fi.Mode().Type().String()}
		}
		out[filepath.ToSlash(rel)] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// RequireSameTree fails the test unless got holds exactly the entries of
// want: the same paths, types, permission bits, bytes and link targets.
func RequireSameTree(t testing.TB, want, got string) {
	t.Helper()
	w, g := ReadTree(t, want), ReadTree(t, got)
	var paths []string
	for p := range w {
		paths = append(paths, p)
	}
	for p := range g {
		if _, ok := w[p]; !ok {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	bad := 0
	for _, p := range paths {
		we, wok := w[p]
		ge, gok := g[p]
		switch {
		case !gok:
			t.Errorf("%s: missing from %s", p, got)
		case !wok:
			t.Errorf("%s: unexpected in %s (%+v)", p, got, ge)
		case we != ge:
			t.Errorf("%s: got %+v, want %+v", p, ge, we)
		default:
			continue
		}
		bad++
	}
	if bad > 0 {
		t.FailNow()
	}
}

// CopyTree copies the tree at from to to (which must not exist):
// directories, regular files and symlinks, with their permission bits.
func CopyTree(t testing.TB, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, p)
		if err != nil {
			return err
		}
		dst := filepath.Join(to, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			if err := os.Mkdir(dst, 0o700); err != nil {
				return err
			}
			return nil // its mode is set below, once it is filled
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, dst)
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := os.WriteFile(dst, b, 0o600); err != nil {
				return err
			}
			return os.Chmod(dst, fi.Mode().Perm())
		}
		return fmt.Errorf("%s: cannot copy a %s", p, fi.Mode().Type())
	})
	if err != nil {
		t.Fatal(err)
	}
	// Directory modes last, deepest first, so that none blocks the copy.
	var dirs []string
	filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return err
	})
	for _, p := range slices.Backward(dirs) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(from, p)
		if err := os.Chmod(filepath.Join(to, rel), fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
}
