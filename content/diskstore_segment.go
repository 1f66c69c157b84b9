package content

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// Segment record format. All integers are little endian.
//
//	magic    [4]byte  "MCS" and version 1
//	kind     byte     1 chunk, 2 tombstone
//	encoding byte     the chunk body's Encoding (0 in a tombstone)
//	zero     [2]byte
//	size     u32      the chunk's uncompressed size (0 in a tombstone)
//	bodyLen  u32      length of the body that follows the header
//	id       [32]byte the chunk's id
//	crc      u32      CRC-32C (Castagnoli) of the 48 bytes before it
//
// A chunk record's body is the chunk body. A tombstone's body is 12 bytes,
// segment u32 and offset u64: the chunk record it deletes, whose id is the
// header's. A tombstone deletes that record only, not a copy that GC made
// of it elsewhere, nor the same chunk put again later.
const (
	segmentsDirName  = "segments"
	recMagic         = "MCS\x01"
	recHeaderLen     = 52
	kindChunk        = 1
	kindTombstone    = 2
	tombstoneBodyLen = 12

	// maxBodyLen bounds a chunk record's body. A body that verifies is
	// hardly ever longer than its chunk; the bound leaves zstd's overhead
	// on incompressible data plenty of room.
	maxBodyLen = 2 * MaxChunkSize

	// writeBufBytes is how much the segment writer gathers before a write.
	writeBufBytes = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// recHeader is a decoded record header.
type recHeader struct {
	kind    byte
	enc     Encoding
	size    uint32
	bodyLen uint32
	id      ChunkID
}

func (h recHeader) recLen() int64 { return recHeaderLen + int64(h.bodyLen) }

func (h recHeader) appendTo(b []byte) []byte {
	start := len(b)
	b = append(b, recMagic...)
	b = append(b, h.kind, byte(h.enc), 0, 0)
	b = binary.LittleEndian.AppendUint32(b, h.size)
	b = binary.LittleEndian.AppendUint32(b, h.bodyLen)
	b = append(b, h.id[:]...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
}

var errBadHeader = errors.New("invalid record header")

// parseRecHeader decodes b's first recHeaderLen bytes and checks them: the
// magic, version and checksum, and the fields that the kind fixes.
func parseRecHeader(b []byte) (recHeader, error) {
	if len(b) < recHeaderLen {
		return recHeader{}, fmt.Errorf("%w: %d bytes", errBadHeader, len(b))
	}
	if string(b[:4]) != recMagic {
		return recHeader{}, fmt.Errorf("%w: magic % x", errBadHeader, b[:4])
	}
	if crc32.Checksum(b[:48], castagnoli) != binary.LittleEndian.Uint32(b[48:52]) {
		return recHeader{}, fmt.Errorf("%w: checksum mismatch", errBadHeader)
	}
	h := recHeader{
		kind:    b[4],
		enc:     Encoding(b[5]),
		size:    binary.LittleEndian.Uint32(b[8:12]),
		bodyLen: binary.LittleEndian.Uint32(b[12:16]),
		id:      ChunkID(b[16:48]),
	}
	ok := b[6] == 0 && b[7] == 0
	switch h.kind {
	case kindChunk:
		ok = ok && h.enc.Valid() && h.size > 0 && h.size <= MaxChunkSize && h.bodyLen > 0 && h.bodyLen <= maxBodyLen
	case kindTombstone:
		ok = ok && h.enc == 0 && h.size == 0 && h.bodyLen == tombstoneBodyLen
	default:
		ok = false
	}
	if !ok {
		return recHeader{}, fmt.Errorf("%w: kind %d, %s, size %d, body %d bytes", errBadHeader, h.kind, h.enc, h.size, h.bodyLen)
	}
	return h, nil
}

// loc is where a chunk record lies, and what its header says.
type loc struct {
	seg     uint32
	enc     Encoding
	bodyLen uint32
	size    uint32
	off     int64
}

func (l loc) recLen() int64 { return recHeaderLen + int64(l.bodyLen) }

// tombstoneBody encodes the location of the record a tombstone deletes.
func tombstoneBody(seg uint32, off int64) []byte {
	b := binary.LittleEndian.AppendUint32(nil, seg)
	return binary.LittleEndian.AppendUint64(b, uint64(off))
}

func parseTombstoneBody(b []byte) (seg uint32, off int64) {
	return binary.LittleEndian.Uint32(b), int64(binary.LittleEndian.Uint64(b[4:]))
}

// segment is one segment file, open for the store's life.
type segment struct {
	num uint32
	f   *os.File // read and write; never written once it is not active

	// Owned by the store's writer (see DiskStore.gcMu).
	size       int64 // bytes written
	dirty      bool  // written since it was last synced
	live       int64 // bytes of the indexed chunk records in it
	tombstones int   // tombstone records in it
}

func segmentName(num uint32) string { return fmt.Sprintf("%08x.seg", num) }

// parseSegmentName returns the number of a segment file's name.
func parseSegmentName(name string) (uint32, bool) {
	var n uint32
	if len(name) != 12 {
		return 0, false
	}
	if _, err := fmt.Sscanf(name, "%08x.seg", &n); err != nil || segmentName(n) != name {
		return 0, false
	}
	return n, true
}

// readChunk reads and checks the chunk record at l. The caller holds
// idxMu shared.
func (seg *segment) readChunk(id ChunkID, l loc) (Chunk, error) {
	b := make([]byte, l.recLen())
	n, err := seg.f.ReadAt(b, l.off)
	if err != nil && !errors.Is(err, io.EOF) {
		return Chunk{}, fmt.Errorf("get %s: %w", id.Short(), err)
	}
	corrupt := func(format string, args ...any) error {
		return &ChunkError{id, fmt.Errorf("%w: record at %s+%d: %s", ErrChunkCorrupt, segmentName(seg.num), l.off, fmt.Sprintf(format, args...))}
	}
	if n < len(b) {
		return Chunk{}, corrupt("segment ends after %d of its %d bytes", n, len(b))
	}
	h, err := parseRecHeader(b)
	switch {
	case err != nil:
		return Chunk{}, corrupt("%v", err)
	case h.kind != kindChunk || h.id != id:
		return Chunk{}, corrupt("holds a record of kind %d for %s", h.kind, h.id.Short())
	case h.enc != l.enc || h.size != l.size || h.bodyLen != l.bodyLen:
		return Chunk{}, corrupt("header says %s, %d bytes in %d, the index %s, %d bytes in %d", h.enc, h.size, h.bodyLen, l.enc, l.size, l.bodyLen)
	}
	return Chunk{ID: id, Size: int(h.size), Enc: h.enc, Body: b[recHeaderLen:]}, nil
}

// segWriter appends records to the active segment through a buffer, for
// one operation (a commit, a GC, a Remove) at a time: see writeRecords.
type segWriter struct {
	seg         *segment // the active segment; nil: the next record starts one
	start       int64    // seg.size when the operation began writing to seg
	buf         []byte   // records appended and not yet written, at seg.size on
	writeFailed bool     // a write of the operation failed (not a sync)
}

func (s *DiskStore) begin() {
	if s.w.seg != nil {
		s.w.start = s.w.seg.size
	}
	s.w.writeFailed = false
}

// mustRoll reports whether a record of n bytes belongs in a new segment.
func (s *DiskStore) mustRoll(n int64) bool {
	used := s.w.used()
	return used > 0 && used+n > s.segmentBytes
}

func (w *segWriter) used() int64 {
	if w.seg == nil {
		return 0
	}
	return w.seg.size + int64(len(w.buf))
}

// roll writes and syncs the active segment and leaves it: the next record
// starts a new one. Every record appended before is then durable.
func (s *DiskStore) roll() error {
	if err := s.syncActive(); err != nil {
		return err
	}
	s.w.seg = nil
	return nil
}

// appendRecord appends a record to the active segment, starting one if
// there is none, and returns where it lies. It is durable after the next
// roll or sync.
func (s *DiskStore) appendRecord(h recHeader, body []byte) (loc, error) {
	if s.w.seg == nil {
		if err := s.newSegment(); err != nil {
			return loc{}, err
		}
	}
	l := loc{seg: s.w.seg.num, enc: h.enc, bodyLen: h.bodyLen, size: h.size, off: s.w.used()}
	if s.w.buf == nil {
		s.w.buf = getWriteBuf()
	}
	s.w.buf = h.appendTo(s.w.buf)
	s.w.buf = append(s.w.buf, body...)
	if len(s.w.buf) >= writeBufBytes {
		if err := s.writeBuf(); err != nil {
			return loc{}, err
		}
	}
	return l, nil
}

// writeRecords appends the records that next yields, until it returns
// io.EOF, to the active segment, rolling over to new ones as they fill,
// and makes them durable. It returns their locations, of which the first
// durable are durable: all of them unless err is not nil (see fail). The
// caller owns the writer (see DiskStore.gcMu).
func (s *DiskStore) writeRecords(next func() (recHeader, []byte, error)) (locs []loc, durable int, err error) {
	s.begin()
	for {
		h, body, err := next()
		if err == io.EOF {
			break
		}
		if err == nil && s.mustRoll(h.recLen()) {
			if err = s.roll(); err == nil {
				durable = len(locs)
			}
		}
		var l loc
		if err == nil {
			l, err = s.appendRecord(h, body)
		}
		if err != nil {
			return locs, s.fail(locs, durable), err
		}
		if h.kind == kindTombstone {
			s.segments[l.seg].tombstones++
		}
		locs = append(locs, l)
	}
	if err := s.syncActive(); err != nil {
		return locs, s.fail(locs, durable), err
	}
	putWriteBuf(s.w.buf) // an idle store holds no buffer
	s.w.buf = nil
	return locs, len(locs), nil
}

// fail ends an operation that failed, of whose records, at locs, the first
// durable are durable (those before the last roll), and returns how many
// are now. After a failed write (ENOSPC, say) it keeps what fits: the
// records written before it, and those of the buffer that was not written
// that can still be written one by one; the segment is cut after them and
// synced. Otherwise, or if that fails, the segment is cut back to where
// the operation began in it. Either way the segment is left, so that
// nothing is ever appended after bytes that may be torn; a segment left
// empty is removed.
func (s *DiskStore) fail(locs []loc, durable int) int {
	seg, buf := s.w.seg, s.w.buf
	s.w.seg, s.w.buf = nil, nil
	if seg == nil {
		return durable
	}
	if s.w.writeFailed { // not after a failed sync: a second one may lie
		// locs[durable:] follow each other from s.w.start; those past
		// seg.size are in buf. A write that failed may still have
		// written some of buf, whatever it returned: they are rewritten.
		n, end := durable, s.w.start
		for ; n < len(locs); n++ {
			l := locs[n]
			if next := l.off + l.recLen(); next > seg.size {
				b := buf[l.off-seg.size : next-seg.size]
				if s.fault() != nil {
					break
				}
				if _, err := seg.f.WriteAt(b, l.off); err != nil {
					break
				}
			}
			end = l.off + l.recLen()
		}
		if n > durable && s.cut(seg, end) {
			return n
		}
	}
	s.cut(seg, s.w.start)
	return durable
}

// cut truncates seg at end and syncs it, removing it if it is left empty,
// and reports whether seg now durably ends at end.
func (s *DiskStore) cut(seg *segment, end int64) bool {
	if seg.f.Truncate(end) != nil {
		return false
	}
	seg.size = end
	if s.sync && seg.f.Sync() != nil {
		return false
	}
	seg.dirty = false
	if end == 0 {
		s.removeSegment(seg)
	}
	return true
}

// newSegment creates the next segment, durably, and makes it active. Its
// number is used up even if that fails.
func (s *DiskStore) newSegment() error {
	num := s.nextSeg
	s.nextSeg++
	p := filepath.Join(s.segmentsDir(), segmentName(num))
	if err := s.fault(); err != nil {
		return fmt.Errorf("create %s: %w", p, err)
	}
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := s.syncDirIf(s.segmentsDir()); err != nil {
		f.Close()
		os.Remove(p)
		return err
	}
	seg := &segment{num: num, f: f}
	s.idxMu.Lock()
	s.segments[num] = seg
	s.idxMu.Unlock()
	s.w.seg, s.w.start, s.w.buf = seg, 0, s.w.buf[:0]
	return nil
}

// writeBuf writes the buffered records to the active segment.
func (s *DiskStore) writeBuf() error {
	seg := s.w.seg
	if seg == nil || len(s.w.buf) == 0 {
		return nil
	}
	seg.dirty = true
	err := s.fault()
	if err != nil {
		err = fmt.Errorf("write %s: %w", seg.f.Name(), err)
	} else {
		_, err = seg.f.WriteAt(s.w.buf, seg.size)
	}
	if err != nil {
		s.w.writeFailed = true // buf stays, for fail
		return err
	}
	seg.size += int64(len(s.w.buf))
	s.w.buf = s.w.buf[:0]
	if cap(s.w.buf) > 2*writeBufBytes {
		s.w.buf = nil // after a large record; appendRecord takes another
	}
	return nil
}

// writeBufs holds the segment writers' buffers between operations: a
// store that commits batch after batch reuses one instead of allocating
// (and zeroing) 1 MiB a batch, and an idle one holds none, since the pool
// lets go of what is unused for two garbage collections.
var writeBufs sync.Pool

func getWriteBuf() []byte {
	if b, ok := writeBufs.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, writeBufBytes)
}

// putWriteBuf returns b to the pool, unless a large record grew it.
func putWriteBuf(b []byte) {
	if b != nil && cap(b) <= 2*writeBufBytes {
		writeBufs.Put(&b)
	}
}

// syncActive writes the buffered records and syncs the active segment:
// every record appended so far is then durable.
func (s *DiskStore) syncActive() error {
	if err := s.writeBuf(); err != nil {
		return err
	}
	seg := s.w.seg
	if seg == nil || !seg.dirty || !s.sync {
		return nil
	}
	if err := s.fault(); err != nil {
		return fmt.Errorf("sync %s: %w", seg.f.Name(), err)
	}
	if err := seg.f.Sync(); err != nil {
		return err
	}
	seg.dirty = false
	return nil
}

// removeSegment removes seg's file, then forgets and closes it; the
// caller syncs the directory. A Get reading it finishes first. If the file
// cannot be removed, seg stays.
func (s *DiskStore) removeSegment(seg *segment) error {
	if err := os.Remove(seg.f.Name()); err != nil {
		return err
	}
	s.idxMu.Lock()
	delete(s.segments, seg.num)
	s.idxMu.Unlock()
	seg.f.Close()
	return nil
}
