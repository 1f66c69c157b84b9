package content

import (
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
// shard, named by the hex digest. A file holds a 12-byte header ("MCK",
// version 1, encoding, 3 zero bytes, uncompressed size u32 LE) and the body.
//
// Put writes a temporary file, fsyncs it and renames it into place, so after
// a crash a chunk file is either absent or complete; the temporary files
// of an interrupted Put are removed when the store is opened again.
type DiskStore struct {
	dir string

	// gcMu is held shared by Put and exclusively by GC, so that GC never
	// removes a chunk that a concurrent Put just stored.
	gcMu sync.RWMutex
}

const diskHeaderLen = 12

// OpenDiskStore opens or creates a store in dir.
func OpenDiskStore(dir string) (*DiskStore, error) {
	s := &DiskStore{dir: dir}
	if err := os.MkdirAll(s.tmpDir(), 0o700); err != nil {
		return nil, fmt.Errorf("open chunk store: %w", err)
	}
	leftovers, err := os.ReadDir(s.tmpDir())
	if err != nil {
		return nil, fmt.Errorf("open chunk store: %w", err)
	}
	for _, e := range leftovers {
		if err := os.Remove(filepath.Join(s.tmpDir(), e.Name())); err != nil {
			return nil, fmt.Errorf("open chunk store: remove leftover: %w", err)
		}
	}
	for i := 0; i < 256; i++ {
		if err := os.MkdirAll(filepath.Join(dir, fmt.Sprintf("%02x", i)), 0o700); err != nil {
			return nil, fmt.Errorf("open chunk store: %w", err)
		}
	}
	return s, nil
}

// Dir returns the store's directory.
func (s *DiskStore) Dir() string { return s.dir }

func (s *DiskStore) tmpDir() string { return filepath.Join(s.dir, "tmp") }

func (s *DiskStore) path(id ChunkID) string {
	h := id.Hex()
	return filepath.Join(s.dir, h[:2], h)
}

// Has implements Store.
func (s *DiskStore) Has(id ChunkID) bool {
	_, err := os.Lstat(s.path(id))
	return err == nil
}

// Get implements Store. It checks the header but does not re-hash the
// body; DecodeChunk does that for whoever uses the bytes.
func (s *DiskStore) Get(id ChunkID) (Chunk, error) {
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
	c := Chunk{ID: id, Enc: Encoding(b[4]), Size: int(binary.LittleEndian.Uint32(b[8:12])), Body: b[diskHeaderLen:]}
	if !c.Enc.Valid() || c.Size <= 0 || c.Size > MaxChunkSize {
		return Chunk{}, &ChunkError{id, fmt.Errorf("%w: stored header says %s, %d bytes", ErrChunkCorrupt, c.Enc, c.Size)}
	}
	return c, nil
}

// Put implements Store.
func (s *DiskStore) Put(c Chunk) error {
	// The lock covers the Has check too: otherwise a Put could see the file
	// that a running GC is about to delete, report success, and lose the
	// chunk.
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	if s.Has(c.ID) {
		return nil
	}
	if err := c.Verify(); err != nil {
		return err
	}
	if err := s.write(c); err != nil {
		return fmt.Errorf("store chunk %s: %w", c.ID, err)
	}
	return nil
}

func (s *DiskStore) write(c Chunk) (err error) {
	f, err := os.CreateTemp(s.tmpDir(), c.ID.Hex()[:16]+".*")
	if err != nil {
		return err
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

// Walk implements Store.
func (s *DiskStore) Walk(fn func(id ChunkID) error) error {
	for i := 0; i < 256; i++ {
		shard := filepath.Join(s.dir, fmt.Sprintf("%02x", i))
		ents, err := os.ReadDir(shard)
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

// GC implements Store.
func (s *DiskStore) GC(keep func(id ChunkID) bool) (GCStats, error) {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	var st GCStats
	err := s.Walk(func(id ChunkID) error {
		if keep(id) {
			st.Kept++
			return nil
		}
		p := s.path(id)
		fi, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("gc %s: %w", id.Short(), err)
		}
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("gc %s: %w", id.Short(), err)
		}
		st.Removed++
		st.FreedBytes += fi.Size()
		return nil
	})
	return st, err
}

// Remove deletes one chunk, for callers that found it corrupt on read.
func (s *DiskStore) Remove(id ChunkID) error {
	err := os.Remove(s.path(id))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove chunk %s: %w", id.Short(), err)
	}
	return nil
}
