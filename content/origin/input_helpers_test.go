package origin_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/content/origin"
)

// loadFiles reads the files of every schema 2 artifact of m from the
// origin's packs, as a node would from its chunks: its index chunks are
// taken from the packs they name and the index is loaded and validated.
func loadFiles(t *testing.T, o *testOrigin, m *content.Manifest) {
	t.Helper()
	store := content.NewMemStore()
	packs := map[content.Digest][]byte{}
	for p, a := range m.Platforms {
		if a.Index == nil {
			continue
		}
		for _, c := range a.Index.Chunks {
			b, ok := packs[c.Pack]
			if !ok {
				var err error
				if b, err = os.ReadFile(filepath.Join(o.dir, "packs", c.Pack.String()+".pack")); err != nil {
					t.Fatal(err)
				}
				packs[c.Pack] = b
			}
			if err := store.Put(content.Chunk{ID: c.ID, Size: c.Size, Enc: c.Enc, Body: b[c.Offset : c.Offset+int64(c.Stored)]}); err != nil {
				t.Fatalf("%s: index chunk %s: %v", p, c.ID, err)
			}
		}
		if err := a.Load(context.Background(), store, nil, content.DefaultLimits()); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
}

// published returns the decoded manifest of res with its files loaded.
func published(t *testing.T, o *testOrigin, res *origin.PublishResult) *content.Manifest {
	t.Helper()
	_, m := o.manifest(t, res)
	loadFiles(t, o, m)
	return m
}
