package origin_test

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/content/origin"
)

// requireRoot skips a test that makes device nodes, changes owners or
// sets trusted and security attributes.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: device nodes, chown, security.* attributes")
	}
}

// capNetBindService is a security.capability value (VFS_CAP_REVISION_2,
// effective) granting CAP_NET_BIND_SERVICE, as setcap writes it.
func capNetBindService() []byte {
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], 0x02000001)
	binary.LittleEndian.PutUint32(b[4:], 1<<10)
	return b
}

// posixACL is a system.posix_acl_access value: user::rw-, user:1000:r--,
// group::r--, mask::r--, other::r--.
func posixACL() []byte {
	b := binary.LittleEndian.AppendUint32(nil, 2)
	for _, e := range []struct {
		tag, perm uint16
		id        uint32
	}{{0x01, 6, ^uint32(0)}, {0x02, 4, 1000}, {0x04, 4, ^uint32(0)}, {0x10, 4, ^uint32(0)}, {0x20, 4, ^uint32(0)}} {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		b = binary.LittleEndian.AppendUint32(b, e.id)
	}
	return b
}

// everyType is a tree with every type a manifest carries, each with
// distinct inode fields: the entries a publish must produce (without
// chunks) by path, and the bytes of the regular files.
type everyType struct {
	files map[string]content.File
	data  map[string][]byte
}

// mtimeOf is the distinct mtime every entry of the everyType tree gets.
func mtimeOf(i int) int64 {
	return time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC).UnixNano() + int64(i)*1_000_001_003
}

func newEveryType() *everyType {
	linked := bytes.Repeat([]byte("the same inode under three names\n"), 4000)
	x := &everyType{data: map[string][]byte{"a.b": linked, "bin/su": []byte("#!setuid\n"), "etc/acl": []byte("acl\n")}}
	sum := func(p string) content.Digest { return content.Digest(sha256.Sum256(x.data[p])) }
	x.files = map[string]content.File{
		".":             {Type: content.TypeDir, Mode: 0o750, UID: 4321, GID: 8765, Xattrs: content.Xattrs{"user.root": []byte("r")}},
		"a":             {Type: content.TypeDir, Mode: 0o755},
		"a.b":           {Type: content.TypeFile, Mode: 0o640, Size: int64(len(linked)), SHA256: sum("a.b")},
		"a/x":           {Type: content.TypeLink, Link: "a.b"},
		"bin":           {Type: content.TypeDir, Mode: 0o755},
		"bin/sh":        {Type: content.TypeSymlink, UID: 1234, GID: 5678, Target: "busybox", Xattrs: content.Xattrs{"trusted.link": []byte("l")}},
		"bin/su":        {Type: content.TypeFile, Mode: 0o4755, UID: 1234, GID: 5678, Size: 9, SHA256: sum("bin/su"), Xattrs: content.Xattrs{"user.comment": []byte("hello"), "security.capability": capNetBindService()}},
		"dev":           {Type: content.TypeDir, Mode: 0o755},
		"dev/loop0":     {Type: content.TypeBlock, Mode: 0o660, Major: 7},
		"dev/null":      {Type: content.TypeChar, Mode: 0o666, Major: 1, Minor: 3, Xattrs: content.Xattrs{"security.test": []byte("s")}},
		"empty":         {Type: content.TypeDir, Mode: 0o1777, UID: 1234, GID: 5678, Xattrs: content.Xattrs{"user.dir": []byte("d"), "trusted.t": {}}},
		"etc":           {Type: content.TypeDir, Mode: 0o755},
		"etc/acl":       {Type: content.TypeFile, Mode: 0o644, Size: 4, SHA256: sum("etc/acl")},
		"etc/localtime": {Type: content.TypeSymlink, Target: "/usr/share/zoneinfo/UTC"},
		"run":           {Type: content.TypeDir, Mode: 0o755},
		"run/fifo":      {Type: content.TypeFifo, Mode: 0o640, Xattrs: content.Xattrs{"trusted.fifo": []byte("f")}},
		"z":             {Type: content.TypeDir, Mode: 0o700},
		"z/link":        {Type: content.TypeLink, Link: "a.b"},
	}
	for i, p := range slices.Sorted(maps.Keys(x.files)) {
		f := x.files[p]
		f.Path = p
		if f.Type != content.TypeLink {
			f.MTime = mtimeOf(i)
		}
		x.files[p] = f
	}
	return x
}

// writeDir makes the tree at dir. "a/x" is walked before "a.b" but sorts
// after it, so the hard link group's data must move.
func (x *everyType) writeDir(t *testing.T, dir string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	at := func(p string) string { return filepath.Join(dir, filepath.FromSlash(p)) }
	for _, p := range []string{"", "a", "bin", "dev", "empty", "etc", "run", "z"} {
		must(os.MkdirAll(at(p), 0o755))
	}
	must(os.WriteFile(at("a/x"), x.data["a.b"], 0o600))
	must(os.Link(at("a/x"), at("a.b")))
	must(os.Link(at("a/x"), at("z/link")))
	must(os.WriteFile(at("bin/su"), x.data["bin/su"], 0o600))
	must(os.WriteFile(at("etc/acl"), x.data["etc/acl"], 0o600))
	must(os.Symlink("busybox", at("bin/sh")))
	must(os.Symlink("/usr/share/zoneinfo/UTC", at("etc/localtime")))
	must(unix.Mknod(at("dev/null"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))))
	must(unix.Mknod(at("dev/loop0"), unix.S_IFBLK|0o600, int(unix.Mkdev(7, 0))))
	must(unix.Mkfifo(at("run/fifo"), 0o600))
	for p, f := range x.files {
		if f.Type == content.TypeLink {
			continue
		}
		// chown clears setuid bits and file capabilities: owner first,
		// then mode, then attributes.
		must(os.Lchown(at(p), int(f.UID), int(f.GID)))
		if f.Type != content.TypeSymlink {
			must(os.Chmod(at(p), f.Mode.FileMode()))
		}
		for name, v := range f.Xattrs {
			must(unix.Lsetxattr(at(p), name, v, 0))
		}
	}
	must(unix.Setxattr(at("etc/acl"), "system.posix_acl_access", posixACL(), 0))
	for p, f := range x.files {
		if f.Type != content.TypeLink {
			ts := []unix.Timespec{unix.NsecToTimespec(f.MTime), unix.NsecToTimespec(f.MTime)}
			must(unix.UtimesNanoAt(unix.AT_FDCWD, at(p), ts, unix.AT_SYMLINK_NOFOLLOW))
		}
	}
}

// writeTar archives the same tree with archive/tar, in the order a walk
// reads it, the hard links naming "a/x", the first of the group there;
// "bin/su" also carries owner names.
func (x *everyType) writeTar(t *testing.T, out string) {
	t.Helper()
	order := []string{".", "a", "a/x", "a.b", "bin", "bin/sh", "bin/su", "dev", "dev/loop0", "dev/null", "empty", "etc", "etc/acl", "etc/localtime", "run", "run/fifo", "z", "z/link"}
	types := map[content.FileType]byte{
		content.TypeDir: tar.TypeDir, content.TypeSymlink: tar.TypeSymlink, content.TypeBlock: tar.TypeBlock,
		content.TypeChar: tar.TypeChar, content.TypeFifo: tar.TypeFifo, content.TypeFile: tar.TypeReg,
	}
	writeTar(t, out, func(tw *tar.Writer) {
		var hdrs []*tar.Header
		for _, p := range order {
			f := x.files[p]
			h := &tar.Header{Name: "./" + strings.TrimPrefix(p, "."), Format: tar.FormatPAX}
			switch {
			case p == "a/x":
				f = x.files["a.b"]
			case p == "a.b" || f.Type == content.TypeLink:
				h.Typeflag, h.Linkname = tar.TypeLink, "./a/x"
				hdrs = append(hdrs, h)
				continue
			}
			h.Typeflag, h.Mode, h.Uid, h.Gid = types[f.Type], int64(f.Mode), int(f.UID), int(f.GID)
			h.ModTime, h.Linkname, h.Devmajor, h.Devminor = time.Unix(0, f.MTime), f.Target, int64(f.Major), int64(f.Minor)
			h.Size = int64(len(x.data[f.Path]))
			h.PAXRecords = map[string]string{}
			for k, v := range f.Xattrs {
				h.PAXRecords["SCHILY.xattr."+k] = string(v)
			}
			if p == "etc/acl" {
				h.PAXRecords["SCHILY.xattr.system.posix_acl_access"] = string(posixACL())
			}
			if p == "bin/su" {
				h.Uname, h.Gname = "alice", "staff"
			}
			hdrs = append(hdrs, h)
		}
		for _, h := range hdrs {
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
			p := strings.TrimPrefix(h.Name, "./")
			if p == "a/x" {
				p = "a.b"
			}
			if _, err := tw.Write(x.data[p]); h.Typeflag == tar.TypeReg && err != nil {
				t.Fatal(err)
			}
		}
	})
}

// check compares the files of a with the tree's, field by field.
func (x *everyType) check(t *testing.T, name string, a *content.Artifact, names bool) {
	t.Helper()
	var paths []string
	for _, f := range a.Files {
		paths = append(paths, f.Path)
		want, ok := x.files[f.Path]
		if !ok {
			t.Errorf("%s: unexpected entry %+v", name, f)
			continue
		}
		if f.Path == "bin/su" && names {
			want.User, want.Group = "alice", "staff"
		}
		if f.Type == content.TypeFile && f.Size > 0 && len(f.Chunks) == 0 {
			t.Errorf("%s: %s has no chunks", name, f.Path)
		}
		got := f
		got.Chunks = nil
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %s\n got %+v\nwant %+v", name, f.Path, got, want)
		}
	}
	if want := slices.Sorted(maps.Keys(x.files)); !slices.Equal(paths, want) {
		t.Errorf("%s: paths %q, want %q", name, paths, want)
	}
}

// TestPublishEveryType publishes a directory with every type and inode
// field, its own included ("."), and the same tree as a tar, and checks
// each entry of both.
func TestPublishEveryType(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	o := newTestOrigin(t)
	work := t.TempDir()
	x := newEveryType()
	dir, archive := filepath.Join(work, "tree"), filepath.Join(work, "tree.tar.zst")
	x.writeDir(t, dir)
	x.writeTar(t, archive)
	res := o.mustPublish(t, "app", "1.0.0", map[string]string{"linux/amd64": dir, "linux/arm64": archive})
	_, m := o.manifest(t, res)
	x.check(t, "directory", m.Platforms["linux/amd64"], false)
	x.check(t, "tar", m.Platforms["linux/arm64"], true)
	// The data of the hard link group is stored and counted once per
	// platform; it is the same chunks in both.
	want := 2 * (int64(len(x.data["a.b"])) + int64(len(x.data["bin/su"])) + int64(len(x.data["etc/acl"])))
	if res.InputBytes != want {
		t.Errorf("input bytes %d, want %d", res.InputBytes, want)
	}
}

// TestPublishMTime normalises every mtime with PublishOptions.MTime.
func TestPublishMTime(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	o := newTestOrigin(t)
	work := t.TempDir()
	x := newEveryType()
	dir, archive := filepath.Join(work, "tree"), filepath.Join(work, "tree.tar")
	x.writeDir(t, dir)
	x.writeTar(t, archive)
	at := time.Date(2023, 11, 14, 22, 13, 20, 5, time.UTC)
	res, err := o.publish(t, origin.PublishOptions{Name: "app", Version: "1.0.0", MTime: &at,
		Artifacts: map[string]string{"linux/amd64": dir, "linux/arm64": archive, "linux/386": filepath.Join(dir, "bin", "su")}})
	if err != nil {
		t.Fatal(err)
	}
	_, m := o.manifest(t, res)
	for p, a := range m.Platforms {
		for _, f := range a.Files {
			if want := at.UnixNano(); f.Type != content.TypeLink && f.MTime != want || f.Type == content.TypeLink && f.MTime != 0 {
				t.Errorf("%s: %s has mtime %d, want %d", p, f.Path, f.MTime, want)
			}
		}
	}
	bad := time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := o.publish(t, origin.PublishOptions{Name: "app", Version: "1.0.1", MTime: &bad, Artifacts: map[string]string{"linux/amd64": dir}}); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("mtime in 2300: %v, want out of range", err)
	}
}
