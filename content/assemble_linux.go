package content

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// processPrivileges reads the process's effective capabilities.
func processPrivileges() privileges {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return privileges{}
	}
	eff := uint64(data[0].Effective) | uint64(data[1].Effective)<<32
	has := func(caps ...int) bool {
		for _, c := range caps {
			if eff&(1<<c) == 0 {
				return false
			}
		}
		return true
	}
	return privileges{
		owners:   has(unix.CAP_CHOWN, unix.CAP_FOWNER),
		setfcap:  has(unix.CAP_SETFCAP),
		mknod:    has(unix.CAP_MKNOD),
		sysAdmin: has(unix.CAP_SYS_ADMIN),
	}
}

// syncAssembly makes the tree in dir, open at path, durable: one
// syncfs(2) on the descriptor, which is far cheaper than an fsync per
// file and needs no access to the directory by path.
func syncAssembly(dir *os.File, path string) error { return unix.Syncfs(int(dir.Fd())) }

// mknodat creates a fifo or device node name in dir, 0600 until its mode
// is set.
func mknodat(dir *os.File, name string, t FileType, major, minor uint32) error {
	mode := uint32(0o600)
	switch t {
	case TypeFifo:
		mode |= unix.S_IFIFO
	case TypeChar:
		mode |= unix.S_IFCHR
	case TypeBlock:
		mode |= unix.S_IFBLK
	default:
		return fmt.Errorf("mknod of a %s", t)
	}
	// mknod(2) takes the kernel's 32-bit dev_t: 12 bits of major, 20 of
	// minor. Larger numbers would silently name another device.
	if major > 0xfff || minor > 0xfffff {
		return fmt.Errorf("device number %d,%d is beyond what Linux can represent (major < 4096, minor < 1048576): %w", major, minor, errors.ErrUnsupported)
	}
	return ignoringEINTR(func() error {
		return unix.Mknodat(int(dir.Fd()), name, mode, int(unix.Mkdev(major, minor)))
	})
}

// lsetxattr sets an extended attribute of path itself, never of what a
// symlink at path points to.
func lsetxattr(path, name string, v []byte) error {
	return ignoringEINTR(func() error { return unix.Lsetxattr(path, name, v, 0) })
}

// lutimes sets the mtime of path itself, symlink or not, and leaves its
// atime.
func lutimes(path string, ns int64) error {
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(ns)}
	return ignoringEINTR(func() error {
		return unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW)
	})
}

// fileXattrs reads the extended attributes a manifest carries of an open
// file (ReadXattrs).
func fileXattrs(f *os.File) (Xattrs, error) {
	return ReadXattrs(FdXattrs(int(f.Fd())), DefaultLimits())
}

// inodeOwner returns the owner and mtime of fi.
func inodeOwner(fi fs.FileInfo) (uid, gid uint32, mtime int64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, 0, false
	}
	return st.Uid, st.Gid, st.Mtim.Nano(), true
}

func ignoringEINTR(f func() error) error {
	for {
		if err := f(); err != unix.EINTR {
			return err
		}
	}
}
