package cdn_test

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/seeder/cdn"
	"github.com/meshcast/meshcast/seeder/cdn/cdntest"
	"github.com/meshcast/meshcast/seeder/cdn/devserver"
)

// metadataRequests is what a refresh from scratch asks for: 2.root.json
// (404: no newer root), timestamp.json, N.snapshot.json, N.targets.json.
// The manifest is one more; then a fetch from scratch asks for one range
// of the index's pack, and one of the files' (see fixture.packs).
const metadataRequests = 4

// TestDirectFetch runs every client test against a copy of one published
// origin, each with its own server.
func TestDirectFetch(t *testing.T) {
	subtests(t, newBase(t), []subtest{
		{"RoundTrip", testRoundTrip},
		{"SecondVersionFetchesOnlyNewChunks", testSecondVersionFetchesOnlyNewChunks},
		{"ResumesTruncatedPack", testResumesTruncatedPack},
		{"ResumesAfterCancel", testResumesAfterCancel},
		{"CorruptChunk", testCorruptChunk},
		{"PackNotOnOrigin", testPackNotOnOrigin},
		{"ManifestNotOnOrigin", testManifestNotOnOrigin},
		{"RetriesServerErrors", testRetriesServerErrors},
		{"StalledResponse", testStalledResponse},
		{"DiskFull", testDiskFull},
		{"HTTPSWithClientCert", testHTTPSWithClientCert},
		{"ExpiredTimestamp", testExpiredTimestamp},
		{"RefusesRollback", testRefusesRollback},
		{"RefusesWrongKey", testRefusesWrongKey},
		{"RefusesHostileManifest", testRefusesHostileManifest},
	})
}

// testRoundTrip fetches a release into an empty state: the tree comes out
// byte for byte with its modes and links, every counter matches the packs
// and the server, one Range request covers each pack (the index's first),
// and a second fetch into another directory asks the CDN for nothing but
// fresh metadata.
func testRoundTrip(t *testing.T, base *fixture) {
	f := base.clone(t, devserver.Config{})
	_, art := f.manifest(t)
	c := cdntest.NewClient(t, cdntest.ClientConfig(f.url))
	opt := fetchOpts(t, f, "1.0.0")

	res := mustFetch(t, c, opt)
	cdntest.RequireSameTree(t, f.tree, opt.Out)

	indexPack, pack := f.packs(t)
	packBytes := f.packSize(t, indexPack) + f.packSize(t, pack)
	files := 0
	for _, e := range cdntest.ReadTree(t, f.tree) {
		if e.Type == "file" {
			files++
		}
	}
	if res.Release != "app@1.0.0" || res.ReleaseID != f.rel.ReleaseID || res.Platform != platform || res.Out != opt.Out {
		t.Errorf("result names %s %s %s %s, want app@1.0.0 %s %s %s", res.Release, res.ReleaseID, res.Platform, res.Out, f.rel.ReleaseID, platform, opt.Out)
	}
	if res.ChunksFetched != len(art.Chunks()) || res.ChunksReused != 0 {
		t.Errorf("fetched %d chunks and reused %d, want %d and 0", res.ChunksFetched, res.ChunksReused, len(art.Chunks()))
	}
	if res.ChunkBytes != packBytes || res.ChunkBytes != f.rel.NewBytes {
		t.Errorf("chunk bytes %d, want the packs' %d (publish said %d)", res.ChunkBytes, packBytes, f.rel.NewBytes)
	}
	if res.Files != files {
		t.Errorf("files %d, want %d", res.Files, files)
	}
	// Two packs, each contiguous, far below MaxRange: a single Range
	// request each, the index's first since it lists the files.
	if want := int64(metadataRequests + 3); res.Requests != want {
		t.Errorf("%d requests, want %d (metadata, manifest, the index's range, the files' range)", res.Requests, want)
	}
	reqs := f.reqs.Wait(t, int(res.Requests))
	for _, p := range []string{f.indexPackPath(t), f.packPath(t)} {
		if packReqs := requestsTo(reqs, p); len(packReqs) != 1 || packReqs[0].Status != http.StatusPartialContent {
			t.Errorf("requests for %s: %+v, want one 206", p, packReqs)
		}
	}
	if i, j := slices.IndexFunc(reqs, func(r cdntest.Request) bool { return r.Path == f.indexPackPath(t) }),
		slices.IndexFunc(reqs, func(r cdntest.Request) bool { return r.Path == f.packPath(t) }); i > j {
		t.Errorf("the files' pack was asked for before the index's: %+v", reqs)
	}
	// The server counts body bytes; the client counts everything it read,
	// headers and TLS records included.
	if sent := f.srv.BytesSent(); sent < res.ChunkBytes || res.BytesFromCDN < sent {
		t.Errorf("bytes from CDN %d, server sent %d, chunk bytes %d: want chunk bytes ≤ sent ≤ from CDN", res.BytesFromCDN, sent, res.ChunkBytes)
	}
	if got, want := sortedIDs(cdntest.CheckStore(t, filepath.Join(opt.StateDir, "chunks"))), sortedIDs(chunkIDs(art)); !slices.Equal(got, want) {
		t.Errorf("store holds %d chunks, want the artifact's %d", len(got), len(want))
	}

	// Again into another directory: everything is local, and the metadata
	// is current, so only the root probe and the timestamp are asked for.
	opt2 := opt
	opt2.Out = filepath.Join(t.TempDir(), "again")
	res2 := mustFetch(t, c, opt2)
	cdntest.RequireSameTree(t, f.tree, opt2.Out)
	if res2.ChunksFetched != 0 || res2.ChunksReused != len(art.Chunks()) || res2.ChunkBytes != 0 {
		t.Errorf("refetch: fetched %d (%d bytes), reused %d; want 0, 0, %d", res2.ChunksFetched, res2.ChunkBytes, res2.ChunksReused, len(art.Chunks()))
	}
	if res2.Requests != 2 {
		t.Errorf("refetch made %d requests, want 2 (root probe, timestamp)", res2.Requests)
	}
}

// testSecondVersionFetchesOnlyNewChunks fetches 2.0.0 with the state 1.0.0
// left: only the new packs' chunks (its index's and its files') come from
// the CDN, the packs of 1.0.0 are never asked for again.
func testSecondVersionFetchesOnlyNewChunks(t *testing.T, base *fixture) {
	f := base.clone(t, devserver.Config{})
	c := cdntest.NewClient(t, cdntest.ClientConfig(f.url))
	opt := fetchOpts(t, f, "1.0.0")
	mustFetch(t, c, opt)

	f.ownTree(t)
	cdntest.Mutate(t, f.tree)
	rel2 := f.o.Publish("app", "2.0.0", map[string]string{platform: f.tree})
	m2 := f.o.Manifest(rel2)
	if rel2.NewChunks == 0 || rel2.NewChunks >= rel2.Chunks {
		t.Fatalf("2.0.0 adds %d of %d chunks; the test needs some shared and some new", rel2.NewChunks, rel2.Chunks)
	}
	art := m2.Platforms[platform]
	// 2.0.0's index chunks are in 1.0.0's index pack if 1.0.0's index has
	// them, else in 2.0.0's; its files' chunks in 1.0.0's pack and its own.
	indexPack, pack := f.packs(t)
	_, art1 := f.manifest(t)
	want := map[string]bool{pack.String(): true, rel2.Pack: true}
	for _, c := range art.Index.Chunks {
		where := rel2.IndexPack
		if slices.ContainsFunc(art1.Index.Chunks, func(r content.ChunkRef) bool { return r.ID == c.ID }) {
			where = indexPack.String()
		}
		if c.Pack.String() != where {
			t.Fatalf("2.0.0's index chunk %s is in pack %s, want %s", c.ID, c.Pack, where)
		}
		want[where] = true
	}
	got := map[string]bool{}
	for _, d := range cdntest.Packs(m2) {
		got[d.String()] = true
	}
	if rel2.IndexPack == "" || !maps.Equal(got, want) {
		t.Fatalf("2.0.0 has chunks in packs %v, want %v: 1.0.0's %s and its own %s for its files, and its index's %q",
			slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)), pack.Short(), rel2.Pack, rel2.IndexPack)
	}
	var newBytes int64
	for _, p := range []string{rel2.IndexPack, rel2.Pack} {
		d, err := content.ParseDigest(p)
		if err != nil {
			t.Fatal(err)
		}
		newBytes += f.packSize(t, d)
	}

	opt.Release.Version = "" // the highest: 2.0.0
	opt.Out = filepath.Join(t.TempDir(), "v2")
	res := mustFetch(t, c, opt)
	cdntest.RequireSameTree(t, f.tree, opt.Out)
	if res.Release != "app@2.0.0" {
		t.Errorf("fetched %s, want app@2.0.0", res.Release)
	}
	if res.ChunksFetched != rel2.NewChunks || res.ChunksReused != len(art.Chunks())-rel2.NewChunks || res.ChunksReused == 0 {
		t.Errorf("fetched %d and reused %d chunks, want %d new and %d reused", res.ChunksFetched, res.ChunksReused, rel2.NewChunks, len(art.Chunks())-rel2.NewChunks)
	}
	if res.ChunkBytes != newBytes || res.ChunkBytes != rel2.NewBytes {
		t.Errorf("chunk bytes %d, want the new packs' %d (publish said %d)", res.ChunkBytes, newBytes, rel2.NewBytes)
	}
	reqs := f.reqs.Wait(t, int(c.Requests()))
	for _, p := range []string{f.indexPackPath(t), f.packPath(t)} {
		if n := len(requestsTo(reqs, p)); n != 1 {
			t.Errorf("1.0.0's pack %s was requested %d times over both fetches, want once", p, n)
		}
	}
}

// testResumesTruncatedPack cuts the files' pack response in the middle of
// a chunk: the retry asks for the rest from that chunk's first byte, not
// from 0.
func testResumesTruncatedPack(t *testing.T, base *fixture) {
	f := base.clone(t, devserver.Config{})
	_, art := f.manifest(t)
	pack := f.pack(t)
	packSize := f.packSize(t, pack)
	cut := packSize / 2
	f.srv.Faults.Set(f.packPath(t), devserver.Fault{TruncateAt: cut}, 1)
	c := cdntest.NewClient(t, cdntest.ClientConfig(f.url))
	opt := fetchOpts(t, f, "1.0.0")

	res := mustFetch(t, c, opt)
	cdntest.RequireSameTree(t, f.tree, opt.Out)
	if res.ChunksFetched != len(art.Chunks()) || res.ChunkBytes != f.rel.NewBytes {
		t.Errorf("fetched %d chunks, %d bytes; want %d, %d", res.ChunksFetched, res.ChunkBytes, len(art.Chunks()), f.rel.NewBytes)
	}
	if want := int64(metadataRequests + 4); res.Requests != want {
		t.Errorf("%d requests, want %d (one retry of the range)", res.Requests, want)
	}
	if res.BytesFromCDN >= 2*packSize {
		t.Errorf("read %d bytes from the CDN for a %d-byte pack: the retry started over", res.BytesFromCDN, packSize)
	}
	// The retry resumes at the chunk the cut tore, not at byte 0.
	var resume int64 = -1
	for _, r := range art.Chunks() {
		if r.Pack == pack && r.Offset < cut && cut < r.Offset+int64(r.Stored) {
			resume = r.Offset
		}
	}
	if resume <= 0 {
		t.Fatalf("no chunk straddles byte %d of pack %s", cut, pack.Short())
	}
	packReqs := requestsTo(f.reqs.Wait(t, int(res.Requests)), f.packPath(t))
	if len(packReqs) != 2 || packReqs[0].Bytes != cut || packReqs[1].RangeStart() != resume {
		t.Errorf("pack requests %+v; want a first cut after %d bytes, then a range from byte %d", packReqs, cut, resume)
	}
}

// testResumesAfterCancel interrupts a fetch over a slow link after the
// first chunk of its files is stored (the index's come before); the next
// fetch with the same state fetches only the chunks that were not stored.
func testResumesAfterCancel(t *testing.T, base *fixture) {
	f := base.clone(t, devserver.Config{})
	_, art := f.manifest(t)
	// A slow link (the pack takes many seconds) to interrupt, and the
	// same origin at full speed to finish on.
	_, slowURL, _ := cdntest.ServeRecorded(t, devserver.Config{Dir: f.o.Dir, Rate: 64 << 10})
	opt := fetchOpts(t, f, "1.0.0")
	chunks := filepath.Join(opt.StateDir, "chunks")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		res *cdn.FetchResult
		err error
	}
	done := make(chan result, 1)
	slow := cdntest.NewClient(t, cdntest.ClientConfig(slowURL))
	go func() {
		res, err := cdn.DirectFetch(ctx, slow, opt, nil)
		done <- result{res, err}
	}()
	// Poll the store for the first chunk of a file; the deadline only
	// catches a hang.
	indexChunks := map[content.ChunkID]bool{}
	for _, c := range art.Index.Chunks {
		indexChunks[c.ID] = true
	}
	fileChunk := func(id content.ChunkID) bool { return !indexChunks[id] }
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(cdntest.EventWait)
	for !slices.ContainsFunc(cdntest.StoredChunks(t, chunks), fileChunk) {
		select {
		case <-tick.C:
		case r := <-done:
			t.Fatalf("the fetch ended before a chunk was stored: %+v, %v", r.res, r.err)
		case <-deadline:
			t.Fatalf("no chunk of a file stored within %v", cdntest.EventWait)
		}
	}
	cancel()
	r := <-done
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("interrupted fetch: %v, want context.Canceled", r.err)
	}
	requireNotExist(t, opt.Out)
	kept := cdntest.CheckStore(t, chunks)
	if len(kept) == 0 || len(kept) >= len(art.Chunks()) {
		t.Fatalf("the interrupted fetch stored %d of %d chunks; the test needs a part", len(kept), len(art.Chunks()))
	}
	for id := range indexChunks {
		if !slices.Contains(kept, id) {
			t.Errorf("the interrupted fetch stored chunks of files but not the index's chunk %s", id)
		}
	}

	fast := cdntest.NewClient(t, cdntest.ClientConfig(f.url))
	res := mustFetch(t, fast, opt)
	cdntest.RequireSameTree(t, f.tree, opt.Out)
	if res.ChunksReused != len(kept) || res.ChunksFetched != len(art.Chunks())-len(kept) {
		t.Errorf("resumed fetch reused %d and fetched %d, want %d and %d", res.ChunksReused, res.ChunksFetched, len(kept), len(art.Chunks())-len(kept))
	}
}

// testCorruptChunk damages one chunk body on the origin: the fetch fails
// naming that chunk, after a few attempts, without storing it or creating
// the output, and everything it did store verifies.
func testCorruptChunk(t *testing.T, base *fixture) {
	f := base.clone(t, devserver.Config{})
	_, art := f.manifest(t)
	// Flip a byte of a raw chunk of the random file: raw bodies are
	// hashed as they are, so the damage is certain to show as a digest
	// mismatch.
	var bad content.ChunkRef
	for _, fl := range art.Files {
		if fl.Path == cdntest.TreeBlob && len(fl.Chunks) > 0 && fl.Chunks[0].Enc == content.EncodingRaw {
			bad = fl.Chunks[0]
		}
	}
	if bad.Size == 0 || bad.Pack != f.pack(t) {
		t.Fatalf("%s has no raw chunk in the files' pack", cdntest.TreeBlob)
	}
	packFile := f.o.PackFile(bad.Pack)
	b, err := os.ReadFile(packFile)
	if err != nil {
		t.Fatal(err)
	}
	b[bad.Offset+int64(bad.Stored)/2] ^= 0x40
	if err := os.WriteFile(packFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := cdntest.ClientConfig(f.url)
	c := cdntest.NewClient(t, cfg)
	opt := fetchOpts(t, f, "1.0.0")

	_, err = directFetch(t, c, opt)
	var ce *content.ChunkError
	if !errors.Is(err, content.ErrChunkCorrupt) || !errors.As(err, &ce) || ce.ID != bad.ID {
		t.Fatalf("fetch of a damaged pack: %v; want a ChunkError for %s wrapping ErrChunkCorrupt", err, bad.ID)
	}
	if !strings.Contains(err.Error(), bad.ID.String()) {
		t.Errorf("error %q does not name the chunk %s", err, bad.ID)
	}
	requireNotExist(t, opt.Out)
	stored := cdntest.CheckStore(t, filepath.Join(opt.StateDir, "chunks"))
	if slices.Contains(stored, bad.ID) {
		t.Errorf("the damaged chunk %s is in the store", bad.ID)
	}
	// Bad bytes are retried (a torn cache heals) but fewer times than a
	// transport error.
	packReqs := requestsTo(f.reqs.Wait(t, int(c.Requests())), f.packPath(t))
	if n := len(packReqs); n < 2 || n >= 8 {
		t.Errorf("the damaged pack was requested %d times, want a few retries, fewer than the 8 attempts", n)
	}
}

// testPackNotOnOrigin deletes the files' pack, or the index's: a 404 is
// final, not retried.
func testPackNotOnOrigin(t *testing.T, base *fixture) {
	for _, tt := range []struct {
		name     string
		pack     func(f *fixture) content.Digest
		requests int64 // after the metadata
	}{
		// The manifest, the index's range, the files' pack once.
		{"files", func(f *fixture) content.Digest { return f.pack(t) }, 3},
		// The manifest, the index's pack once; nothing is fetched yet.
		{"index", func(f *fixture) content.Digest { return f.indexPack(t) }, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := base.clone(t, devserver.Config{})
			pack := tt.pack(f)
			if err := os.Remove(f.o.PackFile(pack)); err != nil {
				t.Fatal(err)
			}
			c := cdntest.NewClient(t, cdntest.ClientConfig(f.url))
			opt := fetchOpts(t, f, "1.0.0")

			res, err := directFetch(t, c, opt)
			var he *cdn.HTTPError
			if !errors.Is(err, cdn.ErrNotOnOrigin) || !errors.As(err, &he) || he.Status != http.StatusNotFound {
				t.Fatalf("fetch of a deleted pack: %v, want a 404 matching ErrNotOnOrigin", err)
			}
			if !strings.Contains(err.Error(), pack.String()) {
				t.Errorf("error %q does not name the pack", err)
			}
			if want := metadataRequests + tt.requests; c.Requests() != want || res == nil || res.Requests != want {
				t.Errorf("%d requests, result %+v: want %d, the pack asked for once", c.Requests(), res, want)
			}
			requireNotExist(t, opt.Out)
		})
	}
}

// testManifestNotOnOrigin deletes the manifest: the 404 from go-tuf's
// download matches ErrNotOnOrigin like a missing pack, and is not retried.
func testManifestNotOnOrigin(t *testing.T, base *fixture) {
	f := base.clone(t, devserver.Config{})
	if err := os.Remove(f.o.TargetFile(f.rel.Target, content.Digest(f.rel.ReleaseID))); err != nil {
		t.Fatal(err)
	}
	c := cdntest.NewClient(t, cdntest.ClientConfig(f.url))
	opt := fetchOpts(t, f, "1.0.0")

	_, err := directFetch(t, c, opt)
	if !errors.Is(err, cdn.ErrNotOnOrigin) {
		t.Fatalf("fetch of a deleted manifest: %v, want ErrNotOnOrigin", err)
	}
	if n := c.Requests(); n != metadataRequests+1 {
		t.Errorf("%d requests, want %d: a 404 is not retried", n, metadataRequests+1)
	}
	requireNotExist(t, opt.Out)
}

// testRetriesServerErrors answers 5xx for a while (retried until success,
// on packs and metadata) or for ever (given up after the attempts, with
// the status in the error).
func testRetriesServerErrors(t *testing.T, base *fixture) {
	f := base.clone(t, devserver.Config{})
	c := cdntest.NewClient(t, cdntest.ClientConfig(f.url))

	for name, packPath := range map[string]string{"pack": f.packPath(t), "index pack": f.indexPackPath(t)} {
		t.Run(name, func(t *testing.T) {
			f.srv.Faults.Set(packPath, devserver.Fault{Status: http.StatusServiceUnavailable}, 2)
			before := len(f.reqs.Wait(t, int(c.Requests())))
			opt := fetchOpts(t, f, "1.0.0")
			res := mustFetch(t, c, opt)
			cdntest.RequireSameTree(t, f.tree, opt.Out)
			packReqs := requestsTo(f.reqs.Wait(t, before+int(res.Requests))[before:], packPath)
			if len(packReqs) != 3 || packReqs[0].Status != 503 || packReqs[1].Status != 503 || packReqs[2].Status != 206 {
				t.Errorf("pack requests %+v, want 503, 503, 206", packReqs)
			}
		})
	}
	t.Run("metadata", func(t *testing.T) {
		// Every path: the first three requests (all metadata) fail.
		f.srv.Faults.Set("", devserver.Fault{Status: http.StatusBadGateway}, 3)
		opt := fetchOpts(t, f, "1.0.0")
		res := mustFetch(t, c, opt)
		cdntest.RequireSameTree(t, f.tree, opt.Out)
		if want := int64(metadataRequests + 3 + 3); res.Requests != want {
			t.Errorf("%d requests, want %d", res.Requests, want)
		}
	})
	t.Run("metadata forever", func(t *testing.T) {
		f.srv.Faults.Set("/metadata/timestamp.json", devserver.Fault{Status: http.StatusServiceUnavailable}, 0)
		defer f.srv.Faults.Set("", devserver.Fault{}, 0)
		before := c.Requests()
		opt := fetchOpts(t, f, "1.0.0")
		_, err := directFetch(t, c, opt)
		var he *cdn.HTTPError
		if !errors.Is(err, cdn.ErrGaveUp) || !errors.As(err, &he) || he.Status != http.StatusServiceUnavailable {
			t.Fatalf("fetch with a failing timestamp: %v, want ErrGaveUp with the 503", err)
		}
		if n := c.Requests() - before; n != 1+8 {
			t.Errorf("%d requests, want 9: the root probe and the default 8 attempts at the timestamp", n)
		}
		requireNotExist(t, opt.Out)
	})
	t.Run("forever", func(t *testing.T) {
		f.srv.Faults.Set(f.packPath(t), devserver.Fault{Status: http.StatusServiceUnavailable}, 0)
		defer f.srv.Faults.Set("", devserver.Fault{}, 0)
		opt := fetchOpts(t, f, "1.0.0")
		res, err := directFetch(t, c, opt)
		var he *cdn.HTTPError
		if !errors.Is(err, cdn.ErrGaveUp) || !errors.As(err, &he) || he.Status != http.StatusServiceUnavailable {
			t.Fatalf("fetch from a failing pack: %v, want ErrGaveUp with the 503", err)
		}
		// The manifest, the index's range, and the attempts.
		if want := int64(metadataRequests + 2 + 8); res.Requests != want {
			t.Errorf("%d requests, want %d: the default 8 attempts at the pack", res.Requests, want)
		}
		requireNotExist(t, opt.Out)
	})
}

// testStalledResponse sends headers and then nothing for the files' pack:
// the idle timeout aborts the request and the retry succeeds.
func testStalledResponse(t *testing.T, base *fixture) {
	f := base.clone(t, devserver.Config{})
	packSize := f.packSize(t, f.pack(t))
	f.srv.Faults.Set(f.packPath(t), devserver.Fault{Stall: true}, 1)
	cfg := cdntest.ClientConfig(f.url)
	cfg.IdleTimeout = time.Second
	c := cdntest.NewClient(t, cfg)
	opt := fetchOpts(t, f, "1.0.0")

	res := mustFetch(t, c, opt)
	cdntest.RequireSameTree(t, f.tree, opt.Out)
	// The server logs a request when its handler ends: the stalled one
	// ends when it notices the client gave up, which may be after the
	// retry is served.
	packReqs := requestsTo(f.reqs.Wait(t, int(res.Requests)), f.packPath(t))
	stalled := slices.ContainsFunc(packReqs, func(r cdntest.Request) bool { return r.Bytes == 0 })
	whole := slices.ContainsFunc(packReqs, func(r cdntest.Request) bool { return r.RangeStart() == 0 && r.Bytes == packSize })
	if len(packReqs) < 2 || !stalled || !whole {
		t.Errorf("pack requests %+v, want a stalled one and the whole range again", packReqs)
	}
}

// testDiskFull fetches onto a disk too small for the release: the error
// wraps ENOSPC and names the chunk, the store holds only verified chunks,
// and once the disk grows the next fetch reuses every one of them.
func testDiskFull(t *testing.T, base *fixture) {
	f := base.clone(t, devserver.Config{})
	_, art := f.manifest(t)
	opt := fetchOpts(t, f, "1.0.0")
	chunks := filepath.Join(opt.StateDir, "chunks")
	// Room for about a third of the pack.
	disk := cdntest.MountTmpfs(t, chunks, f.rel.NewBytes/3)
	c := cdntest.NewClient(t, cdntest.ClientConfig(f.url))

	res, err := directFetch(t, c, opt)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("fetch onto a full disk: %v, want ENOSPC", err)
	}
	var named *content.ChunkRef
	for _, r := range art.Chunks() {
		if strings.Contains(err.Error(), "chunk "+r.ID.String()) {
			named = &r
		}
	}
	if named == nil {
		t.Errorf("error %q names no chunk of the release", err)
	}
	var se *cdn.SinkError
	if !errors.As(err, &se) {
		t.Errorf("error %q is not a SinkError", err)
	}
	requireNotExist(t, opt.Out)
	kept := cdntest.CheckStore(t, chunks)
	if len(kept) == 0 || len(kept) >= len(art.Chunks()) || res.ChunksFetched != len(kept) {
		t.Fatalf("stored %d of %d chunks (result says %d); want a part", len(kept), len(art.Chunks()), res.ChunksFetched)
	}
	if named != nil && slices.Contains(kept, named.ID) {
		t.Errorf("the chunk the error names, %s, is in the store", named.ID)
	}

	disk.Resize(64 << 20)
	res = mustFetch(t, c, opt)
	cdntest.RequireSameTree(t, f.tree, opt.Out)
	if res.ChunksReused != len(kept) || res.ChunksFetched != len(art.Chunks())-len(kept) {
		t.Errorf("after the disk grew: reused %d, fetched %d; want %d, %d", res.ChunksReused, res.ChunksFetched, len(kept), len(art.Chunks())-len(kept))
	}
}
