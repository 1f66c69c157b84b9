package rootfs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// handTree is a small tree made by hand with one of each kind of thing
// List must see, and the listing it must give.
type handTree struct {
	root string
	want []Entry
}

// hello is the content of the hand tree's regular files.
var hello = []byte("hello, tree\n")

func helloSHA() string {
	s := sha256.Sum256(hello)
	return hex.EncodeToString(s[:])
}

// makeHandTree writes, under dir:
//
//	.            dir 0755
//	a            dir 0750
//	a/f          file 04755 (setuid), user.meshcast xattr, hard link of b/g
//	b            dir 0755
//	b/g          the other name of a/f
//	abs          symlink to /etc/passwd (absolute: must not be followed)
//	dirlink      symlink to a (a directory: must not be walked)
//	dangling     symlink to nowhere/x
//	pipe         fifo 0640
//	null, loop   char 1,3 and block 7,200 (only as root)
//	owned        file 0600 owned by 1234:5678 (only as root)
//
// and sets every mtime to a known value with nanoseconds, deepest first.
func makeHandTree(t *testing.T, dir string) handTree {
	t.Helper()
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	root := os.Geteuid() == 0
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	p := func(rel string) string { return filepath.Join(dir, rel) }
	must(os.Chmod(dir, 0o755))
	must(os.Mkdir(p("a"), 0o750))
	must(os.Chmod(p("a"), 0o750))
	must(os.Mkdir(p("b"), 0o755))
	must(os.WriteFile(p("a/f"), hello, 0o644))
	must(unix.Chmod(p("a/f"), 0o4755)) // os.Chmod would want os.ModeSetuid
	must(os.Link(p("a/f"), p("b/g")))
	must(os.Symlink("/etc/passwd", p("abs")))
	must(os.Symlink("a", p("dirlink")))
	must(os.Symlink("nowhere/x", p("dangling")))
	must(unix.Mkfifo(p("pipe"), 0o640))
	must(os.Chmod(p("pipe"), 0o640))
	xattr := []Xattr{{Name: "user.meshcast", Value: []byte{0, 1, 0xfe, 'x'}}}
	if err := unix.Lsetxattr(p("a/f"), xattr[0].Name, xattr[0].Value, 0); errors.Is(err, unix.ENOTSUP) {
		t.Logf("%s has no user xattrs: the hand tree goes without", dir)
		xattr = nil
	} else {
		must(err)
	}

	want := []Entry{
		{Path: ".", Type: Dir, Mode: 0o755},
		{Path: "a", Type: Dir, Mode: 0o750},
		{Path: "a/f", Type: File, Mode: 0o4755, Link: "a/f", Size: int64(len(hello)), SHA256: helloSHA(), Xattrs: xattr},
		{Path: "abs", Type: Symlink, Mode: 0o777, Target: "/etc/passwd"},
		{Path: "b", Type: Dir, Mode: 0o755},
		{Path: "b/g", Type: File, Mode: 0o4755, Link: "a/f", Size: int64(len(hello)), SHA256: helloSHA(), Xattrs: xattr},
		{Path: "dangling", Type: Symlink, Mode: 0o777, Target: "nowhere/x"},
		{Path: "dirlink", Type: Symlink, Mode: 0o777, Target: "a"},
		{Path: "pipe", Type: FIFO, Mode: 0o640},
	}
	if root {
		must(unix.Mknod(p("null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		must(unix.Mknod(p("loop"), unix.S_IFBLK|0o600, int(unix.Mkdev(7, 200))))
		must(os.WriteFile(p("owned"), hello, 0o600))
		must(os.Chown(p("owned"), 1234, 5678))
		want = append(want,
			Entry{Path: "loop", Type: Block, Mode: 0o600, Major: 7, Minor: 200},
			Entry{Path: "null", Type: Char, Mode: 0o666, Major: 1, Minor: 3},
			Entry{Path: "owned", Type: File, Mode: 0o600, UID: 1234, GID: 5678, Size: int64(len(hello)), SHA256: helloSHA()},
		)
		must(os.Chmod(p("null"), 0o666))
	}
	// Deepest first, so that setting a child's time does not move its
	// parent's afterwards (it would not anyway: only creating and removing
	// names does).
	slices.SortFunc(want, func(x, y Entry) int { return strings.Count(y.Path, "/") - strings.Count(x.Path, "/") })
	for i := range want {
		e := &want[i]
		if e.Path != "owned" {
			e.UID, e.GID = uid, gid
		}
		e.Mtime = 1_600_000_000_123_456_789 + int64(i)*1_000_000_007
		ts := []unix.Timespec{unix.NsecToTimespec(e.Mtime), unix.NsecToTimespec(e.Mtime)}
		must(unix.UtimesNanoAt(unix.AT_FDCWD, p(e.Path), ts, unix.AT_SYMLINK_NOFOLLOW))
	}
	// a/f and b/g are one inode: the last time set is both names'.
	var last int64
	for _, e := range want {
		if e.Path == "a/f" || e.Path == "b/g" {
			last = e.Mtime
		}
	}
	for i := range want {
		if want[i].Link == "a/f" {
			want[i].Mtime = last
		}
	}
	slices.SortFunc(want, func(x, y Entry) int { return strings.Compare(x.Path, y.Path) })
	return handTree{root: dir, want: want}
}

func TestListHandTree(t *testing.T) {
	tree := makeHandTree(t, t.TempDir())
	got, err := List(tree.root)
	if err != nil {
		t.Fatal(err)
	}
	if d := Diff(tree.want, got, 0); d != "" {
		t.Errorf("List differs from the tree as made (a: made, b: listed):\n%s", d)
	}
	if Text(got) != Text(tree.want) {
		t.Errorf("Text differs from the tree as made:\n%s\nwant\n%s", Text(got), Text(tree.want))
	}
	if os.Geteuid() != 0 {
		t.Log("not root: the hand tree has no device and no foreign owner")
	}
}

// TestListIgnoresInodeNumbers lists two trees made alike (different
// inodes, the same content and times) and finds them equal: hard-link
// groups are named by path, not by inode.
func TestListIgnoresInodeNumbers(t *testing.T) {
	a := makeHandTree(t, t.TempDir())
	b := makeHandTree(t, t.TempDir())
	la, err := List(a.root)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := List(b.root)
	if err != nil {
		t.Fatal(err)
	}
	if d := Diff(la, lb, 0); d != "" {
		t.Errorf("two trees made alike differ:\n%s", d)
	}
}

func TestListRefusesSymlinkRoot(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := List(filepath.Join(dir, "link")); err == nil {
		t.Error("List followed a symlink root")
	}
	if _, err := List(filepath.Join(dir, "missing")); err == nil {
		t.Error("List of a missing root succeeded")
	}
}

// TestListSeesChanges changes the hand tree one field at a time and
// checks that List, through Diff, sees each change.
func TestListSeesChanges(t *testing.T) {
	changes := []struct {
		name  string
		field string // what Diff must name
		do    func(dir string) error
	}{
		{"content", "sha256", func(d string) error {
			return os.WriteFile(filepath.Join(d, "a/f"), []byte("HELLO, TREE\n"), 0)
		}},
		{"mode", "mode", func(d string) error { return os.Chmod(filepath.Join(d, "a/f"), 0o755) }},
		{"target", "target", func(d string) error {
			p := filepath.Join(d, "abs")
			if err := os.Remove(p); err != nil {
				return err
			}
			return os.Symlink("/etc/shadow", p)
		}},
		{"link", "link", func(d string) error {
			p := filepath.Join(d, "b/g")
			if err := os.Remove(p); err != nil {
				return err
			}
			return os.WriteFile(p, hello, 0o644)
		}},
		{"mtime", "mtime", func(d string) error {
			ts := []unix.Timespec{unix.NsecToTimespec(1), unix.NsecToTimespec(1)}
			return unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(d, "pipe"), ts, unix.AT_SYMLINK_NOFOLLOW)
		}},
		{"xattr", "xattrs", func(d string) error {
			return unix.Lsetxattr(filepath.Join(d, "a"), "user.other", []byte("v"), 0)
		}},
	}
	for _, c := range changes {
		t.Run(c.name, func(t *testing.T) {
			tree := makeHandTree(t, t.TempDir())
			if err := c.do(tree.root); errors.Is(err, unix.ENOTSUP) {
				t.Skip("no user xattrs here")
			} else if err != nil {
				t.Fatal(err)
			}
			got, err := List(tree.root)
			if err != nil {
				t.Fatal(err)
			}
			d := Diff(tree.want, got, IgnoreRootMtime)
			if !strings.Contains(d, ": "+c.field+" ") && !strings.Contains(d, "; "+c.field+" ") {
				t.Errorf("Diff does not report the %s change:\n%s", c.field, d)
			}
		})
	}
}
