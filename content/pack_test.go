package content_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/meshcast/meshcast/content"
)

const packIndexGolden = "testdata/packindex.golden"

// Offsets into an encoded pack index; see the format comment in pack.go.
const (
	pxHeader = 52 // magic 4, version 1, reserved 3, sha256 32, size 8, count 4
	pxEntry  = 52 // id 32, offset 8, stored 4, size 4, encoding 1, reserved 3
	pxCount  = 48
)

type packedChunk struct {
	data []byte
	enc  content.Encoding
	body []byte
}

// writePack writes the chunks into a pack and returns the pack bytes and its
// index.
func writePack(tb testing.TB, chunks []packedChunk) ([]byte, *content.PackIndex) {
	tb.Helper()
	var buf bytes.Buffer
	pw := content.NewPackWriter(&buf)
	for i, c := range chunks {
		off, err := pw.Add(content.SumChunk(c.data), len(c.data), c.enc, c.body)
		if err != nil {
			tb.Fatal(err)
		}
		if off != pw.Len()-int64(len(c.body)) || pw.Count() != i+1 {
			tb.Fatalf("Add %d: offset %d, Len %d, Count %d", i, off, pw.Len(), pw.Count())
		}
	}
	return buf.Bytes(), pw.Finish()
}

// samplePack is a deterministic pack of three chunks, two raw and one zstd.
func samplePack(tb testing.TB) ([]byte, *content.PackIndex) {
	tb.Helper()
	c := newCompressor(tb, 3) // pinned: the golden index depends on the bodies
	text := compressible(3000)
	enc, zbody := c.Encode(nil, text)
	if enc != content.EncodingZstd {
		tb.Fatal("sample text did not compress")
	}
	raw1, raw2 := randomBytes(60, 1000), randomBytes(61, 77)
	return writePack(tb, []packedChunk{
		{raw1, content.EncodingRaw, raw1},
		{text, content.EncodingZstd, zbody},
		{raw2, content.EncodingRaw, raw2},
	})
}

// resum recomputes the trailer of an edited index so that the structural
// checks, not the checksum, are what refuse it.
func resum(b []byte) []byte {
	b = append([]byte(nil), b...)
	sum := sha256.Sum256(b[:len(b)-32])
	copy(b[len(b)-32:], sum[:])
	return b
}

func TestPackRoundTrip(t *testing.T) {
	pack, idx := samplePack(t)
	if idx.Pack != content.Digest(sha256.Sum256(pack)) {
		t.Fatal("index names the pack by something other than its sha256")
	}
	if idx.Size != int64(len(pack)) || len(idx.Entries) != 3 {
		t.Fatalf("index: size %d of %d, %d entries", idx.Size, len(pack), len(idx.Entries))
	}
	for i, e := range idx.Entries {
		body := pack[e.Offset : e.Offset+int64(e.Stored)]
		if err := content.VerifyChunk(e.ID, e.Size, e.Enc, body); err != nil {
			t.Fatalf("entry %d does not locate its body: %v", i, err)
		}
	}

	enc := idx.Encode()
	if len(enc) != pxHeader+3*pxEntry+32 {
		t.Fatalf("encoded index has %d bytes", len(enc))
	}
	back, err := content.DecodePackIndex(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, idx) {
		t.Fatalf("round trip changed the index:\ngot  %+v\nwant %+v", back, idx)
	}

	// An empty pack is a valid pack.
	_, empty := writePack(t, nil)
	back, err = content.DecodePackIndex(empty.Encode())
	if err != nil || back.Size != 0 || len(back.Entries) != 0 || back.Pack != content.Digest(sha256.Sum256(nil)) {
		t.Fatalf("empty pack: %+v, %v", back, err)
	}
}

func TestPackIndexGolden(t *testing.T) {
	_, idx := samplePack(t)
	got := idx.Encode()
	if *update {
		if err := os.WriteFile(packIndexGolden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if want := readGolden(t, packIndexGolden); !bytes.Equal(got, want) {
		t.Fatalf("pack index encoding differs from %s: this is a format change", packIndexGolden)
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

func TestPackWriterError(t *testing.T) {
	boom := errors.New("origin unreachable")
	pw := content.NewPackWriter(failingWriter{boom})
	data := []byte("x")
	if _, err := pw.Add(content.SumChunk(data), 1, content.EncodingRaw, data); !errors.Is(err, boom) {
		t.Fatalf("Add: got %v, want the writer's error", err)
	}
	if pw.Count() != 0 || pw.Len() != 0 {
		t.Fatalf("a failed Add was recorded: count %d len %d", pw.Count(), pw.Len())
	}
}

func TestPackIndexTamperedByte(t *testing.T) {
	_, idx := samplePack(t)
	enc := idx.Encode()
	for i := range enc {
		for _, bit := range []byte{0x01, 0x80} {
			b := append([]byte(nil), enc...)
			b[i] ^= bit
			if x, err := content.DecodePackIndex(b); err == nil || !errors.Is(err, content.ErrBadPackIndex) {
				t.Fatalf("flipping bit %#x of byte %d: got %v, %v; want ErrBadPackIndex", bit, i, x, err)
			}
		}
	}
	for n := range len(enc) {
		if _, err := content.DecodePackIndex(enc[:n]); !errors.Is(err, content.ErrBadPackIndex) {
			t.Fatalf("truncated to %d bytes: got %v", n, err)
		}
	}
}

// packIndexCase is an index edited and re-summed, with the substring its
// error must contain.
type packIndexCase struct {
	name string
	edit func(b []byte) []byte
	want string
}

func putU32(off int, v uint32) func([]byte) []byte {
	return func(b []byte) []byte { binary.LittleEndian.PutUint32(b[off:], v); return b }
}

func putU64(off int, v uint64) func([]byte) []byte {
	return func(b []byte) []byte { binary.LittleEndian.PutUint64(b[off:], v); return b }
}

func entryOff(i, field int) int { return pxHeader + i*pxEntry + field }

var packIndexCases = []packIndexCase{
	{"wrong magic", func(b []byte) []byte { copy(b, "MCPX"); return b }, `magic "MCPX"`},
	{"version 2", func(b []byte) []byte { b[4] = 2; return b }, "version 2 is not supported"},
	{"version 0", func(b []byte) []byte { b[4] = 0; return b }, "version 0 is not supported"},
	{"reserved header byte", func(b []byte) []byte { b[6] = 1; return b }, "reserved"},
	{"count too large to fit", putU32(pxCount, 4), "4 entries do not fit"},
	{"count too small", putU32(pxCount, 2), "2 entries do not fit"},
	{"count zero", putU32(pxCount, 0), "0 entries do not fit"},
	{"count overflows", putU32(pxCount, 0xffffffff), "4294967295 entries do not fit"},
	{"pack size negative", putU64(40, 1<<63), "pack size"},
	{"pack size larger than entries", func(b []byte) []byte {
		binary.LittleEndian.PutUint64(b[40:], binary.LittleEndian.Uint64(b[40:])+1)
		return b
	}, "entries cover"},
	{"pack size smaller than entries", func(b []byte) []byte {
		binary.LittleEndian.PutUint64(b[40:], binary.LittleEndian.Uint64(b[40:])-1)
		return b
	}, "entries cover"},
	{"gap between entries", func(b []byte) []byte {
		binary.LittleEndian.PutUint64(b[entryOff(1, 32):], binary.LittleEndian.Uint64(b[entryOff(1, 32):])+1)
		return b
	}, "entry 1"},
	{"overlapping entries", func(b []byte) []byte {
		binary.LittleEndian.PutUint64(b[entryOff(2, 32):], binary.LittleEndian.Uint64(b[entryOff(2, 32):])-1)
		return b
	}, "entry 2"},
	{"first entry not at zero", putU64(entryOff(0, 32), 1), "entry 0"},
	{"offset negative", putU64(entryOff(0, 32), 1<<63), "entry 0"},
	{"stored zero", putU32(entryOff(0, 40), 0), "entry 0"},
	{"stored above size", putU32(entryOff(1, 40), 3001), "entry 1"},
	{"size zero", putU32(entryOff(1, 44), 0), "entry 1"},
	{"size above format", func(b []byte) []byte {
		binary.LittleEndian.PutUint32(b[entryOff(0, 40):], content.MaxChunkSize+1)
		binary.LittleEndian.PutUint32(b[entryOff(0, 44):], content.MaxChunkSize+1)
		return b
	}, "entry 0"},
	{"raw stored differs from size", putU32(entryOff(0, 44), 1001), "raw"},
	{"unknown encoding", func(b []byte) []byte { b[entryOff(2, 48)] = 7; return b }, "entry 2"},
	{"reserved entry byte", func(b []byte) []byte { b[entryOff(1, 50)] = 1; return b }, "reserved"},
}

func TestPackIndexInvalid(t *testing.T) {
	_, idx := samplePack(t)
	enc := idx.Encode()
	for _, tt := range packIndexCases {
		t.Run(tt.name, func(t *testing.T) {
			b := resum(tt.edit(append([]byte(nil), enc...)))
			x, err := content.DecodePackIndex(b)
			if err == nil {
				t.Fatalf("DecodePackIndex succeeded: %+v", x)
			}
			if x != nil {
				t.Error("an index returned along with an error")
			}
			if !errors.Is(err, content.ErrBadPackIndex) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want ErrBadPackIndex containing %q", err, tt.want)
			}
		})
	}
}

// TestPackIndexAllocationBound feeds a 100-byte index whose header claims
// 2^32-1 entries: it must be refused before anything is allocated for them.
func TestPackIndexAllocationBound(t *testing.T) {
	b := make([]byte, 100)
	copy(b, "MCPI\x01")
	binary.LittleEndian.PutUint32(b[pxCount:], 0xffffffff)
	b = resum(b)
	if _, err := content.DecodePackIndex(b); !errors.Is(err, content.ErrBadPackIndex) {
		t.Fatalf("got %v", err)
	}
	const runs = 100
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		content.DecodePackIndex(b)
	}
	runtime.ReadMemStats(&after)
	if perRun := (after.TotalAlloc - before.TotalAlloc) / runs; perRun > 4096 {
		t.Fatalf("refusing a 100-byte index allocated %d bytes", perRun)
	}
}

// FuzzDecodePackIndex checks that DecodePackIndex never panics, and that an
// index it accepts tiles its pack and encodes back to the same bytes.
func FuzzDecodePackIndex(f *testing.F) {
	_, idx := samplePack(f)
	enc := idx.Encode()
	f.Add(enc)
	_, empty := writePack(f, nil)
	f.Add(empty.Encode())
	for _, c := range packIndexCases {
		f.Add(resum(c.edit(append([]byte(nil), enc...))))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := content.DecodePackIndex(b)
		if err != nil {
			if !errors.Is(err, content.ErrBadPackIndex) {
				t.Fatalf("error %q does not wrap ErrBadPackIndex", err)
			}
			return
		}
		var next int64
		for i, e := range x.Entries {
			if e.Offset != next || e.Stored <= 0 || e.Stored > e.Size || e.Size > content.MaxChunkSize || !e.Enc.Valid() {
				t.Fatalf("accepted entry %d: %+v", i, e)
			}
			next += int64(e.Stored)
		}
		if next != x.Size {
			t.Fatalf("entries cover %d of %d bytes", next, x.Size)
		}
		if again := x.Encode(); !bytes.Equal(again, b) {
			t.Fatalf("accepted an index that is not in canonical form:\n%x\n%x", b, again)
		}
	})
}
