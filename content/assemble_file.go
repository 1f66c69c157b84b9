package content

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// file creates a regular file, from the previous release if it has the
// same bytes, from its chunks otherwise, and gives it its metadata.
func (a *assembler) file(f *File) error {
	a.st.Files++
	m := a.metaOf(f)
	if p := a.prev[f.Path]; p != nil && p.SHA256 == f.SHA256 && p.Size == f.Size {
		ok, err := a.reuse(f, m)
		if err != nil || ok {
			return err
		}
	}
	if err := a.decode(f); err != nil {
		return err
	}
	return a.setMeta(f.Path, TypeFile, m)
}

// decode writes f from its chunks and checks it against its digest.
func (a *assembler) decode(f *File) error {
	w, err := a.root.OpenFile(f.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer w.Close()
	h := sha256.New()
	if a.buf == nil {
		a.buf = make([]byte, 0, MaxChunkSize)
	}
	for i := range f.Chunks {
		ref := &f.Chunks[i]
		data, err := a.chunk(ref)
		if err != nil {
			return err
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
		h.Write(data)
		a.st.WrittenBytes += int64(len(data))
	}
	if got := h.Sum(nil); !bytes.Equal(got, f.SHA256[:]) {
		return fmt.Errorf("%w: got %x", ErrFileDigest, got[:6])
	}
	return w.Close()
}

// chunk returns the decoded bytes of ref, in a.buf. A stored chunk that
// turns out to be damaged is removed from the store, so that the next
// fetch replaces it.
func (a *assembler) chunk(ref *ChunkRef) ([]byte, error) {
	c, err := a.store.Get(ref.ID)
	if errors.Is(err, ErrNotFound) {
		return nil, &ChunkError{ref.ID, ErrMissingChunk}
	}
	if errors.Is(err, ErrChunkCorrupt) {
		// A stored file the store itself cannot read (a damaged header).
		a.store.Remove(ref.ID)
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	// The id fixes the size; the encoding is how this copy happens to be
	// stored, which need not be how the origin stores it.
	if c.Size != ref.Size {
		a.store.Remove(ref.ID)
		return nil, &ChunkError{ref.ID, fmt.Errorf("%w: stored with %d bytes, manifest says %d", ErrChunkCorrupt, c.Size, ref.Size)}
	}
	data, err := DecodeChunk(a.buf, ref.ID, ref.Size, c.Enc, c.Body)
	if err != nil {
		// A stored chunk that no longer verifies is bit rot.
		a.store.Remove(ref.ID)
		return nil, err
	}
	return data, nil
}

// reuse takes f from the previous release, only after its bytes are
// checked against f's digest: a hard link when the inode has exactly the
// metadata m, a copy given m otherwise, so that the inode of the running
// release is never changed. It reports false when the previous file is
// unusable, and the caller decodes f from chunks instead.
func (a *assembler) reuse(f *File, m meta) (bool, error) {
	src, sfi := a.prevFile(f)
	if src == nil {
		return false, nil
	}
	defer src.Close()
	if a.sameInode(src, sfi, m) {
		if ok, err := a.linkPrev(f, src, sfi); err != nil || ok {
			return ok, err
		}
	}
	return a.copyPrev(f, src, m)
}

// prevFile opens f's path in the previous release if it is a regular
// file of f's size. Anything else there (a fifo, a device, a symlink) is
// never opened: the type is checked first, and the open does not block
// should the path change in between, which the check after it notices.
func (a *assembler) prevFile(f *File) (*os.File, fs.FileInfo) {
	lfi, err := a.prevRoot.Lstat(f.Path)
	if err != nil || !lfi.Mode().IsRegular() || lfi.Size() != f.Size {
		return nil, nil
	}
	src, err := a.prevRoot.OpenFile(f.Path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil
	}
	sfi, err := src.Stat()
	if err != nil || !os.SameFile(lfi, sfi) {
		src.Close()
		return nil, nil
	}
	return src, sfi
}

// linkPrev hard-links src, f in the previous release, into the tree, and
// reports whether it did and the bytes are f's.
func (a *assembler) linkPrev(f *File, src *os.File, sfi fs.FileInfo) (bool, error) {
	if os.Link(filepath.Join(a.prevDir, f.Path), filepath.Join(a.tmp, f.Path)) != nil {
		return false, nil
	}
	// The link was made by path: make sure it is the inode we opened
	// through the root, then check its bytes.
	if lfi, err := a.root.Lstat(f.Path); err == nil && os.SameFile(lfi, sfi) && digestMatches(src, f) {
		a.st.ReusedFiles++
		a.st.ReusedBytes += f.Size
		return true, nil
	}
	if err := a.root.Remove(f.Path); err != nil {
		return false, err
	}
	return false, nil
}

// copyPrev copies src, f in the previous release, into the tree if its
// bytes are f's, and gives the copy its metadata m.
func (a *assembler) copyPrev(f *File, src *os.File, m meta) (bool, error) {
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return false, nil
	}
	w, err := a.root.OpenFile(f.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return false, err
	}
	defer w.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(src, f.Size+1))
	if err != nil || n != f.Size || !bytes.Equal(h.Sum(nil), f.SHA256[:]) {
		w.Close()
		if err := a.root.Remove(f.Path); err != nil {
			return false, err
		}
		return false, nil
	}
	if err := w.Close(); err != nil {
		return false, err
	}
	a.st.ReusedFiles++
	a.st.ReusedBytes += f.Size
	return true, a.setMeta(f.Path, TypeFile, m)
}

func digestMatches(r io.ReadSeeker, f *File) bool {
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return false
	}
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(r, f.Size+1))
	return err == nil && n == f.Size && bytes.Equal(h.Sum(nil), f.SHA256[:])
}
