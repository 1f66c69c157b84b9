package cdntest

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// Tmpfs is a size-limited tmpfs mounted for one test, to run a disk full.
type Tmpfs struct {
	t   testing.TB
	Dir string
}

// MountTmpfs mounts a tmpfs of size bytes on dir (created if missing) and
// unmounts it when the test ends. It skips the test, saying why, when the
// process may not mount (not root, or no CAP_SYS_ADMIN in a container).
func MountTmpfs(t testing.TB, dir string, size int64) *Tmpfs {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs to fill a disk needs root")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Skipf("cannot mount a tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return &Tmpfs{t: t, Dir: dir}
}

// Resize changes the size of the mounted tmpfs.
func (m *Tmpfs) Resize(size int64) {
	m.t.Helper()
	if err := unix.Mount("tmpfs", m.Dir, "tmpfs", unix.MS_REMOUNT, fmt.Sprintf("size=%d", size)); err != nil {
		m.t.Fatal(err)
	}
}
