package rootfs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Type is the kind of a filesystem entry.
type Type string

// The kinds of entry List reports.
const (
	File    Type = "file"
	Dir     Type = "dir"
	Symlink Type = "symlink"
	Char    Type = "char"
	Block   Type = "block"
	FIFO    Type = "fifo"
	Socket  Type = "socket"
)

// Xattr is one extended attribute: its full name (with its namespace,
// "user.", "security.", "trusted.", "system.") and its value, byte for byte.
type Xattr struct {
	Name  string
	Value []byte
}

// Entry is everything List records about one path of a tree.
type Entry struct {
	// Path is slash-separated and relative to the root; the root is ".".
	Path string
	Type Type
	// Mode holds the permission bits with setuid, setgid and sticky
	// (mode & 07777), without the type bits.
	Mode     uint32
	UID, GID uint32
	// Target is a symlink's target, verbatim (absolute or relative,
	// dangling or not); empty for every other type.
	Target string
	// Xattrs are sorted by name; nil when there are none.
	Xattrs []Xattr
	// Link names the hard-link group of a non-directory whose inode has
	// more than one path in the tree: the lexically first of those paths,
	// the same for every member (and so independent of inode numbers).
	// Empty when the entry has no other path in the tree.
	Link string
	// Major and Minor are a device's numbers; zero for other types.
	Major, Minor uint32
	// Size and SHA256 (hex) describe a regular file's contents; zero and
	// empty for every other type.
	Size   int64
	SHA256 string
	// Mtime is the modification time in nanoseconds since the epoch, of
	// the entry itself (of a symlink, not of its target).
	Mtime int64
}

// List walks the tree at root and returns one Entry for every path in it,
// the root itself included as ".", sorted by Path (byte-wise). It never
// follows a symlink, root included: a root that is a symlink is an error.
// It does not cross into another filesystem's content any differently
// from the rest: mount points are listed as directories and walked.
func List(root string) ([]Entry, error) {
	var st unix.Stat_t
	if err := unix.Lstat(root, &st); err != nil {
		return nil, &os.PathError{Op: "lstat", Path: root, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, fmt.Errorf("rootfs.List: %s is not a directory (symlinks are not followed)", root)
	}
	w := walker{root: root, inodes: map[inode][]int{}}
	if err := w.add(".", &st); err != nil {
		return nil, err
	}
	w.groupLinks()
	slices.SortFunc(w.entries, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
	return w.entries, nil
}

// inode identifies a file across its hard links.
type inode struct{ dev, ino uint64 }

type walker struct {
	root    string
	entries []Entry
	inodes  map[inode][]int // indexes into entries of multiply-linked non-directories
}

// add records the entry at rel (whose lstat is st) and, for a directory,
// everything below it.
func (w *walker) add(rel string, st *unix.Stat_t) error {
	full := filepath.Join(w.root, filepath.FromSlash(rel))
	e, err := describe(full, rel, st)
	if err != nil {
		return err
	}
	w.entries = append(w.entries, e)
	if e.Type != Dir {
		if st.Nlink > 1 {
			k := inode{uint64(st.Dev), st.Ino}
			w.inodes[k] = append(w.inodes[k], len(w.entries)-1)
		}
		return nil
	}
	names, err := readDirNames(full)
	if err != nil {
		return err
	}
	for _, name := range names {
		child := path.Join(rel, name)
		var cst unix.Stat_t
		if err := unix.Lstat(filepath.Join(full, name), &cst); err != nil {
			return &os.PathError{Op: "lstat", Path: filepath.Join(full, name), Err: err}
		}
		if err := w.add(child, &cst); err != nil {
			return err
		}
	}
	return nil
}

// groupLinks names every hard-link group by its lexically first path.
func (w *walker) groupLinks() {
	for _, idx := range w.inodes {
		if len(idx) < 2 {
			continue
		}
		first := w.entries[idx[0]].Path
		for _, i := range idx[1:] {
			first = min(first, w.entries[i].Path)
		}
		for _, i := range idx {
			w.entries[i].Link = first
		}
	}
}

// readDirNames lists a directory opened without following a symlink.
func readDirNames(dir string) ([]string, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

// describe builds the Entry of the path full (rel in the tree) from its
// lstat st.
func describe(full, rel string, st *unix.Stat_t) (Entry, error) {
	e := Entry{
		Path:  rel,
		Type:  typeOf(st.Mode),
		Mode:  st.Mode & 0o7777,
		UID:   st.Uid,
		GID:   st.Gid,
		Mtime: st.Mtim.Nano(),
	}
	var err error
	switch e.Type {
	case Symlink:
		e.Target, err = readlink(full)
	case Char, Block:
		e.Major, e.Minor = unix.Major(st.Rdev), unix.Minor(st.Rdev)
	case File:
		e.Size, e.SHA256, err = hashFile(full, st)
	}
	if err != nil {
		return Entry{}, err
	}
	e.Xattrs, err = xattrs(full)
	return e, err
}

func typeOf(mode uint32) Type {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return File
	case unix.S_IFDIR:
		return Dir
	case unix.S_IFLNK:
		return Symlink
	case unix.S_IFCHR:
		return Char
	case unix.S_IFBLK:
		return Block
	case unix.S_IFIFO:
		return FIFO
	case unix.S_IFSOCK:
		return Socket
	}
	return Type(fmt.Sprintf("unknown(%#o)", mode&unix.S_IFMT))
}

func readlink(full string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlink(full, buf)
		if err != nil {
			return "", &os.PathError{Op: "readlink", Path: full, Err: err}
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// hashFile hashes a regular file, opened without following a symlink, and
// checks that what it opened is the inode it lstat'ed.
func hashFile(full string, st *unix.Stat_t) (int64, string, error) {
	fd, err := unix.Open(full, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, "", &os.PathError{Op: "open", Path: full, Err: err}
	}
	f := os.NewFile(uintptr(fd), full)
	defer f.Close()
	var fst unix.Stat_t
	if err := unix.Fstat(fd, &fst); err != nil {
		return 0, "", &os.PathError{Op: "fstat", Path: full, Err: err}
	}
	if fst.Ino != st.Ino || fst.Dev != st.Dev {
		return 0, "", fmt.Errorf("rootfs.List: %s changed while it was listed", full)
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// xattrs reads every extended attribute of full itself (of a symlink, not
// of its target), sorted by name. A filesystem without xattrs has none.
func xattrs(full string) ([]Xattr, error) {
	names, err := getSized(func(b []byte) (int, error) { return unix.Llistxattr(full, b) })
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil {
		return nil, &os.PathError{Op: "llistxattr", Path: full, Err: err}
	}
	var out []Xattr
	for name := range strings.SplitSeq(string(names), "\x00") {
		if name == "" {
			continue
		}
		v, err := getSized(func(b []byte) (int, error) { return unix.Lgetxattr(full, name, b) })
		if err != nil {
			return nil, &os.PathError{Op: "lgetxattr " + name, Path: full, Err: err}
		}
		out = append(out, Xattr{Name: name, Value: v})
	}
	slices.SortFunc(out, func(a, b Xattr) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// getSized calls a size-probing syscall wrapper (llistxattr, lgetxattr)
// until its buffer is big enough: the value can grow between the calls.
func getSized(call func([]byte) (int, error)) ([]byte, error) {
	for {
		n, err := call(nil)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return []byte{}, nil
		}
		buf := make([]byte, n)
		n, err = call(buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}
