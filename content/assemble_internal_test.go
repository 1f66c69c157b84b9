package content

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
