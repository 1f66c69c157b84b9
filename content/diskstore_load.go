package content

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// load creates the store's directories, reads its segments and imports
// the chunk files of the previous layout.
func (s *DiskStore) load() error {
	if err := os.MkdirAll(s.segmentsDir(), 0o700); err != nil {
		return err
	}
	if err := s.syncDirIf(s.dir); err != nil { // segments/ may be new
		return err
	}
	sc, err := scanSegments(s.segmentsDir(), true)
	if err != nil {
		return err
	}
	s.index, s.segments, s.nextSeg = sc.index, sc.segs, sc.next
	if err := s.importLegacy(); err != nil {
		s.closeSegments()
		return err
	}
	return nil
}

func (s *DiskStore) closeSegments() {
	for _, seg := range s.segments {
		seg.f.Close()
	}
}

// ScanDiskStore lists the chunks that the DiskStore in dir holds on disk,
// as opening it would find them, without opening it: the valid chunk
// records of its segments, less those that tombstones delete. It only
// reads, so it is safe while a store writes to dir, but it may miss the
// records being written and list those of a commit that then fails. A
// store never opened has no segments directory: the error wraps
// fs.ErrNotExist.
func ScanDiskStore(dir string) ([]ChunkID, error) {
	sc, err := scanSegments(filepath.Join(dir, segmentsDirName), false)
	if err != nil {
		return nil, fmt.Errorf("scan chunk store %s: %w", dir, err)
	}
	ids := make([]ChunkID, 0, len(sc.index))
	for id := range sc.index {
		ids = append(ids, id)
	}
	return ids, nil
}

// segmentScan is what reading the segments found.
type segmentScan struct {
	segs  map[uint32]*segment
	index map[ChunkID]loc
	next  uint32 // above every segment number seen
}

// scanSegments reads the segments in dir, oldest first, and applies their
// records in order. The newest segment's chunk bodies are verified too,
// since only it can hold records that were not durable when the machine
// stopped. If write, the segment files stay open for the store, the
// newest is cut (durably) after its last valid record, and empty segments
// are removed; otherwise the files are closed and nothing is changed.
func scanSegments(dir string, write bool) (sc segmentScan, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return sc, err
	}
	var nums []uint32
	for _, e := range ents {
		if n, ok := parseSegmentName(e.Name()); ok && e.Type().IsRegular() {
			nums = append(nums, n)
		}
	}
	slices.Sort(nums)
	sc = segmentScan{segs: make(map[uint32]*segment), index: make(map[ChunkID]loc)}
	if len(nums) > 0 {
		sc.next = nums[len(nums)-1] + 1
	}
	defer func() {
		if err != nil || !write {
			for _, seg := range sc.segs {
				seg.f.Close()
			}
		}
	}()
	for i, num := range nums {
		if err := sc.load(dir, num, i == len(nums)-1, write); err != nil {
			return sc, fmt.Errorf("segment %s: %w", segmentName(num), err)
		}
	}
	return sc, nil
}

// load opens one segment and applies its records.
func (sc *segmentScan) load(dir string, num uint32, last, write bool) error {
	p := filepath.Join(dir, segmentName(num))
	flag := os.O_RDONLY
	if write {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(p, flag, 0)
	if !write && errors.Is(err, fs.ErrNotExist) {
		return nil // removed by the store since the listing
	}
	if err != nil {
		return err
	}
	seg := &segment{num: num, f: f}
	sc.segs[num] = seg
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	end, err := sc.walk(seg, fi.Size(), last)
	if err != nil {
		return err
	}
	seg.size = fi.Size()
	if !write {
		return nil
	}
	if last && end < seg.size {
		// A torn tail: cut it, so that its bytes can never be taken for
		// records once later segments follow.
		if err := f.Truncate(end); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		seg.size = end
	}
	if seg.size == 0 {
		delete(sc.segs, num)
		f.Close()
		return os.Remove(p)
	}
	return nil
}

// walk applies seg's records from its start and returns where they stop
// being valid: at the first header that does not check out or whose
// record runs past size, or, if verify, at the first chunk body that does
// not verify.
func (sc *segmentScan) walk(seg *segment, size int64, verify bool) (int64, error) {
	var hb [recHeaderLen + tombstoneBodyLen]byte // a tombstone's body too
	var body []byte
	off := int64(0)
	for off+recHeaderLen <= size {
		n, err := seg.f.ReadAt(hb[:], off)
		if err != nil && !errors.Is(err, io.EOF) {
			return off, err
		}
		h, err := parseRecHeader(hb[:n])
		if err != nil || off+h.recLen() > size {
			break
		}
		switch h.kind {
		case kindChunk:
			if verify {
				body = slices.Grow(body[:0], int(h.bodyLen))[:h.bodyLen]
				if _, err := seg.f.ReadAt(body, off+recHeaderLen); err != nil {
					return off, err
				}
				if VerifyChunk(h.id, int(h.size), h.enc, body) != nil {
					return off, nil
				}
			}
			indexChunk(sc.index, sc.segs, h.id, loc{seg: seg.num, enc: h.enc, bodyLen: h.bodyLen, size: h.size, off: off})
		case kindTombstone:
			seg.tombstones++
			tseg, toff := parseTombstoneBody(hb[recHeaderLen:])
			unindexChunk(sc.index, sc.segs, h.id, tseg, toff)
		}
		off += h.recLen()
	}
	return off, nil
}

// indexChunk indexes id at l; a record of id indexed before, which only
// GC copying a segment leaves (the copy is later), is then dead.
func indexChunk(index map[ChunkID]loc, segs map[uint32]*segment, id ChunkID, l loc) {
	if old, ok := index[id]; ok {
		if seg := segs[old.seg]; seg != nil {
			seg.live -= old.recLen()
		}
	}
	index[id] = l
	segs[l.seg].live += l.recLen()
}

// unindexChunk forgets id if it is indexed at (seg, off), as a tombstone
// for that record says.
func unindexChunk(index map[ChunkID]loc, segs map[uint32]*segment, id ChunkID, seg uint32, off int64) {
	if l, ok := index[id]; ok && l.seg == seg && l.off == off {
		delete(index, id)
		if s := segs[seg]; s != nil {
			s.live -= l.recLen()
		}
	}
}

// importLegacy imports the chunk files of the layout before segments: one
// file per chunk, <two hex>/<hex id>, holding a 12-byte header ("MCK",
// version 1, encoding, 3 zero bytes, size u32) and the body; and tmp/ for
// files being written. Each file that verifies is appended to the
// segments, durably, and then the old files and directories are removed,
// with those that do not verify.
func (s *DiskStore) importLegacy() error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	var (
		old   []string
		batch []Chunk
		n     int
	)
	write := func() error {
		locs, _, err := s.writeChunks(batch)
		if err != nil {
			return fmt.Errorf("import chunk files: %w", err)
		}
		s.addToIndex(batch, locs)
		batch, n = nil, 0
		return nil
	}
	for _, e := range ents {
		name := e.Name()
		if _, err := hex.DecodeString(name); !e.IsDir() || name != "tmp" && (len(name) != 2 || err != nil) {
			continue // not the old layout's
		}
		dir := filepath.Join(s.dir, name)
		old = append(old, dir)
		files, err := os.ReadDir(dir)
		if err != nil || name == "tmp" {
			continue // removed below anyway
		}
		for _, f := range files {
			c, ok := readLegacyChunk(filepath.Join(dir, f.Name()))
			if _, held := s.index[c.ID]; !ok || held {
				continue // an import that a crash interrupted did it
			}
			batch = append(batch, c)
			if n += len(c.Body); n >= commitBatchBytes {
				if err := write(); err != nil {
					return err
				}
			}
		}
	}
	if len(batch) > 0 {
		if err := write(); err != nil {
			return err
		}
	}
	for _, dir := range old {
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	return nil
}

// readLegacyChunk reads a chunk file of the previous layout and reports
// whether it holds a chunk that verifies.
func readLegacyChunk(p string) (Chunk, bool) {
	var c Chunk
	name := filepath.Base(p)
	if len(name) != 2*len(c.ID) {
		return c, false
	}
	b, err := os.ReadFile(p)
	if _, herr := hex.Decode(c.ID[:], []byte(name)); err != nil || herr != nil || len(b) < 12 || string(b[:4]) != "MCK\x01" {
		return c, false
	}
	c.Enc, c.Size, c.Body = Encoding(b[4]), int(binary.LittleEndian.Uint32(b[8:12])), b[12:]
	return c, c.Verify() == nil && len(c.Body) <= maxBodyLen
}
