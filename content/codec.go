package content

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Encoding says how a chunk body is stored on the CDN, on disk and between
// peers.
type Encoding uint8

const (
	// EncodingRaw bodies are the chunk's bytes.
	EncodingRaw Encoding = 0
	// EncodingZstd bodies are one zstd frame of the chunk's bytes.
	EncodingZstd Encoding = 1
)

func (e Encoding) String() string {
	switch e {
	case EncodingRaw:
		return "raw"
	case EncodingZstd:
		return "zstd"
	}
	return fmt.Sprintf("encoding(%d)", uint8(e))
}

// Valid reports whether e is a known encoding.
func (e Encoding) Valid() bool { return e == EncodingRaw || e == EncodingZstd }

// MarshalText implements encoding.TextMarshaler.
func (e Encoding) MarshalText() ([]byte, error) {
	if !e.Valid() {
		return nil, fmt.Errorf("unknown chunk encoding %d", uint8(e))
	}
	return []byte(e.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (e *Encoding) UnmarshalText(b []byte) error {
	switch string(b) {
	case "raw":
		*e = EncodingRaw
	case "zstd":
		*e = EncodingZstd
	default:
		return fmt.Errorf("unknown chunk encoding %q (want raw or zstd)", truncate(string(b), 40))
	}
	return nil
}

// DefaultLevel is the zstd level publish uses unless told otherwise.
const DefaultLevel = 1

// Compressor encodes chunk bodies. It is safe for concurrent use.
type Compressor struct {
	enc *zstd.Encoder
}

// NewCompressor returns a compressor at a zstd level (1–22, mapped onto the
// levels the Go encoder implements).
func NewCompressor(level int) (*Compressor, error) {
	if level < 1 || level > 22 {
		return nil, fmt.Errorf("zstd level %d out of range 1–22", level)
	}
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithEncoderCRC(false), // the chunk id already covers the bytes
		zstd.WithZeroFrames(true),
		zstd.WithLowerEncoderMem(true),
	)
	if err != nil {
		return nil, err
	}
	return &Compressor{enc: enc}, nil
}

// Encode appends the body for data to dst and says which encoding it used:
// zstd, or raw where compression saves less than 1/32 of the bytes.
func (c *Compressor) Encode(dst, data []byte) (Encoding, []byte) {
	out := c.enc.EncodeAll(data, dst)
	if n := len(out) - len(dst); n < len(data)-len(data)/32 {
		return EncodingZstd, out
	}
	return EncodingRaw, append(dst, data...)
}

var (
	decoderOnce sync.Once
	decoder     *zstd.Decoder
)

func chunkDecoder() *zstd.Decoder {
	decoderOnce.Do(func() {
		var err error
		decoder, err = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(0),
			zstd.WithDecoderMaxMemory(MaxChunkSize),
			zstd.WithDecoderMaxWindow(MaxChunkSize),
			zstd.WithDecodeAllCapLimit(true),
		)
		if err != nil {
			panic(fmt.Sprintf("content: zstd decoder: %v", err)) // only fails on bad static options
		}
	})
	return decoder
}

// Sentinel errors for chunk bodies. They are wrapped in a *ChunkError that
// names the chunk.
var (
	// ErrChunkCorrupt means a body decoded but its bytes do not hash to the
	// chunk's id, or have the wrong length.
	ErrChunkCorrupt = errors.New("chunk bytes do not match their id")
	// ErrChunkEncoding means a body could not be decoded at all.
	ErrChunkEncoding = errors.New("chunk body does not decode")
)

// ChunkError names the chunk a body error is about.
type ChunkError struct {
	ID  ChunkID
	Err error
}

func (e *ChunkError) Error() string { return fmt.Sprintf("chunk %s: %v", e.ID, e.Err) }
func (e *ChunkError) Unwrap() error { return e.Err }

// DecodeChunk decodes body into dst's spare capacity (reallocating if it is
// too small) and verifies that the result has size bytes and hashes to id.
// It never allocates more than size bytes, whatever the body claims.
func DecodeChunk(dst []byte, id ChunkID, size int, enc Encoding, body []byte) ([]byte, error) {
	if size < 1 || size > MaxChunkSize {
		// A chunk has 1..MaxChunkSize bytes, as manifests and pack
		// indexes say; the chunker never cuts an empty one.
		return nil, &ChunkError{id, fmt.Errorf("%w: size %d out of range 1..%d", ErrChunkEncoding, size, MaxChunkSize)}
	}
	var data []byte
	switch enc {
	case EncodingRaw:
		if len(body) != size {
			return nil, &ChunkError{id, fmt.Errorf("%w: raw body has %d bytes, want %d", ErrChunkCorrupt, len(body), size)}
		}
		data = append(dst[:0], body...)
	case EncodingZstd:
		if cap(dst) < size {
			dst = make([]byte, 0, size)
		}
		out, err := chunkDecoder().DecodeAll(body, dst[:0:size])
		if err != nil {
			return nil, &ChunkError{id, fmt.Errorf("%w: zstd: %v", ErrChunkEncoding, err)}
		}
		if len(out) != size {
			return nil, &ChunkError{id, fmt.Errorf("%w: decoded %d bytes, want %d", ErrChunkCorrupt, len(out), size)}
		}
		data = out
	default:
		return nil, &ChunkError{id, fmt.Errorf("%w: unknown encoding %d", ErrChunkEncoding, enc)}
	}
	if sum := sha256.Sum256(data); !bytes.Equal(sum[:], id[:]) {
		return nil, &ChunkError{id, fmt.Errorf("%w: got sha256 %x", ErrChunkCorrupt, sum[:6])}
	}
	return data, nil
}

// bufPool holds scratch buffers of MaxChunkSize capacity for verification.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, MaxChunkSize); return &b }}

// VerifyChunk checks a body without keeping the decoded bytes.
func VerifyChunk(id ChunkID, size int, enc Encoding, body []byte) error {
	if size < 1 || size > MaxChunkSize {
		// The same bound as DecodeChunk: a store must not accept a chunk
		// that it would later refuse to hand out.
		return &ChunkError{id, fmt.Errorf("%w: size %d out of range 1..%d", ErrChunkEncoding, size, MaxChunkSize)}
	}
	if enc == EncodingRaw {
		if len(body) != size {
			return &ChunkError{id, fmt.Errorf("%w: raw body has %d bytes, want %d", ErrChunkCorrupt, len(body), size)}
		}
		if sum := sha256.Sum256(body); !bytes.Equal(sum[:], id[:]) {
			return &ChunkError{id, fmt.Errorf("%w: got sha256 %x", ErrChunkCorrupt, sum[:6])}
		}
		return nil
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	_, err := DecodeChunk(*bp, id, size, enc, body)
	return err
}
