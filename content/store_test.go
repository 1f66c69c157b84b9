package content_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/content/storetest"
)

func TestMemStoreConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(testing.TB) content.Store { return content.NewMemStore() })
}

func TestDiskStoreConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(tb testing.TB) content.Store { return openDiskStore(tb, tb.TempDir()) })
}

func openDiskStore(tb testing.TB, dir string) *content.DiskStore {
	tb.Helper()
	s, err := content.OpenDiskStore(dir)
	if err != nil {
		tb.Fatalf("OpenDiskStore(%s): %v", dir, err)
	}
	if s.Dir() != dir {
		tb.Fatalf("Dir() = %s, want %s", s.Dir(), dir)
	}
	return s
}

// chunkFile is where a DiskStore keeps id (see the DiskStore doc comment).
func chunkFile(s *content.DiskStore, id content.ChunkID) string {
	h := id.Hex()
	return filepath.Join(s.Dir(), h[:2], h)
}

func tmpEntries(tb testing.TB, s *content.DiskStore) []string {
	tb.Helper()
	ents, err := os.ReadDir(filepath.Join(s.Dir(), "tmp"))
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestDiskStorePersists(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openDiskStore(t, dir)
	cs := storetest.Chunks(t, 1, 10, 3000)
	for _, c := range cs {
		if err := s.Put(c); err != nil {
			t.Fatal(err)
		}
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
}

func TestDiskStoreRemovesLeftoverTempFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openDiskStore(t, dir)
	c := storetest.RawChunk(storetest.RandomData(2, 100))
	if err := s.Put(c); err != nil {
		t.Fatal(err)
	}
	if left := tmpEntries(t, s); len(left) != 0 {
		t.Fatalf("Put left %v in tmp/", left)
	}
	// What a crash in the middle of Put leaves behind.
	for _, name := range []string{c.ID.Hex()[:16] + ".123456", "0000000000000000.1"} {
		if err := os.WriteFile(filepath.Join(dir, "tmp", name), []byte("MCK\x01half a chunk"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s = openDiskStore(t, dir)
	if left := tmpEntries(t, s); len(left) != 0 {
		t.Fatalf("reopening left %v in tmp/", left)
	}
	if got, err := s.Get(c.ID); err != nil || got.Verify() != nil {
		t.Fatalf("the stored chunk did not survive the cleanup: %v", err)
	}
}

func TestDiskStoreDamagedHeader(t *testing.T) {
	t.Parallel()
	damage := map[string]func(b []byte) []byte{
		"magic":          func(b []byte) []byte { copy(b, "JUNK"); return b },
		"version":        func(b []byte) []byte { b[3] = 2; return b },
		"encoding":       func(b []byte) []byte { b[4] = 9; return b },
		"size zero":      func(b []byte) []byte { copy(b[8:12], []byte{0, 0, 0, 0}); return b },
		"size too large": func(b []byte) []byte { copy(b[8:12], []byte{0xff, 0xff, 0xff, 0x7f}); return b },
		"truncated":      func(b []byte) []byte { return b[:7] },
		"empty":          func(b []byte) []byte { return nil },
	}
	s := openDiskStore(t, t.TempDir()) // one store: opening one costs 257 mkdirs
	seed := uint64(10)
	for name, edit := range damage {
		seed++
		t.Run(name, func(t *testing.T) {
			c := storetest.ZstdChunk(t, storetest.TextData(seed, 5000))
			if err := s.Put(c); err != nil {
				t.Fatal(err)
			}
			p := chunkFile(s, c.ID)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatalf("chunk file not where the layout says: %v", err)
			}
			if err := os.WriteFile(p, edit(b), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err = s.Get(c.ID)
			if !errors.Is(err, content.ErrChunkCorrupt) {
				t.Fatalf("Get of a damaged file: got %v, want ErrChunkCorrupt", err)
			}
			var ce *content.ChunkError
			if !errors.As(err, &ce) || ce.ID != c.ID || !strings.Contains(err.Error(), c.ID.String()) {
				t.Fatalf("error %q does not name chunk %s", err, c.ID)
			}
		})
	}
}

func TestDiskStorePermissions(t *testing.T) {
	t.Parallel()
	s := openDiskStore(t, t.TempDir())
	c := storetest.RawChunk(storetest.RandomData(4, 100))
	if err := s.Put(c); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{chunkFile(s, c.ID), filepath.Dir(chunkFile(s, c.ID)), filepath.Join(s.Dir(), "tmp")} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %v; chunk store entries must not be readable by group or others", p, perm)
		}
	}
}

// TestDiskStoreFullDisk fills a tiny tmpfs: the failing Put must say which
// chunk and why (ENOSPC), leave no temporary file behind and damage nothing
// already stored; once space is freed, the same Put succeeds.
func TestDiskStoreFullDisk(t *testing.T) {
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

	s := openDiskStore(t, dir)
	var (
		stored []content.Chunk
		failed content.Chunk
		err    error
	)
	for i := range 64 { // 64 × 16 KiB is four times the disk
		c := storetest.RawChunk(storetest.RandomData(uint64(100+i), 16<<10))
		if err = s.Put(c); err != nil {
			failed = c
			break
		}
		stored = append(stored, c)
	}
	if err == nil {
		t.Fatal("1 MiB of chunks fit on a 256 KiB tmpfs")
	}
	t.Logf("%d chunks stored, then: %v", len(stored), err)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Put on a full disk: %v does not wrap ENOSPC", err)
	}
	if !strings.Contains(err.Error(), failed.ID.String()) {
		t.Fatalf("Put error %q does not name chunk %s", err, failed.ID)
	}
	if left := tmpEntries(t, s); len(left) != 0 {
		t.Fatalf("the failed Put left %v in tmp/", left)
	}
	if s.Has(failed.ID) {
		t.Fatal("the chunk whose Put failed is reported as held")
	}
	if len(stored) == 0 {
		t.Fatal("not a single chunk fit: the test disk is too small to mean anything")
	}
	held := 0
	if err := s.Walk(func(id content.ChunkID) error {
		held++
		c, err := s.Get(id)
		if err != nil {
			return err
		}
		return c.Verify()
	}); err != nil {
		t.Fatalf("a chunk held on the full disk does not verify: %v", err)
	}
	if held != len(stored) {
		t.Fatalf("store holds %d chunks, %d Puts succeeded", held, len(stored))
	}

	for _, c := range stored[:2] {
		if err := s.Remove(c.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(failed); err != nil {
		t.Fatalf("Put after freeing space: %v", err)
	}
	got, err := s.Get(failed.ID)
	if err != nil || got.Verify() != nil {
		t.Fatalf("the chunk put after freeing space: %v", err)
	}
}
