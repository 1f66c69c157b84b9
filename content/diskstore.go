package content

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// DiskStore is a Store in a directory: one file per chunk under a two-hex
// shard (created when its first chunk arrives), named by the hex digest. A
// file holds a 12-byte header ("MCK", version 1, encoding, 3 zero bytes,
// uncompressed size u32 LE) and the body.
//
// Writes are behind and grouped. Put verifies the chunk, copies it into
// memory and returns: from then on Has, Get and Walk see it. A committer
// goroutine writes what is pending in batches: each chunk to a temporary
// file in tmp/, all of them made durable together, then renamed into
// place, then the renames made durable; only then does the chunk leave
// memory. The committer runs while there is work, so an idle store has no
// goroutine. Flush waits until everything put so far is durable; Close
// does that and waits for the committer to stop, and callers that own a
// DiskStore close it.
// Memory is bounded by WithPendingBytes: Put blocks while that much is
// waiting for the disk.
//
// Crash safety: a chunk file outside tmp/ is only ever created by a rename
// of a complete, synced temporary file, so after a crash or a power loss a
// chunk file is either absent or complete (and was verified before it was
// accepted); the temporary files of an interrupted batch are removed when
// the store is opened again. Chunks accepted but not yet committed are
// lost by a crash, as a Put that had not returned would have been.
//
// What a Put caller observes when the disk fails (ENOSPC, EIO):
//
//   - Put returned nil: the chunk was verified and is held, in memory until
//     its batch commits. If committing it fails, it is dropped: Has turns
//     false, Get returns ErrNotFound and Walk skips it. It was never
//     durable; a caller that needs it fetches it again.
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
// A DiskStore must be the only one open on its directory: opening a second
// one removes the temporary files of the first one's running batch, whose
// commits then fail, and neither sees the other's pending chunks. Close a
// store before opening its directory again.
type DiskStore struct {
	dir        string
	sync       bool
	maxPending int64
	hooks      commitHooks // test seams; zero in production

	// gcMu is held exclusively by GC and Remove, and shared by Put while it
	// decides whether a chunk is held and while it adds one, and by the
	// committer while it renames chunks into place and forgets them. So GC
	// never removes a chunk that a concurrent Put just stored, and neither
	// GC nor Remove can race a rename that would bring back a chunk they
	// removed.
	gcMu sync.RWMutex

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
	closed       bool
	committer    sync.WaitGroup
	failures     failureLog
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
	diskHeaderLen = 12

	// DefaultPendingBytes bounds the chunk bodies a DiskStore holds in
	// memory while they wait for the disk, unless WithPendingBytes says
	// otherwise.
	DefaultPendingBytes = 64 << 20
)

// ErrStoreClosed is returned by Put on a DiskStore after Close.
var ErrStoreClosed = errors.New("chunk store closed")

// DiskOption configures OpenDiskStore.
type DiskOption func(*diskOptions)

type diskOptions struct {
	sync         bool
	pendingBytes int64
	hooks        commitHooks
}

// WithSync says whether commits are made durable (fsync), which is the
// default. Without it a crash of the process still leaves only complete
// chunk files, but a power loss may leave anything: use it only for
// throwaway stores, such as benchmarks and tests.
func WithSync(on bool) DiskOption { return func(o *diskOptions) { o.sync = on } }

// WithPendingBytes bounds the chunk bodies held in memory while they wait
// for the disk (DefaultPendingBytes if n is 0). A Put that would exceed it
// blocks until the committer frees enough; a chunk larger than n is let in
// when nothing else is pending.
func WithPendingBytes(n int64) DiskOption { return func(o *diskOptions) { o.pendingBytes = n } }

// OpenDiskStore opens or creates a store in dir, removing the temporary
// files of a batch that a crash interrupted.
func OpenDiskStore(dir string, opts ...DiskOption) (*DiskStore, error) {
	o := diskOptions{sync: true}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case o.pendingBytes == 0:
		o.pendingBytes = DefaultPendingBytes
	case o.pendingBytes < 0:
		return nil, fmt.Errorf("open chunk store: pending bytes %d < 0", o.pendingBytes)
	}
	s := &DiskStore{
		dir:        dir,
		sync:       o.sync,
		maxPending: o.pendingBytes,
		hooks:      o.hooks,
		pending:    make(map[ChunkID]*pendingChunk),
	}
	s.cond = sync.NewCond(&s.mu)
	if err := os.MkdirAll(s.tmpDir(), 0o700); err != nil {
		return nil, fmt.Errorf("open chunk store: %w", err)
	}
	leftovers, err := os.ReadDir(s.tmpDir())
	if err != nil {
		return nil, fmt.Errorf("open chunk store: %w", err)
	}
	for _, e := range leftovers {
		if err := os.Remove(filepath.Join(s.tmpDir(), e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("open chunk store: remove leftover: %w", err)
		}
	}
	return s, nil
}

// Dir returns the store's directory.
func (s *DiskStore) Dir() string { return s.dir }

func (s *DiskStore) tmpDir() string { return filepath.Join(s.dir, "tmp") }

func shardName(id ChunkID) string { return id.Hex()[:2] }

func (s *DiskStore) path(id ChunkID) string {
	h := id.Hex()
	return filepath.Join(s.dir, h[:2], h)
}

// Has implements Store.
func (s *DiskStore) Has(id ChunkID) bool {
	// Pending before disk: the committer renames a chunk into place before
	// it forgets it, so a chunk being committed is always seen by one.
	s.mu.RLock()
	_, ok := s.pending[id]
	s.mu.RUnlock()
	return ok || s.onDisk(id)
}

func (s *DiskStore) onDisk(id ChunkID) bool {
	_, err := os.Lstat(s.path(id))
	return err == nil
}

// Get implements Store. The body is a copy. For a chunk on disk it checks
// the header but does not re-hash the body; DecodeChunk does that for
// whoever uses the bytes.
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
	b, err := os.ReadFile(s.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return Chunk{}, fmt.Errorf("get %s: %w", id.Short(), ErrNotFound)
	}
	if err != nil {
		return Chunk{}, fmt.Errorf("get %s: %w", id.Short(), err)
	}
	if len(b) < diskHeaderLen || string(b[:4]) != "MCK\x01" {
		return Chunk{}, &ChunkError{id, fmt.Errorf("%w: stored file has no valid header", ErrChunkCorrupt)}
	}
	c = Chunk{ID: id, Enc: Encoding(b[4]), Size: int(binary.LittleEndian.Uint32(b[8:12])), Body: b[diskHeaderLen:]}
	if !c.Enc.Valid() || c.Size <= 0 || c.Size > MaxChunkSize {
		return Chunk{}, &ChunkError{id, fmt.Errorf("%w: stored header says %s, %d bytes", ErrChunkCorrupt, c.Enc, c.Size)}
	}
	return c, nil
}

// Put implements Store: it verifies c, keeps a copy in memory for the
// committer and returns; see DiskStore for what happens when the commit
// fails. It blocks while the pending bytes are at their bound, and returns
// ErrStoreClosed after Close.
func (s *DiskStore) Put(c Chunk) error {
	// Deciding that the chunk is held happens under gcMu: otherwise a Put
	// could see the file that a running GC is about to delete, report
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
// commit failed.
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
	for s.doneSeq < target {
		s.cond.Wait()
	}
	s.failures.flushing--
	return s.failures.flushed(from, target)
}

// Close waits until everything put is durable, stops the committer and
// returns the first commit error that no Flush returned. Afterwards Put
// returns ErrStoreClosed; Has, Get, Walk, GC and Remove work on what is on
// disk. Closing again returns nil.
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
	return err
}

// Walk implements Store. It visits the chunks pending when it starts, then
// those on disk; a chunk held throughout is visited exactly once.
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
	return s.walkDisk(func(id ChunkID) error {
		if seen[id] {
			return nil
		}
		return fn(id)
	})
}

// walkDisk calls fn for every chunk file.
func (s *DiskStore) walkDisk(fn func(id ChunkID) error) error {
	for i := range 256 {
		ents, err := os.ReadDir(filepath.Join(s.dir, fmt.Sprintf("%02x", i)))
		if errors.Is(err, fs.ErrNotExist) {
			continue // no chunk has arrived in this shard yet
		}
		if err != nil {
			return fmt.Errorf("walk chunk store: %w", err)
		}
		for _, e := range ents {
			var id ChunkID
			if n, err := hex.Decode(id[:], []byte(e.Name())); err != nil || n != len(id) {
				continue // not ours
			}
			if err := fn(id); err != nil {
				return err
			}
		}
	}
	return nil
}

// GC implements Store. Pending chunks are collected like those on disk;
// Puts that start while it runs wait for it and are then kept. It calls
// keep without holding mu, so Has and Get keep working meanwhile.
func (s *DiskStore) GC(keep func(id ChunkID) bool) (GCStats, error) {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	var st GCStats

	// Under gcMu no Put adds a chunk and the committer neither renames nor
	// forgets one, so pending only changes here.
	s.mu.RLock()
	pending := make([]*pendingChunk, 0, len(s.pending))
	for _, e := range s.pending {
		pending = append(pending, e)
	}
	s.mu.RUnlock()
	decided := make(map[ChunkID]bool, len(pending))
	for _, e := range pending {
		decided[e.c.ID] = true
		if keep(e.c.ID) {
			st.Kept++
			continue
		}
		s.mu.Lock()
		size := int64(diskHeaderLen + len(e.c.Body))
		s.dropLocked(e)
		s.mu.Unlock()
		freed, err := s.removeFile(e.c.ID) // in case racing Puts committed it twice
		if err != nil {
			return st, fmt.Errorf("gc %s: %w", e.c.ID.Short(), err)
		}
		if freed == 0 {
			freed = size
		}
		st.Removed++
		st.FreedBytes += freed
	}

	err := s.walkDisk(func(id ChunkID) error {
		if decided[id] {
			return nil
		}
		if keep(id) {
			st.Kept++
			return nil
		}
		freed, err := s.removeFile(id)
		if err != nil {
			return fmt.Errorf("gc %s: %w", id.Short(), err)
		}
		st.Removed++
		st.FreedBytes += freed
		return nil
	})
	return st, err
}

// removeFile deletes id's file, if there is one, and returns its size.
func (s *DiskStore) removeFile(id ChunkID) (int64, error) {
	p := s.path(id)
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	return fi.Size(), nil
}

// Remove implements Store, for callers that found a chunk corrupt on read.
// A pending chunk is forgotten and will not be written.
func (s *DiskStore) Remove(id ChunkID) error {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	s.mu.Lock()
	if e := s.pending[id]; e != nil {
		s.dropLocked(e)
	}
	s.mu.Unlock()
	if _, err := s.removeFile(id); err != nil {
		return fmt.Errorf("remove chunk %s: %w", id.Short(), err)
	}
	return nil
}
