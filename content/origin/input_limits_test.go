package origin

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/meshcast/meshcast/content"
)

// headerStream is a tar of n directory entries "d00000000/" … made on the
// fly, one 512-byte header per Read, never stored: a template header with
// its name's digits and checksum rewritten.
type headerStream struct {
	tmpl [512]byte
	sum  int // the template's checksum with the name's digits all '0'
	n    int
	sent int // headers read so far
}

func newHeaderStream(t *testing.T, n int) *headerStream {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "d00000000/", Typeflag: tar.TypeDir, Mode: 0o755, Format: tar.FormatGNU}); err != nil {
		t.Fatal(err)
	}
	s := &headerStream{n: n}
	copy(s.tmpl[:], buf.Bytes())
	for k, c := range s.tmpl {
		if k >= 148 && k < 156 {
			c = ' '
		}
		s.sum += int(c)
	}
	return s
}

func (s *headerStream) Read(p []byte) (int, error) {
	if s.sent == s.n {
		return 0, io.EOF // no end-of-archive blocks: the reader says so
	}
	if len(p) < 512 {
		return 0, errors.New("short read buffer")
	}
	b := p[:512]
	copy(b, s.tmpl[:])
	sum := s.sum
	for k, v := 8, s.sent; k >= 1; k, v = k-1, v/10 {
		b[k] = '0' + byte(v%10)
		sum += v % 10
	}
	for k := 153; k >= 148; k, sum = k-1, sum>>3 {
		b[k] = '0' + byte(sum&7)
	}
	b[154], b[155] = 0, ' '
	s.sent++
	return 512, nil
}

func (s *headerStream) Close() error { return nil }

// TestTarEntryLimit streams a tar of ten million entries, never held in
// memory or on disk, into a tar source: it must refuse the entry after
// content.DefaultLimits().Files, right there, with the stream read no
// further and the memory of the entries it holds bounded. Under the race
// detector, which makes archive/tar several times slower, the same runs
// against a bound of 1<<15.
func TestTarEntryLimit(t *testing.T) {
	lim := content.DefaultLimits()
	if raceEnabled || testing.Short() {
		lim.Files = 1 << 15
	}
	stream := newHeaderStream(t, 10_000_000)
	src, err := newTarSource(stream, bufio.NewReaderSize(stream, 512), 0, lim)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	n := 0
	for {
		_, err = src.next()
		if err != nil {
			break
		}
		n++
	}
	elapsed := time.Since(start)
	want := fmt.Sprintf(`tar entry "d%08d/": more than %d entries`, lim.Files, lim.Files)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("after %d entries: %v, want %q", n, err, want)
	}
	if n != lim.Files || stream.sent != lim.Files+1 {
		t.Errorf("refused after %d entries with %d headers read, want %d and %d", n, stream.sent, lim.Files, lim.Files+1)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	// The source holds each path once in its map: some 100 bytes an
	// entry at most.
	if max := uint64(lim.Files)*200 + 64<<20; ms.HeapAlloc > max {
		t.Errorf("%d bytes of heap after %d entries, want at most %d", ms.HeapAlloc, n, max)
	}
	runtime.KeepAlive(src)
	t.Logf("refused after %d entries in %s, %d MiB of heap", n, elapsed, ms.HeapAlloc>>20)
}

// TestDirSourceLimits checks the bounds of a directory walk with small
// limits: entries, one attribute's size, attributes' count, and the
// metadata of the whole tree.
func TestDirSourceLimits(t *testing.T) {
	dir := t.TempDir()
	for i := range 10 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Setxattr(filepath.Join(dir, "f3"), "user.big", bytes.Repeat([]byte("v"), 100), 0); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		lim  func(*content.Limits)
		want string
	}{
		{"entries", func(l *content.Limits) { l.Files = 9 }, "more than 9 entries"},
		{"xattr size", func(l *content.Limits) { l.XattrBytes = 99 }, `f3": bad manifest: extended attribute user.big of 100 bytes exceeds the limit of 99`},
		{"xattr count", func(l *content.Limits) { l.Xattrs = 0 }, `f3": more than 0 extended attributes`},
		{"metadata", func(l *content.Limits) { l.ManifestBytes = 15 }, "exceed 15 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			lim := content.DefaultLimits()
			tt.lim(&lim)
			err := drainDir(t, dir, lim)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("%v, want an error holding %q", err, tt.want)
			}
		})
	}
	if err := drainDir(t, dir, content.DefaultLimits()); err != nil {
		t.Fatal(err)
	}
}

// drainDir walks dir and reads every entry, returning the first error.
func drainDir(t *testing.T, dir string, lim content.Limits) error {
	t.Helper()
	var consumed int64
	src, err := newDirSource(dir, &consumed, lim)
	if err != nil {
		return err
	}
	defer src.close()
	for {
		e, err := src.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if e.r != nil {
			if _, err := io.Copy(io.Discard, e.r); err != nil {
				return err
			}
		}
	}
}
