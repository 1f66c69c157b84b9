package origin

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/meshcast/meshcast/content"
)

// TestDirSourceChangedBeforeRead swaps a regular file for something else
// between the walk and the read: the source must refuse it, naming the
// path, and never block on a fifo or read through a symlink.
func TestDirSourceChangedBeforeRead(t *testing.T) {
	for _, tt := range []struct {
		name string
		swap func(t *testing.T, dir string)
		want string
	}{
		{"symlink", func(t *testing.T, dir string) {
			replace(t, dir, "d/f", func(p string) error { return os.Symlink("../other", p) })
		}, "changed while it was published"},
		{"fifo", func(t *testing.T, dir string) {
			replace(t, dir, "d/f", func(p string) error { return unix.Mkfifo(p, 0o644) })
		}, "changed while it was published (a regular file, then a fifo)"},
		{"directory", func(t *testing.T, dir string) {
			replace(t, dir, "d/f", func(p string) error { return os.Mkdir(p, 0o755) })
		}, "changed while it was published (a regular file, then a directory)"},
		{"another file", func(t *testing.T, dir string) {
			replace(t, dir, "d/f", func(p string) error { return os.WriteFile(p, []byte("evil data\n"), 0o644) })
		}, "changed while it was published"}, // the inode number may be reused: its ctime differs
		{"touched", func(t *testing.T, dir string) {
			if err := os.Chmod(filepath.Join(dir, "d", "f"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "changed while it was published (its inode changed after the walk)"},
		{"grown", func(t *testing.T, dir string) {
			f, err := os.OpenFile(filepath.Join(dir, "d", "f"), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteString("more"); err != nil {
				t.Fatal(err)
			}
		}, "changed while it was published (10 bytes, then 14)"},
		{"removed", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "d", "f")); err != nil {
				t.Fatal(err)
			}
		}, "changed while it was published"},
		{"parent is a symlink", func(t *testing.T, dir string) {
			if err := os.Rename(filepath.Join(dir, "d"), filepath.Join(dir, "moved")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("moved", filepath.Join(dir, "d")); err != nil {
				t.Fatal(err)
			}
		}, "changed while it was published"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "d", "f"), "0123456789")
			writeFile(t, filepath.Join(dir, "other"), "not this!!")
			var consumed int64
			src, err := newDirSource(dir, &consumed, content.DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			defer src.close()
			tt.swap(t, dir)
			err = drainWithin(t, src, 10*time.Second)
			want := filepath.Join(dir, "d", "f")
			if err == nil || !strings.Contains(err.Error(), `"`+want+`": `+tt.want) {
				t.Fatalf("%v, want an error naming %s: %s", err, want, tt.want)
			}
		})
	}
}

// TestDirSourceChangedWhileRead changes a file, keeping its size, while
// its bytes are read: the read must fail rather than publish a mix.
func TestDirSourceChangedWhileRead(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	writeFile(t, p, strings.Repeat("a", 1<<16))
	var consumed int64
	src, err := newDirSource(dir, &consumed, content.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	defer src.close()
	e, err := src.next() // the root
	if err == nil {
		e, err = src.next()
	}
	if err != nil || e.Path != "f" {
		t.Fatalf("%+v, %v; want f", e, err)
	}
	if _, err := io.ReadFull(e.r, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	writeFile(t, p, strings.Repeat("b", 1<<16))
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(p, later, later); err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(io.Discard, e.r)
	if err == nil || !strings.Contains(err.Error(), "changed while it was read") {
		t.Fatalf("%v, want changed while it was read", err)
	}
}

func writeFile(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// replace puts make's result at rel below dir in place of what is there.
func replace(t *testing.T, dir, rel string, make func(p string) error) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := make(p); err != nil {
		t.Fatal(err)
	}
}

// drainWithin reads every entry of src and returns the first error,
// failing the test if that takes longer than d (a blocked open).
func drainWithin(t *testing.T, src source, d time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		for {
			e, err := src.next()
			if err == io.EOF {
				done <- nil
				return
			}
			if err == nil && e.r != nil {
				_, err = io.Copy(io.Discard, e.r)
			}
			if err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatal("the source blocked")
		return errors.New("blocked")
	}
}
