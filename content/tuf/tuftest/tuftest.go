package tuftest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sync"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/meshcast/meshcast/content/tuf"
)

// DiskSource is a tuf.Source over an origin directory on disk: what a CDN
// serving the directory would deliver, with no network. A test can make a
// path fail or serve other bytes (a broken or hostile origin), and reads
// back the paths asked for.
type DiskSource struct {
	fsys fs.FS

	mu       sync.Mutex
	asked    []string          // guarded by mu; since the last take
	override map[string]served // guarded by mu; by path
}

// served is what DiskSource delivers for an overridden path.
type served struct {
	b   []byte
	err error
}

var _ tuf.Source = (*DiskSource)(nil)

// NewDiskSource returns a DiskSource over the origin directory dir.
func NewDiskSource(dir string) *DiskSource {
	return &DiskSource{fsys: os.DirFS(dir), override: map[string]served{}}
}

// Fetch implements tuf.Source: it reads <dir>/<path>. A missing file is
// an error matching tuf.ErrNotFound; a file over maxLength is refused as
// go-tuf's fetcher and the CDN client refuse it.
func (s *DiskSource) Fetch(ctx context.Context, path string, maxLength int64) ([]byte, error) {
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

// Serve makes Fetch return b for path instead of the origin's file.
func (s *DiskSource) Serve(path string, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.override[path] = served{b: slices.Clone(b)}
}

// Fail makes Fetch fail for path with err.
func (s *DiskSource) Fail(path string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.override[path] = served{err: err}
}

// Restore makes Fetch read path from the origin again.
func (s *DiskSource) Restore(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.override, path)
}

// Take returns the paths asked for since the last take, in order.
func (s *DiskSource) Take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.asked
	s.asked = nil
	return out
}
