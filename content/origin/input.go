package origin

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/meshcast/meshcast/content"
)

// entry is one item of an artifact being published.
type entry struct {
	path   string
	typ    content.FileType
	mode   content.Mode
	size   int64
	target string    // symlink target
	linkTo string    // tar hard link: an earlier regular file's path
	r      io.Reader // regular file bytes, valid until the next call to next
}

// source yields an artifact's entries in the order their chunks go into
// the pack: walk order for a directory, archive order for a tar.
type source interface {
	kind() content.ArtifactKind
	// total is the input size in bytes for progress; progress counts the
	// bytes consumed so far.
	total() int64
	next() (*entry, error) // io.EOF after the last
	close() error
}

// countingReader counts bytes read, for progress.
type countingReader struct {
	r io.Reader
	n *int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += int64(n)
	return n, err
}

// openSource opens an artifact: a directory or a tar (optionally gzip or
// zstd compressed) is a tree, any other regular file a single file.
func openSource(p string, consumed *int64) (source, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	switch {
	case fi.IsDir():
		return newDirSource(p, consumed)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s is neither a directory nor a regular file", p)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(countingReader{f, consumed}, 1<<20)
	if isTar(p) {
		ts, err := newTarSource(f, br, fi.Size())
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		return ts, nil
	}
	return &fileSource{f: f, r: br, name: filepath.Base(p), size: fi.Size(), mode: content.ModeOf(fi.Mode())}, nil
}

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

func isTar(p string) bool {
	for _, ext := range []string{".tar", ".tar.gz", ".tgz", ".tar.zst", ".tzst"} {
		if strings.HasSuffix(p, ext) {
			return true
		}
	}
	return false
}

// fileSource is a single-file artifact.
type fileSource struct {
	f    *os.File
	r    io.Reader
	name string
	size int64
	mode content.Mode
	done bool
}

func (s *fileSource) kind() content.ArtifactKind { return content.KindFile }
func (s *fileSource) total() int64               { return s.size }
func (s *fileSource) close() error               { return s.f.Close() }
func (s *fileSource) next() (*entry, error) {
	if s.done {
		return nil, io.EOF
	}
	s.done = true
	return &entry{path: s.name, typ: content.TypeFile, mode: s.mode, size: s.size, r: s.r}, nil
}

// dirSource walks a directory in lexical order.
type dirSource struct {
	root     string
	entries  []*entry
	i        int
	cur      *os.File
	sum      int64
	consumed *int64
}

func newDirSource(root string, consumed *int64) (*dirSource, error) {
	s := &dirSource{root: root, consumed: consumed}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		e := &entry{path: rel, mode: content.ModeOf(fi.Mode())}
		switch {
		case fi.Mode().IsRegular():
			e.typ, e.size = content.TypeFile, fi.Size()
			s.sum += e.size
		case fi.IsDir():
			e.typ = content.TypeDir
		case fi.Mode()&fs.ModeSymlink != 0:
			e.typ, e.mode = content.TypeSymlink, 0
			if e.target, err = os.Readlink(p); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: %s is not a regular file, directory or symlink", p, fi.Mode().Type())
		}
		s.entries = append(s.entries, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (s *dirSource) kind() content.ArtifactKind { return content.KindTree }
func (s *dirSource) total() int64               { return s.sum }

func (s *dirSource) next() (*entry, error) {
	if s.cur != nil {
		s.cur.Close()
		s.cur = nil
	}
	if s.i == len(s.entries) {
		return nil, io.EOF
	}
	e := s.entries[s.i]
	s.i++
	if e.typ == content.TypeFile {
		f, err := os.Open(filepath.Join(s.root, filepath.FromSlash(e.path)))
		if err != nil {
			return nil, err
		}
		s.cur = f
		// A file that grows while we read it must not change what we
		// publish: read exactly the size we walked, and fail if short.
		e.r = &exactReader{r: countingReader{f, s.consumed}, left: e.size, name: e.path}
	}
	return e, nil
}

func (s *dirSource) close() error {
	if s.cur != nil {
		return s.cur.Close()
	}
	return nil
}

// exactReader reads exactly left bytes and reports a file that shrank.
type exactReader struct {
	r    io.Reader
	left int64
	name string
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if errors.Is(err, io.EOF) && e.left > 0 {
		return n, fmt.Errorf("%s changed while it was read (%d bytes short)", e.name, e.left)
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

// tarSource reads a tar archive, optionally compressed.
type tarSource struct {
	f    *os.File
	dec  io.Closer
	tr   *tar.Reader
	size int64
	seen map[string]content.FileType
}

func newTarSource(f *os.File, br *bufio.Reader, size int64) (*tarSource, error) {
	s := &tarSource{f: f, size: size, seen: map[string]content.FileType{}}
	magic, _ := br.Peek(4)
	var r io.Reader = br
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		s.dec, r = zr, zr
	case bytes.HasPrefix(magic, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		s.dec, r = zr.IOReadCloser(), zr
	}
	s.tr = tar.NewReader(r)
	return s, nil
}

func (s *tarSource) kind() content.ArtifactKind { return content.KindTree }
func (s *tarSource) total() int64               { return s.size }

func (s *tarSource) close() error {
	if s.dec != nil {
		s.dec.Close()
	}
	return s.f.Close()
}

func (s *tarSource) next() (*entry, error) {
	for {
		h, err := s.tr.Next()
		if err == io.EOF {
			return nil, io.EOF
		}
		if err != nil {
			return nil, fmt.Errorf("tar: %w", err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		if name == "" || name == "." {
			continue // the archive's root directory
		}
		if err := content.ValidatePath(name, content.DefaultLimits().PathBytes); err != nil {
			return nil, fmt.Errorf("tar entry %q: %w", h.Name, err)
		}
		if _, dup := s.seen[name]; dup {
			return nil, fmt.Errorf("tar entry %q appears twice", h.Name)
		}
		e := &entry{path: name, mode: content.ModeOf(h.FileInfo().Mode())}
		switch h.Typeflag {
		case tar.TypeReg:
			e.typ, e.size, e.r = content.TypeFile, h.Size, s.tr
		case tar.TypeDir:
			e.typ = content.TypeDir
		case tar.TypeSymlink:
			e.typ, e.mode, e.target = content.TypeSymlink, 0, h.Linkname
		case tar.TypeLink:
			to := strings.TrimSuffix(strings.TrimPrefix(path.Clean(h.Linkname), "./"), "/")
			if s.seen[to] != content.TypeFile {
				return nil, fmt.Errorf("tar entry %q: hard link to %q, which is not an earlier regular file", h.Name, h.Linkname)
			}
			e.typ, e.linkTo = content.TypeFile, to
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			return nil, fmt.Errorf("tar entry %q: device or fifo (type %q) cannot be published", h.Name, h.Typeflag)
		default:
			return nil, fmt.Errorf("tar entry %q: unsupported type %q", h.Name, h.Typeflag)
		}
		s.seen[name] = e.typ
		return e, nil
	}
}
