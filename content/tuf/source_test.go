package tuf_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/meshcast/meshcast/content/tuf"
)

// diskSource is a tuf.Source over an origin directory on disk: what a CDN
// serving the directory would deliver, with no network. A test can make a
// path fail or serve other bytes (a broken or hostile origin), and reads
// back the paths asked for.
type diskSource struct {
	fsys fs.FS

	mu       sync.Mutex
	asked    []string          // guarded by mu; since the last take
	override map[string]served // guarded by mu; by path
}

// served is what diskSource delivers for an overridden path.
type served struct {
	b   []byte
	err error
}

var _ tuf.Source = (*diskSource)(nil)

func newDiskSource(dir string) *diskSource {
	return &diskSource{fsys: os.DirFS(dir), override: map[string]served{}}
}

// Fetch implements tuf.Source: it reads <dir>/<path>. A missing file is
// an error matching tuf.ErrNotFound; a file over maxLength is refused as
// go-tuf's fetcher and the CDN client refuse it.
func (s *diskSource) Fetch(ctx context.Context, path string, maxLength int64) ([]byte, error) {
	s.mu.Lock()
	s.asked = append(s.asked, path)
	o, ok := s.override[path]
	s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := o.b, o.err
	if !ok {
		b, err = fs.ReadFile(s.fsys, path)
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("%s: %w", path, tuf.ErrNotFound)
		}
	}
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s is %d bytes, more than the %d allowed", path, len(b), maxLength)}
	}
	return slices.Clone(b), nil
}

// serve makes Fetch return b for path instead of the origin's file.
func (s *diskSource) serve(path string, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.override[path] = served{b: slices.Clone(b)}
}

// fail makes Fetch fail for path with err.
func (s *diskSource) fail(path string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.override[path] = served{err: err}
}

// restore makes Fetch read path from the origin again.
func (s *diskSource) restore(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.override, path)
}

// take returns the paths asked for since the last take, in order.
func (s *diskSource) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.asked
	s.asked = nil
	return out
}

// TestDiskSource checks the test Source itself, which every other test
// relies on to be an honest origin unless told otherwise.
func TestDiskSource(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "metadata"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "metadata", "timestamp.json"), []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s := newDiskSource(dir)
	if b, err := s.Fetch(ctx, "metadata/timestamp.json", 10); err != nil || string(b) != "0123456789" {
		t.Errorf("Fetch of a file at its length: %q, %v", b, err)
	}
	var lm *metadata.ErrDownloadLengthMismatch
	if _, err := s.Fetch(ctx, "metadata/timestamp.json", 9); !errors.As(err, &lm) {
		t.Errorf("Fetch of a file over the limit: %v, want ErrDownloadLengthMismatch", err)
	}
	if _, err := s.Fetch(ctx, "metadata/2.root.json", 10); !errors.Is(err, tuf.ErrNotFound) {
		t.Errorf("Fetch of a missing file: %v, want ErrNotFound", err)
	}
	if _, err := s.Fetch(ctx, "../"+filepath.Base(dir)+"/metadata/timestamp.json", 10); err == nil {
		t.Error("Fetch outside the origin succeeded")
	}
	s.serve("metadata/timestamp.json", []byte("other"))
	if b, err := s.Fetch(ctx, "metadata/timestamp.json", 10); err != nil || string(b) != "other" {
		t.Errorf("Fetch of an overridden file: %q, %v", b, err)
	}
	broken := errors.New("connection reset")
	s.fail("metadata/timestamp.json", broken)
	if _, err := s.Fetch(ctx, "metadata/timestamp.json", 10); !errors.Is(err, broken) {
		t.Errorf("Fetch of a failing file: %v, want %v", err, broken)
	}
	s.restore("metadata/timestamp.json")
	if b, err := s.Fetch(ctx, "metadata/timestamp.json", 10); err != nil || string(b) != "0123456789" {
		t.Errorf("Fetch of a restored file: %q, %v", b, err)
	}
	want := []string{"metadata/timestamp.json", "metadata/timestamp.json", "metadata/2.root.json", "../" + filepath.Base(dir) + "/metadata/timestamp.json",
		"metadata/timestamp.json", "metadata/timestamp.json", "metadata/timestamp.json"}
	if got := s.take(); !slices.Equal(got, want) {
		t.Errorf("asked %q, want %q", got, want)
	}
	if got := s.take(); len(got) != 0 {
		t.Errorf("asked %q after a take, want nothing", got)
	}
}
