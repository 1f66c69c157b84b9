package content

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
)

// Index is where a schema 2 artifact lists its files: the index stream
// (one File as compact JSON per line, sorted by path) cut into
// content-defined chunks with IndexChunking and stored in packs like any
// file's chunks. The manifest, a TUF target, carries only these
// references; the chunks are verified by their ids and the whole stream by
// SHA256. An entry that did not change has the same line in two releases,
// so the index of the next release shares every chunk but those around
// the entries that changed, and a node that holds any earlier release
// fetches only those.
type Index struct {
	Entries int        `json:"entries"` // lines, bounded by Limits.Files
	Size    int64      `json:"size"`    // bytes of the stream
	SHA256  Digest     `json:"sha256"`  // of the stream
	Chunks  []ChunkRef `json:"chunks"`  // in stream order
}

// IndexChunking cuts index streams: smaller than file chunks, since a
// changed entry costs the chunk around it, and fixed, so that the indexes
// of two releases share chunks.
func IndexChunking() Chunking { return Chunking{Min: 1 << 10, Avg: 4 << 10, Max: 16 << 10} }

// maxIndexLine bounds one line of an index stream: a path, a target and
// the extended attributes, base64 encoded, with room for the JSON.
func maxIndexLine(l Limits) int {
	return 2*l.PathBytes + l.Xattrs*(4*l.XattrBytes/3+300) + 1024
}

func (x *Index) validate(l Limits) error {
	switch {
	case x.Entries > l.Files:
		return badf("%d entries (files) exceed the limit of %d", x.Entries, l.Files)
	case x.Entries < 0:
		return badf("%d entries", x.Entries)
	case x.Size < 0 || x.Size > l.ManifestBytes:
		return badf("%d bytes out of range 0..%d", x.Size, l.ManifestBytes)
	case (x.Size == 0) != (x.Entries == 0) || (x.Size == 0) != (len(x.Chunks) == 0):
		return badf("size %d, %d entries and %d chunks disagree", x.Size, x.Entries, len(x.Chunks))
	}
	var sum int64
	for i := range x.Chunks {
		if err := x.Chunks[i].validate(); err != nil {
			return fmt.Errorf("chunk %d (%s): %w", i, x.Chunks[i].ID, err)
		}
		if sum += int64(x.Chunks[i].Size); sum > x.Size {
			break
		}
	}
	if sum != x.Size {
		return badf("chunks add up to %d bytes, size says %d", sum, x.Size)
	}
	return nil
}

// EncodeIndex returns the index stream of files, which must be sorted by
// path. A file of one chunk has that chunk's id as its sha256, so its
// line omits the sha256: hashes are most of an index's bytes, and they do
// not compress.
func EncodeIndex(files []File) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i := range files {
		f := files[i]
		if len(f.Chunks) == 1 && f.SHA256 == Digest(f.Chunks[0].ID) {
			f.SHA256 = Digest{}
		}
		if err := enc.Encode(&f); err != nil {
			return nil, fmt.Errorf("index entry %q: %w", files[i].Path, err)
		}
	}
	return buf.Bytes(), nil
}

// decodeIndex parses an index stream of n entries. It allocates in
// proportion to the stream, which the caller has bounded.
func decodeIndex(b []byte, n int, l Limits) ([]File, error) {
	files := make([]File, 0, n)
	maxLine := maxIndexLine(l)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return nil, badf("index entry %d has no end of line", len(files))
		}
		if i > maxLine {
			return nil, badf("index entry %d is %d bytes, above the limit of %d", len(files), i, maxLine)
		}
		if len(files) == n {
			return nil, badf("index has more than the %d entries it declares", n)
		}
		dec := json.NewDecoder(bytes.NewReader(b[:i]))
		dec.DisallowUnknownFields()
		var f File
		if err := dec.Decode(&f); err != nil {
			return nil, badf("index entry %d: %v", len(files), err)
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, badf("index entry %d: trailing data", len(files))
		}
		if f.Type == TypeFile && len(f.Chunks) == 1 {
			if !f.SHA256.isZero() {
				return nil, badf("index entry %d: a file of one chunk has that chunk's id as its sha256, and no sha256 field", len(files))
			}
			f.SHA256 = Digest(f.Chunks[0].ID)
		}
		files = append(files, f)
		b = b[i+1:]
	}
	if len(files) != n {
		return nil, badf("index has %d entries, declares %d", len(files), n)
	}
	return files, nil
}

// FetchFunc fetches chunks into the store that Load reads: the CDN for a
// seeder, the site's peers for a node.
type FetchFunc func(ctx context.Context, refs []ChunkRef) error

// Load reads a schema 2 artifact's files from its index: the chunks come
// from store, and fetch is asked for those it lacks (nil: none may be
// missing). The stream is checked against the index's size and digest,
// every entry is decoded with unknown fields refused, and the files are
// validated as Validate would, before a.Files is set. An artifact already
// loaded, or of schema 1, is left as it is.
func (a *Artifact) Load(ctx context.Context, store Store, fetch FetchFunc, l Limits) error {
	if a.Index == nil || a.Files != nil {
		return nil
	}
	x := a.Index
	if err := x.validate(l); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	var missing []ChunkRef
	for _, c := range x.Chunks {
		if !store.Has(c.ID) {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		if fetch == nil {
			return fmt.Errorf("index: %d of %d chunks: %w", len(missing), len(x.Chunks), ErrMissingChunk)
		}
		if err := fetch(ctx, missing); err != nil {
			return fmt.Errorf("index: fetch %d of %d chunks: %w", len(missing), len(x.Chunks), err)
		}
	}
	stream := make([]byte, 0, x.Size)
	var buf []byte
	for _, ref := range x.Chunks {
		c, err := store.Get(ref.ID)
		if err != nil {
			return fmt.Errorf("index: chunk %s: %w", ref.ID, err)
		}
		if buf, err = DecodeChunk(buf, c.ID, c.Size, c.Enc, c.Body); err != nil {
			return fmt.Errorf("index: %w", err)
		}
		if int64(len(stream)+len(buf)) > x.Size {
			break // the digest check below fails
		}
		stream = append(stream, buf...)
	}
	if int64(len(stream)) != x.Size || sha256.Sum256(stream) != x.SHA256 {
		return fmt.Errorf("index: %w: the stream does not match its size and sha256", ErrBadManifest)
	}
	files, err := decodeIndex(stream, x.Entries, l)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	loaded := Artifact{Kind: a.Kind, Files: files, Index: x, Schema: a.Schema}
	if err := loaded.validate(a.schema(), l); err != nil {
		return err
	}
	a.Files = files
	return nil
}
