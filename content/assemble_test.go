package content_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshcast/meshcast/content"
)

// entry is one tree entry as a test writes it.
type entry struct {
	Path         string
	Type         content.FileType
	Mode         content.Mode
	Data         string // regular files
	Target       string // symlinks
	Link         string // hard links
	UID, GID     uint32
	MTime        int64
	Xattrs       content.Xattrs
	Major, Minor uint32 // devices
}

func dirE(p string, mode content.Mode) entry {
	return entry{Path: p, Type: content.TypeDir, Mode: mode}
}
func fileE(p string, mode content.Mode, data string) entry {
	return entry{Path: p, Type: content.TypeFile, Mode: mode, Data: data}
}
func linkE(p, target string) entry { return entry{Path: p, Type: content.TypeSymlink, Target: target} }
func hardE(p, link string) entry   { return entry{Path: p, Type: content.TypeLink, Link: link} }
func fifoE(p string, mode content.Mode) entry {
	return entry{Path: p, Type: content.TypeFifo, Mode: mode}
}
func devE(p string, t content.FileType, mode content.Mode, major, minor uint32) entry {
	return entry{Path: p, Type: t, Mode: mode, Major: major, Minor: minor}
}

// own, at and xattr return e with an owner, an mtime or one more extended
// attribute.
func (e entry) own(uid, gid uint32) entry { e.UID, e.GID = uid, gid; return e }
func (e entry) at(ns int64) entry         { e.MTime = ns; return e }
func (e entry) xattr(name, value string) entry {
	e.Xattrs = maps.Clone(e.Xattrs)
	if e.Xattrs == nil {
		e.Xattrs = make(content.Xattrs)
	}
	e.Xattrs[name] = []byte(value)
	return e
}

// testChunking gives several chunks per file from little data.
var testChunking = content.Chunking{Min: 64, Avg: 256, Max: 1024}

// testPack is the pack every chunk of buildArtifact lives in: the tests
// read chunks from a store, so the pack only has to be named.
var testPack = content.Digest(sha256.Sum256([]byte("test pack")))

// buildTree chunks the entries' files into store and returns the artifact,
// with entries sorted by path. It does not validate: hostile tests feed it
// what they like.
func buildTree(tb testing.TB, store content.Store, entries []entry) *content.Artifact {
	tb.Helper()
	entries = slices.Clone(entries)
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].Path < entries[j].Path })
	return buildArtifact(tb, store, content.KindTree, entries)
}

// buildArtifact is buildTree without the sort.
func buildArtifact(tb testing.TB, store content.Store, kind content.ArtifactKind, entries []entry) *content.Artifact {
	tb.Helper()
	comp := newCompressor(tb, content.DefaultLevel)
	art := &content.Artifact{Kind: kind}
	refs := make(map[content.ChunkID]content.ChunkRef)
	var offset int64
	for _, e := range entries {
		f := content.File{
			Path: e.Path, Type: e.Type, Mode: e.Mode, Target: e.Target, Link: e.Link,
			UID: e.UID, GID: e.GID, MTime: e.MTime, Xattrs: e.Xattrs, Major: e.Major, Minor: e.Minor,
		}
		if e.Type == content.TypeFile {
			data := []byte(e.Data)
			f.Size = int64(len(data))
			f.SHA256 = content.Digest(sha256.Sum256(data))
			off := 0
			for _, n := range chunkLengths(tb, data, testChunking) {
				piece := data[off : off+n]
				off += n
				id := content.SumChunk(piece)
				ref, ok := refs[id]
				if !ok {
					enc, body := comp.Encode(nil, piece)
					if err := store.Put(content.Chunk{ID: id, Size: n, Enc: enc, Body: body}); err != nil {
						tb.Fatalf("put chunk of %s: %v", e.Path, err)
					}
					ref = content.ChunkRef{ID: id, Size: n, Stored: len(body), Enc: enc, Pack: testPack, Offset: offset}
					refs[id] = ref
					offset += int64(len(body))
				}
				f.Chunks = append(f.Chunks, ref)
			}
		}
		art.Files = append(art.Files, f)
	}
	return art
}

// validateArtifact checks art as a manifest of its schema would: a
// schema 2 one with an index of its files, which the manifest's
// validation requires (its chunks are named, not stored).
func validateArtifact(art *content.Artifact, l content.Limits) error {
	c := *art
	schema := art.Schema
	if schema == 0 {
		schema = content.ManifestSchema
	}
	if schema >= 2 {
		stream, err := content.EncodeIndex(art.Files)
		if err != nil {
			return err
		}
		c.Index = &content.Index{Entries: len(art.Files), Size: int64(len(stream)), SHA256: content.Digest(sha256.Sum256(stream))}
		for off := 0; off < len(stream); off += content.MaxChunkSize {
			piece := stream[off:min(off+content.MaxChunkSize, len(stream))]
			c.Index.Chunks = append(c.Index.Chunks, content.ChunkRef{
				ID: content.SumChunk(piece), Size: len(piece), Stored: len(piece), Enc: content.EncodingRaw, Pack: testPack, Offset: int64(off),
			})
		}
	}
	m := &content.Manifest{
		Schema: schema, Name: "t", Version: "1.0.0",
		Chunking: testChunking, Rollout: rolloutV2(),
		Platforms: map[string]*content.Artifact{"linux/amd64": &c},
	}
	return m.Validate(l)
}

// asRoot is whether the tests run as root, which may give entries their
// owners, device nodes and file capabilities.
var asRoot = os.Geteuid() == 0

// testOptions are the options the tests assemble with: without root,
// DropPrivileges, so that the sample trees' setuid entries do not stop
// the tests that are not about privileges.
func testOptions(prev *content.Installed) content.AssembleOptions {
	return content.AssembleOptions{Prev: prev, DropPrivileges: !asRoot}
}

func assemble(tb testing.TB, art *content.Artifact, store content.Store, dst string, prev *content.Installed) content.AssembleStats {
	tb.Helper()
	st, err := content.Assemble(context.Background(), art, store, dst, testOptions(prev))
	if err != nil {
		tb.Fatalf("Assemble: %v", err)
	}
	makeRemovable(tb, dst)
	return st
}

// makeRemovable lets t.TempDir's cleanup delete read-only directories when
// the tests do not run as root.
func makeRemovable(tb testing.TB, dir string) {
	tb.Cleanup(func() {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(p, 0o755)
			}
			return nil
		})
	})
}

// umask returns the process umask, read from /proc, or 022.
func umask() os.FileMode {
	b, err := os.ReadFile("/proc/self/status")
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Umask:"); ok {
				if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
					return os.FileMode(m)
				}
			}
		}
	}
	return 0o022
}

const modeBits = os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky

// assembly is how a tree was assembled, which says what checkTree
// expects of its inodes.
type assembly struct {
	v1       bool   // a schema 1 artifact: no owners, attributes or mtimes
	owners   bool   // owners applied; otherwise uid:gid
	uid, gid uint32 // the assembling user
	drop     bool   // DropPrivileges
}

// defaultAssembly is how testOptions assemble a schema 2 tree.
func defaultAssembly() assembly {
	return assembly{owners: asRoot, uid: uint32(os.Geteuid()), gid: uint32(os.Getegid()), drop: !asRoot}
}

// inode is what an entry's inode should be once assembled: e, or the
// entry e links to, as this assembly gives it.
func (as assembly) inode(e entry) entry {
	if e.Type != content.TypeSymlink && as.drop {
		e.Mode &^= 0o6000
	}
	if as.v1 || !as.owners {
		e.UID, e.GID = as.uid, as.gid
	}
	if as.v1 {
		e.Xattrs = nil
	} else if _, ok := e.Xattrs["security.capability"]; ok && as.drop {
		e.Xattrs = maps.Clone(e.Xattrs)
		delete(e.Xattrs, "security.capability")
	}
	return e
}

// checkTree checks that dir holds exactly entries, plus the directories
// their paths imply, as testOptions assemble them; a root entry
// (content.RootPath) describes dir itself.
func checkTree(tb testing.TB, dir string, entries []entry) {
	tb.Helper()
	checkTreeAs(tb, dir, entries, defaultAssembly())
}

// implicitDir marks the directories checkTreeAs expects that the tree
// does not list: created with the assembling user and no given mtime.
const implicitDir = -1 << 63

func checkTreeAs(tb testing.TB, dir string, entries []entry, as assembly) {
	tb.Helper()
	want := make(map[string]entry)
	for _, e := range entries {
		want[e.Path] = e
		for p := path.Dir(e.Path); p != "."; p = path.Dir(p) {
			if _, ok := want[p]; !ok {
				want[p] = entry{Path: p, Type: content.TypeDir, Mode: content.ModeOf(0o755 &^ umask()), UID: as.uid, GID: as.gid, MTime: implicitDir}
			}
		}
	}
	seen := make(map[string]bool)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if _, ok := want[rel]; rel == "." && !ok {
			return nil // the tree lists no root entry
		}
		rel = filepath.ToSlash(rel)
		seen[rel] = true
		e, ok := want[rel]
		if !ok {
			tb.Errorf("unexpected entry %s", rel)
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		ino := e
		if e.Type == content.TypeLink {
			ino = want[e.Link]
			if !sameFile(tb, p, filepath.Join(dir, filepath.FromSlash(e.Link))) {
				tb.Errorf("%s: not the inode of %s", rel, e.Link)
			}
		}
		if e.MTime != implicitDir {
			ino = as.inode(ino)
		}
		if !checkType(tb, rel, p, fi, ino) {
			return nil
		}
		if ino.Type != content.TypeSymlink {
			if got := fi.Mode() & modeBits; got != ino.Mode.FileMode() {
				tb.Errorf("%s: mode %v, want %v", rel, got, ino.Mode.FileMode())
			}
		}
		checkInode(tb, rel, p, fi, ino, as.v1 || e.MTime == implicitDir)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	for p := range want {
		if !seen[p] {
			tb.Errorf("missing %s", p)
		}
	}
}

// checkType checks that fi, the inode at p, is of e's type and holds its
// bytes or target, and reports whether it is.
func checkType(tb testing.TB, rel, p string, fi fs.FileInfo, e entry) bool {
	tb.Helper()
	var ok bool
	switch e.Type {
	case content.TypeFile:
		ok = fi.Mode().IsRegular()
	case content.TypeDir:
		ok = fi.IsDir()
	case content.TypeSymlink:
		ok = fi.Mode()&fs.ModeSymlink != 0
	case content.TypeFifo:
		ok = fi.Mode()&fs.ModeNamedPipe != 0
	case content.TypeChar:
		ok = fi.Mode()&(fs.ModeDevice|fs.ModeCharDevice) == fs.ModeDevice|fs.ModeCharDevice
	case content.TypeBlock:
		ok = fi.Mode()&(fs.ModeDevice|fs.ModeCharDevice) == fs.ModeDevice
	}
	if !ok {
		tb.Errorf("%s: %v, want a %s", rel, fi.Mode(), e.Type)
		return false
	}
	switch e.Type {
	case content.TypeFile:
		got, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		if !bytes.Equal(got, []byte(e.Data)) {
			tb.Errorf("%s: %d bytes differ from the %d expected", rel, len(got), len(e.Data))
		}
	case content.TypeSymlink:
		if got, err := os.Readlink(p); err != nil || got != e.Target {
			tb.Errorf("%s: link to %q (%v), want %q", rel, got, err, e.Target)
		}
	}
	return true
}

// checkNoOutput checks that a failed Assemble left parent as it found it:
// holding only the names in keep, so no output and no partial directory.
func checkNoOutput(tb testing.TB, parent string, keep ...string) {
	tb.Helper()
	ents, err := os.ReadDir(parent)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range ents {
		if !slices.Contains(keep, e.Name()) {
			tb.Errorf("a failed Assemble left %s in %s", e.Name(), parent)
		}
	}
}

func sampleTree() []entry {
	return []entry{
		dirE("bin", 0o755),
		fileE("bin/agent", 0o755, string(randomBytes(70, 5000))),
		fileE("bin/suid", 0o4755, "#!/bin/sh\n"),
		dirE("etc", 0o555),
		fileE("etc/secret", 0o600, "token=123\n"),
		fileE("etc/agent.conf", 0o644, string(compressible(3000))),
		fileE("etc/empty", 0o644, ""),
		linkE("etc/link", "../bin/agent"),
		fileE("lib/x/deep", 0o444, "implicit parents\n"),
		dirE("opt/app", 0o750), // "opt" is implicit too
		fileE("share/a", 0o644, string(randomBytes(71, 2000))),
		fileE("share/b", 0o644, string(randomBytes(71, 2000))), // same chunks as share/a
		linkE("current", "bin/agent"),
		linkE("dangling", "no/such/file"),
		linkE("dirlink", "etc"),
	}
}

func TestAssembleTree(t *testing.T) {
	t.Parallel()
	store := content.NewMemStore()
	entries := sampleTree()
	art := buildTree(t, store, entries)
	if err := validateArtifact(art, content.DefaultLimits()); err != nil {
		t.Fatalf("the sample tree does not validate: %v", err)
	}
	out := filepath.Join(t.TempDir(), "out")
	st := assemble(t, art, store, out, nil)
	checkTree(t, out, entries)

	var files, bytes int64
	for _, e := range entries {
		if e.Type == content.TypeFile {
			files++
			bytes += int64(len(e.Data))
		}
	}
	want := content.AssembleStats{Files: int(files), Dirs: 3, Symlinks: 4, WrittenBytes: bytes}
	if st != want {
		t.Fatalf("stats %+v, want %+v", st, want)
	}
	checkNoOutput(t, filepath.Dir(out), "out")
}

func TestAssembleFileArtifact(t *testing.T) {
	store := content.NewMemStore()
	entries := []entry{fileE("gateway.img", 0o640, string(randomBytes(72, 10_000)))}
	art := buildArtifact(t, store, content.KindFile, entries)
	out := filepath.Join(t.TempDir(), "out")
	assemble(t, art, store, out, nil)
	checkTree(t, out, entries)
}

// TestAssembleStoredEncodingDiffers: a chunk's id names its bytes, not its
// body, so a store may hold it raw while the manifest's origin copy is zstd.
func TestAssembleStoredEncodingDiffers(t *testing.T) {
	store := content.NewMemStore()
	entries := []entry{fileE("f", 0o644, string(compressible(800)))}
	art := buildTree(t, content.NewMemStore(), entries)
	chunks := art.Chunks()
	if chunks[0].Enc != content.EncodingZstd {
		t.Fatal("test data did not compress")
	}
	data := compressible(800)
	for _, ref := range chunks {
		// Hold each chunk raw.
		var piece []byte
		off := 0
		for _, n := range chunkLengths(t, data, testChunking) {
			if content.SumChunk(data[off:off+n]) == ref.ID {
				piece = data[off : off+n]
			}
			off += n
		}
		if err := store.Put(content.Chunk{ID: ref.ID, Size: ref.Size, Enc: content.EncodingRaw, Body: piece}); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "out")
	assemble(t, art, store, out, nil)
	checkTree(t, out, entries)
	for _, ref := range chunks {
		if !store.Has(ref.ID) {
			t.Fatalf("Assemble dropped chunk %s, which was fine", ref.ID)
		}
	}
}

// v1 and v2 of a tree: v2 changes one file's bytes, another's mode, adds
// and drops a file, and keeps the rest.
func reuseTrees() (v1, v2 []entry) {
	v1 = []entry{
		dirE("bin", 0o755),
		fileE("bin/agent", 0o755, string(randomBytes(80, 6000))),
		fileE("bin/helper", 0o755, string(randomBytes(81, 3000))),
		dirE("etc", 0o755),
		fileE("etc/conf", 0o644, "v1 config\n"),
		fileE("etc/secret", 0o600, string(randomBytes(82, 1500))),
		fileE("etc/old", 0o644, "dropped in v2\n"),
		fileE("empty", 0o644, ""),
		linkE("current", "bin/agent"),
	}
	v2 = []entry{
		dirE("bin", 0o755),
		fileE("bin/agent", 0o755, v1[1].Data),  // unchanged
		fileE("bin/helper", 0o700, v1[2].Data), // mode changed
		dirE("etc", 0o755),
		fileE("etc/conf", 0o644, "v2 config, longer\n"), // changed
		fileE("etc/new", 0o644, "new in v2\n"),
		fileE("etc/secret", 0o600, v1[5].Data), // unchanged
		fileE("empty", 0o644, ""),              // unchanged, empty
		linkE("current", "bin/agent"),
	}
	return v1, v2
}

func sameFile(tb testing.TB, a, b string) bool {
	tb.Helper()
	fa, err := os.Lstat(a)
	if err != nil {
		tb.Fatal(err)
	}
	fb, err := os.Lstat(b)
	if err != nil {
		tb.Fatal(err)
	}
	return os.SameFile(fa, fb)
}

// storeFor returns a store holding only the chunks of art's files at paths.
func storeFor(tb testing.TB, from content.Store, art *content.Artifact, paths ...string) *content.MemStore {
	tb.Helper()
	s := content.NewMemStore()
	for _, f := range art.Files {
		if !slices.Contains(paths, f.Path) {
			continue
		}
		for _, ref := range f.Chunks {
			c, err := from.Get(ref.ID)
			if err != nil {
				tb.Fatal(err)
			}
			if err := s.Put(c); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return s
}

func TestAssembleReuse(t *testing.T) {
	t.Parallel()
	e1, e2 := reuseTrees()
	all := content.NewMemStore()
	art1, art2 := buildTree(t, all, e1), buildTree(t, all, e2)
	base := t.TempDir()
	out1, out2 := filepath.Join(base, "v1"), filepath.Join(base, "v2")
	assemble(t, art1, all, out1, nil)

	// v2's store lacks the chunks of the files v1 already has, so they can
	// only come from v1.
	store2 := storeFor(t, all, art2, "etc/conf", "etc/new")
	st := assemble(t, art2, store2, out2, &content.Installed{Dir: out1, Artifact: art1})
	checkTree(t, out2, e2)
	checkTree(t, out1, e1) // v1 untouched, modes included

	for _, p := range []string{"bin/agent", "etc/secret", "empty"} {
		if !sameFile(t, filepath.Join(out1, p), filepath.Join(out2, p)) {
			t.Errorf("%s is unchanged but not a hard link to v1's", p)
		}
	}
	for _, p := range []string{"bin/helper", "etc/conf"} {
		if sameFile(t, filepath.Join(out1, p), filepath.Join(out2, p)) {
			t.Errorf("%s changed but is a hard link to v1's", p)
		}
	}
	// Three linked, one copied for its new mode.
	if st.ReusedFiles != 4 || st.ReusedBytes != int64(len(e1[1].Data)+len(e1[2].Data)+len(e1[5].Data)) {
		t.Fatalf("stats %+v: want 4 reused files", st)
	}
	if st.WrittenBytes != int64(len(e2[4].Data)+len(e2[5].Data)) || st.Files != 6 {
		t.Fatalf("stats %+v: want only etc/conf and etc/new decoded", st)
	}
}

func TestAssembleReuseSkipsBitRot(t *testing.T) {
	t.Parallel()
	e1, _ := reuseTrees()
	store := content.NewMemStore()
	art := buildTree(t, store, e1)
	base := t.TempDir()
	out1, out2 := filepath.Join(base, "v1"), filepath.Join(base, "v2")
	assemble(t, art, store, out1, nil)

	// bin/agent rots in place (same size); etc/secret is truncated;
	// bin/helper is replaced by a symlink. The rotten files keep their
	// mtimes, as rot does, so that only their bytes tell.
	rot := func(p string, edit func(b []byte) []byte) {
		full := filepath.Join(out1, p)
		b, err := os.ReadFile(full)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, edit(b), 0); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(full, time.Time{}, time.Unix(0, 0)); err != nil {
			t.Fatal(err)
		}
	}
	rot("bin/agent", func(b []byte) []byte { b[4321] ^= 0x10; return b })
	rot("etc/secret", func(b []byte) []byte { return b[:100] })
	if err := os.Remove(filepath.Join(out1, "bin/helper")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("agent", filepath.Join(out1, "bin/helper")); err != nil {
		t.Fatal(err)
	}

	st := assemble(t, art, store, out2, &content.Installed{Dir: out1, Artifact: art})
	checkTree(t, out2, e1)
	for _, p := range []string{"bin/agent", "etc/secret"} {
		if sameFile(t, filepath.Join(out1, p), filepath.Join(out2, p)) {
			t.Errorf("%s rotted in v1 but v2 links to it", p)
		}
	}
	for _, p := range []string{"etc/conf", "etc/old", "empty"} {
		if !sameFile(t, filepath.Join(out1, p), filepath.Join(out2, p)) {
			t.Errorf("%s is intact in v1 but was not reused", p)
		}
	}
	if st.ReusedFiles != 3 {
		t.Fatalf("stats %+v: want 3 reused files", st)
	}
}

func TestAssemblePrevMissing(t *testing.T) {
	// A previous release whose directory is gone is no reason to fail.
	e1, _ := reuseTrees()
	store := content.NewMemStore()
	art := buildTree(t, store, e1)
	base := t.TempDir()
	st := assemble(t, art, store, filepath.Join(base, "v2"), &content.Installed{Dir: filepath.Join(base, "gone"), Artifact: art})
	if st.ReusedFiles != 0 {
		t.Fatalf("reused %d files from a directory that does not exist", st.ReusedFiles)
	}
	checkTree(t, filepath.Join(base, "v2"), e1)
}

// TestAssembleSchema1 checks that a schema 1 artifact is assembled as
// schema 1 always was: modes as they are (setuid included, for a tree
// whose files belong to whoever assembles it), the assembling user's
// owner, the time of assembly.
func TestAssembleSchema1(t *testing.T) {
	t.Parallel()
	entries := []entry{
		dirE("bin", 0o755),
		fileE("bin/agent", 0o755, "agent"),
		fileE("bin/suid", 0o4755, "suid"),
		linkE("current", "bin/agent"),
	}
	store := content.NewMemStore()
	art := buildTree(t, store, entries)
	art.Schema = content.ManifestSchemaV1
	if err := validateArtifact(art, content.DefaultLimits()); err != nil {
		t.Fatalf("the schema 1 tree does not validate: %v", err)
	}
	start := time.Now().Add(-2 * time.Second)
	out := filepath.Join(t.TempDir(), "out")
	st, err := content.Assemble(context.Background(), art, store, out, content.AssembleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	makeRemovable(t, out)
	as := defaultAssembly()
	as.v1, as.drop = true, false
	checkTreeAs(t, out, entries, as)
	for _, p := range []string{"bin", "bin/agent", "bin/suid"} {
		if fi, err := os.Lstat(filepath.Join(out, p)); err != nil || fi.ModTime().Before(start) {
			t.Errorf("%s: mtime %v (%v), want the time of assembly", p, fi.ModTime(), err)
		}
	}
	if st.Files != 2 || st.Dirs != 1 || st.Symlinks != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// hostileLayout is base/{site/out, sentinel/target}: Assemble writes to
// site/out and must never touch sentinel or its target, which
// "../../sentinel" from inside out reaches.
type hostileLayout struct {
	base, site, out, sentinel string
	before                    [2]string // inode states of sentinel and its target
}

func newHostileLayout(tb testing.TB) *hostileLayout {
	tb.Helper()
	base := tb.TempDir()
	l := &hostileLayout{base: base, site: filepath.Join(base, "site"), sentinel: filepath.Join(base, "sentinel")}
	l.out = filepath.Join(l.site, "out")
	for _, d := range []string{l.site, l.sentinel} {
		if err := os.Mkdir(d, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(l.sentinel, "target"), []byte("untouched\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
	l.before = [2]string{inodeState(tb, l.sentinel), inodeState(tb, filepath.Join(l.sentinel, "target"))}
	return l
}

// checkContained checks that nothing appeared in the sentinel directory or
// next to site, and that neither the sentinel nor its target changed in
// any way: bytes, mode, owner, attributes, times.
func (l *hostileLayout) checkContained(tb testing.TB) {
	tb.Helper()
	ents, err := os.ReadDir(l.sentinel)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != "target" {
			tb.Errorf("Assemble created %s outside its output", filepath.Join(l.sentinel, e.Name()))
		}
	}
	after := [2]string{inodeState(tb, l.sentinel), inodeState(tb, filepath.Join(l.sentinel, "target"))}
	if after != l.before {
		tb.Errorf("Assemble changed inodes outside its output:\nbefore %q\nafter  %q", l.before, after)
	}
	if b, err := os.ReadFile(filepath.Join(l.sentinel, "target")); err != nil || string(b) != "untouched\n" {
		tb.Errorf("the target outside the output holds %q (%v)", b, err)
	}
	checkNoOutput(tb, l.base, "site", "sentinel")
}

// hostileCase is a tree that reaches for what lies outside its output:
// most do not validate; those that do are data that must stay inside it.
type hostileCase struct {
	entries []entry
	valid   bool
}

func hostileCases(sentinel string) map[string]hostileCase {
	bad := func(entries ...entry) hostileCase { return hostileCase{entries: entries} }
	ok := func(entries ...entry) hostileCase { return hostileCase{entries: entries, valid: true} }
	target := filepath.Join(sentinel, "target")
	return map[string]hostileCase{
		"path traversal":     bad(fileE("../../sentinel/pwned", 0o644, "pwned")),
		"path traversal mid": bad(dirE("a", 0o755), fileE("a/../../../sentinel/pwned", 0o644, "pwned")),
		"absolute path":      bad(fileE(filepath.Join(sentinel, "pwned"), 0o644, "pwned")),
		"symlink to an absolute dir then a file through it": bad(
			linkE("link", sentinel), fileE("link/pwned", 0o644, "pwned")),
		"symlink a to /etc then a/passwd": bad(
			linkE("a", "/etc"), fileE("a/passwd", 0o644, "root::0:0::/:/bin/sh\n")),
		"dir symlink escaping then a file through it": bad(
			linkE("d", "../../sentinel"), fileE("d/pwned", 0o644, "pwned")),
		"dir symlink escaping then a dir through it": bad(
			linkE("d", "../../sentinel"), dirE("d/sub", 0o755)),
		"dir symlink escaping then a symlink through it": bad(
			linkE("d", "../../sentinel"), linkE("d/l", "x")),
		"dir symlink escaping then a fifo through it": bad(
			linkE("d", "../../sentinel"), fifoE("d/p", 0o644)),
		// Link targets are data: the links are made, and nothing follows them.
		"symlink escaping through a symlink to dot": ok(
			linkE("d", "."), linkE("e", "d/d/../../sentinel/pwned")),
		"absolute symlink outside, with owner and mtime": ok(
			linkE("s", target).own(1234, 5678).at(1_234_567_890_123_456_789)),
		"relative symlink outside, with owner and mtime": ok(
			linkE("s", "../../sentinel/target").own(1234, 5678).at(1_000_000_000)),
		"file then a file under it":  bad(fileE("f", 0o644, "x"), fileE("f/g", 0o644, "y")),
		"fifo then a file under it":  bad(fifoE("p", 0o644), fileE("p/g", 0o644, "y")),
		"device then a dir under it": bad(devE("c", content.TypeChar, 0o600, 1, 3), dirE("c/d", 0o755)),
		"hard link escaping":         bad(hardE("h", "../../sentinel/target")),
		"hard link to an absolute path": bad(
			hardE("h", target)),
		"hard link to a symlink outside": bad(
			linkE("s", target), hardE("t", "s")),
		"hard link to a symlink to /etc/passwd": bad(
			linkE("s", "/etc/passwd"), hardE("t", "s")),
		"hard link before its file": bad(hardE("a", "b"), fileE("b", 0o644, "x")),
		"hard link to a directory":  bad(dirE("d", 0o755), hardE("e", "d")),
		"hard link with a mode":     bad(fileE("a", 0o644, "x"), entry{Path: "b", Type: content.TypeLink, Link: "a", Mode: 0o4755}),
		"type device":               bad(entry{Path: "dev", Type: "device", Mode: 0o600}),
		"type socket":               bad(entry{Path: "sock", Type: "socket", Mode: 0o600}),
		"type fifo":                 ok(fifoE("fifo", 0o600)),
		"NUL in path":               bad(fileE("a\x00b", 0o644, "x")),
		"NUL in target":             bad(linkE("a", "x\x00y")),
		"duplicate path":            bad(fileE("a", 0o644, "x"), fileE("a", 0o644, "y")),
		"xattr outside namespaces":  bad(fileE("a", 0o644, "x").xattr("system.posix_acl_access", "x")),
	}
}

func TestAssembleHostile(t *testing.T) {
	t.Parallel()
	for name := range hostileCases("") {
		t.Run(name, func(t *testing.T) {
			l := newHostileLayout(t)
			c := hostileCases(l.sentinel)[name]
			store := content.NewMemStore()
			art := buildArtifact(t, store, content.KindTree, c.entries) // not sorted, not validated
			if verr := validateArtifact(art, content.DefaultLimits()); (verr == nil) != c.valid {
				t.Fatalf("the case says valid=%v, validation says %v", c.valid, verr)
			}
			st, err := content.Assemble(context.Background(), art, store, l.out, testOptions(nil))
			makeRemovable(t, l.site)
			l.checkContained(t)
			switch {
			case c.valid && err != nil:
				t.Fatalf("Assemble refused a valid tree: %v", err)
			case c.valid:
				checkNoOutput(t, l.site, "out")
				checkTree(t, l.out, c.entries)
			case err == nil:
				t.Errorf("Assemble succeeded (%+v)", st)
			default:
				t.Logf("refused: %v", err)
				checkNoOutput(t, l.site)
			}
		})
	}
}

func TestAssembleMissingChunk(t *testing.T) {
	store := content.NewMemStore()
	art := buildTree(t, store, sampleTree())
	chunks := art.Chunks()
	missing := chunks[len(chunks)/2].ID
	if err := store.Remove(missing); err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	_, err := content.Assemble(context.Background(), art, store, filepath.Join(parent, "out"), testOptions(nil))
	if !errors.Is(err, content.ErrMissingChunk) {
		t.Fatalf("got %v, want ErrMissingChunk", err)
	}
	var ce *content.ChunkError
	if !errors.As(err, &ce) || ce.ID != missing || !strings.Contains(err.Error(), missing.String()) {
		t.Fatalf("error %q does not name the missing chunk %s", err, missing)
	}
	checkNoOutput(t, parent)
}

// damageChunk edits the file that holds id in a DiskStore.
func damageChunk(tb testing.TB, s *content.DiskStore, id content.ChunkID, edit func(b []byte)) {
	tb.Helper()
	p := chunkFile(s, id)
	b, err := os.ReadFile(p)
	if err != nil {
		tb.Fatal(err)
	}
	edit(b)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		tb.Fatal(err)
	}
}

func TestAssembleCorruptChunkInDiskStore(t *testing.T) {
	t.Parallel()
	// One store for all cases, as a node has one.
	s := openDiskStore(t, t.TempDir())
	entries := sampleTree()
	art := buildTree(t, s, entries)
	pick := func(enc content.Encoding) content.ChunkRef {
		for _, f := range art.Files {
			if len(f.Chunks) > 0 && f.Chunks[0].Enc == enc {
				return f.Chunks[0]
			}
		}
		t.Fatalf("no %s chunk in the sample tree", enc)
		return content.ChunkRef{}
	}
	cases := []struct {
		name   string
		ref    content.ChunkRef
		edit   func(b []byte)
		errors []error
	}{
		{"raw body bit flip", pick(content.EncodingRaw), func(b []byte) { b[len(b)-1] ^= 1 }, []error{content.ErrChunkCorrupt}},
		{"zstd body bit flip", pick(content.EncodingZstd), func(b []byte) { b[len(b)/2] ^= 0x40 }, []error{content.ErrChunkCorrupt, content.ErrChunkEncoding}},
		{"header magic", pick(content.EncodingRaw), func(b []byte) { copy(b, "XXXX") }, []error{content.ErrChunkCorrupt}},
		{"header size", pick(content.EncodingRaw), func(b []byte) { b[8]++ }, []error{content.ErrChunkCorrupt}},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			good, err := s.Get(tt.ref.ID)
			if err != nil {
				t.Fatal(err)
			}
			damageChunk(t, s, tt.ref.ID, tt.edit)
			parent := t.TempDir()
			_, err = content.Assemble(context.Background(), art, s, filepath.Join(parent, "out"), testOptions(nil))
			if err == nil {
				t.Fatal("Assemble succeeded with a damaged chunk")
			}
			if !slices.ContainsFunc(tt.errors, func(e error) bool { return errors.Is(err, e) }) {
				t.Fatalf("error %q wraps none of %v", err, tt.errors)
			}
			var ce *content.ChunkError
			if !errors.As(err, &ce) || ce.ID != tt.ref.ID || !strings.Contains(err.Error(), tt.ref.ID.String()) {
				t.Fatalf("error %q does not name chunk %s", err, tt.ref.ID)
			}
			if s.Has(tt.ref.ID) {
				t.Fatal("the damaged chunk is still in the store, so nothing will fetch it again")
			}
			checkNoOutput(t, parent)

			// Once the chunk is fetched again, assembly works.
			if err := s.Put(good); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(parent, "out")
			assemble(t, art, s, out, nil)
			checkTree(t, out, entries)
		})
	}
}

func TestAssembleDestination(t *testing.T) {
	store := content.NewMemStore()
	entries := []entry{fileE("f", 0o644, "hello")}
	art := buildTree(t, store, entries)
	opt := testOptions(nil)

	t.Run("non-empty directory", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "out")
		if err := os.Mkdir(dst, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, "keep"), []byte("mine"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := content.Assemble(context.Background(), art, store, dst, opt); err == nil {
			t.Fatal("Assemble into a non-empty directory succeeded")
		}
		if b, err := os.ReadFile(filepath.Join(dst, "keep")); err != nil || string(b) != "mine" {
			t.Fatalf("keep holds %q (%v)", b, err)
		}
		checkNoOutput(t, dst, "keep")
		checkNoOutput(t, filepath.Dir(dst), "out")
	})
	t.Run("regular file", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "out")
		if err := os.WriteFile(dst, []byte("mine"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := content.Assemble(context.Background(), art, store, dst, opt); err == nil {
			t.Fatal("Assemble over a regular file succeeded")
		}
		if b, err := os.ReadFile(dst); err != nil || string(b) != "mine" {
			t.Fatalf("the file was changed: %q, %v", b, err)
		}
		checkNoOutput(t, filepath.Dir(dst), "out")
	})
	t.Run("symlink to an empty directory", func(t *testing.T) {
		parent := t.TempDir()
		dst := filepath.Join(parent, "out")
		if err := os.Mkdir(filepath.Join(parent, "real"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("real", dst); err != nil {
			t.Fatal(err)
		}
		if _, err := content.Assemble(context.Background(), art, store, dst, opt); err == nil {
			t.Fatal("Assemble through a symlink succeeded")
		}
		if ents, _ := os.ReadDir(filepath.Join(parent, "real")); len(ents) != 0 {
			t.Fatal("Assemble wrote through the symlink")
		}
		checkNoOutput(t, parent, "out", "real")
	})
	t.Run("empty directory", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "out")
		if err := os.Mkdir(dst, 0o755); err != nil {
			t.Fatal(err)
		}
		assemble(t, art, store, dst, nil)
		checkTree(t, dst, entries)
		checkNoOutput(t, filepath.Dir(dst), "out")
	})
	t.Run("missing parent is created", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "no", "such", "out")
		assemble(t, art, store, dst, nil)
		checkTree(t, dst, entries)
	})
}

func TestAssembleFileDigestMismatch(t *testing.T) {
	store := content.NewMemStore()
	art := buildTree(t, store, []entry{fileE("a", 0o644, "right"), fileE("b", 0o644, "bytes")})
	art.Files[1].SHA256[0] ^= 1
	parent := t.TempDir()
	_, err := content.Assemble(context.Background(), art, store, filepath.Join(parent, "out"), testOptions(nil))
	if !errors.Is(err, content.ErrFileDigest) || !strings.Contains(err.Error(), `"b"`) {
		t.Fatalf("got %v, want ErrFileDigest naming b", err)
	}
	checkNoOutput(t, parent)
}

func TestAssembleCanceled(t *testing.T) {
	store := content.NewMemStore()
	art := buildTree(t, store, sampleTree())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	parent := t.TempDir()
	if _, err := content.Assemble(ctx, art, store, filepath.Join(parent, "out"), testOptions(nil)); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	checkNoOutput(t, parent)
}

// resolvesInside follows the path rel below root the way the kernel would,
// symlink by symlink, and reports whether it ever climbs above root or
// jumps to an absolute path. A path that stops resolving (missing entry,
// not a directory, a loop) stays inside.
func resolvesInside(root, rel string) bool {
	todo := strings.Split(rel, "/")
	var cur []string // real directories below root
	for hops := 0; len(todo) > 0; {
		el := todo[0]
		todo = todo[1:]
		switch el {
		case "", ".":
			continue
		case "..":
			if len(cur) == 0 {
				return false
			}
			cur = cur[:len(cur)-1]
			continue
		}
		p := filepath.Join(append([]string{root}, append(cur, el)...)...)
		fi, err := os.Lstat(p)
		if err != nil {
			return true
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if hops++; hops > 40 {
				return true
			}
			target, err := os.Readlink(p)
			if err != nil {
				return true
			}
			if strings.HasPrefix(target, "/") {
				return false
			}
			todo = append(strings.Split(target, "/"), todo...)
			continue
		}
		if !fi.IsDir() {
			return true // a file: any further element fails with ENOTDIR
		}
		cur = append(cur, el)
	}
	return true
}

func TestResolvesInside(t *testing.T) {
	// The fuzz target's containment check must itself catch escapes.
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	for _, d := range []string{"root/a/b", "outside"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"dot": ".", "escape": "dot/dot/../../outside", "up": "a/..", "abs": "/etc",
		"a/b/ok": "../../a", "a/b/out": "../../../outside", "loop": "loop", "chain": "a/b/ok/b/out",
	}
	for l, target := range links {
		if err := os.Symlink(target, filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	for l, want := range map[string]bool{"dot": true, "escape": false, "up": true, "abs": false, "a/b/ok": true, "a/b/out": false, "loop": true, "chain": false} {
		if got := resolvesInside(root, l); got != want {
			t.Errorf("resolvesInside(%s -> %s) = %v, want %v", l, links[l], got, want)
		}
	}
}

// fuzzTypes are the one-letter types of FuzzAssemble's input.
var fuzzTypes = map[string]content.FileType{
	"f": content.TypeFile, "d": content.TypeDir, "l": content.TypeSymlink, "h": content.TypeLink,
	"p": content.TypeFifo, "c": content.TypeChar, "b": content.TypeBlock,
}

// fuzzEntries encodes a tree as FuzzAssemble reads it: byte mutations of
// it mostly stay parsable, unlike JSON. A first line "v1" makes it a
// schema 1 artifact; then one entry a line, tab-separated:
//
//	type mode path payload uid:gid mtime xattrs
//
// with a one-letter type (see fuzzTypes, or any other word), an octal
// mode, a payload that is a file's data, a symlink's target, a hard
// link's file or a device's "major,minor", and attributes as
// "name=value;name=value".
func fuzzEntries(schema int, entries []entry) []byte {
	var b []byte
	if schema == content.ManifestSchemaV1 {
		b = append(b, "v1\n"...)
	}
	for _, e := range entries {
		t := string(e.Type)
		for k, v := range fuzzTypes {
			if v == e.Type {
				t = k
			}
		}
		payload := e.Data + e.Target + e.Link
		if e.Type == content.TypeChar || e.Type == content.TypeBlock {
			payload = fmt.Sprintf("%d,%d", e.Major, e.Minor)
		}
		var xs []string
		for _, name := range slices.Sorted(maps.Keys(e.Xattrs)) {
			xs = append(xs, name+"="+string(e.Xattrs[name]))
		}
		b = fmt.Appendf(b, "%s\t%o\t%s\t%s\t%d:%d\t%d\t%s\n", t, e.Mode, e.Path, payload, e.UID, e.GID, e.MTime, strings.Join(xs, ";"))
	}
	return b
}

// parseFuzzEntries is the inverse of fuzzEntries, and accepts anything.
func parseFuzzEntries(b []byte) (schema int, entries []entry) {
	lines := strings.Split(string(b), "\n")
	if lines[0] == "v1" {
		schema, lines = content.ManifestSchemaV1, lines[1:]
	}
	for _, line := range lines {
		if line == "" {
			continue
		}
		fields := strings.SplitN(line, "\t", 7)
		for len(fields) < 7 {
			fields = append(fields, "")
		}
		mode, _ := strconv.ParseUint(fields[1], 8, 32)
		e := entry{Path: fields[2], Type: content.FileType(fields[0]), Mode: content.Mode(mode & 0o7777)}
		if t, ok := fuzzTypes[fields[0]]; ok {
			e.Type = t
		}
		switch e.Type {
		case content.TypeFile:
			e.Data = fields[3]
		case content.TypeSymlink:
			e.Target = fields[3]
		case content.TypeLink:
			e.Link = fields[3]
		case content.TypeChar, content.TypeBlock:
			maj, min, _ := strings.Cut(fields[3], ",")
			e.Major, e.Minor = parseUint32(maj), parseUint32(min)
		}
		uid, gid, _ := strings.Cut(fields[4], ":")
		e.UID, e.GID = parseUint32(uid), parseUint32(gid)
		e.MTime, _ = strconv.ParseInt(fields[5], 10, 64)
		for _, x := range strings.Split(fields[6], ";") {
			if name, v, ok := strings.Cut(x, "="); ok {
				e = e.xattr(name, v)
			}
		}
		entries = append(entries, e)
	}
	return schema, entries
}

func parseUint32(s string) uint32 {
	v, _ := strconv.ParseUint(s, 10, 32)
	return uint32(v)
}

// refusedValid reports whether err is a reason Assemble may give for
// refusing a valid tree: a privilege the process lacks, an attribute or
// device number the system refuses.
func refusedValid(err error) bool {
	return !asRoot && errors.Is(err, content.ErrPrivilege) ||
		errors.Is(err, content.ErrXattr) || errors.Is(err, errors.ErrUnsupported)
}

// FuzzAssemble builds an artifact from fuzzed entries, assembles it, and
// checks that nothing outside the output was created or changed, that a
// refused artifact left nothing behind, that an invalid one is refused,
// that a valid one is materialised exactly (types, bytes, targets, hard
// links, modes, owners, attributes, mtimes), and that the symlinks of a
// schema 1 one resolve inside the tree. As root, it creates device nodes
// inside its temporary directories, where nothing opens them.
func FuzzAssemble(f *testing.F) {
	f.Add(fuzzEntries(0, sampleTreeSmall()))
	f.Add(fuzzEntries(content.ManifestSchemaV1, sampleTreeSmall()[:4]))
	f.Add(fuzzEntries(0, fuzzTreeV2()))
	hostile := hostileCases("/tmp/sentinel")
	for _, name := range slices.Sorted(maps.Keys(hostile)) {
		f.Add(fuzzEntries(0, hostile[name].entries))
	}
	f.Add(fuzzEntries(0, []entry{dirE("a", 0o700), dirE("a/b", 0o1777), fileE("a/b/c", 0o6755, "setid\n"), fileE("z", 0o000, "")}))
	f.Add(fuzzEntries(0, []entry{linkE("d", "."), linkE("e", "d/../x"), linkE("f", "../x"), dirE("g", 0o500), linkE("g/h", "../d")}))
	f.Add(fuzzEntries(0, []entry{linkE("s", "../../sentinel/target").own(7, 7).at(99).xattr("trusted.x", "y"), fifoE("t", 0o640).xattr("user.x", "y")}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 8192 {
			t.Skip()
		}
		schema, entries := parseFuzzEntries(b)
		if len(entries) > 16 {
			t.Skip()
		}
		if !asRoot {
			// Without root, a directory without owner access cannot be
			// checked or cleaned up, nor a file without owner read
			// access checked.
			for i := range entries {
				switch entries[i].Type {
				case content.TypeDir:
					entries[i].Mode |= 0o700
				case content.TypeFile:
					entries[i].Mode |= 0o400
				}
			}
		}
		l := newHostileLayout(t)
		store := content.NewMemStore()
		art := buildArtifact(t, store, content.KindTree, entries)
		art.Schema = schema
		verr := validateArtifact(art, content.DefaultLimits())
		_, err := content.Assemble(context.Background(), art, store, l.out, testOptions(nil))
		makeRemovable(t, l.site)
		l.checkContained(t)
		switch {
		case verr != nil && err == nil:
			t.Fatalf("Assemble accepted an artifact that does not validate: %v", verr)
		case err != nil && (verr != nil || refusedValid(err)):
			checkNoOutput(t, l.site)
			return
		case err != nil:
			t.Fatalf("Assemble refused a valid artifact: %v", err)
		}
		checkNoOutput(t, l.site, "out")
		as := defaultAssembly()
		as.v1 = schema == content.ManifestSchemaV1
		checkTreeAs(t, l.out, entries, as)
		for _, e := range art.Files {
			if as.v1 && e.Type == content.TypeSymlink && !resolvesInside(l.out, e.Path) {
				target, _ := os.Readlink(filepath.Join(l.out, e.Path))
				t.Fatalf("schema 1 symlink %s -> %s resolves outside the tree", e.Path, target)
			}
		}
	})
}

func sampleTreeSmall() []entry {
	return []entry{
		dirE("bin", 0o755),
		fileE("bin/agent", 0o755, fmt.Sprintf("%x", randomBytes(90, 300))),
		linkE("current", "bin/agent"),
		dirE("etc", 0o555),
		fileE("etc/empty", 0o644, ""),
		linkE("etc/link", "../bin/agent"),
		dirE("opt/app", 0o750),
	}
}

// fuzzTreeV2 has a root entry, an entry of every type and every kind of
// metadata.
func fuzzTreeV2() []entry {
	return []entry{
		dirE(content.RootPath, 0o750).own(5, 5).at(7).xattr("user.root", "1"),
		dirE("bin", 0o755).own(0, 0).at(1_500_000_000_987_654_321),
		fileE("bin/busybox", 0o4755, "busybox").at(1_600_000_000_123_456_789).xattr("user.origin", "fuzz"),
		hardE("bin/ls", "bin/busybox"),
		linkE("bin/sh", "busybox").own(1234, 5678).at(1_700_000_000_000_000_001),
		devE("dev/null", content.TypeChar, 0o666, 1, 3).at(1),
		devE("dev/loop9", content.TypeBlock, 0o660, 7, 9).own(0, 6),
		linkE("etc/alternatives/x", "/usr/share/x").xattr("trusted.t", "v"),
		fifoE("run/initctl", 0o600).own(1234, 5678).at(-1_000_000_001),
		dirE("tmp", 0o1777).xattr("user.dir", "yes"),
	}
}
