package origin

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/meshcast/meshcast/content"
)

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// tarSource reads a tar archive (ustar, PAX or GNU, as archive/tar reads
// them), optionally gzip or zstd compressed.
//
// It carries every type a manifest has: regular files (GNU and PAX sparse
// files too, read with their holes as zeros), directories, symlinks with
// their targets verbatim, hard links, char and block devices, fifos. An
// inode's fields come from the header: all of 07777, uid and gid with the
// user and group names, the mtime (to the nanosecond where a PAX record
// has it) and the extended attributes of PAX "SCHILY.xattr." records in
// the security, trusted and user namespaces (see content.XattrCarried).
//
// Names lose a leading "./" and a trailing "/"; the archive's own root
// ("./" or ".", a directory) is the entry content.RootPath. A name that is absolute, climbs with "..", is not
// clean or not UTF-8, appears twice, or sits below an entry that is not a
// directory is an error naming the entry. A hard link must name an
// earlier regular file (or hard link) of the archive; in the manifest the
// lexically first path of the group holds the data (see
// collected.settleLinks).
type tarSource struct {
	c    io.Closer // the archive file
	dec  io.Closer // the decompressor, if any
	tr   *tar.Reader
	size int64
	b    bounds
	// seen holds every path so far by type, and the directories their
	// paths imply as implicitDir until the archive lists them.
	seen    map[string]content.FileType
	roots   map[string]string // hard links: the regular file holding the data
	implied int               // implicitDir entries of seen
	skipped int               // headers that describe no entry
}

// tarGNUVolHeader is GNU tar's volume label, which names the archive, not
// an entry.
const tarGNUVolHeader = 'V'

// implicitDir marks, in tarSource.seen, a directory that an entry's path
// implies and the archive has not listed.
const implicitDir content.FileType = ""

// newTarSource reads the archive from br, which wraps c (closed by close),
// detecting gzip and zstd by their magic.
func newTarSource(c io.Closer, br *bufio.Reader, size int64, lim content.Limits) (*tarSource, error) {
	s := &tarSource{c: c, size: size, b: bounds{lim: lim}, seen: map[string]content.FileType{}, roots: map[string]string{}}
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
	return s.c.Close()
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
		if h.Typeflag == tar.TypeXGlobalHeader || h.Typeflag == tarGNUVolHeader {
			// Their names are not paths: GNU tar names a global
			// header /tmp/GlobalHead.PID.N.
			if s.skipped++; s.skipped > s.b.lim.Files {
				return nil, fmt.Errorf("tar entry %q: more than %d headers that describe no entry", h.Name, s.b.lim.Files)
			}
			continue
		}
		name, err := tarPath(h.Name)
		if err != nil {
			return nil, fmt.Errorf("tar entry %q: %w", h.Name, err)
		}
		if name == "" {
			name = content.RootPath
			if h.Typeflag != tar.TypeDir {
				return nil, fmt.Errorf("tar entry %q: the archive's root is of type %q, not a directory", h.Name, h.Typeflag)
			}
		}
		e, err := s.entry(h, name)
		if err != nil {
			return nil, fmt.Errorf("tar entry %q: %w", h.Name, err)
		}
		return e, nil
	}
}

// entry turns the header h of the entry at name into an entry.
func (s *tarSource) entry(h *tar.Header, name string) (*entry, error) {
	if err := s.b.entry(); err != nil {
		return nil, err
	}
	e := &entry{File: content.File{Path: name}}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse:
		// archive/tar turns the old GNU, PAX 0.x and 1.0 sparse
		// formats into the logical file, holes read as zeros.
		e.Type, e.Size, e.r = content.TypeFile, h.Size, s.tr
	case tar.TypeDir:
		e.Type = content.TypeDir
	case tar.TypeSymlink:
		e.Type, e.Target = content.TypeSymlink, h.Linkname
		if err := content.ValidateTarget(e.Target, s.b.lim.PathBytes); err != nil {
			return nil, err
		}
	case tar.TypeLink:
		to, err := s.linkTarget(h.Linkname)
		if err != nil {
			return nil, err
		}
		e.Type, e.Link = content.TypeLink, to
	case tar.TypeChar:
		e.Type = content.TypeChar
	case tar.TypeBlock:
		e.Type = content.TypeBlock
	case tar.TypeFifo:
		e.Type = content.TypeFifo
	default:
		return nil, fmt.Errorf("unsupported entry type %q", h.Typeflag)
	}
	if e.Type != content.TypeLink {
		if err := s.inode(h, e); err != nil {
			return nil, err
		}
	}
	if err := s.place(name, e.Type); err != nil {
		return nil, err
	}
	if e.Type == content.TypeLink {
		s.roots[name] = e.Link
	}
	return e, s.b.add(e)
}

// tarPath turns an archive name into a manifest path; "" is the archive's
// root (its entry is content.RootPath).
func tarPath(name string) (string, error) {
	p := name
	for strings.HasPrefix(p, "./") {
		p = p[2:]
	}
	p = strings.TrimSuffix(p, "/")
	if p == "" || p == "." {
		return "", nil
	}
	return p, checkName(p, content.DefaultLimits())
}

// linkTarget resolves a hard link's name to the regular file holding the
// data: an earlier entry of the archive.
func (s *tarSource) linkTarget(linkname string) (string, error) {
	to, err := tarPath(linkname)
	switch {
	case errors.Is(err, content.ErrPathOutside):
		return "", fmt.Errorf("hard link to %q escaping the tree: %v", linkname, err)
	case err != nil:
		return "", fmt.Errorf("hard link to %q: %v", linkname, err)
	case to == "":
		return "", fmt.Errorf("hard link to %q, the archive's root", linkname)
	}
	switch t, ok := s.seen[to]; {
	case !ok || t == implicitDir:
		return "", fmt.Errorf("hard link to %q, a later or missing entry: it must name an earlier regular file", linkname)
	case t == content.TypeLink:
		return s.roots[to], nil
	case t != content.TypeFile:
		return "", fmt.Errorf("hard link to %q, a %s: it must name an earlier regular file", linkname, t)
	}
	return to, nil
}

// place records name as an entry of type typ: not listed before, and
// below directories only, whether the archive listed them or an entry's
// path implied them.
func (s *tarSource) place(name string, typ content.FileType) error {
	if t, ok := s.seen[name]; ok {
		if t != implicitDir {
			return errors.New("the archive lists this path twice")
		}
		if typ != content.TypeDir {
			return fmt.Errorf("a %s, but earlier entries are inside it", typ)
		}
	}
	for dir := name; ; {
		i := strings.LastIndexByte(dir, '/')
		if i < 0 {
			break
		}
		dir = dir[:i]
		if t, ok := s.seen[dir]; ok {
			if t != content.TypeDir && t != implicitDir {
				return fmt.Errorf("its parent %q is a %s, not a directory", dir, t)
			}
			break // and so are its parents
		}
		if s.implied++; s.implied > s.b.lim.Files {
			return fmt.Errorf("more than %d directories implied by the entries' paths", s.b.lim.Files)
		}
		s.seen[dir] = implicitDir
	}
	s.seen[name] = typ
	return nil
}

// inode sets e's inode fields from h.
func (s *tarSource) inode(h *tar.Header, e *entry) error {
	if h.Uid < 0 || h.Uid > math.MaxUint32 || h.Gid < 0 || h.Gid > math.MaxUint32 {
		return fmt.Errorf("owner %d:%d out of range", h.Uid, h.Gid)
	}
	e.UID, e.GID = uint32(h.Uid), uint32(h.Gid)
	for _, n := range []string{h.Uname, h.Gname} {
		if err := content.ValidateOwnerName(n); err != nil {
			return err
		}
	}
	e.User, e.Group = h.Uname, h.Gname
	if e.Type != content.TypeSymlink {
		e.Mode = content.Mode(h.Mode & 0o7777)
	}
	var err error
	if e.MTime, err = unixNano(h.ModTime); err != nil {
		return err
	}
	if e.Type == content.TypeChar || e.Type == content.TypeBlock {
		if h.Devmajor < 0 || h.Devmajor > math.MaxUint32 || h.Devminor < 0 || h.Devminor > math.MaxUint32 {
			return fmt.Errorf("device %d,%d out of range", h.Devmajor, h.Devminor)
		}
		e.Major, e.Minor = uint32(h.Devmajor), uint32(h.Devminor)
	}
	e.Xattrs, err = tarXattrs(h.PAXRecords, s.b.lim)
	return err
}

// tarXattrPrefix starts the PAX records of extended attributes (as GNU
// tar, star and archive/tar write them).
const tarXattrPrefix = "SCHILY.xattr."

// tarXattrs returns the extended attributes of PAX records that are kept
// (see content.XattrCarried), nil if none.
func tarXattrs(recs map[string]string, lim content.Limits) (content.Xattrs, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	var x content.Xattrs
	for _, k := range slices.Sorted(maps.Keys(recs)) {
		name, ok := strings.CutPrefix(k, tarXattrPrefix)
		if !ok || !content.XattrCarried(name) {
			continue
		}
		v := recs[k]
		if err := content.ValidateXattr(name, len(v), lim); err != nil {
			return nil, err
		}
		if x == nil {
			x = content.Xattrs{}
		}
		if len(x) == lim.Xattrs {
			return nil, fmt.Errorf("more than %d extended attributes", lim.Xattrs)
		}
		x[name] = []byte(v)
	}
	return x, nil
}
