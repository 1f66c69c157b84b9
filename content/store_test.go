package content_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/content/storetest"
)

// eventWait bounds every wait for an event; it only fails a broken store.
const eventWait = 10 * time.Second

func TestMemStoreConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(testing.TB) content.Store { return content.NewMemStore() })
}

func TestDiskStoreConformance(t *testing.T) {
	t.Parallel()
	t.Run("sync", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, func(tb testing.TB) content.Store { return openDiskStore(tb, tb.TempDir()) })
	})
	t.Run("nosync", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, func(tb testing.TB) content.Store {
			return openDiskStore(tb, tb.TempDir(), content.WithSync(false))
		})
	})
	// Every chunk stays pending: the committer is held until cleanup, and
	// Flush is hidden from the suite, which would wait for it.
	t.Run("pending", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, func(tb testing.TB) content.Store {
			s, _ := openHeld(tb, tb.TempDir())
			return struct{ content.Store }{s}
		})
	})
}

// openDiskStore opens a store that the test closes, and fails the test if
// closing reports a commit error that nothing else did.
func openDiskStore(tb testing.TB, dir string, opts ...content.DiskOption) *content.DiskStore {
	tb.Helper()
	s, err := content.OpenDiskStore(dir, opts...)
	if err != nil {
		tb.Fatalf("OpenDiskStore(%s): %v", dir, err)
	}
	if s.Dir() != dir {
		tb.Fatalf("Dir() = %s, want %s", s.Dir(), dir)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

// gate holds a DiskStore's committer before each batch: started receives
// the batch's ids, and the batch goes on when step or open lets it.
type gate struct {
	started chan []content.ChunkID
	step    chan struct{}
	opened  chan struct{}
	once    sync.Once
}

func newGate() *gate {
	return &gate{started: make(chan []content.ChunkID, 1024), step: make(chan struct{}), opened: make(chan struct{})}
}

func (g *gate) batch(ids []content.ChunkID) {
	select {
	case g.started <- ids:
	default:
	}
	select {
	case <-g.step:
	case <-g.opened:
	}
}

// next lets one batch go on.
func (g *gate) next(tb testing.TB) {
	tb.Helper()
	select {
	case g.step <- struct{}{}:
	case <-time.After(eventWait):
		tb.Fatal("the committer did not reach the gate")
	}
}

func (g *gate) open() { g.once.Do(func() { close(g.opened) }) }

// openHeld opens a store whose committer waits at a gate before each
// batch; the gate opens at cleanup, before the store closes.
func openHeld(tb testing.TB, dir string, opts ...content.DiskOption) (*content.DiskStore, *gate) {
	tb.Helper()
	g := newGate()
	s := openDiskStore(tb, dir, append(opts, content.WithTestHooks(content.TestHooks{Batch: g.batch}))...)
	tb.Cleanup(g.open)
	return s, g
}

// wait returns what ch delivers, failing the test after eventWait.
func wait[T any](tb testing.TB, ch <-chan T, what string) T {
	tb.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(eventWait):
		tb.Fatalf("no %s within %v", what, eventWait)
		panic("unreachable")
	}
}

// chunkPath is where a DiskStore in dir keeps id (see the DiskStore doc
// comment).
func chunkPath(dir string, id content.ChunkID) string {
	h := id.Hex()
	return filepath.Join(dir, h[:2], h)
}

// chunkFile flushes s, so that every chunk put is in its file, and returns
// the file that holds id.
func chunkFile(s *content.DiskStore, id content.ChunkID) string {
	if err := s.Flush(); err != nil {
		panic(fmt.Sprintf("flush %s: %v", s.Dir(), err))
	}
	return chunkPath(s.Dir(), id)
}

func exists(tb testing.TB, p string) bool {
	tb.Helper()
	_, err := os.Lstat(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		tb.Fatal(err)
	}
	return err == nil
}

func tmpEntries(tb testing.TB, dir string) []string {
	tb.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "tmp"))
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func mustPut(tb testing.TB, s content.Store, cs ...content.Chunk) {
	tb.Helper()
	for _, c := range cs {
		if err := s.Put(c); err != nil {
			tb.Fatalf("Put %s: %v", c.ID, err)
		}
	}
}

// TestDiskStoreWriteBehind: Put returns before the chunk's file exists;
// meanwhile Has, Get and Walk see the chunk; Flush puts it in its file.
func TestDiskStoreWriteBehind(t *testing.T) {
	t.Parallel()
	s, g := openHeld(t, t.TempDir())
	z := storetest.ZstdChunk(t, storetest.TextData(1, 30000))
	raw := storetest.RawChunk(storetest.RandomData(2, 5000))
	mustPut(t, s, z)
	wait(t, g.started, "batch") // the committer holds z
	mustPut(t, s, raw, z)       // raw queued; z again is a no-op
	for _, c := range []content.Chunk{z, raw} {
		if exists(t, chunkPath(s.Dir(), c.ID)) {
			t.Fatalf("%s is in its file before the committer ran", c.ID)
		}
		if !s.Has(c.ID) {
			t.Fatalf("Has(%s) is false for a pending chunk", c.ID)
		}
		got, err := s.Get(c.ID)
		if err != nil || got.ID != c.ID || got.Size != c.Size || got.Enc != c.Enc || !bytes.Equal(got.Body, c.Body) {
			t.Fatalf("Get of pending %s: %+v, %v", c.ID, got, err)
		}
		clear(got.Body) // a copy
		if got, _ := s.Get(c.ID); !bytes.Equal(got.Body, c.Body) {
			t.Fatal("Get of a pending chunk returned the store's own body")
		}
	}
	var walked []content.ChunkID
	if err := s.Walk(func(id content.ChunkID) error { walked = append(walked, id); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(walked) != 2 || !slices.Contains(walked, z.ID) || !slices.Contains(walked, raw.ID) {
		t.Fatalf("Walk of pending chunks visited %v", walked)
	}

	g.open()
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []content.Chunk{z, raw} {
		b, err := os.ReadFile(chunkPath(s.Dir(), c.ID))
		if err != nil {
			t.Fatalf("after Flush: %v", err)
		}
		want := []byte{'M', 'C', 'K', 1, byte(c.Enc), 0, 0, 0}
		want = binary.LittleEndian.AppendUint32(want, uint32(c.Size))
		want = append(want, c.Body...)
		if !bytes.Equal(b, want) {
			t.Fatalf("file of %s: %d bytes, header % x; want %d bytes, header % x", c.ID, len(b), b[:min(len(b), 12)], len(want), want[:12])
		}
		if got, err := s.Get(c.ID); err != nil || got.Verify() != nil {
			t.Fatalf("Get of committed %s: %v", c.ID, err)
		}
	}
	if left := tmpEntries(t, s.Dir()); len(left) != 0 {
		t.Fatalf("commit left %v in tmp/", left)
	}
}

// TestDiskStoreCloseDrains: Close returns once everything put is in its
// file, and a store opened again holds it all.
func TestDiskStoreCloseDrains(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, g := openHeld(t, dir)
	cs := storetest.Chunks(t, 1, 10, 3000)
	mustPut(t, s, cs...)
	for _, c := range cs {
		if exists(t, chunkPath(dir, c.ID)) {
			t.Fatalf("%s is in its file before the committer ran", c.ID)
		}
	}
	g.open()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if !exists(t, chunkPath(dir, c.ID)) {
			t.Fatalf("%s is not in its file after Close", c.ID)
		}
	}
	extra := storetest.RawChunk(storetest.RandomData(99, 100))
	if err := s.Put(extra); !errors.Is(err, content.ErrStoreClosed) || !strings.Contains(err.Error(), extra.ID.String()) {
		t.Fatalf("Put after Close: %v, want ErrStoreClosed naming the chunk", err)
	}
	if err := s.Flush(); err != nil {
		t.Fatalf("Flush after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if !s.Has(cs[0].ID) || s.Has(extra.ID) {
		t.Fatal("a closed store does not answer Has from its files")
	}

	s2 := openDiskStore(t, dir)
	n := 0
	if err := s2.Walk(func(content.ChunkID) error { n++; return nil }); err != nil || n != len(cs) {
		t.Fatalf("reopened store walks %d chunks (%v), want %d", n, err, len(cs))
	}
	for _, c := range cs {
		got, err := s2.Get(c.ID)
		if err != nil {
			t.Fatalf("after reopen: %v", err)
		}
		if got.Enc != c.Enc || got.Size != c.Size {
			t.Fatalf("after reopen %s is %s/%d, was %s/%d", c.ID, got.Enc, got.Size, c.Enc, c.Size)
		}
		if err := got.Verify(); err != nil {
			t.Fatalf("after reopen: %v", err)
		}
	}
}

func TestDiskStoreRemovesLeftoverTempFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openDiskStore(t, dir)
	c := storetest.RawChunk(storetest.RandomData(2, 100))
	mustPut(t, s, c)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if left := tmpEntries(t, dir); len(left) != 0 {
		t.Fatalf("Put left %v in tmp/", left)
	}
	// What a crash in the middle of a batch leaves behind.
	for _, name := range []string{c.ID.Hex()[:16] + ".123456", "0000000000000000.1"} {
		if err := os.WriteFile(filepath.Join(dir, "tmp", name), []byte("MCK\x01half a chunk"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s = openDiskStore(t, dir)
	if left := tmpEntries(t, dir); len(left) != 0 {
		t.Fatalf("reopening left %v in tmp/", left)
	}
	if got, err := s.Get(c.ID); err != nil || got.Verify() != nil {
		t.Fatalf("the stored chunk did not survive the cleanup: %v", err)
	}
}

// TestDiskStoreCrashPoints copies the store's directory at every point of
// a commit where a crash would freeze it (temporary files written and
// synced; after each rename), adds a torn temporary file as a crash in
// the middle of a write would, and opens a store on each copy: no chunk
// file is ever partial or unverified, exactly the chunks renamed so far
// are held, and the leftovers are removed. A copy reads the page cache, so
// this checks the order of writes and renames, not that syncs happened.
func TestDiskStoreCrashPoints(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	type snapshot struct {
		name    string
		dir     string
		renamed []content.ChunkID // chunks renamed into place when it was taken
	}
	var (
		snaps   []snapshot
		renamed []content.ChunkID
		n       int
	)
	take := func(name string) {
		n++
		dst := filepath.Join(t.TempDir(), fmt.Sprint(n))
		if err := os.CopyFS(dst, os.DirFS(dir)); err != nil {
			t.Errorf("snapshot %s: %v", name, err)
		}
		snaps = append(snaps, snapshot{name, dst, slices.Clone(renamed)})
	}
	g := newGate()
	s := openDiskStore(t, dir, content.WithTestHooks(content.TestHooks{
		Batch: g.batch,
		Written: func(ids []content.ChunkID) {
			if ents, err := os.ReadDir(filepath.Join(dir, "tmp")); err != nil || len(ents) != len(ids) {
				t.Errorf("batch of %d chunks has %d files in tmp/ (%v)", len(ids), len(ents), err)
			}
			take(fmt.Sprintf("%d written", len(ids)))
		},
		Renamed: func(id content.ChunkID) {
			renamed = append(renamed, id)
			take("renamed " + id.Short())
		},
	}))
	t.Cleanup(g.open)
	// A batch of one chunk, which fsyncs its file, then one of 19, which
	// syncs the file system.
	cs := storetest.Chunks(t, 50, 20, 20000)
	mustPut(t, s, cs[0])
	wait(t, g.started, "first batch")
	mustPut(t, s, cs[1:]...)
	g.open()
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if len(snaps) != 2+len(cs) || len(renamed) != len(cs) {
		t.Fatalf("%d snapshots, %d renames; want 2 batches and %d renames", len(snaps), len(renamed), len(cs))
	}

	for _, snap := range snaps {
		torn := filepath.Join(snap.dir, "tmp", cs[0].ID.Hex()[:16]+".999")
		if err := os.WriteFile(torn, []byte("MCK\x01\x01\x00\x00\x00half"), 0o600); err != nil {
			t.Fatal(err)
		}
		r, err := content.OpenDiskStore(snap.dir)
		if err != nil {
			t.Fatalf("%s: %v", snap.name, err)
		}
		if left := tmpEntries(t, snap.dir); len(left) != 0 {
			t.Errorf("%s: opening left %v in tmp/", snap.name, left)
		}
		var held []content.ChunkID
		if err := r.Walk(func(id content.ChunkID) error {
			held = append(held, id)
			c, err := r.Get(id)
			if err != nil {
				return err
			}
			return c.Verify()
		}); err != nil {
			t.Errorf("%s: a chunk file does not verify: %v", snap.name, err)
		}
		slices.SortFunc(held, func(a, b content.ChunkID) int { return bytes.Compare(a[:], b[:]) })
		want := slices.SortedFunc(slices.Values(snap.renamed), func(a, b content.ChunkID) int { return bytes.Compare(a[:], b[:]) })
		if !slices.Equal(held, want) {
			t.Errorf("%s: the store holds %d chunks, %d were renamed into place", snap.name, len(held), len(want))
		}
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	}
}

// TestDiskStoreDropDuringCommit removes a chunk (by Remove, then by GC)
// while its temporary file is written but not renamed: it must not appear
// once the batch ends, and the batch reports no error.
func TestDiskStoreDropDuringCommit(t *testing.T) {
	t.Parallel()
	written := make(chan []content.ChunkID, 1)
	proceed := make(chan struct{})
	stop := make(chan struct{}) // if the test fails, so that Close can finish
	s := openDiskStore(t, t.TempDir(), content.WithTestHooks(content.TestHooks{
		Written: func(ids []content.ChunkID) {
			select {
			case written <- ids:
			case <-stop:
			}
			select {
			case <-proceed:
			case <-stop:
			}
		},
	}))
	t.Cleanup(func() { close(stop) })
	drops := map[string]func(id content.ChunkID) error{
		"Remove": s.Remove,
		"GC": func(id content.ChunkID) error {
			st, err := s.GC(func(other content.ChunkID) bool { return other != id })
			if err == nil && st.Removed != 1 {
				err = fmt.Errorf("GC removed %d chunks, want 1", st.Removed)
			}
			return err
		},
	}
	seed := uint64(60)
	for _, name := range []string{"Remove", "GC"} {
		seed++
		c := storetest.RawChunk(storetest.RandomData(seed, 4000))
		mustPut(t, s, c)
		wait(t, written, "written batch")
		if err := drops[name](c.ID); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if s.Has(c.ID) {
			t.Fatalf("%s: Has is true for a chunk removed while it was committed", name)
		}
		proceed <- struct{}{}
		if err := s.Flush(); err != nil {
			t.Fatalf("%s: Flush: %v", name, err)
		}
		if s.Has(c.ID) || exists(t, chunkPath(s.Dir(), c.ID)) {
			t.Fatalf("%s: the chunk removed while it was committed came back", name)
		}
		if left := tmpEntries(t, s.Dir()); len(left) != 0 {
			t.Fatalf("%s: the dropped chunk left %v in tmp/", name, left)
		}
	}
}

// TestDiskStorePendingBound: with 1 MiB pending and the committer held,
// the Put that would exceed the bound blocks until the committer frees
// room, or until Close.
func TestDiskStorePendingBound(t *testing.T) {
	t.Parallel()
	cs := make([]content.Chunk, 17) // 16 × 64 KiB = 1 MiB fits, one more does not
	for i := range cs {
		cs[i] = storetest.RawChunk(storetest.RandomData(uint64(800+i), 64<<10))
	}
	open := func(t *testing.T) (*content.DiskStore, *gate, chan struct{}) {
		g := newGate()
		waiting := make(chan struct{}, 1)
		s := openDiskStore(t, t.TempDir(), content.WithPendingBytes(1<<20), content.WithTestHooks(content.TestHooks{
			Batch: g.batch,
			PutWait: func() {
				select {
				case waiting <- struct{}{}:
				default:
				}
			},
		}))
		t.Cleanup(g.open)
		done := make(chan error, 1)
		go mustPutAll(s, cs[:16], done)
		if err := wait(t, done, "Puts within the bound"); err != nil {
			t.Fatal(err)
		}
		return s, g, waiting
	}

	t.Run("released", func(t *testing.T) {
		t.Parallel()
		s, g, waiting := open(t)
		done := make(chan error, 1)
		go func() { done <- s.Put(cs[16]) }()
		wait(t, waiting, "Put waiting for room")
		select {
		case err := <-done:
			t.Fatalf("Put over the bound returned (%v) while the committer was held", err)
		default:
		}
		if s.Has(cs[16].ID) {
			t.Fatal("a Put waiting for room already holds its chunk")
		}
		g.open()
		if err := wait(t, done, "Put after the committer freed room"); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if !exists(t, chunkPath(s.Dir(), c.ID)) {
				t.Fatalf("%s not committed", c.ID)
			}
		}
	})
	t.Run("closed", func(t *testing.T) {
		t.Parallel()
		s, g, waiting := open(t)
		done := make(chan error, 1)
		go func() { done <- s.Put(cs[16]) }()
		wait(t, waiting, "Put waiting for room")
		closed := make(chan error, 1)
		go func() { closed <- s.Close() }()
		if err := wait(t, done, "Put giving up at Close"); !errors.Is(err, content.ErrStoreClosed) {
			t.Fatalf("Put waiting for room at Close: %v, want ErrStoreClosed", err)
		}
		g.open()
		if err := wait(t, closed, "Close"); err != nil {
			t.Fatal(err)
		}
		for i, c := range cs {
			if got := exists(t, chunkPath(s.Dir(), c.ID)); got != (i < 16) {
				t.Fatalf("after Close, chunk %d is in its file: %v", i, got)
			}
		}
	})
}

// mustPutAll puts cs and sends the first error, or nil, on done.
func mustPutAll(s content.Store, cs []content.Chunk, done chan<- error) {
	for _, c := range cs {
		if err := s.Put(c); err != nil {
			done <- err
			return
		}
	}
	done <- nil
}

// TestDiskStoreCommitFailure makes commits fail by removing tmp/ and
// checks what callers observe: the failed chunk is no longer held; the
// next Put refuses its chunk with an error naming both and wrapping the
// cause; Flush reports the failures since the previous Flush; once
// commits succeed again so do Puts; Close reports what no Flush did.
func TestDiskStoreCommitFailure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, g := openHeld(t, dir)
	cs := storetest.Chunks(t, 900, 8, 3000)
	a, b, refused, c, d, e := cs[0], cs[1], cs[2], cs[3], cs[4], cs[5]
	tmp := filepath.Join(dir, "tmp")
	breakDisk := func() {
		if err := os.RemoveAll(tmp); err != nil {
			t.Fatal(err)
		}
	}
	repairDisk := func() {
		if err := os.Mkdir(tmp, 0o700); err != nil {
			t.Fatal(err)
		}
	}

	mustPut(t, s, a)
	wait(t, g.started, "batch of a")
	mustPut(t, s, b) // queued behind a
	breakDisk()
	g.next(t)                        // a fails
	wait(t, g.started, "batch of b") // so a's batch has ended
	if s.Has(a.ID) {
		t.Fatal("a chunk whose commit failed is held")
	}
	if _, err := s.Get(a.ID); !errors.Is(err, content.ErrNotFound) {
		t.Fatalf("Get of a chunk whose commit failed: %v", err)
	}
	err := s.Put(refused)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "store chunk "+refused.ID.String()) || !strings.Contains(err.Error(), "commit chunk "+a.ID.String()) {
		t.Fatalf("Put after a failed commit: %v; want an error wrapping the cause and naming both chunks", err)
	}
	t.Logf("Put after a failed commit: %v", err)
	if s.Has(refused.ID) {
		t.Fatal("the refused chunk is held")
	}
	repairDisk()
	g.next(t) // b commits
	if err := s.Flush(); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), a.ID.String()) {
		t.Fatalf("Flush after a failed commit: %v; want the failure of %s", err, a.ID)
	}
	if !s.Has(b.ID) || !exists(t, chunkPath(dir, b.ID)) {
		t.Fatal("the chunk committed after the failure is not in its file")
	}
	g.open()
	mustPut(t, s, refused, c) // the failure was reported: Puts work again
	if err := s.Flush(); err != nil {
		t.Fatalf("Flush after the disk was repaired: %v", err)
	}

	// A failure that Flush reports first is not reported to a Put too.
	breakDisk()
	mustPut(t, s, d)
	if err := s.Flush(); !strings.Contains(fmt.Sprint(err), d.ID.String()) {
		t.Fatalf("Flush: %v; want the failure of %s", err, d.ID)
	}
	mustPut(t, s, e) // accepted, and fails in turn
	err = s.Close()
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), e.ID.String()) {
		t.Fatalf("Close: %v; want the failure no Flush reported, of %s", err, e.ID)
	}
	for _, c := range []content.Chunk{a, d, e} {
		if s.Has(c.ID) {
			t.Fatalf("%s failed but is held", c.ID)
		}
	}
	for _, c := range []content.Chunk{b, refused, c} {
		if !s.Has(c.ID) {
			t.Fatalf("%s was committed but is not held", c.ID)
		}
	}
}

func TestDiskStoreDamagedHeader(t *testing.T) {
	t.Parallel()
	damage := map[string]func(b []byte) []byte{
		"magic":          func(b []byte) []byte { copy(b, "JUNK"); return b },
		"version":        func(b []byte) []byte { b[3] = 2; return b },
		"encoding":       func(b []byte) []byte { b[4] = 9; return b },
		"size zero":      func(b []byte) []byte { copy(b[8:12], []byte{0, 0, 0, 0}); return b },
		"size too large": func(b []byte) []byte { copy(b[8:12], []byte{0xff, 0xff, 0xff, 0x7f}); return b },
		"truncated":      func(b []byte) []byte { return b[:7] },
		"empty":          func(b []byte) []byte { return nil },
	}
	s := openDiskStore(t, t.TempDir())
	seed := uint64(10)
	for name, edit := range damage {
		seed++
		t.Run(name, func(t *testing.T) {
			c := storetest.ZstdChunk(t, storetest.TextData(seed, 5000))
			if err := s.Put(c); err != nil {
				t.Fatal(err)
			}
			p := chunkFile(s, c.ID)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatalf("chunk file not where the layout says: %v", err)
			}
			if err := os.WriteFile(p, edit(b), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err = s.Get(c.ID)
			if !errors.Is(err, content.ErrChunkCorrupt) {
				t.Fatalf("Get of a damaged file: got %v, want ErrChunkCorrupt", err)
			}
			var ce *content.ChunkError
			if !errors.As(err, &ce) || ce.ID != c.ID || !strings.Contains(err.Error(), c.ID.String()) {
				t.Fatalf("error %q does not name chunk %s", err, c.ID)
			}
		})
	}
}

func TestDiskStorePermissions(t *testing.T) {
	t.Parallel()
	s := openDiskStore(t, t.TempDir())
	c := storetest.RawChunk(storetest.RandomData(4, 100))
	if err := s.Put(c); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{chunkFile(s, c.ID), filepath.Dir(chunkFile(s, c.ID)), filepath.Join(s.Dir(), "tmp")} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %v; chunk store entries must not be readable by group or others", p, perm)
		}
	}
}

// TestDiskStoreFullDisk fills a tiny tmpfs with a stream of Puts. The
// stream ends with an error wrapping ENOSPC that names a chunk; Flush
// reports ENOSPC too; chunks accepted but not committed are not held; every
// chunk held is in its file and verifies; nothing is left in tmp/; once
// space is freed, Puts succeed again.
func TestDiskStoreFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs (run the tests as root, e.g. in a container, to fill a disk)")
	}
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (%v: %s); a full disk cannot be simulated here", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})

	// Four chunks pending at most, so the stream cannot run far ahead of
	// the disk.
	s, err := content.OpenDiskStore(dir, content.WithPendingBytes(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var (
		accepted []content.Chunk
		refused  content.Chunk
	)
	for i := range 64 { // 64 × 16 KiB is four times the disk
		c := storetest.RawChunk(storetest.RandomData(uint64(100+i), 16<<10))
		if err = s.Put(c); err != nil {
			refused = c
			break
		}
		accepted = append(accepted, c)
	}
	if err == nil {
		t.Fatal("1 MiB of chunks fit on a 256 KiB tmpfs")
	}
	t.Logf("%d chunks accepted, then: %v", len(accepted), err)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Put on a full disk: %v does not wrap ENOSPC", err)
	}
	if !strings.Contains(err.Error(), "store chunk "+refused.ID.String()) {
		t.Fatalf("Put error %q does not name chunk %s", err, refused.ID)
	}
	if s.Has(refused.ID) {
		t.Fatal("the chunk whose Put failed is reported as held")
	}
	if err := s.Flush(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Flush after the disk filled: %v, want ENOSPC", err)
	}
	if left := tmpEntries(t, dir); len(left) != 0 {
		t.Fatalf("the failed commits left %v in tmp/", left)
	}

	var held, dropped []content.Chunk
	for _, c := range accepted {
		if s.Has(c.ID) {
			held = append(held, c)
			if !exists(t, chunkPath(dir, c.ID)) {
				t.Fatalf("%s is held after Flush but not in its file", c.ID)
			}
		} else {
			dropped = append(dropped, c)
			if _, err := s.Get(c.ID); !errors.Is(err, content.ErrNotFound) {
				t.Fatalf("Get of a chunk whose commit failed: %v", err)
			}
		}
	}
	if len(held) == 0 || len(dropped) == 0 {
		t.Fatalf("%d accepted chunks held and %d dropped; the test needs both", len(held), len(dropped))
	}
	n := 0
	if err := s.Walk(func(id content.ChunkID) error {
		n++
		c, err := s.Get(id)
		if err != nil {
			return err
		}
		return c.Verify()
	}); err != nil {
		t.Fatalf("a chunk held on the full disk does not verify: %v", err)
	}
	if n != len(held) {
		t.Fatalf("store walks %d chunks, Has says %d", n, len(held))
	}

	for _, c := range held[:2] {
		if err := s.Remove(c.ID); err != nil {
			t.Fatal(err)
		}
	}
	mustPut(t, s, refused)
	if err := s.Flush(); err != nil {
		t.Fatalf("Flush after freeing space: %v", err)
	}
	got, err := s.Get(refused.ID)
	if err != nil || got.Verify() != nil || !exists(t, chunkPath(dir, refused.ID)) {
		t.Fatalf("the chunk put after freeing space: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkDiskStorePut puts 64 KiB raw chunks from parallel goroutines
// (parallelism × GOMAXPROCS of them: 1 is RunParallel's default, 4 models
// several peers' streams per CPU) until they are durable: the final Flush
// is timed. "group-commit" is DiskStore; "fsync-each" is what it did
// before write-behind (a temporary file, fsync and rename per chunk, in
// the Put); "nosync" is DiskStore without fsync, the ceiling that the file
// system's other costs leave.
//
// Each case keeps one store for all its rounds. On ext4 without a journal
// (as here), allocating an inode skips those freed in the last minute, so
// a run right after another, whose stores were just deleted, measures that
// scan: give each run a fresh TMPDIR at the top of the file system.
func BenchmarkDiskStorePut(b *testing.B) {
	const size = 64 << 10
	base := storetest.RandomData(1, size)
	var seq atomic.Uint64
	chunk := func(buf []byte) content.Chunk {
		copy(buf, base)
		binary.LittleEndian.PutUint64(buf, seq.Add(1))
		return content.Chunk{ID: content.SumChunk(buf), Size: size, Enc: content.EncodingRaw, Body: buf}
	}
	for _, bc := range []struct {
		name string
		open func(b *testing.B) (put func(content.Chunk) error, flush func() error)
	}{
		{"group-commit", func(b *testing.B) (func(content.Chunk) error, func() error) {
			s := openDiskStore(b, b.TempDir())
			return s.Put, s.Flush
		}},
		{"fsync-each", func(b *testing.B) (func(content.Chunk) error, func() error) {
			return openFsyncEach(b, b.TempDir()).put, func() error { return nil }
		}},
		{"nosync", func(b *testing.B) (func(content.Chunk) error, func() error) {
			s := openDiskStore(b, b.TempDir(), content.WithSync(false))
			return s.Put, s.Flush
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			put, flush := bc.open(b)
			for _, par := range []int{1, 4} {
				b.Run(fmt.Sprintf("parallelism=%d", par), func(b *testing.B) {
					b.SetBytes(size)
					b.SetParallelism(par)
					b.ResetTimer()
					b.RunParallel(func(pb *testing.PB) {
						buf := make([]byte, size)
						for pb.Next() {
							if err := put(chunk(buf)); err != nil {
								b.Error(err)
								return
							}
						}
					})
					if err := flush(); err != nil {
						b.Fatal(err)
					}
				})
			}
		})
	}
}

// fsyncEach is the DiskStore's Put before write-behind, kept to measure
// against: verify, then a temporary file written, fsynced and renamed into
// place before Put returns.
type fsyncEach struct{ dir string }

func openFsyncEach(tb testing.TB, dir string) *fsyncEach {
	for i := range 256 {
		if err := os.MkdirAll(filepath.Join(dir, fmt.Sprintf("%02x", i)), 0o700); err != nil {
			tb.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "tmp"), 0o700); err != nil {
		tb.Fatal(err)
	}
	return &fsyncEach{dir}
}

func (s *fsyncEach) put(c content.Chunk) (err error) {
	if _, err := os.Lstat(chunkPath(s.dir, c.ID)); err == nil {
		return nil
	}
	if err := c.Verify(); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), c.ID.Hex()[:16]+".*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	hdr := []byte{'M', 'C', 'K', 1, byte(c.Enc), 0, 0, 0}
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(c.Size))
	if _, err = f.Write(hdr); err != nil {
		return err
	}
	if _, err = f.Write(c.Body); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), chunkPath(s.dir, c.ID))
}
