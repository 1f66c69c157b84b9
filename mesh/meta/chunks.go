package meta

import (
	"context"
	"fmt"
	"io/fs"
	"strings"

	"github.com/meshcast/meshcast/content"
)

// chunkPrefix is the path prefix under which a node serves the chunks it
// holds, decoded: the chunks of a release's index (content.Index), which a
// node needs before it can join the release's swarm.
const chunkPrefix = "chunks/"

// ChunkPath is the path under which peers serve chunk id.
func ChunkPath(id content.ChunkID) string { return chunkPrefix + id.String() }

// WithChunks returns Files that serve ChunkPath paths from store, decoded,
// and every other path from files.
func WithChunks(files Files, store content.Store) Files {
	return func(path string) ([]byte, error) {
		s, ok := strings.CutPrefix(path, chunkPrefix)
		if !ok {
			return files(path)
		}
		id, err := content.ParseChunkID(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, fs.ErrNotExist)
		}
		c, err := store.Get(id)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, fs.ErrNotExist)
		}
		return content.DecodeChunk(nil, c.ID, c.Size, c.Enc, c.Body)
	}
}

// FetchChunks returns a content.FetchFunc that asks the connected peers for
// each chunk in turn until one sends bytes that store accepts (Put
// verifies them against the id): a peer that sends a bad chunk costs one
// request.
func (s *Peers) FetchChunks(store content.Store) content.FetchFunc {
	return func(ctx context.Context, refs []content.ChunkRef) error {
		for _, ref := range refs {
			if err := s.fetchChunk(ctx, store, ref); err != nil {
				return err
			}
		}
		return nil
	}
}

func (s *Peers) fetchChunk(ctx context.Context, store content.Store, ref content.ChunkRef) error {
	var last error = ErrNotFound
	for _, p := range s.h.Network().Peers() {
		b, err := Fetch(ctx, s.h, p, ChunkPath(ref.ID), int64(ref.Size))
		if err == nil {
			if err = store.Put(content.Chunk{ID: ref.ID, Size: ref.Size, Enc: content.EncodingRaw, Body: b}); err == nil {
				return nil
			}
			s.log.Warn("peer sent a bad chunk", "peer", p, "chunk", ref.ID, "err", err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		last = err
	}
	return fmt.Errorf("chunk %s: no peer has it (last: %w)", ref.ID, last)
}
