//go:build !linux

package content

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
)

// Outside Linux, assembly applies modes and the mtimes of everything but
// symlinks; owners, extended attributes, device nodes and fifos are not
// supported.

func processPrivileges() privileges { return privileges{} }

func syncAssembly(dir *os.File, path string) error { return syncTree(path) }

func mknodat(dir *os.File, name string, t FileType, major, minor uint32) error {
	return fmt.Errorf("creating a %s on %s: %w", t, runtime.GOOS, errors.ErrUnsupported)
}

func lsetxattr(path, name string, v []byte) error {
	return fmt.Errorf("on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

// lutimes leaves a symlink's mtime at the time of assembly.
func lutimes(path string, ns int64) error { return nil }

func fileXattrs(f *os.File) (Xattrs, error) { return nil, nil }

func inodeOwner(fi fs.FileInfo) (uid, gid uint32, mtime int64, ok bool) { return 0, 0, 0, false }
