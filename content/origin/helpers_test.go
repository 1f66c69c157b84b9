package origin_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/content/origin"
)

// testOrigin is an initialised origin with all four keys.
type testOrigin struct {
	dir     string
	keysDir string
	keys    origin.Keys
}

func newTestOrigin(t *testing.T) *testOrigin {
	t.Helper()
	base := t.TempDir()
	o := &testOrigin{dir: filepath.Join(base, "origin"), keysDir: filepath.Join(base, "keys")}
	var err error
	if o.keys, err = origin.GenerateKeys(o.keysDir); err != nil {
		t.Fatal(err)
	}
	if err := origin.Init(o.dir, o.keys, origin.DefaultExpiries(), time.Now()); err != nil {
		t.Fatal(err)
	}
	return o
}

func (o *testOrigin) open(t *testing.T) *origin.Repo {
	t.Helper()
	r, err := origin.Open(o.dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// publish runs one publish with the origin's keys, holding the lock for
// that publish only.
func (o *testOrigin) publish(t *testing.T, opt origin.PublishOptions) (*origin.PublishResult, error) {
	t.Helper()
	r, err := origin.Open(o.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return r.Publish(context.Background(), o.keys, opt, nil)
}

func (o *testOrigin) mustPublish(t *testing.T, name, version string, artifacts map[string]string) *origin.PublishResult {
	t.Helper()
	res, err := o.publish(t, origin.PublishOptions{Name: name, Version: version, Artifacts: artifacts})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (o *testOrigin) metaFile(name string) string { return filepath.Join(o.dir, "metadata", name) }

func (o *testOrigin) readFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(o.dir, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// manifest returns the bytes and decoded form of a published manifest,
// read from where consistent snapshots put it.
func (o *testOrigin) manifest(t *testing.T, res *origin.PublishResult) ([]byte, *content.Manifest) {
	t.Helper()
	dir, base := filepath.Split(res.Target)
	b := o.readFile(t, filepath.Join("targets", dir, res.ReleaseID.String()+"."+base))
	m, err := origin.LoadManifest(t.Context(), filepath.Join(o.dir, "packs"), b, content.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	return b, m
}

// state maps every file below dir (the lock excepted) to its sha256, or a
// link to its target, so a test can tell that nothing was written.
func state(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.IsDir():
			out[rel] = "dir"
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "-> " + target
		case rel != ".lock":
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			out[rel] = hex.EncodeToString(sum[:])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func requireSameState(t *testing.T, before, after map[string]string) {
	t.Helper()
	for p, v := range after {
		if w, ok := before[p]; !ok {
			t.Errorf("%s was created", p)
		} else if w != v {
			t.Errorf("%s changed", p)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			t.Errorf("%s was removed", p)
		}
	}
}

// writeTree writes a small tree: a compressible binary, random bytes, text,
// an empty file, a symlink, nested and private directories, an executable.
func writeTree(t *testing.T, dir string, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	file := func(rel string, data []byte, mode os.FileMode) {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	code := make([]byte, 0, 300<<10)
	for len(code) < 300<<10 {
		code = append(code, byte(r.IntN(16)), 0x48, 0x89, byte(r.IntN(8)), 0xe8, byte(r.Uint32()), byte(r.Uint32()), 0, 0)
	}
	file("bin/app", code, 0o755)
	blob := make([]byte, 100<<10)
	for i := range blob {
		blob[i] = byte(r.Uint32())
	}
	file("data/blob.bin", blob, 0o644)
	file("data/empty", nil, 0o644)
	for i := range 4 {
		var b strings.Builder
		for b.Len() < 3000 {
			fmt.Fprintf(&b, "line %d of page %d: every chunk is verified against its id\n", r.IntN(1000), i)
		}
		file(fmt.Sprintf("docs/page%d.txt", i), []byte(b.String()), 0o644)
	}
	file("x/y/z/deep.txt", []byte("deep\n"), 0o600)
	if err := os.Symlink("docs/page0.txt", filepath.Join(dir, "readme")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "private"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "private"), 0o700); err != nil {
		t.Fatal(err)
	}
}

// tarTree archives dir into out (.tar, .tar.gz or .tar.zst by name) in
// walk order, so the archive lists what a directory publish reads.
func tarTree(t *testing.T, dir, out string) {
	t.Helper()
	writeTar(t, out, func(tw *tar.Writer) {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			fi, err := d.Info()
			if err != nil {
				return err
			}
			link := ""
			if fi.Mode()&fs.ModeSymlink != 0 {
				if link, err = os.Readlink(p); err != nil {
					return err
				}
			}
			h, err := tar.FileInfoHeader(fi, link)
			if err != nil {
				return err
			}
			h.Name = filepath.ToSlash(rel) // "." for the tree's own directory
			// As the directory publishes it: mtimes to the
			// nanosecond, no owner names.
			h.Format, h.Uname, h.Gname = tar.FormatPAX, "", ""
			if fi.IsDir() {
				h.Name += "/"
			}
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if fi.Mode().IsRegular() {
				f, err := os.Open(p)
				if err != nil {
					return err
				}
				defer f.Close()
				_, err = io.Copy(tw, f)
				return err
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// writeTar writes an archive at out, compressed by its name, with fill.
func writeTar(t *testing.T, out string, fill func(tw *tar.Writer)) {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var w io.Writer = f
	var closer io.Closer
	switch {
	case strings.HasSuffix(out, ".tar.gz"):
		gw := gzip.NewWriter(f)
		w, closer = gw, gw
	case strings.HasSuffix(out, ".tar.zst"):
		zw, err := zstd.NewWriter(f, zstd.WithEncoderConcurrency(1))
		if err != nil {
			t.Fatal(err)
		}
		w, closer = zw, zw
	}
	tw := tar.NewWriter(w)
	fill(tw)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if closer != nil {
		if err := closer.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// tarFile adds a regular file entry.
func tarFile(t *testing.T, tw *tar.Writer, name string, data []byte) {
	t.Helper()
	if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data))}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(data); err != nil {
		t.Fatal(err)
	}
}
