package content

import (
	"errors"
	"fmt"
	"io"
	"math/bits"
)

// Chunking holds the FastCDC parameters of a release. They are part of the
// format: two publishers with other parameters (or another gear table) cut
// different boundaries and stop sharing chunks, so the manifest records them
// and a publish reuses the origin's parameters.
type Chunking struct {
	Min int `json:"min"`
	Avg int `json:"avg"`
	Max int `json:"max"`
}

// DefaultChunking is 16/64/256 KiB.
func DefaultChunking() Chunking { return Chunking{Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10} }

// Validate checks the parameters against the format's bounds.
func (c Chunking) Validate() error {
	switch {
	case c.Min < 64:
		return fmt.Errorf("chunking: min %d is below 64 bytes", c.Min)
	case c.Avg <= c.Min || c.Max <= c.Avg:
		return fmt.Errorf("chunking: want min < avg < max, got %d/%d/%d", c.Min, c.Avg, c.Max)
	case c.Max > MaxChunkSize:
		return fmt.Errorf("chunking: max %d is above the format limit %d", c.Max, MaxChunkSize)
	case bits.OnesCount(uint(c.Avg)) != 1:
		return fmt.Errorf("chunking: avg %d is not a power of two", c.Avg)
	}
	return nil
}

// gear is the FastCDC gear table: 256 values from splitmix64 seeded with a
// fixed constant. Changing it moves every boundary; the known-answer test in
// chunker_test.go guards it.
var gear = func() (t [256]uint64) {
	x := uint64(0x6d65736863617374) // "meshcast"
	for i := range t {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		t[i] = z ^ (z >> 31)
	}
	return t
}()

// Chunker splits a stream into content-defined chunks with FastCDC
// (normalisation level 2). The gear hash shifts left, so the masks test the
// high bits, which depend on the last 64 bytes; masks on the low bits would
// shrink the window to a few bytes.
type Chunker struct {
	r            io.Reader
	min, avg, mx int
	maskS, maskL uint64
	buf          []byte
	start, end   int
	eof          bool
}

// NewChunker returns a chunker over r. c must be valid (see Validate).
func NewChunker(r io.Reader, c Chunking) *Chunker {
	nb := bits.TrailingZeros(uint(c.Avg))
	return &Chunker{
		r: r, min: c.Min, avg: c.Avg, mx: c.Max,
		maskS: ^uint64(0) << (64 - (nb + 2)),
		maskL: ^uint64(0) << (64 - (nb - 2)),
		buf:   make([]byte, 4*c.Max),
	}
}

// Next returns the next chunk, or io.EOF after the last one. The slice is
// valid until the next call.
func (ch *Chunker) Next() ([]byte, error) {
	if ch.end-ch.start < ch.mx && !ch.eof {
		if err := ch.fill(); err != nil {
			return nil, err
		}
	}
	if ch.start == ch.end {
		return nil, io.EOF
	}
	n := ch.cut(ch.buf[ch.start:ch.end])
	b := ch.buf[ch.start : ch.start+n]
	ch.start += n
	return b, nil
}

func (ch *Chunker) fill() error {
	n := copy(ch.buf, ch.buf[ch.start:ch.end])
	ch.start, ch.end = 0, n
	for ch.end < len(ch.buf) {
		m, err := ch.r.Read(ch.buf[ch.end:])
		ch.end += m
		if errors.Is(err, io.EOF) {
			ch.eof = true
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// cut returns the length of the first chunk of data; data holds at least
// Max bytes unless the stream ends within it.
func (ch *Chunker) cut(data []byte) int {
	n := len(data)
	if n <= ch.min {
		return n
	}
	if n > ch.mx {
		n = ch.mx
	}
	norm := ch.avg
	if norm > n {
		norm = n
	}
	var fp uint64
	maskS, maskL := ch.maskS, ch.maskL
	for j, b := range data[ch.min:norm] {
		fp = fp<<1 + gear[b]
		if fp&maskS == 0 {
			return ch.min + j + 1
		}
	}
	for j, b := range data[norm:n] {
		fp = fp<<1 + gear[b]
		if fp&maskL == 0 {
			return norm + j + 1
		}
	}
	return n
}
