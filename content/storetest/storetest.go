package storetest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/meshcast/meshcast/content"
)

// Run runs the conformance suite. open returns a new, empty store; it is
// called once per subtest and should register its own cleanup on t.
//
// A store that writes behind (content.DiskStore) holds a chunk in memory
// between Put and its commit. If it has a Flush() error method, the suite
// calls it at points where it wants some chunks committed and others
// perhaps still pending, so that both states are tested, together, for
// every part of the contract; run it also over a store whose commits are
// held (and without Flush) to test the pending state alone.
func Run(t *testing.T, open func(t testing.TB) content.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s content.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"Has", testHas},
		{"IdempotentPut", testIdempotentPut},
		{"PutCopiesBody", testPutCopiesBody},
		{"GetReturnsCopy", testGetReturnsCopy},
		{"CorruptRefused", testCorruptRefused},
		{"BadEncodingRefused", testBadEncodingRefused},
		{"GetMissing", testGetMissing},
		{"Walk", testWalk},
		{"WalkStops", testWalkStops},
		{"GC", testGC},
		{"Remove", testRemove},
		{"Concurrent", testConcurrent},
		{"GCConcurrentWithPut", testGCConcurrentWithPut},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

// RandomData returns n deterministic pseudo-random bytes for seed; such
// data does not compress.
func RandomData(seed uint64, n int) []byte {
	b := make([]byte, (n+7)&^7)
	x := seed
	for i := 0; i < len(b); i += 8 {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		binary.LittleEndian.PutUint64(b[i:], z^(z>>31))
	}
	return b[:n]
}

// TextData returns n deterministic bytes that compress well.
func TextData(seed uint64, n int) []byte {
	var b []byte
	for i := 0; len(b) < n; i++ {
		b = fmt.Appendf(b, "line %d of chunk %d: the quick brown fox jumps over the lazy dog\n", i, seed)
	}
	return b[:n]
}

var (
	compressorOnce sync.Once
	compressor     *content.Compressor
	compressorErr  error
)

// RawChunk returns data as a raw chunk.
func RawChunk(data []byte) content.Chunk {
	return content.Chunk{ID: content.SumChunk(data), Size: len(data), Enc: content.EncodingRaw, Body: append([]byte(nil), data...)}
}

// ZstdChunk returns data as a zstd chunk; data must compress.
func ZstdChunk(tb testing.TB, data []byte) content.Chunk {
	tb.Helper()
	compressorOnce.Do(func() { compressor, compressorErr = content.NewCompressor(content.DefaultLevel) })
	if compressorErr != nil {
		tb.Fatal(compressorErr)
	}
	enc, body := compressor.Encode(nil, data)
	if enc != content.EncodingZstd {
		tb.Fatalf("%d bytes of test data did not compress", len(data))
	}
	return content.Chunk{ID: content.SumChunk(data), Size: len(data), Enc: enc, Body: body}
}

// Chunks returns n distinct chunks, alternating raw and zstd, with seeds
// from seed on.
func Chunks(tb testing.TB, seed uint64, n, size int) []content.Chunk {
	tb.Helper()
	cs := make([]content.Chunk, n)
	for i := range cs {
		if i%2 == 0 {
			cs[i] = RawChunk(RandomData(seed+uint64(i), size))
		} else {
			cs[i] = ZstdChunk(tb, TextData(seed+uint64(i), size))
		}
	}
	return cs
}

// flush commits what s holds in memory, if s writes behind.
func flush(tb testing.TB, s content.Store) {
	tb.Helper()
	f, ok := s.(interface{ Flush() error })
	if !ok {
		return
	}
	if err := f.Flush(); err != nil {
		tb.Fatalf("Flush: %v", err)
	}
}

func put(tb testing.TB, s content.Store, cs ...content.Chunk) {
	tb.Helper()
	for _, c := range cs {
		if err := s.Put(c); err != nil {
			tb.Fatalf("Put %s: %v", c.ID, err)
		}
	}
}

// checkGet checks that s returns c, and that its body decodes to bytes
// that hash to c.ID.
func checkGet(tb testing.TB, s content.Store, c content.Chunk) {
	tb.Helper()
	got, err := s.Get(c.ID)
	if err != nil {
		tb.Fatalf("Get %s: %v", c.ID, err)
	}
	if got.ID != c.ID || got.Size != c.Size || got.Enc != c.Enc || !bytes.Equal(got.Body, c.Body) {
		tb.Fatalf("Get %s returned id %s size %d enc %s and %d body bytes; want size %d enc %s and %d bytes",
			c.ID, got.ID, got.Size, got.Enc, len(got.Body), c.Size, c.Enc, len(c.Body))
	}
	if _, err := content.DecodeChunk(nil, c.ID, got.Size, got.Enc, got.Body); err != nil {
		tb.Fatalf("Get %s returned a body that does not verify: %v", c.ID, err)
	}
}

func walkIDs(tb testing.TB, s content.Store) map[content.ChunkID]int {
	tb.Helper()
	seen := make(map[content.ChunkID]int)
	if err := s.Walk(func(id content.ChunkID) error {
		seen[id]++
		return nil
	}); err != nil {
		tb.Fatalf("Walk: %v", err)
	}
	return seen
}

// checkHolds checks that s holds exactly want, by Walk and by Has.
func checkHolds(tb testing.TB, s content.Store, want []content.Chunk) {
	tb.Helper()
	seen := walkIDs(tb, s)
	for id, n := range seen {
		if n != 1 {
			tb.Errorf("Walk visited %s %d times", id, n)
		}
	}
	wantSet := make(map[content.ChunkID]bool, len(want))
	for _, c := range want {
		wantSet[c.ID] = true
		if seen[c.ID] == 0 {
			tb.Errorf("Walk did not visit %s", c.ID)
		}
		if !s.Has(c.ID) {
			tb.Errorf("Has(%s) = false for a chunk the store should hold", c.ID)
		}
	}
	for id := range seen {
		if !wantSet[id] {
			tb.Errorf("Walk visited %s, which the store should not hold", id)
		}
	}
	if tb.Failed() {
		tb.FailNow()
	}
}

func testRoundTrip(t *testing.T, s content.Store) {
	raw := RawChunk(RandomData(1, 5000))
	z := ZstdChunk(t, TextData(2, 20000))
	one := RawChunk([]byte{7})
	put(t, s, raw, z, one)
	for _, c := range []content.Chunk{raw, z, one} {
		checkGet(t, s, c)
		got, _ := s.Get(c.ID)
		data, err := content.DecodeChunk(nil, got.ID, got.Size, got.Enc, got.Body)
		if err != nil || content.SumChunk(data) != c.ID {
			t.Fatalf("%s does not decode to its bytes: %v", c.ID, err)
		}
	}
	checkHolds(t, s, []content.Chunk{raw, z, one})
}

func testHas(t *testing.T, s content.Store) {
	c := RawChunk(RandomData(3, 100))
	if s.Has(c.ID) {
		t.Fatal("an empty store has a chunk")
	}
	put(t, s, c)
	if !s.Has(c.ID) {
		t.Fatal("Has is false after Put")
	}
	if s.Has(content.SumChunk([]byte("other"))) {
		t.Fatal("Has is true for a chunk never put")
	}
}

func testIdempotentPut(t *testing.T, s content.Store) {
	data := TextData(4, 10000)
	raw := RawChunk(data)
	put(t, s, raw, raw, raw)
	// The same id in another encoding: storing a chunk already held is a
	// no-op, so the first body stays, whether it is committed or not.
	put(t, s, ZstdChunk(t, data))
	checkGet(t, s, raw)
	flush(t, s)
	put(t, s, ZstdChunk(t, data), raw)
	checkGet(t, s, raw)
	checkHolds(t, s, []content.Chunk{raw})
}

func testPutCopiesBody(t *testing.T, s content.Store) {
	c := RawChunk(RandomData(5, 3000))
	body := append([]byte(nil), c.Body...)
	put(t, s, content.Chunk{ID: c.ID, Size: c.Size, Enc: c.Enc, Body: body})
	clear(body) // the caller reuses its buffer
	checkGet(t, s, c)
}

func testGetReturnsCopy(t *testing.T, s content.Store) {
	c := ZstdChunk(t, TextData(6, 8000))
	put(t, s, c)
	got, err := s.Get(c.ID)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got.Body {
		got.Body[i] ^= 0xff
	}
	checkGet(t, s, c)
}

func wantRefused(tb testing.TB, s content.Store, c content.Chunk, sentinel error) {
	tb.Helper()
	err := s.Put(c)
	if !errors.Is(err, sentinel) {
		tb.Fatalf("Put of a bad chunk: got %v, want an error wrapping %v", err, sentinel)
	}
	var ce *content.ChunkError
	if !errors.As(err, &ce) || ce.ID != c.ID {
		tb.Fatalf("Put error %v does not name chunk %s", err, c.ID)
	}
	if s.Has(c.ID) {
		tb.Fatal("a refused chunk is held")
	}
	if _, err := s.Get(c.ID); !errors.Is(err, content.ErrNotFound) {
		tb.Fatalf("Get of a refused chunk: got %v, want ErrNotFound", err)
	}
}

func testCorruptRefused(t *testing.T, s content.Store) {
	good := RawChunk(RandomData(7, 4000))
	flipped := good
	flipped.Body = append([]byte(nil), good.Body...)
	flipped.Body[1234] ^= 1
	wantRefused(t, s, flipped, content.ErrChunkCorrupt)

	short := good
	short.Body = good.Body[:len(good.Body)-1]
	wantRefused(t, s, short, content.ErrChunkCorrupt)

	wrongSize := good
	wrongSize.Size++
	wantRefused(t, s, wrongSize, content.ErrChunkCorrupt)

	z := ZstdChunk(t, TextData(8, 9000))
	other := ZstdChunk(t, TextData(9, 9000))
	swapped := content.Chunk{ID: z.ID, Size: z.Size, Enc: z.Enc, Body: other.Body}
	wantRefused(t, s, swapped, content.ErrChunkCorrupt)

	checkHolds(t, s, nil)
	// The good chunk is still accepted afterwards.
	put(t, s, good)
	checkHolds(t, s, []content.Chunk{good})
}

func testBadEncodingRefused(t *testing.T, s content.Store) {
	c := RawChunk(RandomData(10, 500))
	unknown := c
	unknown.Enc = 9
	wantRefused(t, s, unknown, content.ErrChunkEncoding)

	garbage := c
	garbage.Enc = content.EncodingZstd
	wantRefused(t, s, garbage, content.ErrChunkEncoding)

	huge := c
	huge.Size = content.MaxChunkSize + 1
	wantRefused(t, s, huge, content.ErrChunkEncoding)

	// No chunk is empty: the format's chunks have 1..MaxChunkSize bytes.
	wantRefused(t, s, RawChunk(nil), content.ErrChunkEncoding)
	checkHolds(t, s, nil)
}

func testGetMissing(t *testing.T, s content.Store) {
	id := content.SumChunk([]byte("never stored"))
	_, err := s.Get(id)
	if !errors.Is(err, content.ErrNotFound) {
		t.Fatalf("Get of a missing chunk: got %v, want ErrNotFound", err)
	}
	put(t, s, RawChunk([]byte("stored")))
	if _, err := s.Get(id); !errors.Is(err, content.ErrNotFound) {
		t.Fatalf("Get of a missing chunk in a non-empty store: got %v", err)
	}
}

func testWalk(t *testing.T, s content.Store) {
	checkHolds(t, s, nil)
	cs := Chunks(t, 100, 50, 700)
	put(t, s, cs[:25]...)
	flush(t, s)
	put(t, s, cs[25:]...)
	checkHolds(t, s, cs)
}

func testWalkStops(t *testing.T, s content.Store) {
	put(t, s, Chunks(t, 200, 10, 100)...)
	stop := errors.New("enough")
	calls := 0
	err := s.Walk(func(content.ChunkID) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("Walk returned %v, want fn's error", err)
	}
	if calls != 3 {
		t.Fatalf("Walk called fn %d times after it returned an error on call 3", calls)
	}
}

func testGC(t *testing.T, s content.Store) {
	cs := Chunks(t, 300, 40, 1000)
	put(t, s, cs[:20]...)
	flush(t, s)
	put(t, s, cs[20:]...)
	var kept, removed []content.Chunk
	keepSet := make(map[content.ChunkID]bool)
	var removedBytes int64
	for i, c := range cs {
		if i%3 == 0 {
			removed = append(removed, c)
			removedBytes += int64(len(c.Body))
		} else {
			kept = append(kept, c)
			keepSet[c.ID] = true
		}
	}
	var asked sync.Map
	st, err := s.GC(func(id content.ChunkID) bool {
		asked.Store(id, true)
		return keepSet[id]
	})
	if err != nil {
		t.Fatalf("GC: %v", err)
	}
	if st.Kept != len(kept) || st.Removed != len(removed) {
		t.Fatalf("GC stats: kept %d removed %d, want %d and %d", st.Kept, st.Removed, len(kept), len(removed))
	}
	// FreedBytes counts at least the bodies; an implementation may add a
	// small per-chunk overhead such as a header.
	if st.FreedBytes < removedBytes || st.FreedBytes > removedBytes+int64(len(removed))*4096 {
		t.Fatalf("GC freed %d bytes; the removed bodies hold %d", st.FreedBytes, removedBytes)
	}
	for _, c := range cs {
		if _, ok := asked.Load(c.ID); !ok {
			t.Fatalf("GC never asked keep about %s", c.ID)
		}
	}
	checkHolds(t, s, kept)
	for _, c := range kept {
		checkGet(t, s, c)
	}
	for _, c := range removed {
		if _, err := s.Get(c.ID); !errors.Is(err, content.ErrNotFound) {
			t.Fatalf("Get of a collected chunk: %v", err)
		}
	}
	// A chunk collected while pending is not committed afterwards.
	flush(t, s)
	checkHolds(t, s, kept)

	st, err = s.GC(func(content.ChunkID) bool { return true })
	if err != nil || st != (content.GCStats{Kept: len(kept)}) {
		t.Fatalf("second GC keeping everything: %+v, %v", st, err)
	}
	st, err = s.GC(func(content.ChunkID) bool { return false })
	if err != nil || st.Kept != 0 || st.Removed != len(kept) {
		t.Fatalf("GC removing everything: %+v, %v", st, err)
	}
	checkHolds(t, s, nil)
	// A collected chunk can be put again.
	put(t, s, removed[0])
	checkGet(t, s, removed[0])
	flush(t, s)
	checkHolds(t, s, removed[:1])
}

func testRemove(t *testing.T, s content.Store) {
	cs := Chunks(t, 400, 4, 500)
	put(t, s, cs[:2]...)
	flush(t, s)
	put(t, s, cs[2:]...)
	// cs[1] is committed; cs[3] perhaps not yet.
	for _, c := range []content.Chunk{cs[1], cs[3]} {
		if err := s.Remove(c.ID); err != nil {
			t.Fatal(err)
		}
		if s.Has(c.ID) {
			t.Fatal("Has is true after Remove")
		}
		if _, err := s.Get(c.ID); !errors.Is(err, content.ErrNotFound) {
			t.Fatalf("Get after Remove: %v", err)
		}
		if err := s.Remove(c.ID); err != nil {
			t.Fatalf("Remove of a chunk not held: %v", err)
		}
	}
	if err := s.Remove(content.SumChunk([]byte("never"))); err != nil {
		t.Fatalf("Remove of a chunk never held: %v", err)
	}
	checkHolds(t, s, []content.Chunk{cs[0], cs[2]})
	// A removed chunk stays removed once the store has committed.
	flush(t, s)
	checkHolds(t, s, []content.Chunk{cs[0], cs[2]})
	put(t, s, cs[1], cs[3])
	checkGet(t, s, cs[1])
	checkGet(t, s, cs[3])
	flush(t, s)
	checkHolds(t, s, cs)
}

// testConcurrent runs Put, Get, Has and Walk on shared and private chunks
// from many goroutines; run it under -race.
func testConcurrent(t *testing.T, s content.Store) {
	const workers = 8
	shared := Chunks(t, 500, 12, 2000)
	private := make([][]content.Chunk, workers)
	for w := range private {
		private[w] = Chunks(t, 1000+uint64(w)*100, 6, 1500)
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			mine := append(append([]content.Chunk(nil), private[w]...), shared...)
			for round := range 3 {
				for i := range mine {
					c := mine[(i+w+round)%len(mine)]
					if err := s.Put(c); err != nil {
						t.Errorf("worker %d: Put %s: %v", w, c.ID.Short(), err)
						return
					}
					if !s.Has(c.ID) {
						t.Errorf("worker %d: Has(%s) false right after Put", w, c.ID.Short())
						return
					}
					got, err := s.Get(c.ID)
					if err != nil {
						t.Errorf("worker %d: Get %s: %v", w, c.ID.Short(), err)
						return
					}
					if err := got.Verify(); err != nil || got.ID != c.ID {
						t.Errorf("worker %d: Get %s returned a chunk that does not verify: %v", w, c.ID.Short(), err)
						return
					}
				}
				if err := s.Walk(func(id content.ChunkID) error {
					if !s.Has(id) {
						return fmt.Errorf("walked %s but Has is false", id.Short())
					}
					return nil
				}); err != nil {
					t.Errorf("worker %d: Walk: %v", w, err)
					return
				}
				runtime.Gosched()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	all := append([]content.Chunk(nil), shared...)
	for _, p := range private {
		all = append(all, p...)
	}
	checkHolds(t, s, all)
}

// testGCConcurrentWithPut checks the GC contract: a Put that runs
// concurrently with GC is kept. Every Put here starts after GC has started
// (from inside the first keep call), so each either overlaps GC or follows
// it, and in both cases its chunk must be held afterwards; that holds for
// chunks new to the store and for chunks GC is collecting. Whether GC counts
// such a chunk as kept or removed is up to the implementation, so only the
// untouched chunks' fate is checked exactly.
func testGCConcurrentWithPut(t *testing.T, s content.Store) {
	keep := Chunks(t, 2000, 30, 300)
	drop := Chunks(t, 3000, 150, 300)
	reput := Chunks(t, 4000, 60, 300) // held and not kept, then put again during GC
	fresh := Chunks(t, 5000, 60, 300) // new, put during GC
	put(t, s, keep[:15]...)
	put(t, s, drop[:75]...)
	put(t, s, reput[:30]...)
	flush(t, s)
	// The rest perhaps still pending when GC starts.
	put(t, s, keep[15:]...)
	put(t, s, drop[75:]...)
	put(t, s, reput[30:]...)
	keepSet := make(map[content.ChunkID]bool)
	for _, c := range keep {
		keepSet[c.ID] = true
	}

	var (
		start sync.Once
		wg    sync.WaitGroup
		errs  = make(chan error, len(reput)+len(fresh))
	)
	putAll := func(cs []content.Chunk) {
		for _, c := range cs {
			if err := s.Put(c); err != nil {
				//lint:ignore ST1005 only ever passed to t.Error, never wrapped; it starts with the Store method Put, like this file's other failure messages.
				errs <- fmt.Errorf("Put %s during GC: %w", c.ID.Short(), err)
			}
		}
	}
	st, err := s.GC(func(id content.ChunkID) bool {
		start.Do(func() {
			// keep must not block on the store: an implementation may
			// hold a lock while it calls keep.
			wg.Go(func() { putAll(reput) })
			wg.Go(func() { putAll(fresh) })
		})
		runtime.Gosched()
		return keepSet[id]
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err != nil {
		t.Fatalf("GC: %v", err)
	}
	if st.Removed < len(drop) {
		t.Fatalf("GC removed %d chunks, but %d were neither kept nor put again", st.Removed, len(drop))
	}
	var missing int
	for _, c := range append(append([]content.Chunk(nil), reput...), fresh...) {
		if !s.Has(c.ID) {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d chunks whose Put ran after GC started are gone", missing)
	}
	want := append(append(append([]content.Chunk(nil), keep...), reput...), fresh...)
	checkHolds(t, s, want)
	for _, c := range want {
		checkGet(t, s, c)
	}
	flush(t, s)
	checkHolds(t, s, want)
}
