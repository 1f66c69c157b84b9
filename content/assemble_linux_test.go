package content_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

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

// fidelityTree has an entry of every type, every special mode bit,
// owners, attributes of every namespace and nanosecond mtimes.
func fidelityTree() []entry {
	return []entry{
		dirE(content.RootPath, 0o751).own(1234, 5678).at(1_000_000_000_000_000_014).xattr("user.root", "yes"),
		dirE("bin", 0o755).at(1_500_000_000_987_654_321),
		fileE("bin/busybox", 0o755, string(randomBytes(100, 3000))).at(1_600_000_000_123_456_789).xattr("user.origin", "busybox"),
		hardE("bin/ls", "bin/busybox"),
		fileE("bin/ping", 0o755, "ping").xattr("security.capability", netRaw).at(1_600_000_001_000_000_002),
		linkE("bin/sh", "busybox").own(1234, 5678).at(1_700_000_000_000_000_003),
		fileE("bin/su", 0o4755, "su").at(1_600_000_002_000_000_004),
		fileE("bin/wall", 0o2755, "wall").own(0, 5).at(5),
		dirE("dev", 0o755).at(1_400_000_000_000_000_005),
		devE("dev/loop9", content.TypeBlock, 0o660, 7, 9).own(0, 6).at(1_400_000_000_000_000_006),
		devE("dev/null", content.TypeChar, 0o666, 1, 3).at(1_400_000_000_000_000_007),
		dirE("etc", 0o755).at(1_300_000_000_000_000_008),
		dirE("etc/alternatives", 0o755).own(1234, 5678),
		linkE("etc/alternatives/x", "/usr/share/x").at(1_300_000_000_000_000_009).
			xattr("trusted.overlay.origin", "y").xattr("security.label", "z"),
		fileE("etc/conf", 0o640, "key=value\n").own(1234, 5678).at(1_600_000_000_123_456_789).
			xattr("user.mime_type", "text/plain").xattr("trusted.md5", "abc"),
		hardE("etc/conf.hard", "etc/conf"),
		fifoE("run/initctl", 0o620).own(1234, 5678).at(1_650_000_000_000_000_010),
		dirE("srv", 0o2775).own(1234, 5678).at(1_200_000_000_000_000_011).xattr("user.dir", "yes"),
		fileE("srv/all", 0o7777, "every bit").own(1234, 5678),
		fileE("srv/none", 0o000, "no bits").own(1234, 5678).xattr("user.x", "v"),
		dirE("tmp", 0o1777).at(1_100_000_000_000_000_012),
		dirE("usr/share", 0o555).at(1_000_000_000_000_000_013),
		fileE("usr/share/x", 0o644, "x\n").own(1234, 5678),
		dirE("var/empty", 0o000).own(1234, 5678).at(-1_000_000_001),
	}
}

func TestAssembleFidelity(t *testing.T) {
	if !asRoot {
		t.Skip("needs root, to give owners, device nodes, file capabilities and trusted.* attributes")
	}
	t.Parallel()
	entries := fidelityTree()
	store := content.NewMemStore()
	art := buildTree(t, store, entries)
	if err := validateArtifact(art, content.DefaultLimits()); err != nil {
		t.Fatalf("the tree does not validate: %v", err)
	}
	out := filepath.Join(t.TempDir(), "out")
	st, err := content.Assemble(context.Background(), art, store, out, content.AssembleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkTreeAs(t, out, entries, assembly{owners: true})
	want := content.AssembleStats{Files: 8, Dirs: 9, Symlinks: 2, HardLinks: 2, Devices: 2, Fifos: 1, WrittenBytes: st.WrittenBytes}
	if st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	for _, p := range []string{"bin/busybox", "etc/conf"} {
		if fi, err := os.Lstat(filepath.Join(out, p)); err != nil || fi.Sys().(*syscall.Stat_t).Nlink != 2 {
			t.Errorf("%s: want 2 links (%v)", p, err)
		}
	}
	getcap, err := exec.LookPath("getcap")
	if err != nil {
		t.Logf("no getcap to check bin/ping with: %v", err)
		return
	}
	b, err := exec.Command(getcap, filepath.Join(out, "bin/ping")).CombinedOutput()
	if err != nil || !strings.Contains(string(b), "cap_net_raw=ep") {
		t.Errorf("getcap bin/ping: %q (%v), want cap_net_raw=ep", b, err)
	}
}

// TestAssembleReuseMetadata checks that a file of the previous release is
// hard-linked only when its inode has all the metadata the new release
// gives it, and that the inodes of the previous release never change.
func TestAssembleReuseMetadata(t *testing.T) {
	if !asRoot {
		t.Skip("needs root, to give owners and file capabilities")
	}
	t.Parallel()
	const ns = 1_600_000_000_000_000_001
	file := func(p string) entry {
		return fileE(p, 0o750, "bytes of "+p).own(1234, 5678).at(ns).xattr("user.a", "1")
	}
	e1 := []entry{
		file("capability").xattr("security.capability", netRaw),
		file("mode"), file("mtime"), file("owner"), file("same"), file("tampered"), file("tampered-owner"), file("xattr"),
	}
	e2 := []entry{
		e1[0],
		file("mode"), file("mtime").at(ns + 1), file("owner").own(1235, 5678), file("same"), hardE("same.hard", "same"),
		file("tampered"), file("tampered-owner"), file("xattr").xattr("user.a", "2"),
	}
	e2[1].Mode = 0o700
	all := content.NewMemStore()
	art1, art2 := buildTree(t, all, e1), buildTree(t, all, e2)
	base := t.TempDir()
	out1, out2 := filepath.Join(base, "v1"), filepath.Join(base, "v2")
	assemble(t, art1, all, out1, nil)
	if err := unix.Lsetxattr(filepath.Join(out1, "tampered"), "user.extra", []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(filepath.Join(out1, "tampered-owner"), 1, 1); err != nil {
		t.Fatal(err)
	}
	before := make(map[string]string)
	for _, e := range e1 {
		before[e.Path] = inodeMeta(t, filepath.Join(out1, e.Path))
	}

	// No chunks: every file must come from v1.
	st := assemble(t, art2, content.NewMemStore(), out2, &content.Installed{Dir: out1, Artifact: art1})
	checkTree(t, out2, e2)
	for _, e := range e1 {
		if got := inodeMeta(t, filepath.Join(out1, e.Path)); got != before[e.Path] {
			t.Errorf("v1's %s changed:\nbefore %s\nafter  %s", e.Path, before[e.Path], got)
		}
		linked := sameFile(t, filepath.Join(out1, e.Path), filepath.Join(out2, e.Path))
		if want := e.Path == "same" || e.Path == "capability"; linked != want {
			t.Errorf("%s: hard-linked to v1's %v, want %v", e.Path, linked, want)
		}
	}
	if st.ReusedFiles != len(e1) || st.WrittenBytes != 0 || st.HardLinks != 1 {
		t.Errorf("stats %+v: want %d files reused, none decoded", st, len(e1))
	}
}

// TestAssembleHostileEtc assembles trees that reach for /etc and checks
// that they are refused and that /etc did not change.
func TestAssembleHostileEtc(t *testing.T) {
	t.Parallel()
	names := func() []string {
		ents, err := os.ReadDir("/etc")
		if err != nil {
			t.Fatal(err)
		}
		var n []string
		for _, e := range ents {
			n = append(n, e.Name())
		}
		return n
	}
	before := [3]string{inodeState(t, "/etc"), inodeState(t, "/etc/passwd"), strings.Join(names(), "/")}
	cases := map[string][]entry{
		"a -> /etc then a/passwd":            {linkE("a", "/etc"), fileE("a/passwd", 0o644, "root::0:0::/:/bin/sh\n")},
		"a -> /etc then a new file":          {linkE("a", "/etc"), fileE("a/meshcast-pwned", 0o644, "pwned\n")},
		"a -> /etc then a dir with metadata": {linkE("a", "/etc"), dirE("a/x", 0o777).own(1, 1).xattr("user.x", "y")},
		"a -> /etc then a fifo":              {linkE("a", "/etc"), fifoE("a/fifo", 0o666)},
		"hard link to a symlink to /etc/passwd": {
			linkE("s", "/etc/passwd"), hardE("t", "s")},
		"hard link to /etc/passwd": {hardE("t", "/etc/passwd")},
	}
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) {
			store := content.NewMemStore()
			art := buildArtifact(t, store, content.KindTree, entries)
			if err := validateArtifact(art, content.DefaultLimits()); err == nil {
				t.Fatal("the tree validates")
			}
			parent := t.TempDir()
			if _, err := content.Assemble(context.Background(), art, store, filepath.Join(parent, "out"), testOptions(nil)); err == nil {
				t.Fatal("Assemble succeeded")
			}
			checkNoOutput(t, parent)
		})
	}
	t.Cleanup(func() {
		if after := [3]string{inodeState(t, "/etc"), inodeState(t, "/etc/passwd"), strings.Join(names(), "/")}; after != before {
			t.Errorf("/etc changed:\nbefore %q\nafter  %q", before, after)
		}
	})
}

// TestAssembleSymlinkMetadataOutside gives symlinks that point outside
// the tree attributes, owners and mtimes, and checks that only the links
// get them.
func TestAssembleSymlinkMetadataOutside(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		entry func(sentinel string) entry
		root  bool   // needs root
		fail  string // the error names this, or it succeeds
	}{
		"trusted.* on an absolute symlink": {
			func(s string) entry {
				return linkE("s", filepath.Join(s, "target")).xattr("trusted.x", "v").own(1234, 5678).at(1_000_000_000_000_000_001)
			},
			true, ""},
		"security.* on a relative symlink": {
			func(string) entry { return linkE("s", "../../sentinel/target").xattr("security.x", "v") }, true, ""},
		// user.* is refused on symlinks: were it followed, the target,
		// a regular file, would take it.
		"user.* on a relative symlink": {
			func(string) entry { return linkE("s", "../../sentinel/target").xattr("user.x", "v").at(1) },
			false, `symlink "s": cannot set extended attribute user.x`},
		"user.* on an absolute symlink": {
			func(s string) entry { return linkE("s", filepath.Join(s, "target")).xattr("user.x", "v") },
			false, `symlink "s": cannot set extended attribute user.x`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if c.root && !asRoot {
				t.Skip("needs root")
			}
			l := newHostileLayout(t)
			e := c.entry(l.sentinel)
			store := content.NewMemStore()
			art := buildTree(t, store, []entry{e})
			if err := validateArtifact(art, content.DefaultLimits()); err != nil {
				t.Fatal(err)
			}
			_, err := content.Assemble(context.Background(), art, store, l.out, testOptions(nil))
			makeRemovable(t, l.site)
			l.checkContained(t)
			if c.fail == "" {
				if err != nil {
					t.Fatal(err)
				}
				checkTree(t, l.out, []entry{e})
				return
			}
			if !errors.Is(err, content.ErrXattr) || !strings.Contains(err.Error(), c.fail) {
				t.Fatalf("got %v, want ErrXattr naming %s", err, c.fail)
			}
			checkNoOutput(t, l.site)
		})
	}
}

// assembleWithin runs Assemble and fails the test if it has not returned
// after a while, as it would not if it opened a fifo: then unblock
// releases it.
func assembleWithin(t *testing.T, art *content.Artifact, store content.Store, dst string, opt content.AssembleOptions, unblock func()) (content.AssembleStats, error) {
	t.Helper()
	type result struct {
		st  content.AssembleStats
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := content.Assemble(context.Background(), art, store, dst, opt)
		done <- result{st, err}
	}()
	select {
	case r := <-done:
		return r.st, r.err
	case <-time.After(30 * time.Second):
		unblock()
		r := <-done
		t.Fatalf("Assemble blocked, as on opening a fifo, until released (then: %v)", r.err)
		return r.st, r.err
	}
}

// openFifos opens every fifo matching the glob pattern for reading and
// writing, which releases whoever waits to open one, and closes them.
func openFifos(pattern string) {
	ps, _ := filepath.Glob(pattern)
	for _, p := range ps {
		if f, err := os.OpenFile(p, os.O_RDWR|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	}
}

// TestAssembleFifoNeverOpened checks that assembly never opens a fifo or a
// device: neither those it creates nor those it finds in the previous
// release where it expected a regular file.
func TestAssembleFifoNeverOpened(t *testing.T) {
	t.Parallel()
	entries := []entry{
		dirE("bin", 0o755),
		fileE("bin/agent", 0o755, "agent"),
		fileE("bin/helper", 0o755, "helper"),
		fifoE("bin/pipe", 0o666).at(1_000_000_000_000_000_001).xattr("security.x", "y"),
		fileE("null", 0o666, "null"),
	}
	if !asRoot {
		entries[3].Xattrs = nil
	}
	store := content.NewMemStore()
	art := buildTree(t, store, entries)
	base := t.TempDir()
	out1, out2 := filepath.Join(base, "v1"), filepath.Join(base, "v2")
	_, err := assembleWithin(t, art, store, out1, testOptions(nil), func() { openFifos(filepath.Join(base, ".v1.partial-*", "bin", "pipe")) })
	if err != nil {
		t.Fatal(err)
	}
	makeRemovable(t, out1)
	checkTree(t, out1, entries)

	// In v1, where v2 expects the same regular files, bin/agent is now a
	// fifo and null a device (as root); watch v1 for opens.
	if err := os.Remove(filepath.Join(out1, "bin/agent")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(out1, "bin/agent"), 0o755); err != nil {
		t.Fatal(err)
	}
	if asRoot {
		if err := os.Remove(filepath.Join(out1, "null")); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mknod(filepath.Join(out1, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
			t.Fatal(err)
		}
	}
	opened := watchOpens(t, out1, filepath.Join(out1, "bin"))
	st, err := assembleWithin(t, art, store, out2, content.AssembleOptions{Prev: &content.Installed{Dir: out1, Artifact: art}, DropPrivileges: !asRoot},
		func() { openFifos(filepath.Join(out1, "bin", "agent")) })
	if err != nil {
		t.Fatal(err)
	}
	makeRemovable(t, out2)
	checkTree(t, out2, entries)
	notFiles, reused := []string{"agent", "pipe"}, 2 // bin/helper and null
	if asRoot {
		notFiles, reused = append(notFiles, "null"), 1
	}
	for _, name := range opened() {
		if slices.Contains(notFiles, name) {
			t.Errorf("Assemble opened v1's %s, which is no regular file", name)
		}
	}
	if st.ReusedFiles != reused || st.Fifos != 1 {
		t.Errorf("stats %+v: want %d files reused, one fifo", st, reused)
	}
}

// watchOpens watches dirs for their entries being opened, and returns
// what reports the names of those opened so far.
func watchOpens(t *testing.T, dirs ...string) func() []string {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	for _, d := range dirs {
		if _, err := unix.InotifyAddWatch(fd, d, unix.IN_OPEN); err != nil {
			t.Fatal(err)
		}
	}
	return func() []string {
		var names []string
		buf := make([]byte, 64<<10)
		for {
			n, err := unix.Read(fd, buf)
			if n <= 0 || err != nil {
				return names
			}
			for b := buf[:n]; len(b) >= unix.SizeofInotifyEvent; {
				l := int(uint32(b[12]) | uint32(b[13])<<8 | uint32(b[14])<<16 | uint32(b[15])<<24)
				names = append(names, strings.TrimRight(string(b[unix.SizeofInotifyEvent:unix.SizeofInotifyEvent+l]), "\x00"))
				b = b[unix.SizeofInotifyEvent+l:]
			}
		}
	}
}

// childEnv carries the case TestAssembleChild runs, from
// TestAssembleUnprivileged.
const childEnv = "MESHCAST_TEST_ASSEMBLE_CHILD"

type childRun struct {
	Case string
	Out  string
}

type childResult struct {
	Err       string
	Privilege bool // the error wraps ErrPrivilege
	Xattr     bool // the error wraps ErrXattr
	Stats     content.AssembleStats
	CapEff    string // the child's effective capabilities
}

type unprivilegedCase struct {
	schema  int
	entries []entry
	drop    bool
	fail    []string // the error contains these; or it succeeds
	xattr   bool     // the error is ErrXattr, not ErrPrivilege
}

func unprivilegedCases() map[string]unprivilegedCase {
	setid := []entry{
		dirE("bin", 0o755),
		fileE("bin/a", 0o755, "a"),
		fileE("bin/su", 0o4755, "su").own(0, 0),
		fileE("bin/wall", 0o2755, "wall").own(0, 5),
		dirE("var/mail", 0o2775).own(0, 8),
	}
	return map[string]unprivilegedCase{
		"owners": {entries: []entry{
			// A root the owner may not read: the assembly syncs and
			// renames it all the same.
			dirE(content.RootPath, 0o311).own(1234, 5678).at(1_500_000_000_000_000_000).xattr("user.root", "1"),
			dirE("d", 0o750).own(1234, 5678).at(1_500_000_000_000_000_001).xattr("user.dir", "1"),
			fileE("d/f", 0o444, "read-only").own(1234, 5678).at(1_500_000_000_000_000_002).xattr("user.mime_type", "text/plain"),
			hardE("d/h", "d/f"),
			linkE("d/s", "/usr/share/x").own(1234, 5678).at(1_500_000_000_000_000_003),
			fifoE("p", 0o640).own(1234, 5678).at(1_500_000_000_000_000_004),
			dirE("t", 0o1777).at(-5),
		}},
		"setuid":     {entries: setid, fail: []string{`file "bin/su": mode 4755 is setuid or setgid`, "DropPrivileges"}},
		"drop":       {entries: append(slices.Clone(setid), fileE("bin/ping", 0o755, "ping").xattr("security.capability", netRaw)), drop: true},
		"capability": {entries: []entry{fileE("bin/ping", 0o755, "ping").xattr("security.capability", netRaw)}, fail: []string{`file "bin/ping"`, "security.capability", "CAP_SETFCAP"}},
		"device": {entries: []entry{dirE("dev", 0o755), devE("dev/null", content.TypeChar, 0o666, 1, 3)}, drop: true,
			fail: []string{`character device "dev/null"`, "CAP_MKNOD"}},
		"trusted": {entries: []entry{fileE("f", 0o644, "f").xattr("trusted.x", "y")}, fail: []string{`file "f"`, "trusted.x", "CAP_SYS_ADMIN"}},
		// security.* takes CAP_SYS_ADMIN, found out only when "a" gets
		// its metadata, after a/b is 0000: the partial tree is removed
		// all the same.
		"cleanup": {entries: []entry{
			dirE("a", 0o755).xattr("security.x", "y"), dirE("a/b", 0o000), fileE("a/b/f", 0o444, "f"),
		}, fail: []string{`directory "a": cannot set extended attribute security.x`}, xattr: true},
		"schema 1": {schema: content.ManifestSchemaV1, entries: []entry{dirE("bin", 0o755), fileE("bin/su", 0o4755, "su")}},
	}
}

// TestAssembleChild is run by TestAssembleUnprivileged, as another user,
// and does nothing otherwise.
func TestAssembleChild(t *testing.T) {
	spec := os.Getenv(childEnv)
	if spec == "" {
		t.Skip("run by TestAssembleUnprivileged")
	}
	var run childRun
	if err := json.Unmarshal([]byte(spec), &run); err != nil {
		t.Fatal(err)
	}
	c := unprivilegedCases()[run.Case]
	store := content.NewMemStore()
	art := buildTree(t, store, c.entries)
	art.Schema = c.schema
	var res childResult
	status, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			res.CapEff = strings.TrimSpace(v)
		}
	}
	var err error
	res.Stats, err = content.Assemble(context.Background(), art, store, run.Out, content.AssembleOptions{DropPrivileges: c.drop})
	if err != nil {
		res.Err, res.Privilege, res.Xattr = err.Error(), errors.Is(err, content.ErrPrivilege), errors.Is(err, content.ErrXattr)
	}
	b, _ := json.Marshal(res)
	fmt.Printf("RESULT %s\n", b)
}

// TestAssembleUnprivileged runs assemblies as nobody (65534:65534, no
// capabilities) in a copy of the test binary, and checks what they made.
func TestAssembleUnprivileged(t *testing.T) {
	if !asRoot {
		t.Skip("needs root, to run the assembly as another user (65534) and inspect what it made")
	}
	t.Parallel()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "content.test")
	copyExecutable(t, bin)
	for name, c := range unprivilegedCases() {
		t.Run(name, func(t *testing.T) {
			parent := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
			if err := os.Mkdir(parent, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(parent, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(parent, "out")
			res := runChild(t, bin, parent, childRun{Case: name, Out: out})
			if res.CapEff != "0000000000000000" {
				t.Fatalf("the child has capabilities %s", res.CapEff)
			}
			if c.fail != nil {
				if !c.xattr && !res.Privilege || c.xattr && !res.Xattr {
					t.Fatalf("got %q, want ErrPrivilege (or ErrXattr: %v)", res.Err, c.xattr)
				}
				for _, s := range c.fail {
					if !strings.Contains(res.Err, s) {
						t.Errorf("error %q does not say %q", res.Err, s)
					}
				}
				checkNoOutput(t, parent)
				return
			}
			if res.Err != "" {
				t.Fatal(res.Err)
			}
			checkTreeAs(t, out, c.entries, assembly{v1: c.schema == content.ManifestSchemaV1, uid: 65534, gid: 65534, drop: c.drop})
		})
	}
}

// copyExecutable copies the test binary to bin, which another user can
// run.
func copyExecutable(t *testing.T, bin string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(bin, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// runChild runs TestAssembleChild in bin as 65534:65534, in dir, and
// returns what it reports.
func runChild(t *testing.T, bin, dir string, run childRun) childResult {
	t.Helper()
	spec, err := json.Marshal(run)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-test.run=^TestAssembleChild$", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the child failed: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "RESULT "); ok {
			var res childResult
			if err := json.Unmarshal([]byte(v), &res); err != nil {
				t.Fatal(err)
			}
			t.Logf("child: %+v", res)
			return res
		}
	}
	t.Fatalf("the child reported nothing:\n%s", out)
	return childResult{}
}
