package content

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

const (
	// commitBatchBytes bounds the chunk bodies one batch commits: half the
	// default pending bound, so Puts fill the next batch while one is
	// written.
	commitBatchBytes = 32 << 20
	// commitWorkers write and sync a batch's files in parallel.
	commitWorkers = 4
	// syncfsFiles is the number of files (temporary files, or directories
	// that renames went into) from which one syncfs(2) makes them durable
	// rather than an fsync(2) each, from commitWorkers in parallel.
	//
	// Measured here (ext4 without a journal on a virtio disk, 2 CPUs,
	// 64 KiB chunks): an fsync of a new file takes 1.2-1.6 ms even four at
	// a time (it also syncs the file's directory), so a 32 MiB batch of
	// 512 files spends 170 ms or more in fsyncs, where one syncfs takes
	// 85-120 ms. Sustained, durable Puts ran at 137-199 MB/s with syncfs,
	// 81-124 MB/s with four fsync workers and 82-165 MB/s with sixteen.
	// But syncfs writes back everything dirty on the file system, other
	// programs' data too: 4 ms for four small files when nothing else is
	// dirty, 60 ms right after a build. So a small batch, which a slow
	// stream of Puts makes, fsyncs its own files and pays only for them.
	syncfsFiles = 16
)

// commitHooks are test seams, set by an internal test; nil in production.
type commitHooks struct {
	batch   func(ids []ChunkID) // a batch was taken, nothing written yet
	written func(ids []ChunkID) // its temporary files are written and synced, none renamed
	renamed func(id ChunkID)    // one chunk was renamed into place
	putWait func()              // a Put waits for pending room; called with mu held
}

func withHooks(h commitHooks) DiskOption { return func(o *diskOptions) { o.hooks = h } }

// commitLoop commits batches until nothing is queued. Put starts it when
// there is work and none runs; Close waits for it.
func (s *DiskStore) commitLoop() {
	defer s.committer.Done()
	for {
		s.mu.Lock()
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

// commit makes batch durable: temporary files, written and synced in
// parallel, then renamed into place, then the renames synced, then the
// chunks forgotten. A chunk whose commit fails is dropped and the failure
// logged. Nothing but a rename of a complete, synced file creates a chunk
// file.
func (s *DiskStore) commit(batch []*pendingChunk, last uint64) {
	if s.hooks.batch != nil {
		s.hooks.batch(chunkIDs(batch))
	}
	tmp := make([]string, len(batch))
	errs := make([]error, len(batch))
	wholeFS := s.sync && haveSyncfs && len(batch) >= syncfsFiles
	fsyncEach := s.sync && !wholeFS
	s.parallel(len(batch), func(i int) { tmp[i], errs[i] = s.writeTemp(batch[i].c, fsyncEach) })
	if wholeFS {
		if err := syncfs(s.dir); err != nil {
			failAll(errs, tmp, fmt.Errorf("sync: %w", err))
		}
	}
	if s.hooks.written != nil {
		s.hooks.written(chunkIDs(batch))
	}

	// Renames and forgetting happen under gcMu, so that GC and Remove see
	// a chunk either pending or in place, and cannot delete one that a
	// rename then brings back.
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	// The renames must be durable in both directories they touch.
	dirs := map[string]bool{s.tmpDir(): true}
	renamed := 0
	for i, e := range batch {
		if errs[i] != nil {
			continue
		}
		s.mu.RLock()
		live := s.pending[e.c.ID] == e
		s.mu.RUnlock()
		if !live { // removed while it was written
			os.Remove(tmp[i])
			errs[i] = errDropped
			continue
		}
		created, err := s.rename(tmp[i], e.c.ID)
		if err != nil {
			os.Remove(tmp[i])
			errs[i] = err
			continue
		}
		renamed++
		dirs[filepath.Join(s.dir, shardName(e.c.ID))] = true
		if created {
			dirs[s.dir] = true
		}
		if s.hooks.renamed != nil {
			s.hooks.renamed(e.c.ID)
		}
	}
	if s.sync && renamed > 0 {
		if err := s.syncDirs(dirs); err != nil {
			// The files are complete, but whether they survive a power
			// loss is unknown: drop them, as for any other failure.
			for i, e := range batch {
				if errs[i] == nil {
					os.Remove(s.path(e.c.ID))
					errs[i] = fmt.Errorf("sync directories: %w", err)
				}
			}
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	var f failure
	for i, e := range batch {
		if s.pending[e.c.ID] != e {
			continue
		}
		if err := errs[i]; err != nil && err != errDropped {
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

// errDropped marks a chunk that GC or Remove deleted while it was being
// written: not a failure.
var errDropped = errors.New("dropped while committed")

func failAll(errs []error, tmp []string, err error) {
	for i := range errs {
		if errs[i] == nil {
			os.Remove(tmp[i])
			errs[i] = err
		}
	}
}

func chunkIDs(batch []*pendingChunk) []ChunkID {
	ids := make([]ChunkID, len(batch))
	for i, e := range batch {
		ids[i] = e.c.ID
	}
	return ids
}

// parallel calls fn(0..n-1) from up to commitWorkers goroutines and waits
// for them.
func (s *DiskStore) parallel(n int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, commitWorkers) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		})
	}
	wg.Wait()
}

// writeTemp writes c to a new temporary file, fsynced if told to, and
// returns its name.
func (s *DiskStore) writeTemp(c Chunk, fsync bool) (name string, err error) {
	f, err := os.CreateTemp(s.tmpDir(), c.ID.Hex()[:16]+".*")
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	var hdr [diskHeaderLen]byte
	copy(hdr[:], "MCK\x01")
	hdr[4] = byte(c.Enc)
	binary.LittleEndian.PutUint32(hdr[8:], uint32(c.Size))
	if _, err = f.Write(hdr[:]); err != nil {
		return "", err
	}
	if _, err = f.Write(c.Body); err != nil {
		return "", err
	}
	if fsync {
		if err = f.Sync(); err != nil {
			return "", err
		}
	}
	if err = f.Close(); err != nil {
		return "", err
	}
	return f.Name(), nil
}

// rename moves a temporary file into place, creating the chunk's shard on
// first use, and reports whether it did.
func (s *DiskStore) rename(tmp string, id ChunkID) (created bool, err error) {
	dst := s.path(id)
	err = os.Rename(tmp, dst)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(filepath.Dir(dst), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return false, err
		}
		created = true
		err = os.Rename(tmp, dst)
	}
	return created, err
}

// syncDirs makes the renames into dirs durable: one syncfs(2) for many,
// as for the files (see syncfsFiles), else an fsync each.
func (s *DiskStore) syncDirs(dirs map[string]bool) error {
	if haveSyncfs && len(dirs) >= syncfsFiles {
		return syncfs(s.dir)
	}
	names := make([]string, 0, len(dirs))
	for d := range dirs {
		names = append(names, d)
	}
	errs := make([]error, len(names))
	s.parallel(len(names), func(i int) { errs[i] = syncDir(names[i]) })
	return errors.Join(errs...)
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
