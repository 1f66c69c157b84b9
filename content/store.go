package content

import "errors"

// Chunk is a chunk body as it is stored and sent: the encoded bytes plus
// what is needed to decode and verify them.
type Chunk struct {
	ID   ChunkID
	Size int // uncompressed bytes
	Enc  Encoding
	Body []byte
}

// Verify checks that the body decodes to Size bytes that hash to ID.
func (c Chunk) Verify() error { return VerifyChunk(c.ID, c.Size, c.Enc, c.Body) }

// ErrNotFound is returned by Store.Get for a chunk the store does not hold.
var ErrNotFound = errors.New("chunk not in store")

// Store holds verified chunk bodies by id. Implementations are safe for
// concurrent use and guarantee that every chunk they return was verified
// against its id when it was put.
type Store interface {
	// Has reports whether the store holds id.
	Has(id ChunkID) bool
	// Get returns the chunk, or an error wrapping ErrNotFound.
	Get(id ChunkID) (Chunk, error)
	// Put verifies c and stores it; storing a chunk already held is a
	// no-op. A chunk that does not verify is refused with an error
	// wrapping ErrChunkCorrupt or ErrChunkEncoding and nothing is stored;
	// whatever the error, the chunk is not stored. Once Put returns nil,
	// Has, Get and Walk see the chunk, but it need not be durable yet: an
	// implementation that writes behind (DiskStore) says how to wait for
	// that, and if it then fails to write the chunk, drops it (Has turns
	// false) and reports the failure in the error of a later Put.
	Put(c Chunk) error
	// Walk calls fn for every chunk held, in no particular order, until fn
	// returns an error.
	Walk(fn func(id ChunkID) error) error
	// Remove deletes one chunk, for a caller that found it corrupt on
	// read; removing a chunk not held is not an error.
	Remove(id ChunkID) error
	// GC deletes every chunk for which keep returns false. Puts that run
	// concurrently with GC are kept. keep must not call the store: an
	// implementation may hold its lock while it calls keep.
	GC(keep func(id ChunkID) bool) (GCStats, error)
}

// GCStats reports what a garbage collection did.
type GCStats struct {
	Kept, Removed int
	FreedBytes    int64
}
