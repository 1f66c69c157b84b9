package cdntest

import (
	"errors"
	"io/fs"
	"testing"

	"github.com/meshcast/meshcast/content"
)

// StoredChunks lists the chunks committed to a content.DiskStore directory
// without opening the store (content.ScanDiskStore), so it is safe while a
// fetch writes to it. A missing directory holds none.
func StoredChunks(t testing.TB, dir string) []content.ChunkID {
	t.Helper()
	ids, err := content.ScanDiskStore(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// CheckStore fails the test unless every chunk in the DiskStore at dir
// decodes and hashes to its id, and returns their ids. Call it only when
// nothing writes to the store.
func CheckStore(t testing.TB, dir string) []content.ChunkID {
	t.Helper()
	s, err := content.OpenDiskStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ids []content.ChunkID
	err = s.Walk(func(id content.ChunkID) error {
		c, err := s.Get(id)
		if err != nil {
			return err
		}
		if err := c.Verify(); err != nil {
			return err
		}
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		t.Fatalf("chunk store %s: %v", dir, err)
	}
	return ids
}
