package content

// MaxChunkSize is the format's upper bound on a chunk's uncompressed size.
// Decoders refuse anything larger before allocating for it.
const MaxChunkSize = 4 << 20

// DefaultChunksLimit is the default bound on a platform's chunk
// references; the exchange protocol sizes its bitfields by it.
const DefaultChunksLimit = 1 << 22

// Limits bound what a manifest may ask of a node. A manifest is signed, but a
// stolen key or a buggy publisher must still not make a gateway allocate or
// write without bound.
type Limits struct {
	ManifestBytes int64 // encoded manifest size
	Platforms     int   // platforms in one release
	Files         int   // entries per platform
	Chunks        int   // chunk references per platform
	FileSize      int64 // one file's size
	TotalSize     int64 // sum of file sizes per platform
	PathBytes     int   // one path or link target
	Xattrs        int   // extended attributes per entry
	XattrBytes    int   // one extended attribute's value
}

// DefaultLimits suit a gateway OS image or application tree.
func DefaultLimits() Limits {
	return Limits{
		ManifestBytes: 64 << 20,
		Platforms:     64,
		Files:         1 << 20,
		Chunks:        DefaultChunksLimit,
		FileSize:      1 << 40,
		TotalSize:     1 << 42,
		PathBytes:     4096,
		Xattrs:        32,
		XattrBytes:    64 << 10, // Linux's XATTR_SIZE_MAX
	}
}
