package content

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

// ChunkID names a chunk: the sha2-256 digest of its uncompressed bytes. Its
// text form is a CIDv1 with the raw codec, in base32 ("bafkrei…"), so any IPFS
// tool can name the same bytes.
type ChunkID [sha256.Size]byte

// cidPrefix is the binary CIDv1 header for codec raw (0x55) and a sha2-256
// multihash of 32 bytes.
var cidPrefix = [4]byte{0x01, 0x55, 0x12, 0x20}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// SumChunk returns the id of data.
func SumChunk(data []byte) ChunkID { return ChunkID(sha256.Sum256(data)) }

// ErrBadChunkID is returned for text that is not a CIDv1 raw sha2-256.
var ErrBadChunkID = errors.New("not a CIDv1 raw sha2-256 chunk id")

// ParseChunkID parses the text form of a chunk id.
func ParseChunkID(s string) (ChunkID, error) {
	var id ChunkID
	c, err := cid.Decode(s)
	if err != nil {
		return id, fmt.Errorf("%w: %q: %v", ErrBadChunkID, truncate(s, 80), err)
	}
	if c.Version() != 1 || c.Type() != cid.Raw {
		return id, fmt.Errorf("%w: %q: version %d codec 0x%x", ErrBadChunkID, truncate(s, 80), c.Version(), c.Type())
	}
	dm, err := multihash.Decode(c.Hash())
	if err != nil || dm.Code != multihash.SHA2_256 || len(dm.Digest) != sha256.Size {
		return id, fmt.Errorf("%w: %q: multihash is not sha2-256", ErrBadChunkID, truncate(s, 80))
	}
	copy(id[:], dm.Digest)
	return id, nil
}

// String returns the CIDv1 text form, base32 lower case.
func (id ChunkID) String() string {
	var raw [len(cidPrefix) + sha256.Size]byte
	copy(raw[:], cidPrefix[:])
	copy(raw[len(cidPrefix):], id[:])
	buf := make([]byte, 1+b32.EncodedLen(len(raw)))
	buf[0] = 'b'
	b32.Encode(buf[1:], raw[:])
	for i, c := range buf {
		if c >= 'A' && c <= 'Z' {
			buf[i] = c + ('a' - 'A')
		}
	}
	return string(buf)
}

// Short returns a prefix of the hex digest for logs.
func (id ChunkID) Short() string { return hex.EncodeToString(id[:6]) }

// Hex returns the full hex digest; the on-disk store names files by it.
func (id ChunkID) Hex() string { return hex.EncodeToString(id[:]) }

// CID returns the go-cid form, for interoperating with IPFS libraries.
func (id ChunkID) CID() cid.Cid {
	mh, _ := multihash.Encode(id[:], multihash.SHA2_256)
	return cid.NewCidV1(cid.Raw, mh)
}

// IsZero reports whether id is the zero value (no chunk has it in practice).
func (id ChunkID) IsZero() bool { return id == ChunkID{} }

// MarshalText implements encoding.TextMarshaler.
func (id ChunkID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *ChunkID) UnmarshalText(b []byte) error {
	v, err := ParseChunkID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// Digest is a sha256 of a whole file, manifest or pack; its text form is hex.
type Digest [sha256.Size]byte

// ParseDigest parses 64 hex characters.
func ParseDigest(s string) (Digest, error) {
	var d Digest
	if len(s) != 2*sha256.Size {
		return d, fmt.Errorf("sha256 %q: want %d hex characters, got %d", truncate(s, 80), 2*sha256.Size, len(s))
	}
	if _, err := hex.Decode(d[:], []byte(s)); err != nil {
		return d, fmt.Errorf("sha256 %q: %w", truncate(s, 80), err)
	}
	return d, nil
}

func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// Short returns a prefix for logs.
func (d Digest) Short() string { return hex.EncodeToString(d[:6]) }

// MarshalText implements encoding.TextMarshaler.
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Digest) UnmarshalText(b []byte) error {
	v, err := ParseDigest(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// ReleaseID names one release: the sha256 of its manifest bytes, which is
// also the hash that TUF signs for the manifest target.
type ReleaseID Digest

func (r ReleaseID) String() string { return Digest(r).String() }

// Short returns a prefix for logs.
func (r ReleaseID) Short() string { return Digest(r).Short() }

// MarshalText implements encoding.TextMarshaler.
func (r ReleaseID) MarshalText() ([]byte, error) { return Digest(r).MarshalText() }

// UnmarshalText implements encoding.TextUnmarshaler.
func (r *ReleaseID) UnmarshalText(b []byte) error { return (*Digest)(r).UnmarshalText(b) }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
