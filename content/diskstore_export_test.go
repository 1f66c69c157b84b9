package content

import "time"

// TestHooks are the DiskStore's test seams. Each runs on the goroutine
// that writes (the committer; GC or Remove for Fault; the Put's for
// PutWait, holding the store's lock) and must not call the store.
type TestHooks struct {
	Batch   func(ids []ChunkID) // a batch was taken, nothing written yet
	Written func(ids []ChunkID) // these chunks of the batch are written and synced, not yet indexed
	PutWait func()              // a Put waits for pending room
	// Fault is called before each write, sync and creation of a file
	// while committing, compacting or writing tombstones; an error it
	// returns is that operation's, as if the disk had failed.
	Fault func() error
}

// WithTestHooks installs h in a DiskStore.
func WithTestHooks(h TestHooks) DiskOption {
	return withHooks(commitHooks{batch: h.Batch, written: h.Written, putWait: h.PutWait, fault: h.Fault})
}

// WithSegmentBytes sets the size at which a DiskStore starts a new
// segment.
func WithSegmentBytes(n int64) DiskOption { return withSegmentBytes(n) }

// IsolateRecord copies id's committed record into a segment of its own,
// indexes the copy and returns that segment's path: a test can then damage
// the chunk by editing the file, its header from the start and its body
// to the end.
func (s *DiskStore) IsolateRecord(id ChunkID) (string, error) {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	c, err := s.Get(id)
	if err != nil {
		return "", err
	}
	if err := s.roll(); err != nil {
		return "", err
	}
	locs, _, err := s.writeChunks([]Chunk{c})
	if err != nil {
		return "", err
	}
	if err := s.roll(); err != nil {
		return "", err
	}
	s.addToIndex([]Chunk{c}, locs)
	return s.segments[locs[0].seg].f.Name(), nil
}

// WithLinger sets how long a DiskStore's committer lets Puts gather before
// it takes a batch (commitLinger by default).
func WithLinger(d time.Duration) DiskOption { return withLinger(d) }
