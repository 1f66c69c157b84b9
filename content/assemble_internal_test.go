package content

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
)

// TestAssemblerContainedWithoutValidation checks the second line of
// defence: Assemble validates first, so the public tests only ever see the
// validator refuse hostile trees. Here the assembler runs on artifacts that
// never went through validation, and the os.Root alone must keep every
// write inside the tree.
func TestAssemblerContainedWithoutValidation(t *testing.T) {
	data := []byte("pwned")
	id := SumChunk(data)
	ref := ChunkRef{ID: id, Size: len(data), Stored: len(data), Enc: EncodingRaw, Pack: Digest(sha256.Sum256([]byte("pack")))}
	file := func(p string) File {
		return File{Path: p, Type: TypeFile, Mode: 0o644, Size: int64(len(data)), SHA256: Digest(sha256.Sum256(data)), Chunks: []ChunkRef{ref}}
	}
	link := func(p, target string) File { return File{Path: p, Type: TypeSymlink, Target: target} }
	dir := func(p string) File { return File{Path: p, Type: TypeDir, Mode: 0o755} }

	cases := func(sentinel string) map[string][]File {
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
			a := &assembler{ctx: context.Background(), art: art, store: store, tmp: tree, root: root, st: &AssembleStats{}}
			err = a.run()
			t.Logf("run: %v", err)

			if ents, _ := os.ReadDir(sentinel); len(ents) != 0 {
				t.Fatalf("the assembler wrote %s into a directory outside the tree", ents[0].Name())
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
