package content

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
)

// Installed is a release already materialised on this node, whose unchanged
// files a new release may reuse.
type Installed struct {
	Dir      string
	Artifact *Artifact
}

// AssembleOptions say how Assemble materialises an artifact. The zero
// value assembles from the store alone, with everything the tree asks
// for that the process may give.
type AssembleOptions struct {
	// Prev is the release installed before, if any. Its regular files
	// whose bytes and inode metadata the new release repeats are
	// hard-linked instead of decoded again; see Assemble.
	Prev *Installed
	// DropPrivileges drops the privileges a tree grants: the setuid and
	// setgid bits of every entry and security.capability attributes (file
	// capabilities). Without it, a process that may not give entries
	// their owners refuses a schema 2 tree with setuid or setgid entries,
	// and one without CAP_SETFCAP a tree with file capabilities, rather
	// than install them with an owner the tree did not ask for. With it,
	// the bits and attributes are dropped whatever the process may do.
	DropPrivileges bool
}

// AssembleStats says what an assembly did.
type AssembleStats struct {
	Files, Dirs, Symlinks int
	HardLinks             int   // TypeLink entries
	Devices               int   // character and block devices
	Fifos                 int   // named pipes
	WrittenBytes          int64 // decoded from chunks
	ReusedFiles           int   // taken from the previous release
	ReusedBytes           int64
}

// ErrMissingChunk means the store lacks a chunk that a file needs.
var ErrMissingChunk = errors.New("chunk missing from the store")

// ErrFileDigest means a file's bytes do not match the digest in the manifest.
var ErrFileDigest = errors.New("file does not match its sha256")

// ErrPrivilege means that a tree asks for something the assembling
// process may not do: a device node without CAP_MKNOD, a setuid or setgid
// entry or file capabilities it cannot give with their owner, a trusted.*
// attribute without CAP_SYS_ADMIN. Assemble checks before it writes
// anything, and the error names the first such entry.
var ErrPrivilege = errors.New("privilege required")

// ErrDevicePrivilege is the ErrPrivilege of a device node, which
// AssembleOptions.DropPrivileges cannot help.
var ErrDevicePrivilege = fmt.Errorf("%w (CAP_MKNOD)", ErrPrivilege)

// ErrXattr means that the system refused to set an entry's extended
// attribute (a filesystem without support for it, a value the kernel
// rejects, user.* on a symlink or device); the error names the entry and
// the attribute.
var ErrXattr = errors.New("cannot set extended attribute")

// Assemble materialises art into dst from store. dst must not exist, or be
// an empty directory. The tree is built in a temporary sibling of dst and
// renamed into place only when every file is complete, checked against its
// sha256 and synced to disk, so dst holds the whole release or nothing.
//
// Every entry is created through an os.Root on the temporary directory,
// so no entry of a hostile manifest reaches outside it whatever its path
// or link targets say, and the manifest is validated first: no entry lies
// below a symlink or any other non-directory. Entries are created by type
// so that nothing is ever written through a link: directories first
// (0700, so that the process can fill them), regular files, hard links,
// device nodes and fifos (created, never opened), symlinks last, their
// targets verbatim and never followed. Each inode then gets its metadata
// in the order the kernel needs (see setMeta): owner, extended
// attributes, mode, mtime; a hard link shares its file's, and directories
// get theirs last, deepest first, once nothing more is created in them:
// the tree's root entry (RootPath), if any, gives dst itself its
// metadata, last of all.
//
// Owners are applied when the process has CAP_CHOWN and CAP_FOWNER (root
// has every capability); otherwise entries belong to the assembling user,
// and an entry with setuid or setgid bits makes Assemble fail, naming
// it, unless opt.DropPrivileges drops the bits. Device nodes need
// CAP_MKNOD, file capabilities CAP_SETFCAP (or DropPrivileges, which
// drops them) and trusted.* attributes CAP_SYS_ADMIN: without them
// Assemble fails with ErrPrivilege before it writes anything. An
// attribute the system refuses fails with ErrXattr; an owner of
// 4294967295, (uid_t)-1 to chown(2), and device numbers beyond what the
// kernel represents, with errors.ErrUnsupported. Mtimes beyond the
// filesystem's range are clamped by the kernel.
//
// A schema 1 artifact (Artifact.Schema 1) keeps the behaviour of schema 1:
// only files, directories and symlinks, modes applied as they are,
// owned by the assembling user, mtimes left at the time of assembly.
//
// A regular file of opt.Prev with the same path and digest is reused
// after its bytes are checked: hard-linked when the inode on disk has
// exactly the metadata this assembly would give it (mode, owner, extended
// attributes, mtime), copied otherwise and given its metadata, so that an
// inode shared with the running release is never changed.
func Assemble(ctx context.Context, art *Artifact, store Store, dst string, opt AssembleOptions) (AssembleStats, error) {
	var st AssembleStats
	if err := art.validateLoaded(DefaultLimits()); err != nil {
		return st, fmt.Errorf("assemble %s: %w", dst, err)
	}
	a := &assembler{ctx: ctx, art: art, store: store, st: &st, priv: processPrivileges(), drop: opt.DropPrivileges}
	if err := a.checkPrivileges(); err != nil {
		return st, fmt.Errorf("assemble %s: %w", dst, err)
	}
	parent, err := checkDestination(dst)
	if err != nil {
		return st, fmt.Errorf("assemble %s: %w", dst, err)
	}
	if a.tmp, err = os.MkdirTemp(parent, "."+filepath.Base(dst)+".partial-"); err != nil {
		return st, fmt.Errorf("assemble %s: %w", dst, err)
	}
	done := false
	defer func() {
		if !done {
			removePartial(a.tmp)
		}
	}()
	// Held from the start: the tree's root entry (RootPath) may leave
	// its owner no access to it by the time it is synced.
	dir, err := os.Open(a.tmp)
	if err != nil {
		return st, fmt.Errorf("assemble %s: %w", dst, err)
	}
	defer dir.Close()
	if a.root, err = os.OpenRoot(a.tmp); err != nil {
		return st, fmt.Errorf("assemble %s: %w", dst, err)
	}
	defer a.root.Close()
	defer a.openPrev(opt.Prev)()
	if err := a.run(); err != nil {
		return st, fmt.Errorf("assemble %s: %w", dst, err)
	}
	if err := syncAssembly(dir, a.tmp); err != nil {
		return st, fmt.Errorf("assemble %s: sync: %w", dst, err)
	}
	// syscall.Rename, not os.Rename, which refuses an existing directory.
	if err := syscall.Rename(a.tmp, dst); err != nil {
		return st, fmt.Errorf("assemble %s: %w", dst, err)
	}
	done = true
	if err := SyncDir(parent); err != nil {
		return st, fmt.Errorf("assemble %s: sync parent: %w", dst, err)
	}
	return st, nil
}

// removePartial removes an unfinished tree, whose directories may already
// have modes that leave their owner no access.
func removePartial(dir string) {
	if os.RemoveAll(dir) == nil {
		return
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o700)
		}
		return nil
	})
	os.RemoveAll(dir)
}

// checkDestination checks that dst does not exist or is an empty
// directory, creates its parent, and returns it.
func checkDestination(dst string) (string, error) {
	// rename(2) replaces an empty directory, so an empty dst stays in
	// place until the finished tree takes its name.
	if fi, err := os.Lstat(dst); err == nil {
		if !fi.IsDir() || !emptyDir(dst) {
			return "", fmt.Errorf("%s exists and is not an empty directory", dst)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	parent := filepath.Dir(dst)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	return parent, nil
}

type assembler struct {
	ctx      context.Context
	art      *Artifact
	store    Store
	tmp      string
	root     *os.Root
	prevRoot *os.Root
	prevDir  string
	prev     map[string]*File
	st       *AssembleStats
	buf      []byte
	priv     privileges // what the process may do
	drop     bool       // AssembleOptions.DropPrivileges
}

// openPrev opens the previous release, if there is one and it can be
// opened, and returns what closes it.
func (a *assembler) openPrev(prev *Installed) func() {
	if prev == nil || prev.Artifact == nil {
		return func() {}
	}
	r, err := os.OpenRoot(prev.Dir)
	if err != nil {
		return func() {}
	}
	a.prevRoot, a.prevDir = r, prev.Dir
	a.prev = make(map[string]*File, len(prev.Artifact.Files))
	for i := range prev.Artifact.Files {
		if f := &prev.Artifact.Files[i]; f.Type == TypeFile {
			a.prev[f.Path] = f
		}
	}
	return func() { r.Close() }
}

// step creates the entries of some types.
type step struct {
	types []FileType
	make  func(f *File) error
}

func (a *assembler) run() error {
	dirs, err := a.mkdirs()
	if err != nil {
		return err
	}
	// Regular files before the hard links to them; symlinks last, so that
	// no entry is ever created through one.
	steps := []step{
		{[]FileType{TypeFile}, a.file},
		{[]FileType{TypeLink}, a.hardLink},
		{[]FileType{TypeFifo, TypeChar, TypeBlock}, a.node},
		{[]FileType{TypeSymlink}, a.symlink},
	}
	for _, s := range steps {
		for i := range a.art.Files {
			f := &a.art.Files[i]
			if !slices.Contains(s.types, f.Type) {
				continue
			}
			if err := a.ctx.Err(); err != nil {
				return err
			}
			if err := a.mkparent(f.Path); err != nil {
				return fmt.Errorf("%s %q: %w", f.Type.noun(), f.Path, err)
			}
			if err := s.make(f); err != nil {
				return fmt.Errorf("%s %q: %w", f.Type.noun(), f.Path, err)
			}
		}
	}
	// A directory's mtime changes whenever an entry is created in it,
	// and its mode may forbid creating more: directories get their
	// metadata once every entry exists, deepest first.
	for _, d := range slices.Backward(dirs) {
		if err := a.setMeta(d.Path, TypeDir, a.metaOf(d)); err != nil {
			return fmt.Errorf("directory %q: %w", d.Path, err)
		}
	}
	return nil
}

// mkdirs creates the tree's directories, 0700 until the end, and returns
// them in path order.
func (a *assembler) mkdirs() ([]*File, error) {
	var dirs []*File
	for i := range a.art.Files {
		f := &a.art.Files[i]
		if f.Type != TypeDir {
			continue
		}
		if err := a.mkparent(f.Path); err != nil {
			return nil, fmt.Errorf("directory %q: %w", f.Path, err)
		}
		if err := a.root.MkdirAll(f.Path, 0o700); err != nil {
			return nil, fmt.Errorf("directory %q: %w", f.Path, err)
		}
		dirs = append(dirs, f)
		a.st.Dirs++
	}
	return dirs, nil
}

// mkparent creates the parents of p that the tree does not list: they
// get 0755 (less the umask) and the assembling user. Listed directories
// exist already, 0700 until their final mode is set.
func (a *assembler) mkparent(p string) error {
	if dir := filepath.Dir(p); dir != "." {
		return a.root.MkdirAll(dir, 0o755)
	}
	return nil
}

func (a *assembler) hardLink(f *File) error {
	// linkat(2) without AT_SYMLINK_FOLLOW: f.Link, a regular file listed
	// before (validation checks it), is linked itself, never followed.
	// The inode already has its metadata.
	if err := a.root.Link(f.Link, f.Path); err != nil {
		return err
	}
	a.st.HardLinks++
	return nil
}

// node creates a fifo or a device node. Neither is ever opened: mknod
// creates it and its metadata is set by path.
func (a *assembler) node(f *File) error {
	// The parent is opened through the root, so mknodat cannot create
	// anything outside the tree whatever the path says.
	dir, err := a.root.Open(filepath.Dir(f.Path))
	if err != nil {
		return err
	}
	defer dir.Close()
	if err := mknodat(dir, filepath.Base(f.Path), f.Type, f.Major, f.Minor); err != nil {
		return err
	}
	if f.Type == TypeFifo {
		a.st.Fifos++
	} else {
		a.st.Devices++
	}
	return a.setMeta(f.Path, f.Type, a.metaOf(f))
}

func (a *assembler) symlink(f *File) error {
	if err := a.root.Symlink(f.Target, f.Path); err != nil {
		return err
	}
	a.st.Symlinks++
	return a.setMeta(f.Path, TypeSymlink, a.metaOf(f))
}

// noun names a type in error messages.
func (t FileType) noun() string {
	switch t {
	case TypeFile:
		return "file"
	case TypeDir:
		return "directory"
	case TypeLink:
		return "hard link"
	case TypeChar:
		return "character device"
	case TypeBlock:
		return "block device"
	}
	return string(t)
}

// FileMode converts permission bits to an os.FileMode.
func (m Mode) FileMode() os.FileMode {
	fm := os.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		fm |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= os.ModeSticky
	}
	return fm
}

// ModeOf converts an os.FileMode's permission bits to a Mode.
func ModeOf(fm os.FileMode) Mode {
	m := Mode(fm.Perm())
	if fm&os.ModeSetuid != 0 {
		m |= 0o4000
	}
	if fm&os.ModeSetgid != 0 {
		m |= 0o2000
	}
	if fm&os.ModeSticky != 0 {
		m |= 0o1000
	}
	return m
}

func emptyDir(dir string) bool {
	d, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer d.Close()
	_, err = d.Readdirnames(1)
	return err == io.EOF
}
