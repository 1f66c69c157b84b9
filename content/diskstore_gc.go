package content

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
)

// removedChunk is an indexed chunk that GC or Remove deletes.
type removedChunk struct {
	id ChunkID
	l  loc
}

// GC implements Store. Pending chunks are collected like those on disk;
// Puts that start while it runs wait for it and are then kept. It calls
// keep without holding a lock that Has, Get or Walk need.
//
// Then it frees space. A segment other than the active one is deleted if
// it holds no live chunk and no tombstone, and compacted if less than half
// of it is live chunks: those, and its tombstones that still delete
// something, are appended to the active segment, synced, and the segment
// is deleted. The chunks removed from the other segments get tombstones.
// If a write fails, GC returns the error; the chunks it removed are no
// longer held, but a store opened on the directory again may hold some of
// them (a later GC removes them).
func (s *DiskStore) GC(keep func(id ChunkID) bool) (GCStats, error) {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	var st GCStats
	if s.closedFiles {
		return st, fmt.Errorf("gc: %w", ErrStoreClosed)
	}

	// Under gcMu no Put adds a chunk and the committer does not run: the
	// pending chunks and the index only change here, so this goroutine
	// reads the index without idxMu, which it takes to write it.
	s.mu.RLock()
	pending := make([]*pendingChunk, 0, len(s.pending))
	for _, e := range s.pending {
		pending = append(pending, e)
	}
	s.mu.RUnlock()
	for _, e := range pending {
		if keep(e.c.ID) {
			st.Kept++
			continue
		}
		st.Removed++
		st.FreedBytes += recHeaderLen + int64(len(e.c.Body))
		s.mu.Lock()
		s.dropLocked(e) // which may free the body
		s.mu.Unlock()
	}

	var removed []removedChunk
	for id, l := range s.index {
		if keep(id) {
			st.Kept++
			continue
		}
		removed = append(removed, removedChunk{id, l})
		st.Removed++
		st.FreedBytes += l.recLen()
	}
	s.idxMu.Lock()
	for _, r := range removed {
		unindexChunk(s.index, s.segments, r.id, r.l.seg, r.l.off)
	}
	s.idxMu.Unlock()
	if err := s.reclaim(removed); err != nil {
		return st, fmt.Errorf("gc: %w", err)
	}
	return st, nil
}

// reclaim deletes and compacts segments as GC says, and writes tombstones
// for the removed chunks whose records remain.
func (s *DiskStore) reclaim(removed []removedChunk) error {
	var dead, sparse []*segment
	for _, seg := range s.segments {
		switch {
		case seg.live == 0 && seg.tombstones == 0:
			dead = append(dead, seg) // the active one too: nothing needs it
		case seg != s.w.seg && 2*seg.live < seg.size:
			sparse = append(sparse, seg)
		}
	}
	// The emptiest first: on a full disk, each frees the most for what
	// it copies, and makes room for the next.
	slices.SortFunc(sparse, func(a, b *segment) int { return cmp.Compare(a.live, b.live) })
	var errs []error
	for _, seg := range dead {
		err := s.removeSegment(seg)
		if err == nil && seg == s.w.seg {
			s.w.seg = nil
		}
		errs = append(errs, err)
	}
	for _, seg := range sparse {
		if err := s.compact(seg); err != nil {
			errs = append(errs, fmt.Errorf("compact %s: %w", segmentName(seg.num), err))
			break // the disk is failing: tombstones instead
		}
	}
	if len(dead)+len(sparse) > 0 {
		errs = append(errs, s.syncDirIf(s.segmentsDir()))
	}
	var need []removedChunk
	for _, r := range removed {
		if s.segments[r.l.seg] != nil {
			need = append(need, r)
		}
	}
	errs = append(errs, s.writeTombstones(need))
	return errors.Join(errs...)
}

// compact appends seg's live chunk records, and its tombstones for records
// in other segments that remain, to the active segment, syncs them,
// indexes the copies and deletes seg.
func (s *DiskStore) compact(seg *segment) error {
	r := bufio.NewReaderSize(io.NewSectionReader(seg.f, 0, seg.size), writeBufBytes)
	var (
		hb   [recHeaderLen]byte
		body []byte
		off  int64
		ids  []ChunkID // of the records copied, in order
	)
	next := func() (recHeader, []byte, error) {
		for off+recHeaderLen <= seg.size {
			if _, err := io.ReadFull(r, hb[:]); err != nil {
				return recHeader{}, nil, err
			}
			h, err := parseRecHeader(hb[:])
			if err != nil || off+h.recLen() > seg.size {
				break // where loading the segment stopped too
			}
			body = slices.Grow(body[:0], int(h.bodyLen))[:h.bodyLen]
			if _, err := io.ReadFull(r, body); err != nil {
				return recHeader{}, nil, err
			}
			at := off
			off += h.recLen()
			if h.kind == kindChunk {
				if l, ok := s.index[h.id]; !ok || l.seg != seg.num || l.off != at {
					continue // removed or replaced
				}
			} else if t, _ := parseTombstoneBody(body); t == seg.num || s.segments[t] == nil {
				continue // deletes nothing any more
			}
			ids = append(ids, h.id)
			return h, body, nil
		}
		return recHeader{}, nil, io.EOF
	}
	locs, durable, err := s.writeRecords(next)
	s.idxMu.Lock()
	for i, l := range locs[:durable] {
		if l.size > 0 { // a chunk record, not a tombstone
			indexChunk(s.index, s.segments, ids[i], l)
		}
	}
	s.idxMu.Unlock()
	if err != nil {
		return err
	}
	return s.removeSegment(seg)
}

// Remove implements Store, for callers that found a chunk corrupt on read.
// A pending chunk is forgotten and will not be written; a chunk on disk
// gets a tombstone, synced before Remove returns.
func (s *DiskStore) Remove(id ChunkID) error {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	s.mu.Lock()
	if e := s.pending[id]; e != nil {
		s.dropLocked(e)
	}
	s.mu.Unlock()
	l, ok := s.index[id] // only changed under gcMu, held here
	switch {
	case !ok:
		return nil
	case s.closedFiles:
		return fmt.Errorf("remove chunk %s: %w", id.Short(), ErrStoreClosed)
	}
	if err := s.writeTombstones([]removedChunk{{id, l}}); err != nil {
		return fmt.Errorf("remove chunk %s: %w", id.Short(), err)
	}
	s.idxMu.Lock()
	unindexChunk(s.index, s.segments, id, l.seg, l.off)
	s.idxMu.Unlock()
	return nil
}

// writeTombstones appends and syncs tombstones for rs.
func (s *DiskStore) writeTombstones(rs []removedChunk) error {
	if len(rs) == 0 {
		return nil
	}
	_, _, err := s.writeRecords(func() (recHeader, []byte, error) {
		if len(rs) == 0 {
			return recHeader{}, nil, io.EOF
		}
		r := rs[0]
		rs = rs[1:]
		return recHeader{kind: kindTombstone, bodyLen: tombstoneBodyLen, id: r.id}, tombstoneBody(r.l.seg, r.l.off), nil
	})
	return err
}
