package content

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
)

// Installed is a release already materialised on this node, whose unchanged
// files a new release may reuse.
type Installed struct {
	Dir      string
	Artifact *Artifact
}

// AssembleStats says what an assembly did.
type AssembleStats struct {
	Files, Dirs, Symlinks int
	WrittenBytes          int64 // decoded from chunks
	ReusedFiles           int   // taken from the previous release
	ReusedBytes           int64
}

// ErrMissingChunk means the store lacks a chunk that a file needs.
var ErrMissingChunk = errors.New("chunk missing from the store")

// ErrFileDigest means a file's bytes do not match the digest in the manifest.
var ErrFileDigest = errors.New("file does not match its sha256")

// Assemble materialises art into dst from store. dst must not exist, or be
// an empty directory. The tree is built in a temporary sibling of dst and
// renamed into place only when every file is complete, checked against its
// sha256 and synced to disk, so dst holds the whole release or nothing.
//
// Every file operation goes through an os.Root on the temporary directory,
// so no entry of a hostile manifest reaches outside it whatever its path
// or link targets say; the manifest is validated as well, and only regular
// files, directories and symlinks can be created. Files of prev with the
// same path, digest and mode are hard-linked (or copied) after their bytes
// are checked, instead of being decoded again.
func Assemble(ctx context.Context, art *Artifact, store Store, dst string, prev *Installed) (AssembleStats, error) {
	var st AssembleStats
	if err := art.validateLoaded(DefaultLimits()); err != nil {
		return st, fmt.Errorf("assemble %s: %w", dst, err)
	}
	// rename(2) replaces an empty directory, so an empty dst stays in
	// place until the finished tree takes its name.
	if fi, err := os.Lstat(dst); err == nil {
		if !fi.IsDir() || !emptyDir(dst) {
			return st, fmt.Errorf("assemble: %s exists and is not an empty directory", dst)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return st, fmt.Errorf("assemble %s: %w", dst, err)
	}
	parent := filepath.Dir(dst)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return st, fmt.Errorf("assemble %s: %w", dst, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dst)+".partial-")
	if err != nil {
		return st, fmt.Errorf("assemble %s: %w", dst, err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	a := &assembler{ctx: ctx, art: art, store: store, tmp: tmp, st: &st}
	if a.root, err = os.OpenRoot(tmp); err != nil {
		return st, fmt.Errorf("assemble %s: %w", dst, err)
	}
	defer a.root.Close()
	if prev != nil && prev.Artifact != nil {
		if a.prevRoot, err = os.OpenRoot(prev.Dir); err == nil {
			defer a.prevRoot.Close()
			a.prevDir = prev.Dir
			a.prev = make(map[string]*File, len(prev.Artifact.Files))
			for i := range prev.Artifact.Files {
				if f := &prev.Artifact.Files[i]; f.Type == TypeFile {
					a.prev[f.Path] = f
				}
			}
		}
	}
	if err := a.run(); err != nil {
		return st, fmt.Errorf("assemble %s: %w", dst, err)
	}
	if err := syncTree(tmp); err != nil {
		return st, fmt.Errorf("assemble %s: sync: %w", dst, err)
	}
	// syscall.Rename, not os.Rename, which refuses an existing directory.
	if err := syscall.Rename(tmp, dst); err != nil {
		return st, fmt.Errorf("assemble %s: %w", dst, err)
	}
	done = true
	if err := syncDir(parent); err != nil {
		return st, fmt.Errorf("assemble %s: sync parent: %w", dst, err)
	}
	return st, nil
}

type assembler struct {
	ctx      context.Context
	art      *Artifact
	store    Store
	tmp      string
	root     *os.Root
	prevRoot *os.Root
	prevDir  string
	prev     map[string]*File
	st       *AssembleStats
	buf      []byte
}

func (a *assembler) run() error {
	// Directories first, writable until the end; files next; symlinks last,
	// so that no file is ever created through a link; then the final
	// directory modes, deepest first.
	var dirs []*File
	for i := range a.art.Files {
		f := &a.art.Files[i]
		if f.Type != TypeDir {
			continue
		}
		// Parents the tree does not list get 0755, as they do for files;
		// listed directories stay 0700 until their final mode is set.
		if dir := filepath.Dir(f.Path); dir != "." {
			if err := a.root.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("dir %q: %w", f.Path, err)
			}
		}
		if err := a.root.MkdirAll(f.Path, 0o700); err != nil {
			return fmt.Errorf("dir %q: %w", f.Path, err)
		}
		dirs = append(dirs, f)
		a.st.Dirs++
	}
	for i := range a.art.Files {
		f := &a.art.Files[i]
		if f.Type != TypeFile {
			continue
		}
		if err := a.ctx.Err(); err != nil {
			return err
		}
		if dir := filepath.Dir(f.Path); dir != "." {
			if err := a.root.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("file %q: %w", f.Path, err)
			}
		}
		if err := a.file(f); err != nil {
			return fmt.Errorf("file %q: %w", f.Path, err)
		}
		a.st.Files++
	}
	for i := range a.art.Files {
		f := &a.art.Files[i]
		if f.Type != TypeSymlink {
			continue
		}
		if dir := filepath.Dir(f.Path); dir != "." {
			if err := a.root.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("symlink %q: %w", f.Path, err)
			}
		}
		if err := a.root.Symlink(f.Target, f.Path); err != nil {
			return fmt.Errorf("symlink %q: %w", f.Path, err)
		}
		a.st.Symlinks++
	}
	for _, d := range slices.Backward(dirs) {
		if err := a.root.Chmod(d.Path, d.Mode.FileMode()); err != nil {
			return fmt.Errorf("dir %q: %w", d.Path, err)
		}
	}
	return nil
}

func (a *assembler) file(f *File) error {
	if p := a.prev[f.Path]; p != nil && p.SHA256 == f.SHA256 && p.Size == f.Size {
		ok, err := a.reuse(f, p.Mode == f.Mode)
		if err != nil || ok {
			return err
		}
	}
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
		c, err := a.store.Get(ref.ID)
		if errors.Is(err, ErrNotFound) {
			return &ChunkError{ref.ID, ErrMissingChunk}
		}
		if errors.Is(err, ErrChunkCorrupt) {
			// A stored file the store itself cannot read (a damaged
			// header): drop it so that the next fetch replaces it.
			a.store.Remove(ref.ID)
			return err
		}
		if err != nil {
			return err
		}
		// The id fixes the size; the encoding is how this copy happens to
		// be stored, which need not be how the origin stores it.
		if c.Size != ref.Size {
			a.store.Remove(ref.ID)
			return &ChunkError{ref.ID, fmt.Errorf("%w: stored with %d bytes, manifest says %d", ErrChunkCorrupt, c.Size, ref.Size)}
		}
		data, err := DecodeChunk(a.buf, ref.ID, ref.Size, c.Enc, c.Body)
		if err != nil {
			// A stored chunk that no longer verifies is bit rot: drop it
			// so that the next fetch replaces it.
			a.store.Remove(ref.ID)
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
	if err := w.Chmod(f.Mode.FileMode()); err != nil {
		return err
	}
	return w.Close()
}

// reuse takes f from the previous release: a hard link when the modes
// agree, a copy otherwise, and in both cases only after the bytes are
// checked against f's digest. It reports false when the previous file is
// unusable, and the caller decodes f from chunks instead.
func (a *assembler) reuse(f *File, sameMode bool) (bool, error) {
	src, err := a.prevRoot.Open(f.Path)
	if err != nil {
		return false, nil
	}
	defer src.Close()
	sfi, err := src.Stat()
	if err != nil || !sfi.Mode().IsRegular() || sfi.Size() != f.Size {
		return false, nil
	}
	sameMode = sameMode && sfi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) == f.Mode.FileMode()
	if sameMode && os.Link(filepath.Join(a.prevDir, f.Path), filepath.Join(a.tmp, f.Path)) == nil {
		// The link was made by path: make sure it is the inode we opened
		// through the root, then check its bytes.
		if lfi, err := a.root.Lstat(f.Path); err == nil && os.SameFile(lfi, sfi) && a.digestMatches(src, f) {
			a.st.ReusedFiles++
			a.st.ReusedBytes += f.Size
			return true, nil
		}
		if err := a.root.Remove(f.Path); err != nil {
			return false, err
		}
		return false, nil
	}
	w, err := a.root.OpenFile(f.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return false, err
	}
	defer w.Close()
	h := sha256.New()
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return false, nil
	}
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(src, f.Size+1))
	if err != nil || n != f.Size || !bytes.Equal(h.Sum(nil), f.SHA256[:]) {
		w.Close()
		if err := a.root.Remove(f.Path); err != nil {
			return false, err
		}
		return false, nil
	}
	if err := w.Chmod(f.Mode.FileMode()); err != nil {
		return false, err
	}
	a.st.ReusedFiles++
	a.st.ReusedBytes += f.Size
	return true, w.Close()
}

func (a *assembler) digestMatches(r io.ReadSeeker, f *File) bool {
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return false
	}
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(r, f.Size+1))
	return err == nil && n == f.Size && bytes.Equal(h.Sum(nil), f.SHA256[:])
}

// FileMode converts permission bits to an os.FileMode.
func (m Mode) FileMode() os.FileMode {
	fm := os.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		fm |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= os.ModeSticky
	}
	return fm
}

// ModeOf converts an os.FileMode's permission bits to a Mode.
func ModeOf(fm os.FileMode) Mode {
	m := Mode(fm.Perm())
	if fm&os.ModeSetuid != 0 {
		m |= 0o4000
	}
	if fm&os.ModeSetgid != 0 {
		m |= 0o2000
	}
	if fm&os.ModeSticky != 0 {
		m |= 0o1000
	}
	return m
}

func emptyDir(dir string) bool {
	d, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer d.Close()
	_, err = d.Readdirnames(1)
	return err == io.EOF
}
