package content

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"
)

// DiskStore is a Store in a directory: append-only segment files in
// segments/, named by a number that grows and is never reused
// (00000000.seg, 00000001.seg, ...; see diskstore_segment.go for the
// record format). A segment is a sequence of records, each a header with a
// CRC-32C of its own and a body: a chunk record holds a chunk body; a
// tombstone names the chunk record (segment, offset) that a Remove or GC
// deleted. An index in memory says where each chunk held lies; opening
// the store reads every record header to rebuild it. GC deletes the
// segments left without live chunks and rewrites those less than half
// live.
//
// Writes are behind and grouped. Put verifies the chunk, copies it into
// memory and returns: from then on Has, Get and Walk see it. A committer
// goroutine appends what is pending to the active segment in batches,
// makes the batch durable (fsync), and only then indexes the chunks and
// lets them leave memory. The committer runs while there is work, so an
// idle store has no goroutine. Flush waits until everything put so far is
// durable; Close does that, stops the committer and closes the segment
// files, and callers that own a DiskStore close it.
// Memory is bounded by WithPendingBytes: Put blocks while that much is
// waiting for the disk. The index takes about 100 bytes per chunk held,
// and the writer buffers 1 MiB while it writes.
//
// Crash safety: a segment is synced before the next one is started, so
// only the newest segment can end in records that were not durable when
// the machine stopped. Opening the store reads and verifies every chunk
// body of that segment and cuts it at the first record that does not
// verify; the other segments are trusted up to their first invalid
// header. So after a crash or a power loss the store holds every chunk
// that a Flush returned nil for and every chunk it holds verified when it
// was put. Chunks accepted but not yet committed are lost, as a Put that
// had not returned would have been. A Remove, and a GC, that returned nil
// is durable.
//
// What a Put caller observes when the disk fails (ENOSPC, EIO):
//
//   - Put returned nil: the chunk was verified and is held, in memory until
//     its batch commits. If committing it fails, it is dropped: Has turns
//     false, Get returns ErrNotFound and Walk skips it. It was never
//     durable; a caller that needs it fetches it again. When a write
//     fails (the disk is full, say), the chunks of the batch that can
//     still be written whole are kept; after a failed sync, none are. The
//     segment is cut after the last record kept, and the next batch
//     starts a new one.
//   - The failure is reported to the next Put of a chunk not already held,
//     unless a Flush reported it first: that Put refuses its own chunk and
//     returns "store chunk <id>: ...", wrapping the cause
//     (errors.Is(err, syscall.ENOSPC)) and naming a chunk that was dropped.
//     A Put waiting for pending space returns it instead of waiting.
//     Failures of chunks accepted before that report are not reported to
//     Puts again (Has tells which of them survived), so once commits
//     succeed again, for instance after space was freed, so do Puts.
//   - Flush reports every failure among the chunks put since the previous
//     Flush, whether a Put reported it or not, and Close those no Flush
//     reported: Flush returning nil means every chunk put before it and
//     since the previous Flush is durable.
//
// Remove and GC write tombstones, so they too need space; GC frees space
// without writing when it deletes segments that hold nothing live any
// more, and rewrites a segment's live chunks (into the active segment)
// before it deletes the segment.
//
// A DiskStore must be the only one open on its directory: opening a
// second one cuts the first one's unsynced records, and neither sees the
// other's chunks. Close a store before opening its directory again.
type DiskStore struct {
	dir          string
	sync         bool
	linger       time.Duration // see commitLinger; 0 without sync
	maxPending   int64
	segmentBytes int64
	hooks        commitHooks // test seams; zero in production

	// gcMu is held exclusively by GC, Remove and Close, and shared by Put
	// while it decides whether a chunk is held and while it adds one, and
	// by the committer for the whole of a commit. So GC never removes a
	// chunk that a concurrent Put just stored, GC and Remove never run
	// while a batch is written, and whoever holds gcMu exclusively, or the
	// committer, is the only writer of the segments: it owns w and the
	// segments' accounting fields.
	gcMu    sync.RWMutex
	w       segWriter
	nextSeg uint32 // number of the next segment to create

	// idxMu guards the index and the segments map, and closedFiles. Get
	// holds it shared while it reads a segment, so that a segment file is
	// never closed under it.
	idxMu       sync.RWMutex
	index       map[ChunkID]loc
	segments    map[uint32]*segment
	closedFiles bool

	mu sync.RWMutex
	// cond (on mu) is broadcast when pending bytes are released, a batch
	// ends, a commit fails or the store closes.
	cond         *sync.Cond
	pending      map[ChunkID]*pendingChunk // accepted, not yet committed
	queue        []*pendingChunk           // commit order; may hold dropped entries
	pendingBytes int64                     // bodies in pending
	nextSeq      uint64                    // seq of the last accepted chunk
	doneSeq      uint64                    // every chunk up to here is committed or dropped
	committing   bool                      // a committer goroutine runs
	// hurry (1-buffered) ends the committer's linger: a Flush or Close
	// waits, a Put waits for room, or a batch is full.
	hurry     chan struct{}
	closed    bool
	committer sync.WaitGroup
	failures  failureLog
}

// pendingChunk is a chunk accepted by Put and not yet committed. Its fields
// other than taken never change once it is in the pending map, and its
// body is never written to.
type pendingChunk struct {
	c     Chunk
	seq   uint64
	taken bool // by a batch; guarded by DiskStore.mu
}

const (
	// DefaultPendingBytes bounds the chunk bodies a DiskStore holds in
	// memory while they wait for the disk, unless WithPendingBytes says
	// otherwise.
	DefaultPendingBytes = 64 << 20

	// defaultSegmentBytes is the size at which the active segment is
	// closed and the next one started.
	defaultSegmentBytes = 64 << 20
)

// ErrStoreClosed is returned by Put on a DiskStore after Close, and by
// Get, GC and Remove of a chunk on disk.
var ErrStoreClosed = errors.New("chunk store closed")

// DiskOption configures OpenDiskStore.
type DiskOption func(*diskOptions)

type diskOptions struct {
	sync         bool
	linger       time.Duration
	pendingBytes int64
	segmentBytes int64
	hooks        commitHooks
}

// WithSync says whether commits are made durable (fsync), which is the
// default. Without it a crash of the process still leaves only complete
// records, but a power loss may leave anything: use it only for throwaway
// stores, such as benchmarks and tests.
func WithSync(on bool) DiskOption { return func(o *diskOptions) { o.sync = on } }

// WithPendingBytes bounds the chunk bodies held in memory while they wait
// for the disk (DefaultPendingBytes if n is 0). A Put that would exceed it
// blocks until the committer frees enough; a chunk larger than n is let in
// when nothing else is pending.
func WithPendingBytes(n int64) DiskOption { return func(o *diskOptions) { o.pendingBytes = n } }

// withSegmentBytes sets the size at which segments roll over, for tests.
func withSegmentBytes(n int64) DiskOption { return func(o *diskOptions) { o.segmentBytes = n } }

// OpenDiskStore opens or creates a store in dir. It reads every segment's
// record headers to rebuild the index, cuts the newest segment at its
// first record that does not verify (what a crash left half written), and
// imports the chunk files of the layout before segments (one file per
// chunk in two-hex shard directories), removing them.
func OpenDiskStore(dir string, opts ...DiskOption) (*DiskStore, error) {
	o := diskOptions{sync: true, linger: commitLinger}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case o.pendingBytes == 0:
		o.pendingBytes = DefaultPendingBytes
	case o.pendingBytes < 0:
		return nil, fmt.Errorf("open chunk store: pending bytes %d < 0", o.pendingBytes)
	}
	switch {
	case o.segmentBytes == 0:
		o.segmentBytes = defaultSegmentBytes
	case o.segmentBytes < 0:
		return nil, fmt.Errorf("open chunk store: segment bytes %d < 0", o.segmentBytes)
	}
	s := &DiskStore{
		dir:          dir,
		sync:         o.sync,
		maxPending:   o.pendingBytes,
		linger:       o.linger,
		segmentBytes: o.segmentBytes,
		hooks:        o.hooks,
		pending:      make(map[ChunkID]*pendingChunk),
	}
	s.cond = sync.NewCond(&s.mu)
	s.hurry = make(chan struct{}, 1)
	if !s.sync {
		s.linger = 0 // a commit without fsync is cheap
	}
	if err := s.load(); err != nil {
		return nil, fmt.Errorf("open chunk store %s: %w", dir, err)
	}
	return s, nil
}

// Dir returns the store's directory.
func (s *DiskStore) Dir() string { return s.dir }

func (s *DiskStore) segmentsDir() string { return filepath.Join(s.dir, segmentsDirName) }

// Has implements Store.
func (s *DiskStore) Has(id ChunkID) bool {
	// Pending before the index: the committer indexes a chunk before it
	// forgets it, so a chunk being committed is always seen by one.
	s.mu.RLock()
	_, ok := s.pending[id]
	s.mu.RUnlock()
	return ok || s.indexed(id)
}

func (s *DiskStore) indexed(id ChunkID) bool {
	s.idxMu.RLock()
	_, ok := s.index[id]
	s.idxMu.RUnlock()
	return ok
}

// Get implements Store. The body is a copy. For a chunk on disk it checks
// the record header but does not re-hash the body; DecodeChunk does that
// for whoever uses the bytes.
func (s *DiskStore) Get(id ChunkID) (Chunk, error) {
	s.mu.RLock()
	e, ok := s.pending[id]
	var c Chunk
	if ok {
		c = e.c
	}
	s.mu.RUnlock()
	if ok {
		c.Body = bytes.Clone(c.Body) // never written to, so no lock needed
		return c, nil
	}
	s.idxMu.RLock()
	defer s.idxMu.RUnlock()
	l, ok := s.index[id]
	switch {
	case !ok:
		return Chunk{}, fmt.Errorf("get %s: %w", id.Short(), ErrNotFound)
	case s.closedFiles:
		return Chunk{}, fmt.Errorf("get %s: %w", id.Short(), ErrStoreClosed)
	}
	return s.segments[l.seg].readChunk(id, l)
}

// Put implements Store: it verifies c, keeps a copy in memory for the
// committer and returns; see DiskStore for what happens when the commit
// fails. It blocks while the pending bytes are at their bound, and returns
// ErrStoreClosed after Close. It refuses, as ErrChunkEncoding, a body
// longer than twice MaxChunkSize, which a segment record cannot hold.
func (s *DiskStore) Put(c Chunk) error {
	// Deciding that the chunk is held happens under gcMu: otherwise a Put
	// could see a chunk that a running GC is about to delete, report
	// success, and lose the chunk.
	s.gcMu.RLock()
	held := s.Has(c.ID)
	s.gcMu.RUnlock()
	if held {
		return nil
	}
	if err := c.Verify(); err != nil {
		return err
	}
	if len(c.Body) > maxBodyLen {
		return &ChunkError{c.ID, fmt.Errorf("%w: body of %d bytes, at most %d can be stored", ErrChunkEncoding, len(c.Body), maxBodyLen)}
	}
	e := &pendingChunk{c: c}
	e.c.Body = bytes.Clone(c.Body)
	n := int64(len(e.c.Body))
	for {
		s.gcMu.RLock()
		s.mu.Lock()
		done, err := s.admitLocked(e, n)
		if done {
			s.mu.Unlock()
			s.gcMu.RUnlock()
			return err
		}
		// No room: wait without gcMu, which the committer needs to free
		// some (and a waiting GC would stop it from getting).
		s.gcMu.RUnlock()
		s.hurryLocked()
		for !s.closed && s.failures.forPut() == nil && !s.fitsLocked(n) {
			if s.hooks.putWait != nil {
				s.hooks.putWait()
			}
			s.cond.Wait()
		}
		s.mu.Unlock()
	}
}

// admitLocked adds e to pending if there is room and reports whether Put
// is done, and with what error. The caller holds gcMu shared and mu.
func (s *DiskStore) admitLocked(e *pendingChunk, n int64) (done bool, err error) {
	id := e.c.ID
	switch {
	case s.closed:
		return true, fmt.Errorf("store chunk %s: %w", id, ErrStoreClosed)
	case s.pending[id] != nil:
		return true, nil // another Put got there first
	case s.indexed(id):
		// Committed since Put looked. The committer indexes a chunk
		// before it forgets it (under mu), so one of the two checks
		// sees it: a chunk is never pending and committed twice.
		return true, nil
	case s.failures.forPut() != nil:
		return true, fmt.Errorf("store chunk %s: refused after a failed commit: %w", id, s.failures.reportToPut(s.nextSeq))
	case !s.fitsLocked(n):
		return false, nil
	}
	s.nextSeq++
	e.seq = s.nextSeq
	s.pending[id] = e
	s.queue = append(s.queue, e)
	s.pendingBytes += n
	if s.pendingBytes >= commitBatchBytes {
		s.hurryLocked()
	}
	if !s.committing {
		s.committing = true
		s.committer.Add(1)
		go s.commitLoop()
	}
	return true, nil
}

func (s *DiskStore) fitsLocked(n int64) bool {
	return s.pendingBytes == 0 || s.pendingBytes+n <= s.maxPending
}

// dropLocked forgets a pending chunk that GC or Remove deleted, or whose
// commit ended.
func (s *DiskStore) dropLocked(e *pendingChunk) {
	if s.pending[e.c.ID] != e {
		return
	}
	delete(s.pending, e.c.ID)
	s.pendingBytes -= int64(len(e.c.Body))
	if !e.taken {
		e.c.Body = nil // the committer will skip it; free the memory now
	}
	s.cond.Broadcast()
}

// Flush waits until every chunk put before it was called is committed or
// dropped, and returns the first commit error among the chunks put since
// the previous Flush (or Close) was called; nil means they are all
// durable. It never blocks on Puts that start after it.
func (s *DiskStore) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waitLocked()
}

// waitLocked waits for the chunks accepted so far and reports the failures
// no earlier Flush reported.
func (s *DiskStore) waitLocked() error {
	from, target := s.failures.flushMark, s.nextSeq
	s.failures.flushing++
	s.hurryLocked()
	for s.doneSeq < target {
		s.cond.Wait()
	}
	s.failures.flushing--
	return s.failures.flushed(from, target)
}

// Close waits until everything put is durable, stops the committer, closes
// the segment files and returns the first commit error that no Flush
// returned. Afterwards Put returns ErrStoreClosed, and so do Get, GC and
// Remove of a chunk on disk; Has and Walk answer from the index, which is
// what a store opened again on the directory holds. Closing again returns
// nil.
func (s *DiskStore) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.committer.Wait()
		return nil
	}
	s.closed = true
	s.cond.Broadcast() // Puts waiting for room give up
	err := s.waitLocked()
	s.mu.Unlock()
	s.committer.Wait()

	s.gcMu.Lock() // a GC or Remove that started before Close ends first
	defer s.gcMu.Unlock()
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	s.closedFiles = true
	for _, seg := range s.segments {
		seg.f.Close()
	}
	return err
}

// Walk implements Store. It visits the chunks pending when it starts, then
// those indexed; a chunk held throughout is visited exactly once.
func (s *DiskStore) Walk(fn func(id ChunkID) error) error {
	s.mu.RLock()
	seen := make(map[ChunkID]bool, len(s.pending))
	for id := range s.pending {
		seen[id] = true
	}
	s.mu.RUnlock()
	for id := range seen {
		if err := fn(id); err != nil {
			return err
		}
	}
	s.idxMu.RLock()
	ids := make([]ChunkID, 0, len(s.index))
	for id := range s.index {
		if !seen[id] {
			ids = append(ids, id)
		}
	}
	s.idxMu.RUnlock()
	for _, id := range ids {
		if err := fn(id); err != nil {
			return err
		}
	}
	return nil
}

// syncDirIf fsyncs dir if the store syncs.
func (s *DiskStore) syncDirIf(dir string) error {
	if !s.sync {
		return nil
	}
	if err := s.fault(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return SyncDir(dir)
}

// fault returns the error the Fault test hook injects, if any.
func (s *DiskStore) fault() error {
	if s.hooks.fault == nil {
		return nil
	}
	return s.hooks.fault()
}
