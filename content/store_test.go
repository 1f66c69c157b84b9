package content_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
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

// chunkFile flushes s and returns a file that holds id's record alone
// (see IsolateRecord): editing it damages that chunk only, its header from
// the start of the file and its body to the end.
func chunkFile(s *content.DiskStore, id content.ChunkID) string {
	if err := s.Flush(); err != nil {
		panic(fmt.Sprintf("flush %s: %v", s.Dir(), err))
	}
	p, err := s.IsolateRecord(id)
	if err != nil {
		panic(fmt.Sprintf("isolate %s: %v", id.Short(), err))
	}
	return p
}

func mustPut(tb testing.TB, s content.Store, cs ...content.Chunk) {
	tb.Helper()
	for _, c := range cs {
		if err := s.Put(c); err != nil {
			tb.Fatalf("Put %s: %v", c.ID, err)
		}
	}
}

// TestDiskStoreWriteBehind: Put returns before the chunk's record is
// written; meanwhile Has, Get and Walk see the chunk; Flush puts the
// record, byte for byte as the format says, in a segment.
func TestDiskStoreWriteBehind(t *testing.T) {
	t.Parallel()
	s, g := openHeld(t, t.TempDir())
	z := storetest.ZstdChunk(t, storetest.TextData(1, 30000))
	raw := storetest.RawChunk(storetest.RandomData(2, 5000))
	mustPut(t, s, z)
	wait(t, g.started, "batch") // the committer holds z
	mustPut(t, s, raw, z)       // raw queued; z again is a no-op
	if segs := segmentFiles(t, s.Dir()); len(segs) != 0 {
		t.Fatalf("segments %v exist before the committer ran", segs)
	}
	for _, c := range []content.Chunk{z, raw} {
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
	want := append(chunkRecord(z), chunkRecord(raw)...)
	segs := segmentFiles(t, s.Dir())
	if len(segs) != 1 || filepath.Base(segs[0]) != "00000000.seg" {
		t.Fatalf("segments after two batches: %v, want 00000000.seg", segs)
	}
	if b, err := os.ReadFile(segs[0]); err != nil || !bytes.Equal(b, want) {
		t.Fatalf("segment holds %d bytes (%v); want the two records, %d bytes", len(b), err, len(want))
	}
	for _, c := range []content.Chunk{z, raw} {
		got, err := s.Get(c.ID)
		if err != nil || got.Verify() != nil || got.Enc != c.Enc || got.Size != c.Size {
			t.Fatalf("Get of committed %s: %+v, %v", c.ID, got, err)
		}
	}
}

// TestDiskStoreLinger: the committer lets Puts gather into one batch, and
// whoever waits for it ends the linger at once: Flush, a Put that waits
// for pending room, Close. The linger here is an hour, so a wait it did
// not end would fail the test at eventWait.
func TestDiskStoreLinger(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	batches := make(chan []content.ChunkID, 64)
	s := openDiskStore(t, dir, content.WithLinger(time.Hour), content.WithPendingBytes(4<<16),
		content.WithTestHooks(content.TestHooks{Batch: func(ids []content.ChunkID) { batches <- ids }}))
	cs := make([]content.Chunk, 8)
	for i := range cs {
		cs[i] = storetest.RawChunk(storetest.RandomData(uint64(900+i), 1<<16))
	}
	flush := func(what string) {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- s.Flush() }()
		if err := wait(t, done, what); err != nil {
			t.Fatal(err)
		}
	}

	mustPut(t, s, cs[:3]...)
	select {
	case ids := <-batches:
		t.Fatalf("a batch of %d was taken while the committer lingered", len(ids))
	default:
	}
	flush("Flush behind a lingering committer")
	if ids := wait(t, batches, "batch"); len(ids) != 3 {
		t.Fatalf("the three Puts made a batch of %d", len(ids))
	}

	// Room for 4 chunks: the fifth Put waits for room, and ends the linger.
	done := make(chan error, 1)
	go mustPutAll(s, cs[3:], done)
	if err := wait(t, done, "Puts beyond the pending bound"); err != nil {
		t.Fatal(err)
	}
	flush("Flush after Puts that waited for room")
	n := 0
	for len(batches) > 0 {
		n += len(<-batches)
	}
	if n != 5 {
		t.Fatalf("batches after the Flush hold %d chunks, want 5", n)
	}

	more := storetest.Chunks(t, 3, 2, 5000)
	mustPut(t, s, more...)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	if err := wait(t, closed, "Close behind a lingering committer"); err != nil {
		t.Fatal(err)
	}
	s2 := openDiskStore(t, dir)
	for _, c := range append(cs, more...) {
		if !s2.Has(c.ID) {
			t.Fatalf("a store opened again lacks %s", c.ID)
		}
	}
}

// TestDiskStoreCloseDrains: Close returns once everything put is in a
// segment, and a store opened again holds it all.
func TestDiskStoreCloseDrains(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, g := openHeld(t, dir)
	cs := storetest.Chunks(t, 1, 10, 3000)
	mustPut(t, s, cs...)
	g.open()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if !onDisk(t, dir, c) {
			t.Fatalf("%s is not in a segment after Close", c.ID)
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
		t.Fatal("a closed store does not answer Has from its index")
	}
	if _, err := s.Get(cs[0].ID); !errors.Is(err, content.ErrStoreClosed) {
		t.Fatalf("Get after Close: %v, want ErrStoreClosed", err)
	}
	if err := s.Remove(cs[0].ID); !errors.Is(err, content.ErrStoreClosed) {
		t.Fatalf("Remove after Close: %v, want ErrStoreClosed", err)
	}
	if _, err := s.GC(func(content.ChunkID) bool { return false }); !errors.Is(err, content.ErrStoreClosed) {
		t.Fatalf("GC after Close: %v, want ErrStoreClosed", err)
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
	// The next commit starts a segment of its own.
	more := storetest.RawChunk(storetest.RandomData(98, 100))
	mustPut(t, s2, more)
	if err := s2.Flush(); err != nil {
		t.Fatal(err)
	}
	if segs := segmentFiles(t, dir); len(segs) != 2 || recordOf(t, dir, more.ID).file != segs[1] {
		t.Fatalf("after reopening, a commit went to %s of %v", recordOf(t, dir, more.ID).file, segs)
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
			if !onDisk(t, s.Dir(), c) {
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
			if got := onDisk(t, s.Dir(), c); got != (i < 16) {
				t.Fatalf("after Close, chunk %d is in a segment: %v", i, got)
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

// TestDiskStoreCommitFailure makes commits fail through the Fault hook and
// checks what callers observe: the failed chunk is no longer held; the
// next Put refuses its chunk with an error naming both and wrapping the
// cause; Flush reports the failures since the previous Flush; once
// commits succeed again so do Puts; a segment that failed after a write is
// cut back; Close reports what no Flush did; a store opened again holds
// exactly the chunks committed.
func TestDiskStoreCommitFailure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	injected := fmt.Errorf("injected: %w", syscall.EIO)
	var (
		broken atomic.Bool  // every write, sync and create fails
		failIn atomic.Int32 // the failIn-th of them from now fails
	)
	g := newGate()
	s := openDiskStore(t, dir, content.WithTestHooks(content.TestHooks{
		Batch: g.batch,
		Fault: func() error {
			if broken.Load() || failIn.Load() > 0 && failIn.Add(-1) == 0 {
				return injected
			}
			return nil
		},
	}))
	t.Cleanup(g.open)
	cs := storetest.Chunks(t, 900, 8, 3000)
	a, b, refused, c, d, e := cs[0], cs[1], cs[2], cs[3], cs[4], cs[5]

	mustPut(t, s, a)
	wait(t, g.started, "batch of a")
	mustPut(t, s, b) // queued behind a
	broken.Store(true)
	g.next(t)                        // a fails
	wait(t, g.started, "batch of b") // so a's batch has ended
	if s.Has(a.ID) {
		t.Fatal("a chunk whose commit failed is held")
	}
	if _, err := s.Get(a.ID); !errors.Is(err, content.ErrNotFound) {
		t.Fatalf("Get of a chunk whose commit failed: %v", err)
	}
	err := s.Put(refused)
	if !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "store chunk "+refused.ID.String()) || !strings.Contains(err.Error(), "commit chunk "+a.ID.String()) {
		t.Fatalf("Put after a failed commit: %v; want an error wrapping the cause and naming both chunks", err)
	}
	t.Logf("Put after a failed commit: %v", err)
	if s.Has(refused.ID) {
		t.Fatal("the refused chunk is held")
	}
	broken.Store(false)
	g.next(t) // b commits
	if err := s.Flush(); !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), a.ID.String()) {
		t.Fatalf("Flush after a failed commit: %v; want the failure of %s", err, a.ID)
	}
	if !s.Has(b.ID) || !onDisk(t, dir, b) {
		t.Fatal("the chunk committed after the failure is not in a segment")
	}
	g.open()
	mustPut(t, s, refused, c) // the failure was reported: Puts work again
	if err := s.Flush(); err != nil {
		t.Fatalf("Flush after the disk was repaired: %v", err)
	}

	// A sync that fails after the write, reported by Flush first and so
	// not to a Put too: the batch's record is cut off again.
	segs := segmentFiles(t, dir)
	size := fileSize(t, segs[len(segs)-1])
	failIn.Store(2) // the write, then the sync
	mustPut(t, s, d)
	if err := s.Flush(); !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), d.ID.String()) {
		t.Fatalf("Flush: %v; want the failure of %s", err, d.ID)
	}
	if got := fileSize(t, segs[len(segs)-1]); got != size {
		t.Fatalf("the segment whose sync failed has %d bytes, had %d before the batch", got, size)
	}
	broken.Store(true)
	mustPut(t, s, e) // accepted, and fails in turn
	err = s.Close()
	if !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), e.ID.String()) {
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
	checkReopened(t, dir, []content.Chunk{b, refused, c})
}

// TestDiskStoreRemoveFailure: a Remove whose tombstone cannot be written
// fails, and the chunk stays held, also in a store opened again.
func TestDiskStoreRemoveFailure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var broken atomic.Bool
	s := openDiskStore(t, dir, content.WithTestHooks(content.TestHooks{Fault: func() error {
		if broken.Load() {
			return syscall.ENOSPC
		}
		return nil
	}}))
	c := storetest.RawChunk(storetest.RandomData(610, 2000))
	mustPut(t, s, c)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	broken.Store(true)
	if err := s.Remove(c.ID); !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), c.ID.Short()) {
		t.Fatalf("Remove on a failing disk: %v, want ENOSPC naming the chunk", err)
	}
	if got, err := s.Get(c.ID); err != nil || got.Verify() != nil {
		t.Fatalf("the chunk whose Remove failed: %v", err)
	}
	broken.Store(false)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkReopened(t, dir, []content.Chunk{c})
}

// TestDiskStoreRemoveDuringCommit removes a chunk (by Remove, then by GC)
// while its batch is written and synced but not yet indexed: the removal
// waits for the commit, then removes the chunk, durably; the batch
// reports no error.
func TestDiskStoreRemoveDuringCommit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	written := make(chan []content.ChunkID, 1)
	proceed := make(chan struct{})
	stop := make(chan struct{}) // if the test fails, so that Close can finish
	s := openDiskStore(t, dir, content.WithTestHooks(content.TestHooks{
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
		removed := make(chan error, 1)
		go func() { removed <- drops[name](c.ID) }()
		proceed <- struct{}{}
		if err := wait(t, removed, name); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if s.Has(c.ID) {
			t.Fatalf("%s: Has is true for a chunk removed while it was committed", name)
		}
		if err := s.Flush(); err != nil {
			t.Fatalf("%s: Flush: %v", name, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkReopened(t, dir, nil)
}

// mountTmpfs mounts a 256 KiB tmpfs for one test, or skips it.
func mountTmpfs(t *testing.T) string {
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
	return dir
}

// TestDiskStoreFullDiskOneBatch commits one batch that is larger than the
// disk: the chunks that fit are kept, the others dropped, and the segment
// ends after the last one kept.
func TestDiskStoreFullDiskOneBatch(t *testing.T) {
	dir := mountTmpfs(t)
	s, g := openHeld(t, dir)
	cs := make([]content.Chunk, 40) // 640 KiB, written at once
	for i := range cs {
		cs[i] = storetest.RawChunk(storetest.RandomData(uint64(1400+i), 16<<10))
	}
	mustPut(t, s, cs[0])
	wait(t, g.started, "first batch")
	mustPut(t, s, cs[1:]...)
	g.open()
	if err := s.Flush(); !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "more chunks of the batch") {
		t.Fatalf("Flush of a batch larger than the disk: %v, want ENOSPC", err)
	}
	n := 0 // the chunks held are the first n
	for n < len(cs) && s.Has(cs[n].ID) {
		n++
	}
	for i := n; i < len(cs); i++ {
		if s.Has(cs[i].ID) {
			t.Fatalf("chunk %d is held after chunk %d was dropped", i, n)
		}
	}
	held := cs[:n]
	size := int64(n) * (recHeaderLen + 16<<10)
	if len(held) < 5 || len(held) == len(cs) {
		t.Fatalf("%d of %d chunks held; want those that fit", len(held), len(cs))
	}
	var segBytes int64
	for _, p := range segmentFiles(t, dir) {
		segBytes += fileSize(t, p)
	}
	if segBytes != size {
		t.Fatalf("the segments hold %d bytes, the records of the chunks held %d", segBytes, size)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkReopened(t, dir, held)
}

// TestDiskStoreFullDisk fills a tiny tmpfs with a stream of Puts. The
// stream ends with an error wrapping ENOSPC that names a chunk; Flush
// reports ENOSPC too; chunks accepted but not committed are not held; every
// chunk held is in a segment and verifies; the failed commits were cut
// off; once GC has freed space, without writing, Puts succeed again.
func TestDiskStoreFullDisk(t *testing.T) {
	dir := mountTmpfs(t)
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

	var held, dropped []content.Chunk
	var size int64 // of the records held
	for _, c := range accepted {
		if s.Has(c.ID) {
			held = append(held, c)
			size += recHeaderLen + int64(len(c.Body))
			if !onDisk(t, dir, c) {
				t.Fatalf("%s is held after Flush but not in a segment", c.ID)
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
	if n := len(verifyAll(t, s)); n != len(held) {
		t.Fatalf("store walks %d chunks, Has says %d", n, len(held))
	}
	var segBytes int64
	for _, p := range segmentFiles(t, dir) {
		segBytes += fileSize(t, p)
	}
	if segBytes != size {
		t.Fatalf("the segments hold %d bytes, the records of the chunks held %d: failed commits were not cut off", segBytes, size)
	}

	st, err := s.GC(func(content.ChunkID) bool { return false })
	if err != nil || st.Removed != len(held) {
		t.Fatalf("GC on the full disk: %+v, %v", st, err)
	}
	mustPut(t, s, refused)
	if err := s.Flush(); err != nil {
		t.Fatalf("Flush after freeing space: %v", err)
	}
	got, err := s.Get(refused.ID)
	if err != nil || got.Verify() != nil || !onDisk(t, dir, refused) {
		t.Fatalf("the chunk put after freeing space: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkReopened(t, dir, []content.Chunk{refused})
}

// BenchmarkDiskStorePut puts 64 KiB raw chunks from parallel goroutines
// (parallelism × GOMAXPROCS of them: 1 is RunParallel's default, 4 models
// several peers' streams per CPU) until they are durable: the final Flush
// is timed. "group-commit" is DiskStore; "fsync-each" is what it did
// before write-behind and segments (a file per chunk: a temporary file,
// fsync and rename, in the Put); "nosync" is DiskStore without fsync, the
// ceiling that the file system's other costs leave.
//
// Each case keeps one store for all its rounds. On ext4 without a journal
// (as here), allocating an inode skips those freed in the last minute, so
// "fsync-each" right after another run, whose files were just deleted,
// measures that scan: give each run a fresh TMPDIR at the top of the file
// system.
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

// fsyncEach is the DiskStore's Put before write-behind and segments, kept
// to measure against: verify, then a file per chunk, written to a
// temporary name, fsynced and renamed into place before Put returns.
type fsyncEach struct{ dir string }

func (s *fsyncEach) path(id content.ChunkID) string {
	h := id.Hex()
	return filepath.Join(s.dir, h[:2], h)
}

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
	if _, err := os.Lstat(s.path(c.ID)); err == nil {
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
	return os.Rename(f.Name(), s.path(c.ID))
}
