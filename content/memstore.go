package content

import (
	"fmt"
	"sync"
)

// MemStore is a Store in memory, for tests and for short-lived tools.
type MemStore struct {
	mu     sync.RWMutex
	chunks map[ChunkID]Chunk
}

// NewMemStore returns an empty store.
func NewMemStore() *MemStore { return &MemStore{chunks: make(map[ChunkID]Chunk)} }

// Has implements Store.
func (s *MemStore) Has(id ChunkID) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.chunks[id]
	return ok
}

// Get implements Store. The body is a copy.
func (s *MemStore) Get(id ChunkID) (Chunk, error) {
	s.mu.RLock()
	c, ok := s.chunks[id]
	s.mu.RUnlock()
	if !ok {
		return Chunk{}, fmt.Errorf("get %s: %w", id.Short(), ErrNotFound)
	}
	c.Body = append([]byte(nil), c.Body...)
	return c, nil
}

// Put implements Store.
func (s *MemStore) Put(c Chunk) error {
	if s.Has(c.ID) {
		return nil
	}
	if err := c.Verify(); err != nil {
		return err
	}
	c.Body = append([]byte(nil), c.Body...)
	s.mu.Lock()
	s.chunks[c.ID] = c
	s.mu.Unlock()
	return nil
}

// Walk implements Store. fn sees a snapshot of the ids.
func (s *MemStore) Walk(fn func(id ChunkID) error) error {
	s.mu.RLock()
	ids := make([]ChunkID, 0, len(s.chunks))
	for id := range s.chunks {
		ids = append(ids, id)
	}
	s.mu.RUnlock()
	for _, id := range ids {
		if err := fn(id); err != nil {
			return err
		}
	}
	return nil
}

// GC implements Store.
func (s *MemStore) GC(keep func(id ChunkID) bool) (GCStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var st GCStats
	for id, c := range s.chunks {
		if keep(id) {
			st.Kept++
			continue
		}
		delete(s.chunks, id)
		st.Removed++
		st.FreedBytes += int64(len(c.Body))
	}
	return st, nil
}

// Remove implements Store.
func (s *MemStore) Remove(id ChunkID) error {
	s.mu.Lock()
	delete(s.chunks, id)
	s.mu.Unlock()
	return nil
}
