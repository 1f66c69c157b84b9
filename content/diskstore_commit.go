package content

import (
	"fmt"
	"io"
	"time"
)

// commitBatchBytes bounds the chunk bodies one batch commits: half the
// default pending bound, so Puts fill the next batch while one is written.
const commitBatchBytes = 32 << 20

// commitHooks are test seams, set by an internal test; nil in production.
type commitHooks struct {
	batch   func(ids []ChunkID) // a batch was taken, nothing written yet
	written func(ids []ChunkID) // these chunks of it are written and synced, not yet indexed
	putWait func()              // a Put waits for pending room; called with mu held
	fault   func() error        // called before each write, sync and create; its error is the operation's
}

func withHooks(h commitHooks) DiskOption { return func(o *diskOptions) { o.hooks = h } }

func withLinger(d time.Duration) DiskOption { return func(o *diskOptions) { o.linger = d } }

// commitLinger is how long the committer of a durable store lets Puts
// gather before it takes a batch, unless someone waits for it (see
// hurryLocked). A site member takes a chunk every few milliseconds; one
// fsync per chunk or two cost a loaded site's disk and CPU more than the
// bytes did, and the runtime loses a P for the length of each. A chunk
// is served as soon as Put returns, so the linger delays only when it
// survives a crash.
const commitLinger = 10 * time.Millisecond

// commitLoop commits batches until nothing is queued. Put starts it when
// there is work and none runs; Close waits for it.
func (s *DiskStore) commitLoop() {
	defer s.committer.Done()
	for {
		s.mu.Lock()
		if s.linger > 0 && s.pendingBytes < commitBatchBytes && s.failures.flushing == 0 && !s.closed {
			s.mu.Unlock()
			t := time.NewTimer(s.linger)
			select {
			case <-t.C:
			case <-s.hurry:
				t.Stop()
			}
			s.mu.Lock()
		}
		batch, last := s.takeBatchLocked()
		if last == 0 {
			s.committing = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		s.commit(batch, last)
	}
}

// hurryLocked ends the committer's linger, or the next one.
func (s *DiskStore) hurryLocked() {
	select {
	case s.hurry <- struct{}{}:
	default:
	}
}

// takeBatchLocked takes the oldest queued chunks, up to commitBatchBytes,
// skipping those dropped meanwhile, and returns the seq of the last one
// taken (0 if the queue is empty).
func (s *DiskStore) takeBatchLocked() (batch []*pendingChunk, last uint64) {
	var n int64
	i := 0
	for ; i < len(s.queue) && n < commitBatchBytes; i++ {
		e := s.queue[i]
		s.queue[i] = nil
		last = e.seq
		if s.pending[e.c.ID] != e {
			continue // removed by GC or Remove
		}
		e.taken = true
		batch = append(batch, e)
		n += int64(len(e.c.Body))
	}
	s.queue = s.queue[i:]
	if len(s.queue) == 0 {
		s.queue = nil
	}
	return batch, last
}

// commit makes batch durable: its records appended to the active segment,
// synced, then indexed, then the chunks forgotten. A chunk whose commit
// fails is dropped and the failure logged.
func (s *DiskStore) commit(batch []*pendingChunk, last uint64) {
	if s.hooks.batch != nil {
		s.hooks.batch(chunkIDs(batch))
	}
	// The whole commit runs under gcMu: GC and Remove see a chunk either
	// pending or indexed, and the committer is meanwhile the only writer.
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	s.mu.RLock()
	var live []*pendingChunk
	cs := make([]Chunk, 0, len(batch))
	for _, e := range batch {
		if s.pending[e.c.ID] == e { // else removed by GC or Remove since
			live = append(live, e)
			cs = append(cs, e.c)
		}
	}
	s.mu.RUnlock()

	locs, durable, err := s.writeChunks(cs)
	if s.hooks.written != nil {
		s.hooks.written(chunkIDs(live[:durable]))
	}
	// Indexed before forgotten, so that Has never flickers.
	s.addToIndex(cs[:durable], locs[:durable])

	s.mu.Lock()
	defer s.mu.Unlock()
	var f failure
	for i, e := range live {
		if i >= durable {
			f.add(e, err)
		}
		s.dropLocked(e) // committed, or failed
	}
	if f.err != nil {
		s.failures.add(f)
	}
	s.doneSeq = last
	s.cond.Broadcast()
}

// writeChunks appends cs to the segments and makes them durable, as
// writeRecords.
func (s *DiskStore) writeChunks(cs []Chunk) (locs []loc, durable int, err error) {
	i := 0
	return s.writeRecords(func() (recHeader, []byte, error) {
		if i == len(cs) {
			return recHeader{}, nil, io.EOF
		}
		c := cs[i]
		i++
		return recHeader{kind: kindChunk, enc: c.Enc, size: uint32(c.Size), bodyLen: uint32(len(c.Body)), id: c.ID}, c.Body, nil
	})
}

// addToIndex indexes the chunks cs written at locs.
func (s *DiskStore) addToIndex(cs []Chunk, locs []loc) {
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	for i, c := range cs {
		indexChunk(s.index, s.segments, c.ID, locs[i])
	}
}

func chunkIDs(batch []*pendingChunk) []ChunkID {
	ids := make([]ChunkID, len(batch))
	for i, e := range batch {
		ids[i] = e.c.ID
	}
	return ids
}

// failure is what one batch lost: the range of seqs that failed and the
// first error, naming its chunk.
type failure struct {
	lo, hi uint64
	err    error
	n      int
}

func (f *failure) add(e *pendingChunk, err error) {
	if f.err == nil {
		f.lo, f.err = e.seq, fmt.Errorf("commit chunk %s: %w", e.c.ID, err)
	}
	f.hi = e.seq
	f.n++
}

// failureLog keeps the commit failures until Flush and Put have reported
// them. Put reports a failure of a chunk accepted after putMark; Flush one
// in its window (previous flushMark, its target].
type failureLog struct {
	records   []failure
	putMark   uint64 // failures up to here were reported to a Put or Flush
	flushMark uint64 // failures up to here were reported to a Flush
	flushing  int    // Flushes waiting; records they may need are kept
}

// maxFailures bounds the log: older records are merged, which can only
// make a Flush report an error for a window that lost nothing between
// two failures.
const maxFailures = 16

func (l *failureLog) add(f failure) {
	if f.n > 1 {
		f.err = fmt.Errorf("%w (and %d more chunks of the batch)", f.err, f.n-1)
	}
	if len(l.records) == maxFailures {
		l.records[1].lo, l.records[1].err = l.records[0].lo, l.records[0].err
		l.records = l.records[1:]
	}
	l.records = append(l.records, f)
}

// forPut returns the first failure no Put or Flush has reported.
func (l *failureLog) forPut() error {
	for _, r := range l.records {
		if r.hi > l.putMark {
			return r.err
		}
	}
	return nil
}

// reportToPut returns forPut's failure and marks every chunk accepted so
// far as reported to Puts.
func (l *failureLog) reportToPut(nextSeq uint64) error {
	err := l.forPut()
	l.putMark = max(l.putMark, nextSeq)
	l.prune()
	return err
}

// flushed returns the first failure in (from, target] and marks the chunks
// up to target as reported.
func (l *failureLog) flushed(from, target uint64) error {
	var err error
	for _, r := range l.records {
		if r.hi > from && r.lo <= target {
			err = r.err
			break
		}
	}
	l.flushMark = max(l.flushMark, target)
	l.putMark = max(l.putMark, target)
	l.prune()
	return err
}

func (l *failureLog) prune() {
	if l.flushing > 0 {
		return
	}
	mark := min(l.putMark, l.flushMark)
	i := 0
	for i < len(l.records) && l.records[i].hi <= mark {
		i++
	}
	l.records = l.records[i:]
}
