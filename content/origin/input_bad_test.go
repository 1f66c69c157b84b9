package origin_test

import (
	"archive/tar"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/meshcast/meshcast/content/origin"
)

// requireRefused publishes input and checks that the publish fails with
// an error holding every one of want and writes nothing to the origin.
func requireRefused(t *testing.T, o *testOrigin, input string, want ...string) {
	t.Helper()
	before := state(t, o.dir)
	_, err := o.publish(t, origin.PublishOptions{Name: "app", Version: "1.0.0", Artifacts: map[string]string{"linux/amd64": input}})
	if err == nil {
		t.Fatalf("publish succeeded, want an error holding %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("publish: %v\nwant an error holding %q", err, w)
		}
	}
	requireSameState(t, before, state(t, o.dir))
	if testing.Verbose() {
		t.Log(err)
	}
}

// badTar writes a tar with a good file and then hdrs (with zero bytes of
// data for a regular file's size).
func badTar(t *testing.T, dir, name string, hdrs ...*tar.Header) string {
	t.Helper()
	p := filepath.Join(dir, name+".tar")
	writeTar(t, p, func(tw *tar.Writer) {
		tarFile(t, tw, "ok.txt", []byte("fine\n"))
		for _, h := range hdrs {
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
			if h.Typeflag == tar.TypeReg && h.Size > 0 {
				if _, err := tw.Write(make([]byte, h.Size)); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
	return p
}

func reg(name string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}
}

func xattrHeader(name string, n int) *tar.Header {
	h := reg(name)
	h.PAXRecords = map[string]string{}
	for i := range n {
		h.PAXRecords[fmt.Sprintf("SCHILY.xattr.user.a%02d", i)] = "v"
	}
	return h
}

// longPath is a path of more than 4096 bytes in elements of 200.
func longPath() string {
	el := strings.Repeat("p", 200)
	return strings.Repeat(el+"/", 21) + "f"
}

func TestPublishRefusesBadTar(t *testing.T) {
	t.Parallel()
	o := newTestOrigin(t)
	work := t.TempDir()
	big := reg("big")
	big.PAXRecords = map[string]string{"SCHILY.xattr.user.big": strings.Repeat("x", 1_000_000)}
	future := reg("future")
	future.ModTime, future.Format = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), tar.FormatPAX
	longOwner := reg("owned")
	longOwner.Uname = strings.Repeat("u", 40)
	for _, tt := range []struct {
		name string
		hdrs []*tar.Header
		want []string
	}{
		{"duplicate", []*tar.Header{reg("./ok.txt")}, []string{`"./ok.txt"`, "twice"}},
		{"link to later", []*tar.Header{{Name: "l", Typeflag: tar.TypeLink, Linkname: "later"}, reg("later")}, []string{`"l"`, "a later or missing entry"}},
		{"link to missing", []*tar.Header{{Name: "l", Typeflag: tar.TypeLink, Linkname: "missing"}}, []string{`"l"`, "a later or missing entry"}},
		{"link escaping", []*tar.Header{{Name: "l", Typeflag: tar.TypeLink, Linkname: "../ok.txt"}}, []string{`"l"`, "escaping"}},
		{"link absolute", []*tar.Header{{Name: "l", Typeflag: tar.TypeLink, Linkname: "/ok.txt"}}, []string{`"l"`, "escaping"}},
		{"link to directory", []*tar.Header{{Name: "d/", Typeflag: tar.TypeDir}, {Name: "l", Typeflag: tar.TypeLink, Linkname: "d"}}, []string{`"l"`, "must name an earlier regular file"}},
		{"dot-dot", []*tar.Header{reg("a/../../evil")}, []string{`"a/../../evil"`, "leaves the tree"}},
		{"absolute", []*tar.Header{reg("/etc/passwd")}, []string{`"/etc/passwd"`, "absolute"}},
		{"unclean", []*tar.Header{reg("a//b")}, []string{`"a//b"`, "not clean"}},
		{"below a file", []*tar.Header{reg("ok.txt/x")}, []string{`"ok.txt/x"`, `parent "ok.txt" is a file`}},
		{"file over a directory", []*tar.Header{reg("d/x"), reg("d")}, []string{`"d"`, "earlier entries are inside it"}},
		{"megabyte xattr", []*tar.Header{big}, []string{`"big"`, "user.big", "1000000 bytes"}},
		{"too many xattrs", []*tar.Header{xattrHeader("many", 33)}, []string{`"many"`, "more than 32 extended attributes"}},
		{"long path", []*tar.Header{reg(longPath())}, []string{"longer than 4096 bytes"}},
		{"non-UTF-8 name", []*tar.Header{reg("bad\xff.txt")}, []string{`"bad\xff.txt"`, "not valid UTF-8"}},
		{"non-UTF-8 target", []*tar.Header{{Name: "s", Typeflag: tar.TypeSymlink, Linkname: "t\xff", Format: tar.FormatGNU}}, []string{`"s"`, `"t\xff"`}},
		{"mtime", []*tar.Header{future}, []string{`"future"`, "mtime 2300-01-01T00:00:00Z out of range"}},
		{"owner name", []*tar.Header{longOwner}, []string{`"owned"`, "owner name"}},
		{"no-change owner", []*tar.Header{{Name: "nobody", Typeflag: tar.TypeDir, Gid: 1<<32 - 1, Format: tar.FormatPAX}}, []string{`"nobody"`, `owner 0:4294967295: 4294967295 means "no change"`}},
		{"owner id", []*tar.Header{{Name: "neg", Typeflag: tar.TypeDir, Uid: 1 << 33, Format: tar.FormatPAX}}, []string{`"neg"`, "out of range"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			requireRefused(t, o, badTar(t, work, strings.ReplaceAll(tt.name, " ", "-"), tt.hdrs...), tt.want...)
		})
	}
}

func TestPublishRefusesBadDirectory(t *testing.T) {
	t.Parallel()
	o := newTestOrigin(t)
	work := t.TempDir()
	tree := func(name string) string {
		d := filepath.Join(work, name)
		writeTree(t, d, 1)
		return d
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	sockDir := tree("sock")
	l, err := net.Listen("unix", filepath.Join(sockDir, "docs", "s"))
	must(err)
	defer l.Close()
	requireRefused(t, o, sockDir, fmt.Sprintf("%q", filepath.Join(sockDir, "docs", "s")), "a socket, which a release cannot carry")

	badName := tree("badname")
	must(os.WriteFile(filepath.Join(badName, "docs", "bad\xff.txt"), nil, 0o644))
	requireRefused(t, o, badName, `docs/bad\xff.txt"`, "not valid UTF-8")

	badTarget := tree("badtarget")
	must(os.Symlink("t\xfe", filepath.Join(badTarget, "s")))
	requireRefused(t, o, badTarget, `badtarget/s"`, `"t\xfe"`)

	many := tree("manyxattrs")
	for i := range 33 {
		must(unix.Setxattr(filepath.Join(many, "data", "empty"), fmt.Sprintf("user.a%02d", i), []byte("v"), 0))
	}
	requireRefused(t, o, many, `manyxattrs/data/empty"`, "more than 32 extended attributes")

	badXattr := tree("badxattr")
	must(unix.Setxattr(filepath.Join(badXattr, "bin"), "user.\xff", []byte("v"), 0))
	requireRefused(t, o, badXattr, `badxattr/bin"`, `extended attribute name "user.\xff"`)

	deep := tree("deep")
	mkdirDeep(t, deep, longPath())
	requireRefused(t, o, deep, "longer than 4096 bytes")
}

// mkdirDeep makes the directories of rel below dir one by one, since the
// whole path is longer than the kernel takes at once.
func mkdirDeep(t *testing.T, dir, rel string) {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, el := range strings.Split(rel, "/") {
		if err := unix.Mkdirat(fd, el, 0o755); err != nil {
			t.Fatal(err)
		}
		next, err := unix.Openat(fd, el, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		fd = next
	}
	unix.Close(fd)
}
