package origin

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/meshcast/meshcast/content"
)

// fuzzMaxInput caps a fuzz input: a tar this size holds at most some
// thousand headers; what it decompresses to is bounded by fuzzLimits.
const fuzzMaxInput = 256 << 10

// fuzzLimits are content.DefaultLimits with bounds that keep one input's
// work and memory small: a sparse or compressed input can announce far
// more than it holds.
func fuzzLimits() content.Limits {
	l := content.DefaultLimits()
	l.Files = 4096
	l.FileSize = 1 << 20
	l.TotalSize = 4 << 20
	l.ManifestBytes = 4 << 20
	return l
}

// FuzzTarInput feeds arbitrary bytes to the tar source and the publish
// pipeline, as a publish of a tar (plain, gzip or zstd) would: either an
// error, or an artifact whose every path is valid (or the tree's own
// directory, first) and that validates as a schema 2 manifest with the limits nodes use. Never a panic.
func FuzzTarInput(f *testing.F) {
	good, bad := tarSeeds(f)
	for i, seed := range good {
		if _, err := fuzzArtifact(seed); err != nil {
			f.Fatalf("good seed %d: %v", i, err)
		}
		f.Add(seed)
	}
	for i, seed := range bad {
		if _, err := fuzzArtifact(seed); err == nil {
			f.Fatalf("bad seed %d accepted", i)
		}
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > fuzzMaxInput {
			return
		}
		c, err := fuzzArtifact(b)
		if err != nil {
			return
		}
		for i, file := range c.files {
			if i == 0 && file.Path == content.RootPath {
				continue // the tree's own directory
			}
			if err := content.ValidatePath(file.Path, content.DefaultLimits().PathBytes); err != nil {
				t.Fatalf("accepted %q: %v", file.Path, err)
			}
		}
		if err := validateCollected(c); err != nil {
			t.Fatalf("accepted an artifact that does not validate: %v", err)
		}
	})
}

// fuzzArtifact runs b as a tar through a publisher whose pack is
// discarded as it is written.
func fuzzArtifact(b []byte) (*collected, error) {
	src, err := newTarSource(io.NopCloser(nil), bufio.NewReader(bytes.NewReader(b)), int64(len(b)), fuzzLimits())
	if err != nil {
		return nil, err
	}
	defer src.close()
	// The pack's bytes go nowhere: only the pack writer's index is kept.
	pw := &pendingPack{w: content.NewPackWriter(io.Discard)}
	p := &publisher{known: map[content.ChunkID]location{}, added: map[content.ChunkID]location{}, comp: fuzzCompressor(), chunking: content.DefaultChunking(), pack: pw}
	return p.artifact(context.Background(), src, func() {})
}

// fuzzCompressor is one compressor for every input: making one per input
// costs more than the input's run.
var fuzzCompressor = sync.OnceValue(func() *content.Compressor {
	c, err := content.NewCompressor(1)
	if err != nil {
		panic(err)
	}
	return c
})

// validateCollected validates c as the one platform of a schema 2
// manifest, its new chunks placed in a pack and its index stood in for
// by a one-chunk index of the right entry count.
func validateCollected(c *collected) error {
	pack := content.Digest{1}
	for i := range c.files {
		for j := range c.files[i].Chunks {
			if c.files[i].Chunks[j].Pack == (content.Digest{}) {
				c.files[i].Chunks[j].Pack = pack
			}
		}
	}
	x := &content.Index{Entries: len(c.files)}
	if len(c.files) > 0 {
		ref := content.ChunkRef{ID: content.SumChunk([]byte("i")), Size: 1, Stored: 1, Enc: content.EncodingRaw, Pack: pack}
		x.Size, x.Chunks = 1, []content.ChunkRef{ref}
	}
	m := &content.Manifest{
		Schema: content.ManifestSchema, Name: "fuzz", Version: "1.0.0",
		Chunking: content.DefaultChunking(), Rollout: content.DefaultRollout(),
		Platforms: map[string]*content.Artifact{"linux/amd64": {Kind: c.kind, Files: c.files, Index: x}},
	}
	return m.Validate(content.DefaultLimits())
}

// tarSeeds are archives made with archive/tar covering every entry type,
// PAX extended attributes and owner names, hard links (one whose group's
// lexically first path is not the first in the archive), long GNU names,
// gzip and zstd, and sparse files from GNU tar when it is there; and a
// few archives that are refused.
func tarSeeds(f testing.TB) (good, bad [][]byte) {
	mtime := time.Date(2024, 1, 2, 3, 4, 5, 6789, time.UTC)
	every := tarBytes(f, tar.FormatPAX, []*tar.Header{
		{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./a/", Typeflag: tar.TypeDir, Mode: 0o1777, Uid: 1234, Gid: 5678, Uname: "alice", Gname: "staff", ModTime: mtime},
		{Name: "./a/x", Typeflag: tar.TypeReg, Mode: 0o4755, Size: 5, ModTime: mtime, PAXRecords: map[string]string{
			"SCHILY.xattr.user.comment": "hello", "SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x04\x00\x00",
			"SCHILY.xattr.system.posix_acl_access": "\x02\x00\x00\x00", "SCHILY.xattr.trusted.t": "",
		}},
		{Name: "./a.b", Typeflag: tar.TypeLink, Linkname: "./a/x"},
		{Name: "./z/l", Typeflag: tar.TypeLink, Linkname: "a.b"},
		{Name: "./etc/localtime", Typeflag: tar.TypeSymlink, Linkname: "/usr/share/zoneinfo/UTC"},
		{Name: "./dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3},
		{Name: "./dev/loop0", Typeflag: tar.TypeBlock, Mode: 0o660, Devmajor: 7},
		{Name: "./run/fifo", Typeflag: tar.TypeFifo, Mode: 0o640},
		{Name: "./empty", Typeflag: tar.TypeReg, Mode: 0o644},
	})
	good = [][]byte{
		every, compressed(f, every, "gzip"), compressed(f, every, "zstd"),
		tarBytes(f, tar.FormatGNU, []*tar.Header{
			{Name: strings.Repeat("long/", 30) + "name", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5},
			{Name: "link", Typeflag: tar.TypeSymlink, Linkname: strings.Repeat("t", 150)},
		}),
		{},
		make([]byte, 1024),
	}
	bad = [][]byte{
		tarBytes(f, tar.FormatUSTAR, []*tar.Header{
			{Name: "f", Typeflag: tar.TypeReg, Size: 5},
			{Name: "f", Typeflag: tar.TypeReg, Size: 5},
		}),
		tarBytes(f, tar.FormatUSTAR, []*tar.Header{
			{Name: "l", Typeflag: tar.TypeLink, Linkname: "f"},
			{Name: "f", Typeflag: tar.TypeReg, Size: 5},
			{Name: "f/x", Typeflag: tar.TypeReg, Size: 5},
		}),
	}
	return append(good, sparseSeeds(f)...), bad
}

// tarBytes writes hdrs, each regular file with Size bytes of data.
func tarBytes(f testing.TB, format tar.Format, hdrs []*tar.Header) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		h.Format = format
		if err := tw.WriteHeader(h); err != nil {
			f.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(bytes.Repeat([]byte("d"), int(h.Size))); err != nil {
				f.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		f.Fatal(err)
	}
	return buf.Bytes()
}

func compressed(f testing.TB, b []byte, how string) []byte {
	var buf bytes.Buffer
	var w io.WriteCloser
	if how == "gzip" {
		w = gzip.NewWriter(&buf)
	} else {
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			f.Fatal(err)
		}
		w = zw
	}
	if _, err := w.Write(b); err != nil {
		f.Fatal(err)
	}
	if err := w.Close(); err != nil {
		f.Fatal(err)
	}
	return buf.Bytes()
}

// sparseSeeds archives a small sparse file with GNU tar in the old GNU
// and the PAX 1.0 sparse formats (this one after a global header), if
// GNU tar is on the PATH.
func sparseSeeds(f testing.TB) [][]byte {
	gnuTar, err := exec.LookPath("tar")
	if err != nil {
		return nil
	}
	dir := f.TempDir()
	file := filepath.Join(dir, "sparse")
	if err := os.WriteFile(file, []byte("head"), 0o644); err != nil {
		f.Fatal(err)
	}
	if err := os.Truncate(file, 64<<10); err != nil {
		f.Fatal(err)
	}
	var seeds [][]byte
	for i, args := range [][]string{{"--format=gnu"}, {"--format=pax", "--sparse-version=1.0", "--pax-option=globexthdr.comment=g"}} {
		out := filepath.Join(dir, string(rune('a'+i))+".tar")
		cmd := exec.Command(gnuTar, append(append([]string{"--sparse", "-cf", out}, args...), "-C", dir, "sparse")...)
		if err := cmd.Run(); err != nil {
			continue // not GNU tar
		}
		if b, err := os.ReadFile(out); err == nil {
			seeds = append(seeds, b)
		}
	}
	return seeds
}
