package origin

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/meshcast/meshcast/content"
)

// dirSource publishes a directory tree without following any link in it
// and without reading any file other than the one its walk saw.
//
// newDirSource walks the tree first, in lexical order of the names of
// each directory, holding each directory open and looking its names up
// with fstatat(AT_SYMLINK_NOFOLLOW); subdirectories are opened with
// O_NOFOLLOW and checked to be the inode the lookup saw. It records all of
// 07777, uid and gid, the mtime to the nanosecond, symlink targets
// verbatim, fifos, char and block devices with their numbers, and the
// extended attributes of the security, trusted and user namespaces (see
// content.XattrCarried). Sockets and names that are not UTF-8 are errors naming the
// path. Owner names are left out: the publishing machine's user database
// need not be the tree's. The root directory is the first entry, at
// content.RootPath, with its own mode, owner, mtime and attributes.
// Symlinks, fifos and devices are never opened: their targets and
// attributes are read by name beneath the open directory (through
// /proc/self/fd), and the name is looked up again after, to check that it
// is still the inode the walk saw.
//
// A regular file with more than one link is a hard link group keyed by
// device and inode: the first path walked is the regular file, the others
// are TypeLink entries naming it (collected.settleLinks then moves the
// data to the lexically first path). Its data is read and counted once.
//
// next opens each regular file beneath the root with RESOLVE_NO_SYMLINKS
// and O_NOFOLLOW|O_NONBLOCK (a fifo in its place does not block) and checks
// with fstat that it is the inode the walk saw, of the same type, size and
// ctime (so neither a new file that reused the inode number nor a change
// since the walk passes); its extended attributes are read from that open
// file. Once its bytes are read, a file whose size, mtime or ctime moved
// is an error too: the publish never carries a file that changed while it
// was read.
type dirSource struct {
	root     string
	rootFD   int
	walked   []walked // walk order
	i        int
	cur      *os.File
	consumed *int64
	b        bounds
	links    map[devIno]string // regular files with several links: the first path walked
	proc     bool              // /proc/self/fd is there, for the xattrs of entries never opened
	dents    []byte            // getdents buffer, during the walk
	linkBuf  []byte            // readlinkat buffer, during the walk
}

// walked is an entry with the identity of the inode the walk saw, and
// for a regular file its ctime: an inode number that a new file reused
// after the walk, or a file changed since, has another.
type walked struct {
	e     *entry
	key   devIno
	ctime unix.Timespec
}

type devIno struct{ dev, ino uint64 }

func newDirSource(root string, consumed *int64, lim content.Limits) (source, error) {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	s := &dirSource{root: root, rootFD: fd, consumed: consumed, b: bounds{lim: lim}, links: map[devIno]string{}, dents: make([]byte, 64<<10)}
	_, err = os.Stat("/proc/self/fd")
	s.proc = err == nil
	if err := s.walkRoot(fd); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := s.walkDir(fd, ""); err != nil {
		unix.Close(fd)
		return nil, err
	}
	s.dents, s.linkBuf, s.links = nil, nil, nil
	return s, nil
}

func (s *dirSource) kind() content.ArtifactKind { return content.KindTree }
func (s *dirSource) total() int64               { return s.b.data }

// errorf names the entry at rel with its bytes escaped.
func (s *dirSource) errorf(rel string, err error) error {
	return fmt.Errorf("%q: %w", filepath.Join(s.root, filepath.FromSlash(rel)), err)
}

// changed describes an inode that is not the one the walk saw.
func changed(was, now *unix.Stat_t) error {
	if was.Mode&unix.S_IFMT != now.Mode&unix.S_IFMT {
		return fmt.Errorf("changed while it was published (a %s, then a %s)", typeName(was.Mode), typeName(now.Mode))
	}
	return errors.New("changed while it was published (another file took its place)")
}

func sameInode(was, now *unix.Stat_t) bool {
	return was.Dev == now.Dev && was.Ino == now.Ino && was.Mode&unix.S_IFMT == now.Mode&unix.S_IFMT
}

func typeName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "regular file"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFCHR:
		return "char device"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFSOCK:
		return "socket"
	}
	return fmt.Sprintf("file of type %#o", mode&unix.S_IFMT)
}

// walkRoot records the root directory, open as fd, as the tree's own
// entry.
func (s *dirSource) walkRoot(fd int) error {
	var st unix.Stat_t
	err := unix.Fstat(fd, &st)
	if err == nil {
		err = s.b.entry()
	}
	e := &entry{File: content.File{Path: content.RootPath, Type: content.TypeDir}}
	setInode(e, &st)
	if err == nil {
		e.Xattrs, err = content.ReadXattrs(content.FdXattrs(fd), s.b.lim)
	}
	if err == nil {
		err = s.b.add(e)
	}
	if err != nil {
		return s.errorf(e.Path, err)
	}
	s.walked = append(s.walked, walked{e, devIno{st.Dev, st.Ino}, st.Ctim})
	return nil
}

// walkDir walks the directory open as fd, at rel ("" for the root).
func (s *dirSource) walkDir(fd int, rel string) error {
	names, err := s.readNames(fd, rel)
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		if err := s.walkName(fd, rel, name); err != nil {
			return err
		}
	}
	return nil
}

// readNames reads the names of the directory fd, refusing more than the
// entries an artifact may have before it holds them.
func (s *dirSource) readNames(fd int, rel string) ([]string, error) {
	var names []string
	for {
		n, err := unix.Getdents(fd, s.dents)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, s.errorf(rel, fmt.Errorf("read directory: %w", err))
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(s.dents[:n], -1, names)
		if s.b.entries+len(names) > s.b.lim.Files {
			return nil, s.errorf(rel, fmt.Errorf("more than %d entries, the limit of an artifact", s.b.lim.Files))
		}
	}
}

// walkName records the entry name of the directory dirfd at dirRel, and
// walks it if it is a directory.
func (s *dirSource) walkName(dirfd int, dirRel, name string) error {
	rel := name
	if dirRel != "" {
		rel = dirRel + "/" + name
	}
	if err := s.b.entry(); err != nil {
		return s.errorf(rel, err)
	}
	if err := checkName(rel, s.b.lim); err != nil {
		return s.errorf(rel, err)
	}
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return s.errorf(rel, err)
	}
	e := &entry{File: content.File{Path: rel}}
	setInode(e, &st)
	var err error
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return s.walkSubdir(dirfd, name, e, &st)
	case unix.S_IFREG:
		s.walkFile(e, &st)
	case unix.S_IFLNK, unix.S_IFIFO, unix.S_IFCHR, unix.S_IFBLK:
		err = s.walkSpecial(dirfd, name, e, &st)
	default:
		err = fmt.Errorf("a %s, which a release cannot carry", typeName(st.Mode))
	}
	if err == nil {
		err = s.b.add(e)
	}
	if err != nil {
		return s.errorf(rel, err)
	}
	s.walked = append(s.walked, walked{e, devIno{st.Dev, st.Ino}, st.Ctim})
	return nil
}

// setInode sets e's mode, owner and mtime from st.
func setInode(e *entry, st *unix.Stat_t) {
	e.Mode = content.Mode(st.Mode & 0o7777)
	e.UID, e.GID = st.Uid, st.Gid
	e.MTime = st.Mtim.Nano()
}

// walkFile records a regular file, or a hard link to the first path of
// its inode that the walk saw.
func (s *dirSource) walkFile(e *entry, st *unix.Stat_t) {
	e.Type, e.Size = content.TypeFile, st.Size
	if st.Nlink <= 1 {
		return
	}
	key := devIno{st.Dev, st.Ino}
	if first, ok := s.links[key]; ok {
		*e = entry{File: content.File{Path: e.Path, Type: content.TypeLink, Link: first}}
		return
	}
	s.links[key] = e.Path
}

// walkSubdir records the directory name of dirfd, opened without
// following a link and checked against st, and walks it.
func (s *dirSource) walkSubdir(dirfd int, name string, e *entry, st *unix.Stat_t) error {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == unix.ELOOP || err == unix.ENOTDIR {
		return s.errorf(e.Path, errors.New("changed while it was published (no longer a directory)"))
	}
	if err != nil {
		return s.errorf(e.Path, err)
	}
	defer unix.Close(fd)
	var now unix.Stat_t
	if err := unix.Fstat(fd, &now); err != nil {
		return s.errorf(e.Path, err)
	}
	if !sameInode(st, &now) {
		return s.errorf(e.Path, changed(st, &now))
	}
	e.Type = content.TypeDir
	setInode(e, &now)
	if e.Xattrs, err = content.ReadXattrs(content.FdXattrs(fd), s.b.lim); err == nil {
		err = s.b.add(e)
	}
	if err != nil {
		return s.errorf(e.Path, err)
	}
	s.walked = append(s.walked, walked{e, devIno{now.Dev, now.Ino}, now.Ctim})
	return s.walkDir(fd, e.Path)
}

// walkSpecial records a symlink, fifo or device, which is never opened:
// its target and extended attributes are read by name beneath dirfd,
// which then must still be the inode st.
func (s *dirSource) walkSpecial(dirfd int, name string, e *entry, st *unix.Stat_t) error {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		e.Type, e.Mode = content.TypeSymlink, 0
		if s.linkBuf == nil {
			s.linkBuf = make([]byte, s.b.lim.PathBytes+1)
		}
		buf := s.linkBuf
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return err
		}
		if n > s.b.lim.PathBytes {
			return fmt.Errorf("symlink target longer than %d bytes", s.b.lim.PathBytes)
		}
		e.Target = string(buf[:n])
		if err := content.ValidateTarget(e.Target, s.b.lim.PathBytes); err != nil {
			return err
		}
	case unix.S_IFIFO:
		e.Type = content.TypeFifo
	case unix.S_IFCHR, unix.S_IFBLK:
		e.Type = content.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			e.Type = content.TypeBlock
		}
		e.Major, e.Minor = unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev))
	}
	// /proc/self/fd/N pins the directory; without /proc the path from
	// the root is used, and the check below still catches a swap of the
	// entry itself.
	p := filepath.Join(s.root, filepath.FromSlash(e.Path))
	if s.proc {
		p = fmt.Sprintf("/proc/self/fd/%d/%s", dirfd, name)
	}
	var err error
	if e.Xattrs, err = content.ReadXattrs(content.PathXattrs(p), s.b.lim); err != nil {
		return err
	}
	var now unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &now, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if !sameInode(st, &now) {
		return changed(st, &now)
	}
	return nil
}

func (s *dirSource) next() (*entry, error) {
	if s.cur != nil {
		s.cur.Close()
		s.cur = nil
	}
	if s.i == len(s.walked) {
		return nil, io.EOF
	}
	w := s.walked[s.i]
	s.i++
	if w.e.Type == content.TypeFile {
		if err := s.open(w); err != nil {
			return nil, s.errorf(w.e.Path, err)
		}
	}
	return w.e, nil
}

// open opens the regular file of w for reading, checked to be the inode
// the walk saw, and takes its inode fields from it.
func (s *dirSource) open(w walked) error {
	e := w.e
	fd, err := openBeneath(s.rootFD, e.Path)
	if err == unix.ELOOP || err == unix.ENOTDIR || err == unix.EXDEV || err == unix.ENOENT {
		return fmt.Errorf("changed while it was published (%w)", err)
	}
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), e.Path)
	var at unix.Stat_t
	if err := unix.Fstat(fd, &at); err != nil {
		f.Close()
		return err
	}
	if at.Dev != w.key.dev || at.Ino != w.key.ino || at.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		was := unix.Stat_t{Mode: unix.S_IFREG}
		return changed(&was, &at)
	}
	if at.Size != e.Size {
		f.Close()
		return fmt.Errorf("changed while it was published (%d bytes, then %d)", e.Size, at.Size)
	}
	if at.Ctim != w.ctime {
		f.Close()
		return errors.New("changed while it was published (its inode changed after the walk)")
	}
	setInode(e, &at)
	if e.Xattrs, err = content.ReadXattrs(content.FdXattrs(fd), s.b.lim); err == nil {
		err = s.b.addXattrs(e.Xattrs)
	}
	if err == nil {
		err = unix.SetNonblock(fd, false)
	}
	if err != nil {
		f.Close()
		return err
	}
	s.cur = f
	// A file that grows or changes while we read it must not change what
	// we publish: read exactly the size we walked, fail if short, and
	// fail if its size, mtime or ctime moved by the end.
	verify := func() error {
		var end unix.Stat_t
		if err := unix.Fstat(fd, &end); err != nil {
			return err
		}
		if end.Size != at.Size || end.Mtim != at.Mtim || end.Ctim != at.Ctim {
			return errors.New("changed while it was read (its size, mtime or ctime moved)")
		}
		return nil
	}
	e.r = &exactReader{r: countingReader{f, s.consumed}, left: e.Size, name: e.Path, verify: verify}
	return nil
}

// readFlags open a regular file without following a symlink, blocking on
// a fifo put in its place, or taking a terminal put there as ours.
const readFlags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC

// openBeneath opens rel beneath the directory rootFD with readFlags and
// no symlink on the way (openat2 RESOLVE_NO_SYMLINKS, or component by
// component with O_NOFOLLOW where the kernel lacks openat2).
func openBeneath(rootFD int, rel string) (int, error) {
	how := unix.OpenHow{Flags: readFlags, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
	fd, err := unix.Openat2(rootFD, rel, &how)
	if err != unix.ENOSYS && err != unix.EPERM {
		return fd, err
	}
	dir := rootFD
	parts := strings.Split(rel, "/")
	for _, p := range parts[:len(parts)-1] {
		next, err := unix.Openat(dir, p, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if dir != rootFD {
			unix.Close(dir)
		}
		if err != nil {
			return -1, err
		}
		dir = next
	}
	fd, err = unix.Openat(dir, parts[len(parts)-1], readFlags, 0)
	if dir != rootFD {
		unix.Close(dir)
	}
	return fd, err
}

func (s *dirSource) close() error {
	if s.cur != nil {
		s.cur.Close()
		s.cur = nil
	}
	if s.rootFD >= 0 {
		err := unix.Close(s.rootFD)
		s.rootFD = -1
		return err
	}
	return nil
}
