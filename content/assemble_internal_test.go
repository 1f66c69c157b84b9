package content

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestAssemblerContainedWithoutValidation checks the second line of
// defence: Assemble validates first, so the public tests only ever see the
// validator refuse hostile trees. Here the assembler runs on artifacts that
// never went through validation, and the os.Root and the order of
// creation alone must keep every write inside the tree: nothing created
// outside, nothing outside changed (a sentinel file outside keeps its
// bytes, mode, owner, attributes and mtime).
func TestAssemblerContainedWithoutValidation(t *testing.T) {
	data := []byte("pwned")
	id := SumChunk(data)
	ref := ChunkRef{ID: id, Size: len(data), Stored: len(data), Enc: EncodingRaw, Pack: Digest(sha256.Sum256([]byte("pack")))}
	file := func(p string) File {
		return File{Path: p, Type: TypeFile, Mode: 0o644, Size: int64(len(data)), SHA256: Digest(sha256.Sum256(data)), Chunks: []ChunkRef{ref}}
	}
	link := func(p, target string) File { return File{Path: p, Type: TypeSymlink, Target: target} }
	dir := func(p string) File { return File{Path: p, Type: TypeDir, Mode: 0o755} }
	meta := func(f File) File {
		f.UID, f.GID, f.MTime, f.Xattrs = 1, 1, 1, Xattrs{"trusted.pwned": []byte("x"), "user.pwned": []byte("x")}
		if f.Type != TypeSymlink {
			f.Mode = 0o4777
		}
		return f
	}

	cases := func(sentinel string) map[string][]File {
		target := filepath.Join(sentinel, "target")
		return map[string][]File{
			"path traversal":                  {file("../../sentinel/pwned")},
			"path traversal in a dir":         {dir("a"), file("a/../../../sentinel/pwned")},
			"absolute path":                   {file(filepath.Join(sentinel, "pwned"))},
			"absolute dir":                    {dir(filepath.Join(sentinel, "d"))},
			"symlink to a dir, file through":  {link("link", sentinel), file("link/pwned")},
			"file through, then the symlink":  {file("link/pwned"), link("link", sentinel)},
			"relative escaping dir symlink":   {link("d", "../../sentinel"), file("d/pwned")},
			"dir through an escaping symlink": {link("d", "../../sentinel"), dir("d/sub")},
			"symlink through a symlink":       {link("d", "../../sentinel"), link("d/l", "x")},
			"link to dot, escaping chain":     {link("d", "."), link("e", "d/d/../../sentinel"), file("e/pwned")},
			"device":                          {{Path: "dev", Type: "device", Mode: 0o600}},
			"metadata on the target's path":   {meta(file("../../sentinel/target")), meta(dir("../../sentinel"))},
			"metadata through a symlink":      {link("d", "../../sentinel"), meta(file("d/target")), meta(dir("d"))},
			"metadata on a symlink outside":   {meta(link("s", target)), meta(link("r", "../../sentinel/target"))},
			"metadata through a link to dot":  {link("d", "."), meta(link("d/s", target))},
			"hard link escaping":              {{Path: "h", Type: TypeLink, Link: "../../sentinel/target"}},
			"hard link to an absolute path":   {{Path: "h", Type: TypeLink, Link: target}},
			"hard link through a symlink":     {link("d", "../../sentinel"), {Path: "h", Type: TypeLink, Link: "d/target"}},
			"hard link out of the tree":       {file("f"), {Path: "../../sentinel/h", Type: TypeLink, Link: "f"}},
			"fifo escaping":                   {meta(File{Path: "../../sentinel/fifo", Type: TypeFifo})},
			"fifo through a symlink":          {link("d", "../../sentinel"), meta(File{Path: "d/fifo", Type: TypeFifo})},
			"device at an absolute path":      {meta(File{Path: filepath.Join(sentinel, "null"), Type: TypeChar, Major: 1, Minor: 3})},
			"device through a symlink":        {link("d", sentinel), File{Path: "d/null", Type: TypeChar, Major: 1, Minor: 3}},
		}
	}
	for name := range cases("") {
		t.Run(name, func(t *testing.T) {
			base := t.TempDir()
			tree, sentinel := filepath.Join(base, "site", "tree"), filepath.Join(base, "sentinel")
			for _, d := range []string{tree, sentinel} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(sentinel, "target"), []byte("untouched"), 0o644); err != nil {
				t.Fatal(err)
			}
			before := []string{inodeDescription(t, sentinel), inodeDescription(t, filepath.Join(sentinel, "target"))}
			store := NewMemStore()
			if err := store.Put(Chunk{ID: id, Size: len(data), Enc: EncodingRaw, Body: data}); err != nil {
				t.Fatal(err)
			}
			art := &Artifact{Kind: KindTree, Files: cases(sentinel)[name]}
			root, err := os.OpenRoot(tree)
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			a := &assembler{ctx: context.Background(), art: art, store: store, tmp: tree, root: root, st: &AssembleStats{}, priv: processPrivileges()}
			err = a.run()
			t.Logf("run: %v", err)

			if ents, _ := os.ReadDir(sentinel); len(ents) != 1 {
				t.Fatalf("the assembler wrote %v into a directory outside the tree", ents)
			}
			after := []string{inodeDescription(t, sentinel), inodeDescription(t, filepath.Join(sentinel, "target"))}
			if !slices.Equal(before, after) {
				t.Fatalf("the assembler changed inodes outside the tree:\nbefore %q\nafter  %q", before, after)
			}
			for dir, want := range map[string][]string{base: {"sentinel", "site"}, filepath.Join(base, "site"): {"tree"}} {
				ents, err := os.ReadDir(dir)
				if err != nil {
					t.Fatal(err)
				}
				if len(ents) != len(want) {
					t.Fatalf("%s holds %v, want %v", dir, ents, want)
				}
				for i, e := range ents {
					if e.Name() != want[i] {
						t.Fatalf("%s holds %v, want %v", dir, ents, want)
					}
				}
			}
		})
	}
}

// inodeDescription describes p's inode: mode, owner, mtime and extended
// attributes.
func inodeDescription(tb testing.TB, p string) string {
	tb.Helper()
	f, err := os.Open(p)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		tb.Fatal(err)
	}
	x, err := fileXattrs(f)
	if err != nil {
		tb.Fatal(err)
	}
	uid, gid, ns, _ := inodeOwner(fi)
	return fmt.Sprintf("%v %d:%d %d %v %v", fi.Mode(), uid, gid, ns, fi.ModTime().UnixNano(), x)
}

func TestCheckPrivileges(t *testing.T) {
	all := privileges{owners: true, setfcap: true, mknod: true, sysAdmin: true}
	tree := func(schema int, files ...File) *Artifact {
		return &Artifact{Kind: KindTree, Files: files, Schema: schema}
	}
	cases := []struct {
		name string
		art  *Artifact
		priv privileges
		drop bool
		want string // in the error; "" for none
	}{
		{"nothing special", tree(0, File{Path: "a", Type: TypeFile, Mode: 0o1755, UID: 5}), privileges{}, false, ""},
		{"setuid", tree(0, File{Path: "a", Type: TypeFile, Mode: 0o755}, File{Path: "b", Type: TypeFile, Mode: 0o4755}, File{Path: "c", Type: TypeFile, Mode: 0o4755}), privileges{}, false, `file "b": mode 4755 is setuid`},
		{"setgid dir", tree(0, File{Path: "d", Type: TypeDir, Mode: 0o2775, GID: 8}), privileges{}, false, `directory "d": mode 2775`},
		{"setuid dropped", tree(0, File{Path: "b", Type: TypeFile, Mode: 0o4755}), privileges{}, true, ""},
		{"setuid privileged", tree(0, File{Path: "b", Type: TypeFile, Mode: 0o4755}), all, false, ""},
		{"setuid schema 1", tree(1, File{Path: "b", Type: TypeFile, Mode: 0o4755}), privileges{}, false, ""},
		{"device", tree(0, File{Path: "n", Type: TypeBlock}), privileges{owners: true}, true, `block device "n": creating a device node takes CAP_MKNOD`},
		{"fifo", tree(0, File{Path: "p", Type: TypeFifo}), privileges{}, false, ""},
		{"capability", tree(0, File{Path: "f", Type: TypeFile, Xattrs: Xattrs{capability: nil}}), privileges{owners: true}, false, `file "f": extended attribute security.capability`},
		{"capability dropped", tree(0, File{Path: "f", Type: TypeFile, Xattrs: Xattrs{capability: nil}}), privileges{}, true, ""},
		{"trusted", tree(0, File{Path: "f", Type: TypeFile, Xattrs: Xattrs{"trusted.a": nil}}), privileges{owners: true, setfcap: true}, true, `file "f": extended attribute trusted.a takes CAP_SYS_ADMIN`},
		{"user", tree(0, File{Path: "f", Type: TypeFile, Xattrs: Xattrs{"user.a": nil}}), privileges{}, false, ""},
		{"uid -1", tree(0, File{Path: "f", Type: TypeFile, UID: noID}), all, false, `file "f": owner 4294967295:0`},
		{"gid -1", tree(0, File{Path: "f", Type: TypeFile, GID: noID}), all, false, `file "f": owner 0:4294967295`},
		{"uid -1 unprivileged", tree(0, File{Path: "f", Type: TypeFile, UID: noID}), privileges{}, false, ""},
	}
	for _, c := range cases {
		a := &assembler{art: c.art, priv: c.priv, drop: c.drop}
		err := a.checkPrivileges()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (!errors.Is(err, ErrPrivilege) && !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: got %v, want ErrPrivilege or ErrUnsupported saying %s", c.name, err, c.want)
		}
	}
}

func TestMetaOf(t *testing.T) {
	f := &File{Path: "f", Type: TypeFile, Mode: 0o6755, UID: 1, GID: 2, MTime: 3, Xattrs: Xattrs{capability: {1}, "user.a": {2}}}
	a := &assembler{art: &Artifact{}, priv: privileges{owners: true}}
	if m := a.metaOf(f); m.mode != 0o6755 || !m.owner || m.uid != 1 || m.gid != 2 || !m.mtime || m.ns != 3 || len(m.xattrs) != 2 {
		t.Errorf("schema 2, privileged: %+v", m)
	}
	a.drop, a.priv = true, privileges{}
	if m := a.metaOf(f); m.mode != 0o755 || m.owner || !m.mtime || len(m.xattrs) != 1 || m.xattrs["user.a"] == nil {
		t.Errorf("schema 2, dropped: %+v", m)
	}
	if len(f.Xattrs) != 2 {
		t.Error("metaOf changed the entry's attributes")
	}
	a.art.Schema, a.drop = ManifestSchemaV1, false
	if m := a.metaOf(&File{Path: "f", Type: TypeFile, Mode: 0o4755}); m.mode != 0o4755 || m.owner || m.mtime || m.xattrs != nil {
		t.Errorf("schema 1: %+v", m)
	}
}

func TestSameXattrs(t *testing.T) {
	cases := []struct {
		have, want Xattrs
		same       bool
	}{
		{nil, nil, true},
		{Xattrs{"user.a": {1}}, Xattrs{"user.a": {1}}, true},
		{Xattrs{"user.a": {1}}, Xattrs{"user.a": {2}}, false},
		{Xattrs{"user.a": {1}}, nil, false},
		{nil, Xattrs{"user.a": {1}}, false},
		{Xattrs{"security.selinux": {1}}, nil, true},
		{Xattrs{"security.selinux": {1}}, Xattrs{"security.selinux": {2}}, false},
		{Xattrs{capability: {1}}, nil, false},
		{Xattrs{"trusted.a": {}}, nil, false},
	}
	for _, c := range cases {
		if got := sameXattrs(c.have, c.want); got != c.same {
			t.Errorf("sameXattrs(%v, %v) = %v", c.have, c.want, got)
		}
	}
}
