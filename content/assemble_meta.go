package content

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// privileges are what the assembling process may do beyond its own files.
type privileges struct {
	owners   bool // CAP_CHOWN and CAP_FOWNER: give inodes any owner, then set their mode
	setfcap  bool // CAP_SETFCAP: security.capability
	mknod    bool // CAP_MKNOD: device nodes
	sysAdmin bool // CAP_SYS_ADMIN: trusted.* attributes
}

const (
	setidBits  Mode = 0o6000
	capability      = "security.capability"
	noID            = ^uint32(0) // (uid_t)-1
)

// meta is what assembly gives an inode: its entry's metadata as far as
// the schema carries it, the process may give it and the options keep it.
type meta struct {
	mode     Mode
	owner    bool // set uid and gid; otherwise the inode keeps the assembling user
	uid, gid uint32
	xattrs   Xattrs
	mtime    bool // set ns; otherwise the inode keeps the time of assembly
	ns       int64
}

func (a *assembler) metaOf(f *File) meta {
	m := meta{mode: f.Mode}
	if a.drop {
		m.mode &^= setidBits
	}
	if a.art.schema() < 2 {
		return m // a mode, as schema 1 has always been assembled
	}
	m.owner, m.uid, m.gid = a.priv.owners, f.UID, f.GID
	m.mtime, m.ns = true, f.MTime
	m.xattrs = f.Xattrs
	if _, ok := m.xattrs[capability]; ok && a.drop {
		m.xattrs = maps.Clone(m.xattrs)
		delete(m.xattrs, capability)
	}
	return m
}

// checkPrivileges refuses, before anything is written, a tree that asks
// for what the process may not do (see ErrPrivilege), or an owner that
// chown(2) cannot give.
func (a *assembler) checkPrivileges() error {
	v2 := a.art.schema() >= 2
	for i := range a.art.Files {
		f := &a.art.Files[i]
		switch {
		case (f.Type == TypeChar || f.Type == TypeBlock) && !a.priv.mknod:
			return fmt.Errorf("%s %q: creating a device node takes CAP_MKNOD: %w", f.Type.noun(), f.Path, ErrDevicePrivilege)
		case v2 && a.priv.owners && (f.UID == noID || f.GID == noID):
			// chown(2) reads (uid_t)-1 as "leave it": the owner would
			// silently not be given.
			return fmt.Errorf("%s %q: owner %d:%d: %d is no id chown(2) can give: %w", f.Type.noun(), f.Path, f.UID, f.GID, uint32(noID), errors.ErrUnsupported)
		case v2 && f.Mode&setidBits != 0 && !a.priv.owners && !a.drop:
			return fmt.Errorf("%s %q: mode %04o is setuid or setgid for the owner %d:%d, which only a process with CAP_CHOWN and CAP_FOWNER can give (AssembleOptions.DropPrivileges drops the bits): %w",
				f.Type.noun(), f.Path, uint32(f.Mode), f.UID, f.GID, ErrPrivilege)
		}
		if !v2 {
			continue
		}
		for _, name := range slices.Sorted(maps.Keys(f.Xattrs)) {
			switch {
			case name == capability && !a.priv.setfcap && !a.drop:
				return fmt.Errorf("%s %q: extended attribute %s (file capabilities) takes CAP_SETFCAP (AssembleOptions.DropPrivileges drops it): %w",
					f.Type.noun(), f.Path, name, ErrPrivilege)
			case strings.HasPrefix(name, "trusted.") && !a.priv.sysAdmin:
				return fmt.Errorf("%s %q: extended attribute %s takes CAP_SYS_ADMIN: %w", f.Type.noun(), f.Path, name, ErrPrivilege)
			}
		}
	}
	return nil
}

// setMeta gives the entry at p, of type t, created by this assembly, its
// metadata m, in the order the kernel needs:
//
//   - the owner first, since chown(2) clears the setuid and setgid bits
//     and security.capability;
//   - extended attributes next, before the mode: user.* takes write
//     permission, which a process without CAP_DAC_OVERRIDE no longer has
//     on a read-only file; neither setting them nor chmod(2) clears the
//     other;
//   - the mode (a symlink has none), checked afterwards when it has
//     setuid or setgid bits, which chmod(2) may silently drop;
//   - the mtime last, after all that changes it: a file's bytes, a
//     directory's entries (so directories come after every other entry);
//     the calls above change only the ctime.
//
// The calls that the os.Root offers go through it and never follow a
// symlink at p. The others (extended attributes, a symlink's mtime) take
// the path inside the temporary directory, which is safe: the directory
// is private (0700, made by this process), every directory in it was
// created by this assembly, and the validated manifest never puts an
// entry below a non-directory, so no component of p's parent is a
// symlink; they use the l* calls, which do not follow p itself either.
// A fifo or device is never opened.
func (a *assembler) setMeta(p string, t FileType, m meta) error {
	if m.owner {
		if err := a.root.Lchown(p, int(m.uid), int(m.gid)); err != nil {
			return fmt.Errorf("owner %d:%d: %w", m.uid, m.gid, err)
		}
	}
	full, err := a.path(p)
	if err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(m.xattrs)) {
		if err := lsetxattr(full, name, m.xattrs[name]); err != nil {
			return fmt.Errorf("%w %s: %w", ErrXattr, name, err)
		}
	}
	if t != TypeSymlink {
		if err := a.root.Chmod(p, m.mode.FileMode()); err != nil {
			return err
		}
		if m.mode&setidBits != 0 {
			if fi, err := a.root.Lstat(p); err != nil {
				return err
			} else if got := ModeOf(fi.Mode()); got != m.mode {
				return fmt.Errorf("mode %04o became %04o: the system dropped setuid or setgid bits (the process lacks CAP_FSETID?)", uint32(m.mode), uint32(got))
			}
		}
	}
	if !m.mtime {
		return nil
	}
	if t == TypeSymlink {
		return lutimes(full, m.ns)
	}
	return a.root.Chtimes(p, time.Time{}, time.Unix(0, m.ns))
}

// path is p inside the temporary directory, for the calls os.Root does
// not offer; see setMeta.
func (a *assembler) path(p string) (string, error) {
	if !filepath.IsLocal(p) {
		return "", fmt.Errorf("path %q is not inside the tree", p)
	}
	return filepath.Join(a.tmp, p), nil
}

// sameInode reports whether src, a regular file of the previous release
// open for reading, has exactly the metadata m that this assembly would
// give a new inode: then it may be shared.
func (a *assembler) sameInode(src *os.File, fi fs.FileInfo, m meta) bool {
	if ModeOf(fi.Mode()) != m.mode {
		return false
	}
	uid, gid, ns, ok := inodeOwner(fi)
	switch {
	case !ok:
		return !m.owner && !m.mtime && len(m.xattrs) == 0
	case m.owner && (uid != m.uid || gid != m.gid):
		return false
	case !m.owner && (int(uid) != os.Geteuid() || int(gid) != os.Getegid()):
		return false // not the owner a new inode gets
	case m.mtime && ns != m.ns:
		return false
	}
	have, err := fileXattrs(src)
	return err == nil && sameXattrs(have, m.xattrs)
}

// sameXattrs reports whether the attributes an inode has are those it
// should have. Attributes of the security namespace that a tree does not
// carry, such as security.selinux, are labels the system assigns to any
// new inode and are ignored, except security.capability.
func sameXattrs(have, want Xattrs) bool {
	for name, v := range want {
		if hv, ok := have[name]; !ok || !bytes.Equal(hv, v) {
			return false
		}
	}
	for name := range have {
		if _, ok := want[name]; !ok && (!strings.HasPrefix(name, "security.") || name == capability) {
			return false
		}
	}
	return true
}
