package content_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/meshcast/meshcast/content"
)

// netRaw is a security.capability value (VFS_CAP_REVISION_2, effective)
// that grants cap_net_raw, as ping has.
var netRaw = string([]byte{0x01, 0, 0, 0x02, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})

// llistxattrs reads the extended attributes of p itself.
func llistxattrs(tb testing.TB, p string) content.Xattrs {
	tb.Helper()
	read := func(get func([]byte) (int, error)) []byte {
		n, err := get(nil)
		if err != nil {
			tb.Fatalf("%s: extended attributes: %v", p, err)
		}
		b := make([]byte, n)
		if n, err = get(b); err != nil {
			tb.Fatalf("%s: extended attributes: %v", p, err)
		}
		return b[:n]
	}
	x := make(content.Xattrs)
	for _, name := range strings.Split(string(read(func(b []byte) (int, error) { return unix.Llistxattr(p, b) })), "\x00") {
		if name != "" {
			x[name] = read(func(b []byte) (int, error) { return unix.Lgetxattr(p, name, b) })
		}
	}
	return x
}

// mtimeKept is whether every filesystem the tests may run on keeps ns
// as it is: any 32-bit time_t.
func mtimeKept(ns int64) bool { return ns >= -(1<<31)*1e9 && ns < (1<<31)*1e9 }

// checkInode checks what checkTreeAs leaves to the system: fi's owner,
// device numbers, mtime (unless skipTime) and extended attributes, those
// of the security namespace that e does not carry excepted, which the
// system may assign.
func checkInode(tb testing.TB, rel, p string, fi fs.FileInfo, e entry, skipTime bool) {
	tb.Helper()
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != e.UID || st.Gid != e.GID {
		tb.Errorf("%s: owner %d:%d, want %d:%d", rel, st.Uid, st.Gid, e.UID, e.GID)
	}
	if (e.Type == content.TypeChar || e.Type == content.TypeBlock) && (unix.Major(st.Rdev) != e.Major || unix.Minor(st.Rdev) != e.Minor) {
		tb.Errorf("%s: device %d,%d, want %d,%d", rel, unix.Major(st.Rdev), unix.Minor(st.Rdev), e.Major, e.Minor)
	}
	if got := st.Mtim.Nano(); !skipTime && mtimeKept(e.MTime) && got != e.MTime {
		tb.Errorf("%s: mtime %d, want %d", rel, got, e.MTime)
	}
	got := llistxattrs(tb, p)
	for name, v := range e.Xattrs {
		if gv, ok := got[name]; !ok || !bytes.Equal(gv, v) {
			tb.Errorf("%s: extended attribute %s is %q (present: %v), want %q", rel, name, gv, ok, v)
		}
	}
	for name := range got {
		if _, ok := e.Xattrs[name]; !ok && (!strings.HasPrefix(name, "security.") || name == "security.capability") {
			tb.Errorf("%s: unexpected extended attribute %s", rel, name)
		}
	}
}

// inodeMeta describes p's inode: type, mode, owner, size, mtime and
// extended attributes.
func inodeMeta(tb testing.TB, p string) string {
	tb.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		tb.Fatal(err)
	}
	x := llistxattrs(tb, p)
	var xs []string
	for _, name := range slices.Sorted(maps.Keys(x)) {
		xs = append(xs, fmt.Sprintf("%s=%q", name, x[name]))
	}
	return fmt.Sprintf("mode %o owner %d:%d size %d mtime %d xattrs %v", st.Mode, st.Uid, st.Gid, st.Size, st.Mtim.Nano(), xs)
}

// inodeState is inodeMeta with the link count and the ctime, which any
// change to the inode updates.
func inodeState(tb testing.TB, p string) string {
	tb.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		tb.Fatal(err)
	}
	return fmt.Sprintf("%s nlink %d ctime %d", inodeMeta(tb, p), st.Nlink, st.Ctim.Nano())
}
