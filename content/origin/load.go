package origin

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/meshcast/meshcast/content"
)

// LoadManifest decodes manifest bytes published to an origin whose packs
// are in packsDir, and loads every artifact's index from those packs, for
// tools and tests that read a release on the origin's side.
func LoadManifest(ctx context.Context, packsDir string, b []byte, l content.Limits) (*content.Manifest, error) {
	m, err := content.DecodeManifest(b, l)
	if err != nil {
		return nil, err
	}
	store := content.NewMemStore()
	fetch := PackFetch(packsDir, store)
	for p, a := range m.Platforms {
		if err := a.Load(ctx, store, fetch, l); err != nil {
			return nil, fmt.Errorf("platform %s: %w", p, err)
		}
	}
	return m, nil
}

// PackFetch returns a content.FetchFunc that reads chunk bodies from the
// packs in packsDir and puts them into store, which verifies them.
func PackFetch(packsDir string, store content.Store) content.FetchFunc {
	return func(ctx context.Context, refs []content.ChunkRef) error {
		for _, ref := range refs {
			if err := ctx.Err(); err != nil {
				return err
			}
			f, err := os.Open(filepath.Join(packsDir, ref.Pack.String()+".pack"))
			if err != nil {
				return err
			}
			body := make([]byte, ref.Stored)
			_, err = f.ReadAt(body, ref.Offset)
			f.Close()
			if err == io.EOF {
				err = fmt.Errorf("pack %s ends before chunk %s", ref.Pack.Short(), ref.ID)
			}
			if err != nil {
				return err
			}
			if err := store.Put(content.Chunk{ID: ref.ID, Size: ref.Size, Enc: ref.Enc, Body: body}); err != nil {
				return err
			}
		}
		return nil
	}
}
