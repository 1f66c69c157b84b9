package content

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
)

// A pack is the bodies of the chunks one publish added, concatenated in file
// order, so that a fetcher covers a run of missing chunks with one HTTP Range
// request. It is named by the sha256 of its bytes. Its index says where each
// body starts; the manifest repeats the location of every chunk it uses, so
// fetchers never need the index: publishers read it to learn what the origin
// holds.
//
// Index format, little endian:
//
//	header  "MCPI" | version u8 = 1 | 3 zero bytes | pack sha256 [32] | pack size u64 | count u32
//	entry   chunk id [32] | offset u64 | stored u32 | size u32 | encoding u8 | 3 zero bytes
//	trailer sha256 of everything before it [32]
//
// Entries are sorted by offset and tile the pack exactly.
const (
	packIndexMagic   = "MCPI"
	packIndexVersion = 1
	packHeaderLen    = 4 + 4 + 32 + 8 + 4
	packEntryLen     = 32 + 8 + 4 + 4 + 4
)

// ErrBadPackIndex wraps every pack index decoding error.
var ErrBadPackIndex = errors.New("bad pack index")

// PackEntry locates one chunk body in a pack.
type PackEntry struct {
	ID     ChunkID
	Offset int64
	Stored int
	Size   int
	Enc    Encoding
}

// PackIndex describes one pack.
type PackIndex struct {
	Pack    Digest
	Size    int64
	Entries []PackEntry
}

// PackWriter streams chunk bodies into a pack and builds its index.
type PackWriter struct {
	w   io.Writer
	h   hash.Hash
	idx PackIndex
}

// NewPackWriter writes a pack to w.
func NewPackWriter(w io.Writer) *PackWriter {
	return &PackWriter{w: w, h: sha256.New()}
}

// Add appends one body and returns its offset.
func (p *PackWriter) Add(id ChunkID, size int, enc Encoding, body []byte) (int64, error) {
	off := p.idx.Size
	if _, err := p.w.Write(body); err != nil {
		return 0, fmt.Errorf("write pack: %w", err)
	}
	p.h.Write(body)
	p.idx.Size += int64(len(body))
	p.idx.Entries = append(p.idx.Entries, PackEntry{ID: id, Offset: off, Stored: len(body), Size: size, Enc: enc})
	return off, nil
}

// Len returns the bytes written so far.
func (p *PackWriter) Len() int64 { return p.idx.Size }

// Count returns the number of bodies written so far.
func (p *PackWriter) Count() int { return len(p.idx.Entries) }

// Finish returns the index; the writer must not be used afterwards.
func (p *PackWriter) Finish() *PackIndex {
	copy(p.idx.Pack[:], p.h.Sum(nil))
	return &p.idx
}

// Encode returns the index bytes.
func (x *PackIndex) Encode() []byte {
	b := make([]byte, 0, packHeaderLen+len(x.Entries)*packEntryLen+sha256.Size)
	b = append(b, packIndexMagic...)
	b = append(b, packIndexVersion, 0, 0, 0)
	b = append(b, x.Pack[:]...)
	b = binary.LittleEndian.AppendUint64(b, uint64(x.Size))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(x.Entries)))
	for _, e := range x.Entries {
		b = append(b, e.ID[:]...)
		b = binary.LittleEndian.AppendUint64(b, uint64(e.Offset))
		b = binary.LittleEndian.AppendUint32(b, uint32(e.Stored))
		b = binary.LittleEndian.AppendUint32(b, uint32(e.Size))
		b = append(b, byte(e.Enc), 0, 0, 0)
	}
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

// DecodePackIndex parses and checks index bytes. It allocates in proportion
// to len(b) only.
func DecodePackIndex(b []byte) (*PackIndex, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrBadPackIndex}, args...)...)
	}
	if len(b) < packHeaderLen+sha256.Size {
		return nil, bad("%d bytes is shorter than a header", len(b))
	}
	if string(b[:4]) != packIndexMagic {
		return nil, bad("magic %q", b[:4])
	}
	if b[4] != packIndexVersion {
		return nil, bad("version %d is not supported (this meshcast reads %d)", b[4], packIndexVersion)
	}
	if b[5]|b[6]|b[7] != 0 {
		// Reserved for a later version; a reader that ignored them would
		// misread an index that uses them.
		return nil, bad("reserved header bytes %x are not zero", b[5:8])
	}
	body, trailer := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if sum := sha256.Sum256(body); string(sum[:]) != string(trailer) {
		return nil, bad("checksum mismatch")
	}
	var x PackIndex
	copy(x.Pack[:], b[8:40])
	x.Size = int64(binary.LittleEndian.Uint64(b[40:48]))
	n := binary.LittleEndian.Uint32(b[48:52])
	if want := packHeaderLen + int(n)*packEntryLen; int(n) > len(body)/packEntryLen || want != len(body) {
		return nil, bad("%d entries do not fit %d bytes", n, len(body))
	}
	if x.Size < 0 {
		return nil, bad("pack size %d", x.Size)
	}
	x.Entries = make([]PackEntry, n)
	var next int64
	for i := range x.Entries {
		e := body[packHeaderLen+i*packEntryLen:]
		pe := &x.Entries[i]
		copy(pe.ID[:], e[:32])
		pe.Offset = int64(binary.LittleEndian.Uint64(e[32:40]))
		pe.Stored = int(binary.LittleEndian.Uint32(e[40:44]))
		pe.Size = int(binary.LittleEndian.Uint32(e[44:48]))
		pe.Enc = Encoding(e[48])
		if pe.Offset != next {
			return nil, bad("entry %d (%s) at offset %d, want %d", i, pe.ID.Short(), pe.Offset, next)
		}
		if !pe.Enc.Valid() || pe.Size <= 0 || pe.Size > MaxChunkSize || pe.Stored <= 0 || pe.Stored > pe.Size {
			return nil, bad("entry %d (%s): encoding %d, size %d, stored %d", i, pe.ID.Short(), pe.Enc, pe.Size, pe.Stored)
		}
		if pe.Enc == EncodingRaw && pe.Stored != pe.Size {
			return nil, bad("entry %d (%s): raw body of %d bytes for a chunk of %d", i, pe.ID.Short(), pe.Stored, pe.Size)
		}
		if e[49]|e[50]|e[51] != 0 {
			return nil, bad("entry %d (%s): reserved bytes %x are not zero", i, pe.ID.Short(), e[49:52])
		}
		next += int64(pe.Stored)
	}
	if next != x.Size {
		return nil, bad("entries cover %d bytes of a %d-byte pack", next, x.Size)
	}
	return &x, nil
}
