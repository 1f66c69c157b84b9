package content_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/meshcast/meshcast/content"
)

// splitmix64 is a tiny deterministic generator for test inputs; it must
// never change, or the known-answer vectors below change with it.
type splitmix64 uint64

func (s *splitmix64) next() uint64 {
	*s += 0x9e3779b97f4a7c15
	z := uint64(*s)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// randomBytes returns n pseudo-random bytes from seed.
func randomBytes(seed uint64, n int) []byte {
	s := splitmix64(seed)
	b := make([]byte, (n+7)&^7)
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], s.next())
	}
	return b[:n]
}

// chunkLengths chunks data with c and returns the chunk lengths.
func chunkLengths(tb testing.TB, data []byte, c content.Chunking) []int {
	tb.Helper()
	return chunkReader(tb, bytes.NewReader(data), c)
}

func chunkReader(tb testing.TB, r io.Reader, c content.Chunking) []int {
	tb.Helper()
	ch := content.NewChunker(r, c)
	var lens []int
	for {
		b, err := ch.Next()
		if errors.Is(err, io.EOF) {
			return lens
		}
		if err != nil {
			tb.Fatalf("chunker: %v", err)
		}
		lens = append(lens, len(b))
	}
}

// katInput is the known-answer input: 8 MiB of splitmix64 output, 1 MiB of
// zeros (every cut there is forced by Max or by the gear value of 0), and
// 1 MiB of a repeated 1000-byte pattern, then 12345 more random bytes so the
// stream does not end on a power of two.
func katInput() []byte {
	var b []byte
	b = append(b, randomBytes(1, 8<<20)...)
	b = append(b, make([]byte, 1<<20)...)
	b = append(b, bytes.Repeat(randomBytes(2, 1000), (1<<20)/1000)...)
	b = append(b, randomBytes(3, 12345)...)
	return b
}

// Known answers for DefaultChunking over katInput. They were computed once
// from this implementation; they pin the gear table, the masks, the
// normalisation and the Min/Max handling.
const (
	katChunks       = 121
	katPairsSHA256  = "928fbf3186e7efd37a42f5d0f040093eda66a7a5c4fa61c967dde469e545c500"
	katBoundaryNote = "chunk boundaries moved: every chunk already published stops deduplicating against new releases across the whole fleet. " +
		"If this is deliberate it is a format change: bump the manifest schema and say so in the release notes, then update the vector."
)

var katFirstOffsets = []int64{0, 97090, 167579, 247954, 316273, 396779, 462892, 528872, 604263, 675267}

func TestChunkerKnownAnswer(t *testing.T) {
	t.Parallel()
	data := katInput()
	lens := chunkLengths(t, data, content.DefaultChunking())

	offsets := make([]int64, len(lens))
	h := sha256.New()
	var off int64
	for i, n := range lens {
		offsets[i] = off
		var pair [16]byte
		binary.BigEndian.PutUint64(pair[:8], uint64(off))
		binary.BigEndian.PutUint64(pair[8:], uint64(n))
		h.Write(pair[:])
		off += int64(n)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	first := offsets[:min(len(offsets), 10)]
	t.Logf("chunks %d, first offsets %#v, sha256(offset,length pairs) %s", len(lens), first, sum)

	c := content.DefaultChunking()
	for i, n := range lens[:len(lens)-1] {
		if n < c.Min || n > c.Max {
			t.Errorf("chunk %d at %d has %d bytes, outside [%d, %d]", i, offsets[i], n, c.Min, c.Max)
		}
	}
	if off != int64(len(data)) {
		t.Fatalf("chunks cover %d of %d bytes", off, len(data))
	}
	if len(lens) != katChunks {
		t.Errorf("%s\nchunk count: got %d, want %d", katBoundaryNote, len(lens), katChunks)
	}
	if fmt.Sprint(first) != fmt.Sprint(katFirstOffsets) {
		t.Errorf("%s\nfirst boundaries: got %v, want %v", katBoundaryNote, first, katFirstOffsets)
	}
	if sum != katPairsSHA256 {
		t.Errorf("%s\nsha256 of (offset, length) pairs: got %s, want %s", katBoundaryNote, sum, katPairsSHA256)
	}
}

func TestChunkerProperties(t *testing.T) {
	t.Parallel()
	c := content.DefaultChunking()
	inputs := map[string][]byte{
		"empty":        nil,
		"one byte":     {42},
		"below min":    randomBytes(10, c.Min-1),
		"exactly min":  randomBytes(11, c.Min),
		"exactly max":  randomBytes(12, c.Max),
		"max plus one": randomBytes(13, c.Max+1),
		"random 1MiB":  randomBytes(14, 1<<20+7),
		"zeros 1MiB":   make([]byte, 1<<20),
	}
	for name, data := range inputs {
		t.Run(name, func(t *testing.T) {
			lens := chunkLengths(t, data, c)
			total := 0
			for i, n := range lens {
				total += n
				if n <= 0 {
					t.Fatalf("chunk %d is empty", i)
				}
				if n > c.Max {
					t.Errorf("chunk %d has %d bytes, above max %d", i, n, c.Max)
				}
				if n < c.Min && i != len(lens)-1 {
					t.Errorf("chunk %d of %d has %d bytes, below min %d", i, len(lens), n, c.Min)
				}
			}
			if total != len(data) {
				t.Fatalf("chunks cover %d bytes of %d", total, len(data))
			}
			if len(data) == 0 && len(lens) != 0 {
				t.Fatalf("empty input gave %d chunks", len(lens))
			}
			// Concatenation equals the input (checked byte by byte, not
			// only by length).
			ch := content.NewChunker(bytes.NewReader(data), c)
			var cat []byte
			for {
				b, err := ch.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				cat = append(cat, b...)
			}
			if !bytes.Equal(cat, data) {
				t.Fatal("concatenated chunks differ from the input")
			}
		})
	}
}

func TestChunkerDeterministicAcrossReaders(t *testing.T) {
	t.Parallel()
	// The boundaries depend on the bytes only, not on how the reader hands
	// them over.
	data := randomBytes(20, 700_000)
	c := content.DefaultChunking()
	want := chunkLengths(t, data, c)
	readers := map[string]io.Reader{
		"one byte":    iotest.OneByteReader(bytes.NewReader(data)),
		"half":        iotest.HalfReader(bytes.NewReader(data)),
		"data+EOF":    iotest.DataErrReader(bytes.NewReader(data)),
		"multireader": io.MultiReader(bytes.NewReader(data[:1000]), bytes.NewReader(data[1000:70000]), bytes.NewReader(data[70000:])),
	}
	for name, r := range readers {
		t.Run(name, func(t *testing.T) {
			got := chunkReader(t, r, c)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("boundaries depend on the reader:\ngot  %v\nwant %v", got, want)
			}
		})
	}
	if again := chunkLengths(t, data, c); fmt.Sprint(again) != fmt.Sprint(want) {
		t.Fatal("two runs over the same bytes disagree")
	}
}

func TestChunkerReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	r := io.MultiReader(bytes.NewReader(randomBytes(21, 100)), iotest.ErrReader(boom))
	ch := content.NewChunker(r, content.DefaultChunking())
	_, err := ch.Next()
	if !errors.Is(err, boom) {
		t.Fatalf("Next: got %v, want the reader's error", err)
	}
}

func chunkIDs(tb testing.TB, data []byte, c content.Chunking) []content.ChunkID {
	tb.Helper()
	var ids []content.ChunkID
	off := 0
	for _, n := range chunkLengths(tb, data, c) {
		ids = append(ids, content.SumChunk(data[off:off+n]))
		off += n
	}
	return ids
}

func TestChunkerShiftResistance(t *testing.T) {
	t.Parallel()
	c := content.DefaultChunking()
	orig := randomBytes(30, 4<<20)
	edited := make([]byte, 0, len(orig)+100)
	edited = append(edited, orig[:5000]...)
	edited = append(edited, randomBytes(31, 100)...)
	edited = append(edited, orig[5000:]...)

	a, b := chunkIDs(t, orig, c), chunkIDs(t, edited, c)
	have := make(map[content.ChunkID]bool, len(a))
	for _, id := range a {
		have[id] = true
	}
	shared := 0
	for _, id := range b {
		if have[id] {
			shared++
		}
	}
	t.Logf("%d of %d chunks shared after inserting 100 bytes", shared, len(b))
	if len(a) < 16 {
		t.Fatalf("only %d chunks in 4 MiB: the test input does not exercise the chunker", len(a))
	}
	if shared*10 < len(b)*9 {
		t.Fatalf("only %d of %d chunks shared after a 100-byte insertion; want at least 90%%", shared, len(b))
	}
}

func TestChunkingValidate(t *testing.T) {
	tests := []struct {
		name string
		c    content.Chunking
		want string // substring of the error; "" means valid
	}{
		{"default", content.DefaultChunking(), ""},
		{"small valid", content.Chunking{Min: 64, Avg: 128, Max: 129}, ""},
		{"at format limit", content.Chunking{Min: 1 << 20, Avg: 2 << 20, Max: content.MaxChunkSize}, ""},
		{"zero", content.Chunking{}, "below 64"},
		{"min 63", content.Chunking{Min: 63, Avg: 128, Max: 256}, "below 64"},
		{"negative min", content.Chunking{Min: -1, Avg: 128, Max: 256}, "below 64"},
		{"avg equals min", content.Chunking{Min: 128, Avg: 128, Max: 256}, "min < avg < max"},
		{"avg below min", content.Chunking{Min: 256, Avg: 128, Max: 512}, "min < avg < max"},
		{"max equals avg", content.Chunking{Min: 64, Avg: 128, Max: 128}, "min < avg < max"},
		{"max above format", content.Chunking{Min: 64, Avg: 1 << 20, Max: content.MaxChunkSize + 1}, "format limit"},
		{"avg not power of two", content.Chunking{Min: 64, Avg: 100, Max: 256}, "power of two"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate(%+v) = %v, want nil", tt.c, err)
			case tt.want != "" && err == nil:
				t.Fatalf("Validate(%+v) = nil, want an error containing %q", tt.c, tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("Validate(%+v) = %v, want it to contain %q", tt.c, err, tt.want)
			}
		})
	}
}

func TestChunkerSmallParameters(t *testing.T) {
	// The smallest valid parameters still obey the bounds; tests elsewhere
	// use them to get many chunks out of little data.
	c := content.Chunking{Min: 64, Avg: 256, Max: 1024}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	data := randomBytes(40, 100_000)
	lens := chunkLengths(t, data, c)
	if len(lens) < 100 {
		t.Fatalf("%d chunks of 100000 bytes with avg 256; the masks look wrong", len(lens))
	}
	for i, n := range lens[:len(lens)-1] {
		if n < c.Min || n > c.Max {
			t.Fatalf("chunk %d has %d bytes, outside [%d, %d]", i, n, c.Min, c.Max)
		}
	}
}

func BenchmarkChunker(b *testing.B) {
	data := randomBytes(50, 32<<20)
	c := content.DefaultChunking()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		ch := content.NewChunker(bytes.NewReader(data), c)
		for {
			if _, err := ch.Next(); err != nil {
				if !errors.Is(err, io.EOF) {
					b.Fatal(err)
				}
				break
			}
		}
	}
}
