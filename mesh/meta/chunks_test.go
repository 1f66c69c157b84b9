package meta

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"testing"

	"github.com/meshcast/meshcast/mesh/p2p/p2ptest"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/mesh/p2p"
)

// A node fetches index chunks from its peers: a peer that does not hold
// one, and a peer that sends wrong bytes for it, each cost one request,
// and the chunk comes from the peer that has it.
func TestFetchChunksFromPeers(t *testing.T) {
	good, liar, empty, client := p2ptest.NewHost(t, "good"), p2ptest.NewHost(t, "liar"), p2ptest.NewHost(t, "empty"), p2ptest.NewHost(t, "client")
	data := []byte("an index chunk: {\"path\":\"etc\",\"type\":\"dir\"}\n")
	id := content.SumChunk(data)
	held := content.NewMemStore()
	if err := held.Put(content.Chunk{ID: id, Size: len(data), Enc: content.EncodingRaw, Body: data}); err != nil {
		t.Fatal(err)
	}
	noFiles := func(string) ([]byte, error) { return nil, fs.ErrNotExist }
	Serve(good, WithChunks(noFiles, held), p2ptest.Log(t, "good", slog.LevelDebug))
	Serve(empty, WithChunks(noFiles, content.NewMemStore()), p2ptest.Log(t, "empty", slog.LevelDebug))
	Serve(liar, func(string) ([]byte, error) {
		return []byte("an index chunk: {\"path\":\"etc\",\"type\":\"fifo\"}\n"), nil
	}, p2ptest.Log(t, "liar", slog.LevelDebug))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	peers := NewPeers(client, p2ptest.Log(t, "client", slog.LevelDebug))
	store := content.NewMemStore()
	fetch := peers.FetchChunks(store)
	ref := content.ChunkRef{ID: id, Size: len(data), Stored: len(data), Enc: content.EncodingRaw}

	if err := client.Connect(ctx, p2p.AddrInfo(liar)); err != nil {
		t.Fatal(err)
	}
	if err := client.Connect(ctx, p2p.AddrInfo(empty)); err != nil {
		t.Fatal(err)
	}
	if err := fetch(ctx, []content.ChunkRef{ref}); err == nil || store.Has(id) {
		t.Fatalf("fetch from a liar and a peer without the chunk: %v (stored: %v), want an error and nothing stored", err, store.Has(id))
	}
	if err := client.Connect(ctx, p2p.AddrInfo(good)); err != nil {
		t.Fatal(err)
	}
	if err := fetch(ctx, []content.ChunkRef{ref}); err != nil {
		t.Fatal(err)
	}
	c, err := store.Get(id)
	if err != nil || c.Verify() != nil {
		t.Fatalf("stored chunk: %v", errors.Join(err, c.Verify()))
	}
	// A path under chunks/ that is not a chunk id is not found, not an
	// error of the server.
	if _, err := Fetch(ctx, client, good.ID(), "chunks/not-a-cid", 1<<10); !errors.Is(err, ErrNotFound) {
		t.Errorf("fetch chunks/not-a-cid: %v, want ErrNotFound", err)
	}
}
