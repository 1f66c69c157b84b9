package cdntest_test

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/content/origin"
	"github.com/meshcast/meshcast/seeder/cdn/cdntest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestWriteTree(t *testing.T) {
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	cdntest.WriteTree(t, a)
	cdntest.WriteTree(t, b)
	cdntest.RequireSameTree(t, a, b)

	tree := cdntest.ReadTree(t, a)
	files := 0
	for _, e := range tree {
		if e.Type == "file" {
			files++
		}
	}
	if files < 25 || len(tree) > 60 {
		t.Errorf("%d entries, %d files; want a few dozen", len(tree), files)
	}
	for path, want := range map[string]cdntest.TreeEntry{
		cdntest.TreeApp:  {Type: "file", Mode: 0o755, Size: 1280 << 10},
		cdntest.TreeBlob: {Type: "file", Mode: 0o644, Size: 192 << 10},
		"data/empty":     {Type: "file", Mode: 0o644},
		"etc/app.conf":   {Type: "file", Mode: 0o600, Size: 36},
		"current":        {Type: "symlink", Target: "bin/app"},
		"lib/a/b/c/docs": {Type: "symlink", Target: "../../../../docs"},
		"var/empty":      {Type: "dir", Mode: 0o700},
		"etc":            {Type: "dir", Mode: 0o750},
	} {
		got := tree[path]
		got.SHA256 = "" // not part of want
		if got != want {
			t.Errorf("%s: %+v, want %+v", path, got, want)
		}
	}
}

// recordingTB records failures instead of ending the test.
type recordingTB struct {
	testing.TB
	errors []string
	failed bool
}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
func (r *recordingTB) FailNow() { r.failed = true }

func TestRequireSameTreeSeesChanges(t *testing.T) {
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	cdntest.WriteTree(t, a)
	cdntest.CopyTree(t, a, b)
	cdntest.RequireSameTree(t, a, b)
	cdntest.Mutate(t, b)

	r := &recordingTB{TB: t}
	cdntest.RequireSameTree(r, a, b)
	if !r.failed {
		t.Fatal("RequireSameTree passed a mutated tree")
	}
	all := strings.Join(r.errors, "\n")
	for _, want := range []string{cdntest.TreeApp + ": got", "docs/page03.txt: got", "docs/page07.txt: missing", "docs/added.txt: unexpected"} {
		if !strings.Contains(all, want) {
			t.Errorf("no error %q in:\n%s", want, all)
		}
	}
	if len(r.errors) != 4 {
		t.Errorf("%d differences reported, want 4:\n%s", len(r.errors), all)
	}

	// A mode alone is a difference too.
	c := filepath.Join(t.TempDir(), "c")
	cdntest.CopyTree(t, a, c)
	if err := os.Chmod(filepath.Join(c, "bin", "run.sh"), 0o700); err != nil {
		t.Fatal(err)
	}
	r = &recordingTB{TB: t}
	cdntest.RequireSameTree(r, a, c)
	if !r.failed || len(r.errors) != 1 || !strings.Contains(r.errors[0], "bin/run.sh") {
		t.Errorf("a changed mode: failed %v, errors %q", r.failed, r.errors)
	}
}

// TestWriteIndex writes the file list of a publish as an index: the same
// stream cut into the same chunks, stored raw in a pack named by its
// sha256 with its index, from which the files load; and a list that
// validation refuses is written as it is.
func TestWriteIndex(t *testing.T) {
	o := cdntest.NewOrigin(t, cdntest.Options{})
	tree := t.TempDir()
	for i := range 40 {
		data := strings.Repeat(fmt.Sprintf("file %d, a line of text\n", i), 10+i)
		if err := os.WriteFile(filepath.Join(tree, fmt.Sprintf("f%02d.txt", i)), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	published := o.Manifest(o.Publish("app", "1.0.0", map[string]string{"linux/amd64": tree})).Platforms["linux/amd64"]
	x := o.WriteIndex(published.Files)
	px := published.Index
	if x.Entries != px.Entries || x.Size != px.Size || x.SHA256 != px.SHA256 || len(x.Chunks) != len(px.Chunks) || len(x.Chunks) < 2 {
		t.Fatalf("index %d entries, %d bytes, %s, %d chunks; the publish wrote %d, %d, %s, %d (want several chunks)",
			x.Entries, x.Size, x.SHA256.Short(), len(x.Chunks), px.Entries, px.Size, px.SHA256.Short(), len(px.Chunks))
	}
	pack, err := os.ReadFile(o.PackFile(x.Chunks[0].Pack))
	if err != nil {
		t.Fatal(err)
	}
	var off int64
	for i, c := range x.Chunks {
		if c.ID != px.Chunks[i].ID || c.Enc != content.EncodingRaw || c.Stored != c.Size || c.Pack != x.Chunks[0].Pack || c.Offset != off {
			t.Errorf("chunk %d: %+v; want the publish's id %s, raw, at offset %d of one pack", i, c, px.Chunks[i].ID, off)
		}
		off += int64(c.Stored)
	}
	if sum := sha256.Sum256(pack); content.Digest(sum) != x.Chunks[0].Pack || off != int64(len(pack)) {
		t.Errorf("pack %s of %d bytes hashes to %x; the chunks cover %d bytes", x.Chunks[0].Pack.Short(), len(pack), sum, off)
	}
	idxBytes, err := os.ReadFile(strings.TrimSuffix(o.PackFile(x.Chunks[0].Pack), ".pack") + ".idx")
	if err != nil {
		t.Fatal(err)
	}
	if idx, err := content.DecodePackIndex(idxBytes); err != nil || idx.Pack != x.Chunks[0].Pack || len(idx.Entries) != len(x.Chunks) {
		t.Errorf("pack index: %+v, %v", idx, err)
	}
	packs := filepath.Join(o.Dir, "packs")
	load := func(x *content.Index) (*content.Artifact, error) {
		a := &content.Artifact{Kind: content.KindTree, Index: x}
		store := content.NewMemStore()
		return a, a.Load(t.Context(), store, origin.PackFetch(packs, store), content.DefaultLimits())
	}
	if a, err := load(x); err != nil || !reflect.DeepEqual(a.Files, published.Files) {
		t.Errorf("Load of the written index: %v", err)
	}

	evil := slices.Clone(published.Files)
	evil[0].Path = "../escape"
	if _, err := load(o.WriteIndex(evil)); !errors.Is(err, content.ErrBadManifest) || !strings.Contains(err.Error(), "leaves the tree") {
		t.Errorf("Load of a written index with a path out of the tree: %v, want ErrBadManifest", err)
	}
}
