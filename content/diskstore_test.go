package content_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/content/storetest"
)

// Tests of the DiskStore's files: the segment format, what opening a
// store makes of crashes, damage and the previous layout, and GC's work on
// segments. The record format is written out again here (see
// diskstore_segment.go) so that a change to it fails these tests.
const (
	recHeaderLen  = 52
	kindChunk     = 1
	kindTombstone = 2
)

var (
	castagnoli  = crc32.MakeTable(crc32.Castagnoli)
	segmentName = regexp.MustCompile(`^[0-9a-f]{8}\.seg$`)
)

// recordHeader builds a record header.
func recordHeader(kind byte, enc content.Encoding, size, bodyLen int, id content.ChunkID) []byte {
	b := []byte{'M', 'C', 'S', 1, kind, byte(enc), 0, 0}
	b = binary.LittleEndian.AppendUint32(b, uint32(size))
	b = binary.LittleEndian.AppendUint32(b, uint32(bodyLen))
	b = append(b, id[:]...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// chunkRecord is c's record, as it must appear in a segment.
func chunkRecord(c content.Chunk) []byte {
	return append(recordHeader(kindChunk, c.Enc, c.Size, len(c.Body), c.ID), c.Body...)
}

// resumHeader puts the right checksum in a record header that a test edited.
func resumHeader(hdr []byte) {
	binary.LittleEndian.PutUint32(hdr[48:52], crc32.Checksum(hdr[:48], castagnoli))
}

// segmentFiles returns the paths of the segment files in a store's
// directory, oldest first.
func segmentFiles(tb testing.TB, dir string) []string {
	tb.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "segments"))
	if err != nil {
		tb.Fatal(err)
	}
	var paths []string
	for _, e := range ents {
		if !segmentName.MatchString(e.Name()) {
			tb.Fatalf("%s in segments/ is not a segment", e.Name())
		}
		paths = append(paths, filepath.Join(dir, "segments", e.Name()))
	}
	return paths // ReadDir sorts by name, which is by number
}

// record is a record found in a segment file.
type record struct {
	file string
	off  int64
	kind byte
	id   content.ChunkID
	len  int64 // header and body
}

// records lists the records of a store's segments, walking each file by
// the body lengths its headers give, up to the first header that is not
// one.
func records(tb testing.TB, dir string) []record {
	tb.Helper()
	var rs []record
	for _, p := range segmentFiles(tb, dir) {
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		for off := 0; off+recHeaderLen <= len(b) && string(b[off:off+4]) == "MCS\x01"; {
			n := recHeaderLen + int(binary.LittleEndian.Uint32(b[off+12:]))
			rs = append(rs, record{p, int64(off), b[off+4], content.ChunkID(b[off+16 : off+48]), int64(n)})
			off += n
		}
	}
	return rs
}

// recordOf returns the chunk record of id, failing the test unless there
// is exactly one.
func recordOf(tb testing.TB, dir string, id content.ChunkID) record {
	tb.Helper()
	var found []record
	for _, r := range records(tb, dir) {
		if r.kind == kindChunk && r.id == id {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		tb.Fatalf("%d chunk records of %s in %s", len(found), id.Short(), dir)
	}
	return found[0]
}

// onDisk reports whether a segment in dir holds c's record, byte for byte.
func onDisk(tb testing.TB, dir string, c content.Chunk) bool {
	tb.Helper()
	want := chunkRecord(c)
	for _, p := range segmentFiles(tb, dir) {
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		if bytes.Contains(b, want) {
			return true
		}
	}
	return false
}

// editFile calls edit on the bytes of p at off..off+n and writes them back.
func editFile(tb testing.TB, p string, off int64, n int, edit func(b []byte)) {
	tb.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		tb.Fatal(err)
	}
	edit(b)
	if _, err := f.WriteAt(b, off); err != nil {
		tb.Fatal(err)
	}
}

func appendFile(tb testing.TB, p string, b []byte) {
	tb.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		tb.Fatal(err)
	}
}

func fileSize(tb testing.TB, p string) int64 {
	tb.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		tb.Fatal(err)
	}
	return fi.Size()
}

func exists(tb testing.TB, p string) bool {
	tb.Helper()
	_, err := os.Lstat(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		tb.Fatal(err)
	}
	return err == nil
}

// checkReopened opens the store in dir, checks that every chunk it holds
// verifies and that it holds exactly want, and closes it.
func checkReopened(tb testing.TB, dir string, want []content.Chunk, opts ...content.DiskOption) {
	tb.Helper()
	s, err := content.OpenDiskStore(dir, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	held := verifyAll(tb, s)
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
	if !slices.Equal(sortedIDs(held), sortedIDs(ids(want))) {
		tb.Fatalf("reopened store holds %d chunks, want %d", len(held), len(want))
	}
	scanned, err := content.ScanDiskStore(dir)
	if err != nil || !slices.Equal(sortedIDs(scanned), sortedIDs(held)) {
		tb.Fatalf("ScanDiskStore lists %d chunks (%v), the store held %d", len(scanned), err, len(held))
	}
}

// verifyAll checks that every chunk s holds verifies, and returns them.
func verifyAll(tb testing.TB, s content.Store) []content.ChunkID {
	tb.Helper()
	var held []content.ChunkID
	if err := s.Walk(func(id content.ChunkID) error {
		held = append(held, id)
		c, err := s.Get(id)
		if err != nil {
			return err
		}
		return c.Verify()
	}); err != nil {
		tb.Fatalf("a chunk held does not verify: %v", err)
	}
	return held
}

func ids(cs []content.Chunk) []content.ChunkID {
	out := make([]content.ChunkID, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func sortedIDs(ids []content.ChunkID) []content.ChunkID {
	return slices.SortedFunc(slices.Values(ids), func(a, b content.ChunkID) int { return bytes.Compare(a[:], b[:]) })
}

// TestDiskStoreCrashPoints copies the store's directory at every point of
// commits where a crash would freeze it (before each write, sync and
// segment creation; when a batch is written and synced; when it is
// indexed) and opens a store on each copy: it opens, every chunk it holds
// verifies, and it holds at least every chunk of the batches completed
// before the copy. Segments are small, so batches roll over. A copy reads
// the page cache, so this checks the order of writes, not that syncs
// happened.
func TestDiskStoreCrashPoints(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	type snapshot struct {
		name string
		dir  string
		done []content.ChunkID // chunks of the batches completed
	}
	var (
		snaps   []snapshot
		done    []content.ChunkID // chunks of the batches completed so far
		batch   []content.ChunkID // the running batch
		batches int
	)
	take := func(name string) {
		dst := filepath.Join(t.TempDir(), fmt.Sprint(len(snaps)))
		if err := os.CopyFS(dst, os.DirFS(dir)); err != nil {
			t.Errorf("snapshot %s: %v", name, err)
		}
		snaps = append(snaps, snapshot{name, dst, slices.Clone(done)})
	}
	g := newGate()
	s := openDiskStore(t, dir, content.WithSegmentBytes(50<<10), content.WithTestHooks(content.TestHooks{
		Batch: func(ids []content.ChunkID) {
			done = append(done, batch...) // the previous batch ended
			batch = ids
			batches++
			take(fmt.Sprintf("batch %d taken", batches))
			g.batch(ids)
		},
		Written: func(ids []content.ChunkID) {
			if len(ids) != len(batch) {
				t.Errorf("batch %d: %d of %d chunks written", batches, len(ids), len(batch))
			}
			take(fmt.Sprintf("batch %d written", batches))
		},
		Fault: func() error {
			take(fmt.Sprintf("batch %d, before I/O", batches))
			return nil
		},
	}))
	t.Cleanup(g.open)
	cs := storetest.Chunks(t, 50, 20, 20000)
	mustPut(t, s, cs[0])
	wait(t, g.started, "first batch")
	mustPut(t, s, cs[1:]...)
	g.open()
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	done = append(done, batch...)
	take("flushed")
	if batches != 2 || len(done) != len(cs) || len(segmentFiles(t, dir)) < 4 {
		t.Fatalf("%d batches, %d chunks, %d segments; want 2 batches of all %d chunks over several segments",
			batches, len(done), len(segmentFiles(t, dir)), len(cs))
	}

	all := make(map[content.ChunkID]bool)
	for _, c := range cs {
		all[c.ID] = true
	}
	for _, snap := range snaps {
		r, err := content.OpenDiskStore(snap.dir)
		if err != nil {
			t.Fatalf("%s: %v", snap.name, err)
		}
		held := make(map[content.ChunkID]bool)
		for _, id := range verifyAll(t, r) {
			held[id] = true
			if !all[id] {
				t.Errorf("%s: holds %s, never put", snap.name, id.Short())
			}
		}
		for _, id := range snap.done {
			if !held[id] {
				t.Errorf("%s: %s of a completed batch is not held", snap.name, id.Short())
			}
		}
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	}
	t.Logf("%d snapshots", len(snaps))
}

// TestDiskStoreTornTail appends what a crash in the middle of a commit
// leaves to the newest segment: half a record, or a record whose header is
// right and whose body is not. A store opened again holds neither, cuts
// the segment back, and commits and keeps new chunks.
func TestDiskStoreTornTail(t *testing.T) {
	t.Parallel()
	for name, tail := range map[string]func(c content.Chunk) []byte{
		"half a record": func(c content.Chunk) []byte { r := chunkRecord(c); return r[:len(r)/2] },
		"header only":   func(c content.Chunk) []byte { return chunkRecord(c)[:recHeaderLen] },
		"garbage body": func(c content.Chunk) []byte {
			return append(recordHeader(kindChunk, c.Enc, c.Size, len(c.Body), c.ID), make([]byte, len(c.Body))...)
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cs := storetest.Chunks(t, 70, 4, 5000)
			s := openDiskStore(t, dir)
			mustPut(t, s, cs...)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			segs := segmentFiles(t, dir)
			last := segs[len(segs)-1]
			size := fileSize(t, last)
			torn := storetest.RawChunk(storetest.RandomData(77, 3000))
			appendFile(t, last, tail(torn))
			if ids, err := content.ScanDiskStore(dir); err != nil || slices.Contains(ids, torn.ID) || len(ids) != len(cs) {
				t.Fatalf("ScanDiskStore of the torn store: %d chunks (%v), want the %d put", len(ids), err, len(cs))
			}

			s = openDiskStore(t, dir)
			if s.Has(torn.ID) {
				t.Fatal("the torn record is held")
			}
			if got := fileSize(t, last); got != size {
				t.Fatalf("the torn segment has %d bytes after opening, had %d before the tail", got, size)
			}
			more := storetest.Chunks(t, 80, 2, 5000)
			mustPut(t, s, more...)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			checkReopened(t, dir, append(cs, more...))
		})
	}
}

// TestDiskStoreDamagedSegment damages a record header in a segment that
// is not the newest: opening still works, the chunks before it are held
// and verify, those after it in that segment are lost, and the other
// segments are intact.
func TestDiskStoreDamagedSegment(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openDiskStore(t, dir, content.WithSegmentBytes(16<<10))
	cs := make([]content.Chunk, 12) // 3 records a segment
	for i := range cs {
		cs[i] = storetest.RawChunk(storetest.RandomData(uint64(90+i), 5000))
	}
	mustPut(t, s, cs...)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	first := segmentFiles(t, dir)[0]
	var inFirst []content.ChunkID
	for _, r := range records(t, dir) {
		if r.file == first {
			inFirst = append(inFirst, r.id)
		}
	}
	if len(inFirst) != 3 || len(segmentFiles(t, dir)) != 4 {
		t.Fatalf("%d segments, %d records in the first; want 4 and 3", len(segmentFiles(t, dir)), len(inFirst))
	}
	damaged := recordOf(t, dir, inFirst[1])
	editFile(t, first, damaged.off, 1, func(b []byte) { b[0] = 'X' })

	s = openDiskStore(t, dir)
	for _, c := range cs {
		switch got, err := s.Get(c.ID); {
		case c.ID == inFirst[0]:
			if err != nil || got.Verify() != nil {
				t.Fatalf("the chunk before the damage: %v", err)
			}
		case c.ID == inFirst[1] || c.ID == inFirst[2]:
			if !errors.Is(err, content.ErrNotFound) {
				t.Fatalf("a chunk at or after the damage: %v, want ErrNotFound", err)
			}
		default:
			if err != nil || got.Verify() != nil {
				t.Fatalf("a chunk of another segment: %v", err)
			}
		}
	}
}

// TestDiskStoreDamagedRecord damages a committed chunk's record in every
// way Get can see: Get returns ErrChunkCorrupt naming the chunk. A damaged
// body is not re-hashed by Get; Verify (or DecodeChunk) finds it.
func TestDiskStoreDamagedRecord(t *testing.T) {
	t.Parallel()
	header := func(edit func(h []byte)) func(p string, r record) {
		return func(p string, r record) {
			editFile(t, p, r.off, recHeaderLen, func(h []byte) { edit(h); resumHeader(h) })
		}
	}
	damage := map[string]func(p string, r record){
		"checksum": func(p string, r record) { editFile(t, p, r.off+20, 1, func(b []byte) { b[0] ^= 1 }) },
		"magic":    header(func(h []byte) { copy(h, "JUNK") }),
		"version":  header(func(h []byte) { h[3] = 2 }),
		"kind":     header(func(h []byte) { h[4] = kindTombstone }),
		"encoding": header(func(h []byte) { h[5] = 9 }),
		"size zero": header(func(h []byte) {
			binary.LittleEndian.PutUint32(h[8:], 0)
		}),
		"size too large": header(func(h []byte) {
			binary.LittleEndian.PutUint32(h[8:], content.MaxChunkSize+1)
		}),
		"body length": header(func(h []byte) {
			binary.LittleEndian.PutUint32(h[12:], binary.LittleEndian.Uint32(h[12:])-1)
		}),
		"other id": header(func(h []byte) { h[16] ^= 1 }),
		"truncated": func(p string, r record) {
			if err := os.Truncate(p, r.off+r.len-1); err != nil {
				t.Fatal(err)
			}
		},
	}
	seed := uint64(10)
	for name, edit := range damage {
		seed++
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := openDiskStore(t, t.TempDir())
			c := storetest.ZstdChunk(t, storetest.TextData(seed, 5000))
			mustPut(t, s, c)
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			r := recordOf(t, s.Dir(), c.ID)
			edit(r.file, r)
			_, err := s.Get(c.ID)
			if !errors.Is(err, content.ErrChunkCorrupt) {
				t.Fatalf("Get of a damaged record: got %v, want ErrChunkCorrupt", err)
			}
			var ce *content.ChunkError
			if !errors.As(err, &ce) || ce.ID != c.ID || !strings.Contains(err.Error(), c.ID.String()) {
				t.Fatalf("error %q does not name chunk %s", err, c.ID)
			}
		})
	}
	t.Run("body", func(t *testing.T) {
		t.Parallel()
		s := openDiskStore(t, t.TempDir())
		c := storetest.ZstdChunk(t, storetest.TextData(9, 5000))
		mustPut(t, s, c)
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		r := recordOf(t, s.Dir(), c.ID)
		editFile(t, r.file, r.off+recHeaderLen+100, 1, func(b []byte) { b[0] ^= 1 })
		got, err := s.Get(c.ID)
		if err != nil {
			t.Fatalf("Get of a record with a damaged body: %v; Get does not re-hash", err)
		}
		var ce *content.ChunkError
		if err := got.Verify(); !errors.As(err, &ce) || ce.ID != c.ID {
			t.Fatalf("Verify of a damaged body: %v, want a ChunkError naming %s", err, c.ID)
		}
	})
}

// TestDiskStoreRemoveDurable: a removed chunk gets a tombstone, and a
// store opened again does not hold it; put again, it is held again.
func TestDiskStoreRemoveDurable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openDiskStore(t, dir)
	cs := storetest.Chunks(t, 600, 6, 4000)
	mustPut(t, s, cs...)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []content.ChunkID{cs[1].ID, cs[4].ID, content.SumChunk([]byte("never"))} {
		if err := s.Remove(id); err != nil {
			t.Fatal(err)
		}
	}
	var tombstones []content.ChunkID
	for _, r := range records(t, dir) {
		if r.kind == kindTombstone {
			tombstones = append(tombstones, r.id)
		}
	}
	if !slices.Equal(tombstones, []content.ChunkID{cs[1].ID, cs[4].ID}) {
		t.Fatalf("tombstones for %v, want the two chunks removed", tombstones)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	kept := []content.Chunk{cs[0], cs[2], cs[3], cs[5]}
	checkReopened(t, dir, kept)

	s = openDiskStore(t, dir)
	mustPut(t, s, cs[1])
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkReopened(t, dir, append(kept, cs[1]))
}

// TestDiskStoreGCSegments: GC deletes a segment whose chunks it all
// removes, compacts one it leaves less than half live (its survivor is
// copied and the file deleted), writes tombstones in the others, and a
// store opened again holds exactly the chunks kept. A GC that removes
// everything leaves no segment.
func TestDiskStoreGCSegments(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opt := content.WithSegmentBytes(32 << 10)
	s := openDiskStore(t, dir, opt)
	cs := make([]content.Chunk, 18) // 3 records a segment, 6 segments
	for i := range cs {
		cs[i] = storetest.RawChunk(storetest.RandomData(uint64(1000+i), 10000))
	}
	mustPut(t, s, cs...)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	segs := segmentFiles(t, dir)
	if len(segs) != 6 {
		t.Fatalf("%d segments, want 6", len(segs))
	}
	in := make(map[string][]content.ChunkID)
	for _, r := range records(t, dir) {
		in[r.file] = append(in[r.file], r.id)
	}
	drop := map[content.ChunkID]bool{
		in[segs[0]][0]: true, in[segs[0]][1]: true, in[segs[0]][2]: true, // deleted
		in[segs[1]][0]: true, in[segs[1]][2]: true, // compacted
		in[segs[2]][1]: true, // a tombstone
		in[segs[5]][0]: true, // a tombstone in the active segment
	}
	var kept []content.Chunk
	for _, c := range cs {
		if !drop[c.ID] {
			kept = append(kept, c)
		}
	}
	st, err := s.GC(func(id content.ChunkID) bool { return !drop[id] })
	if err != nil {
		t.Fatal(err)
	}
	if want := (content.GCStats{Kept: len(kept), Removed: len(drop), FreedBytes: int64(len(drop)) * (recHeaderLen + 10000)}); st != want {
		t.Fatalf("GC: %+v, want %+v", st, want)
	}
	for i, p := range segs {
		if exists(t, p) != (i >= 2) {
			t.Fatalf("after GC, segment %d exists: %v", i, exists(t, p))
		}
	}
	var tombstones []content.ChunkID
	copied := false
	for _, r := range records(t, dir) {
		switch {
		case r.kind == kindTombstone:
			tombstones = append(tombstones, r.id)
		case r.id == in[segs[1]][1]:
			copied = r.file != segs[1]
		}
	}
	if len(tombstones) != 2 || !copied {
		t.Fatalf("after GC: tombstones for %v, survivor copied: %v; want 2 tombstones and the copy", tombstones, copied)
	}
	if held := verifyAll(t, s); !slices.Equal(sortedIDs(held), sortedIDs(ids(kept))) {
		t.Fatalf("after GC the store holds %d chunks, want %d", len(held), len(kept))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkReopened(t, dir, kept)

	s = openDiskStore(t, dir, opt)
	if st, err := s.GC(func(content.ChunkID) bool { return false }); err != nil || st.Removed != len(kept) {
		t.Fatalf("GC of everything: %+v, %v", st, err)
	}
	if segs := segmentFiles(t, dir); len(segs) != 0 {
		t.Fatalf("GC of everything left %v", segs)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkReopened(t, dir, nil)
}

// TestDiskStoreRollOver: segments fill up to their size and are numbered
// in order; a chunk larger than a segment gets one of its own; the
// records follow the order of the Puts.
func TestDiskStoreRollOver(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const segBytes = 64 << 10
	s := openDiskStore(t, dir, content.WithSegmentBytes(segBytes))
	cs := make([]content.Chunk, 20) // 4 records a segment
	for i := range cs {
		cs[i] = storetest.RawChunk(storetest.RandomData(uint64(1100+i), 15000))
	}
	big := storetest.RawChunk(storetest.RandomData(1200, 100<<10))
	mustPut(t, s, cs[:7]...)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, cs[7:]...)
	mustPut(t, s, big)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	all := append(slices.Clone(cs), big)
	segs := segmentFiles(t, dir)
	if len(segs) != 6 {
		t.Fatalf("%d segments, want 6", len(segs))
	}
	for i, p := range segs {
		if filepath.Base(p) != fmt.Sprintf("%08x.seg", i) {
			t.Fatalf("segment %d is %s", i, filepath.Base(p))
		}
		if size := fileSize(t, p); size > segBytes && i != 5 {
			t.Fatalf("%s has %d bytes, more than a segment's %d", p, size, segBytes)
		}
	}
	rs := records(t, dir)
	if len(rs) != len(all) || rs[len(rs)-1].file != segs[5] || rs[len(rs)-2].file != segs[4] {
		t.Fatalf("%d records; want %d, the last alone in the last segment", len(rs), len(all))
	}
	for i, r := range rs {
		if r.id != all[i].ID {
			t.Fatalf("record %d is %s, chunk %d was put", i, r.id.Short(), i)
		}
	}
	checkReopened(t, dir, all)
}

// TestDiskStoreImportsLegacyLayout opens a directory in the layout before
// segments (one file per chunk in two-hex shards, tmp/ for files being
// written): the chunks that verify are imported, the others dropped, and
// the old files and directories removed.
func TestDiskStoreImportsLegacyLayout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cs := storetest.Chunks(t, 700, 5, 3000)
	write := func(c content.Chunk, body []byte) {
		h := c.ID.Hex()
		if err := os.MkdirAll(filepath.Join(dir, h[:2]), 0o700); err != nil {
			t.Fatal(err)
		}
		b := []byte{'M', 'C', 'K', 1, byte(c.Enc), 0, 0, 0}
		b = binary.LittleEndian.AppendUint32(b, uint32(c.Size))
		if err := os.WriteFile(filepath.Join(dir, h[:2], h), append(b, body...), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cs[:4] {
		write(c, c.Body)
	}
	bad := cs[4]
	flipped := bytes.Clone(bad.Body)
	flipped[10] ^= 1
	write(bad, flipped)
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]string{"tmp/0123456789abcdef.42": "MCK\x01half", "notes.txt": "not the store's"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	s := openDiskStore(t, dir)
	if held := verifyAll(t, s); !slices.Equal(sortedIDs(held), sortedIDs(ids(cs[:4]))) {
		t.Fatalf("the imported store holds %d chunks, want the %d that verify", len(held), 4)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"notes.txt", "segments"}) {
		t.Fatalf("after the import the directory holds %v", names)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkReopened(t, dir, cs[:4])
}

func TestDiskStorePermissions(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "store")
	s := openDiskStore(t, dir)
	mustPut(t, s, storetest.RawChunk(storetest.RandomData(4, 100)))
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, p := range append([]string{dir, filepath.Join(dir, "segments")}, segmentFiles(t, dir)...) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %v; chunk store entries must not be readable by group or others", p, perm)
		}
	}
}

func TestScanDiskStore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := content.ScanDiskStore(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ScanDiskStore of a directory without a store: %v, want ErrNotExist", err)
	}
	s, g := openHeld(t, dir)
	cs := storetest.Chunks(t, 1300, 3, 2000)
	mustPut(t, s, cs...)
	if got, err := content.ScanDiskStore(dir); err != nil || len(got) != 0 {
		t.Fatalf("ScanDiskStore lists %d pending chunks (%v)", len(got), err)
	}
	g.open()
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(cs[1].ID); err != nil {
		t.Fatal(err)
	}
	want := sortedIDs([]content.ChunkID{cs[0].ID, cs[2].ID})
	if got, err := content.ScanDiskStore(dir); err != nil || !slices.Equal(sortedIDs(got), want) {
		t.Fatalf("ScanDiskStore lists %d chunks (%v), want the 2 committed and not removed", len(got), err)
	}
}
