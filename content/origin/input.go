package origin

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/meshcast/meshcast/content"
)

// entry is one item of an artifact being published: a content.File
// without its data, which the pipeline reads from r.
//
// The owner, mode, mtime and extended attributes belong to the inode: a
// hard link (TypeLink) carries only its path and linkTo.
type entry struct {
	// File is the manifest entry without data: Size is what the source
	// announces, Link a TypeLink's regular file.
	content.File
	r io.Reader // regular file bytes, valid until the next call to next
}

// file returns the manifest entry of e, without data; a hard link has only
// its path and its file's.
func (e *entry) file() content.File {
	if e.Type == content.TypeLink {
		return content.File{Path: e.Path, Type: content.TypeLink, Link: e.Link}
	}
	f := e.File
	f.Size = 0 // the pipeline counts what it reads
	return f
}

// source yields an artifact's entries in the order their chunks go into
// the pack: walk order for a directory, archive order for a tar.
//
// A source refuses, with an error naming the entry, what a manifest cannot
// carry or a node would reject (see content.Limits), and it does so before
// its memory grows with the input: the entries it keeps are bounded by
// Limits.Files and their metadata (paths, link targets, extended
// attributes) by Limits.ManifestBytes, the bound of the index that lists
// them.
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
// zstd compressed) is a tree, any other regular file a single file. The
// path itself may be a symlink (it is the caller's name for the
// artifact); nothing inside a directory is followed.
func openSource(p string, consumed *int64) (source, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	lim := content.DefaultLimits()
	switch {
	case fi.IsDir():
		ds, err := newDirSource(p, consumed, lim)
		if err != nil {
			return nil, err
		}
		return ds, nil
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s is neither a directory nor a regular file", p)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(countingReader{f, consumed}, 1<<20)
	if isTar(p) {
		ts, err := newTarSource(f, br, fi.Size(), lim)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		return ts, nil
	}
	fsrc, err := newFileSource(f, br, filepath.Base(p))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return fsrc, nil
}

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
	e    *entry
	done bool
}

// newFileSource describes the open file f, named name in the artifact,
// from its fstat: all mode bits, owner and mtime.
func newFileSource(f *os.File, r io.Reader, name string) (*fileSource, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := checkName(name, content.DefaultLimits()); err != nil {
		return nil, fmt.Errorf("file name %q: %w", name, err)
	}
	e := &entry{File: content.File{Path: name, Type: content.TypeFile, Mode: content.ModeOf(fi.Mode()), Size: fi.Size(), MTime: fi.ModTime().UnixNano()}}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		e.UID, e.GID = st.Uid, st.Gid
	}
	e.r = &exactReader{r: r, left: e.Size, name: name}
	return &fileSource{f: f, e: e}, nil
}

func (s *fileSource) kind() content.ArtifactKind { return content.KindFile }
func (s *fileSource) total() int64               { return s.e.Size }
func (s *fileSource) close() error               { return s.f.Close() }
func (s *fileSource) next() (*entry, error) {
	if s.done {
		return nil, io.EOF
	}
	s.done = true
	return s.e, nil
}

// exactReader reads exactly left bytes and reports a file that shrank;
// verify, if set, is called once all of them are read, to report a file
// that changed meanwhile.
type exactReader struct {
	r      io.Reader
	left   int64
	name   string
	verify func() error
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		if v := e.verify; v != nil {
			e.verify = nil
			if err := v(); err != nil {
				return 0, err
			}
		}
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

// bounds counts what a source has produced against content.Limits, so
// that it refuses an input at the bound rather than after holding it.
// Its errors do not name the entry: the source does.
type bounds struct {
	lim     content.Limits
	entries int
	meta    int64 // bytes of paths, targets, names and extended attributes
	data    int64 // bytes of regular files, each inode once
}

// entry counts one more entry.
func (b *bounds) entry() error {
	if b.entries++; b.entries > b.lim.Files {
		return fmt.Errorf("more than %d entries, the limit of an artifact", b.lim.Files)
	}
	return nil
}

// add counts e's metadata and, for a regular file, its size. It also
// refuses an owner a manifest cannot carry (content.ValidateOwner).
func (b *bounds) add(e *entry) error {
	if err := content.ValidateOwner(e.UID, e.GID); err != nil {
		return err
	}
	if err := b.addMeta(len(e.Path) + len(e.Target) + len(e.Link) + len(e.User) + len(e.Group)); err != nil {
		return err
	}
	if err := b.addXattrs(e.Xattrs); err != nil {
		return err
	}
	if e.Type != content.TypeFile {
		return nil
	}
	if e.Size < 0 || e.Size > b.lim.FileSize {
		return fmt.Errorf("size %d out of range 0..%d", e.Size, b.lim.FileSize)
	}
	if b.data += e.Size; b.data > b.lim.TotalSize {
		return fmt.Errorf("the artifact's files exceed %d bytes", b.lim.TotalSize)
	}
	return nil
}

func (b *bounds) addXattrs(x content.Xattrs) error {
	n := 0
	for k, v := range x {
		n += len(k) + len(v)
	}
	return b.addMeta(n)
}

func (b *bounds) addMeta(n int) error {
	if b.meta += int64(n); b.meta > b.lim.ManifestBytes {
		return fmt.Errorf("the artifact's paths, link targets and extended attributes exceed %d bytes, the bound of its index", b.lim.ManifestBytes)
	}
	return nil
}

// checkName checks a path for the manifest (content.ValidatePath), first
// that it is valid UTF-8: a name that is not is refused, not mangled, and
// the caller names it with its bytes escaped.
func checkName(p string, lim content.Limits) error {
	if !utf8.ValidString(p) {
		return errors.New("the name is not valid UTF-8, which a manifest cannot carry")
	}
	return content.ValidatePath(p, lim.PathBytes)
}

var (
	minMTime = time.Unix(0, -1<<63)
	maxMTime = time.Unix(0, 1<<63-1)
)

// unixNano converts an mtime to ns since the epoch, refusing one that
// int64 nanoseconds cannot hold (before 1678 or after 2262).
func unixNano(t time.Time) (int64, error) {
	if t.Before(minMTime) || t.After(maxMTime) {
		return 0, fmt.Errorf("mtime %s out of range", t.UTC().Format(time.RFC3339))
	}
	return t.UnixNano(), nil
}
