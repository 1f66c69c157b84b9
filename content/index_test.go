package content_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/meshcast/meshcast/content"
)

const (
	manifestV2Golden = "testdata/manifest-v2.golden.json"
	indexV2Golden    = "testdata/index-v2.golden.jsonl"
)

// goldenTreeV2 is a schema 2 tree with every entry type and field: a root
// filesystem's directories with owners and modes, a setuid binary with a
// hard link, a file capability, an absolute and a relative symlink, a
// device node, a fifo, an empty file and a file of two chunks.
func goldenTreeV2() []content.File {
	su, conf := "setuid binary", strings.Repeat("listen = 0.0.0.0:7946\n", 10)
	pack := digestOf("pack 0")
	mtime := time.Date(2026, 11, 30, 12, 0, 0, 123456789, time.UTC).UnixNano()
	ref := func(data string, enc content.Encoding, stored int, off int64) content.ChunkRef {
		return content.ChunkRef{ID: content.SumChunk([]byte(data)), Size: len(data), Stored: stored, Enc: enc, Pack: pack, Offset: off}
	}
	return []content.File{
		{Path: content.RootPath, Type: content.TypeDir, Mode: 0o755, MTime: mtime},
		{Path: "dev", Type: content.TypeDir, Mode: 0o755, MTime: mtime},
		{Path: "dev/null", Type: content.TypeChar, Mode: 0o666, Major: 1, Minor: 3, MTime: mtime},
		{Path: "etc", Type: content.TypeDir, Mode: 0o755, MTime: mtime, Xattrs: content.Xattrs{"security.selinux": []byte("system_u:object_r:etc_t:s0\x00")}},
		{Path: "etc/alternatives", Type: content.TypeDir, Mode: 0o755, MTime: mtime},
		{Path: "etc/alternatives/pager", Type: content.TypeSymlink, Target: "/bin/less", MTime: mtime},
		{Path: "etc/gateway.conf", Type: content.TypeFile, Mode: 0o640, GID: 42, Group: "shadow", MTime: mtime, Size: int64(len(conf)), SHA256: digestOf(conf),
			Chunks: []content.ChunkRef{ref(conf[:100], content.EncodingRaw, 100, 0), ref(conf[100:], content.EncodingZstd, 30, 100)}},
		{Path: "etc/motd", Type: content.TypeFile, Mode: 0o644, MTime: mtime, SHA256: digestOf("")},
		{Path: "run", Type: content.TypeDir, Mode: 0o1777, MTime: mtime},
		{Path: "run/initctl", Type: content.TypeFifo, Mode: 0o600, MTime: mtime},
		{Path: "usr", Type: content.TypeDir, Mode: 0o755, UID: 0, GID: 0, MTime: mtime},
		{Path: "usr/bin", Type: content.TypeDir, Mode: 0o755, MTime: mtime},
		{Path: "usr/bin/ping", Type: content.TypeFile, Mode: 0o755, MTime: mtime, Size: int64(len("ping")), SHA256: digestOf("ping"),
			Chunks: []content.ChunkRef{ref("ping", content.EncodingRaw, 4, 130)},
			Xattrs: content.Xattrs{"security.capability": {1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}},
		{Path: "usr/bin/su", Type: content.TypeFile, Mode: 0o4755, User: "root", Group: "root", MTime: mtime, Size: int64(len(su)), SHA256: digestOf(su),
			Chunks: []content.ChunkRef{ref(su, content.EncodingRaw, len(su), 134)}},
		{Path: "usr/bin/su-link", Type: content.TypeLink, Link: "usr/bin/su"},
		{Path: "usr/bin/view", Type: content.TypeSymlink, Target: "../share/view", UID: 1000, GID: 1000, MTime: mtime},
	}
}

func goldenManifestV2(t testing.TB) (*content.Manifest, []byte, *content.MemStore) {
	t.Helper()
	files := goldenTreeV2()
	stream, err := content.EncodeIndex(files)
	if err != nil {
		t.Fatal(err)
	}
	store := content.NewMemStore()
	x := &content.Index{Entries: len(files), Size: int64(len(stream)), SHA256: content.Digest(sha256.Sum256(stream))}
	ch := content.NewChunker(bytes.NewReader(stream), content.IndexChunking())
	var off int64
	for {
		b, err := ch.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		id := content.SumChunk(b)
		if err := store.Put(content.Chunk{ID: id, Size: len(b), Enc: content.EncodingRaw, Body: bytes.Clone(b)}); err != nil {
			t.Fatal(err)
		}
		x.Chunks = append(x.Chunks, content.ChunkRef{ID: id, Size: len(b), Stored: len(b), Enc: content.EncodingRaw, Pack: digestOf("index pack"), Offset: off})
		off += int64(len(b))
	}
	m := &content.Manifest{
		Schema: content.ManifestSchemaV2, Name: "gateway-os", Version: "3.0.0",
		Chunking: content.DefaultChunking(), Rollout: rolloutV2(),
		Platforms: map[string]*content.Artifact{"linux/amd64": {Kind: content.KindTree, Files: files, Index: x}},
	}
	return m, stream, store
}

// TestManifestV2Golden pins the schema 2 encodings, manifest and index
// stream, and checks that both decode to what they were made from.
func TestManifestV2Golden(t *testing.T) {
	m, stream, store := goldenManifestV2(t)
	got, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		for name, b := range map[string][]byte{manifestV2Golden: got, indexV2Golden: stream} {
			if err := os.WriteFile(name, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if golden := readGolden(t, indexV2Golden); !bytes.Equal(stream, golden) {
		t.Fatalf("EncodeIndex differs from %s: the index encoding changed, a format change.\ngot:\n%s", indexV2Golden, stream)
	}
	golden := readGolden(t, manifestV2Golden)
	if !bytes.Equal(got, golden) {
		t.Fatalf("Encode differs from %s: the manifest encoding changed, a format change.\ngot:\n%s", manifestV2Golden, got)
	}
	if bytes.Contains(golden, []byte(`"files"`)) {
		t.Fatal("a schema 2 manifest lists files inline")
	}
	decoded, err := content.DecodeManifest(golden, content.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	a := decoded.Platforms["linux/amd64"]
	if a.Files != nil || a.Schema != 2 {
		t.Fatalf("decoded artifact: %d files before Load, schema %d", len(a.Files), a.Schema)
	}
	if err := a.Load(t.Context(), store, nil, content.DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	if want := goldenTreeV2(); !reflect.DeepEqual(a.Files, want) {
		t.Fatalf("loaded files differ:\ngot  %+v\nwant %+v", a.Files, want)
	}
	if again, err := decoded.Encode(); err != nil || !bytes.Equal(again, golden) {
		t.Fatalf("re-encoding the loaded manifest differs (%v)", err)
	}
	if n := len(a.Chunks()); n != len(a.Index.Chunks)+4 {
		t.Errorf("Chunks: %d, want the index's %d and the files' 4", n, len(a.Index.Chunks))
	}
}

// The first schema still reads: the schema 1 golden manifest decodes with
// its files inline (TestManifestGolden checks it byte for byte), and
// schema 2's fields are refused in it.
func TestManifestV1StillRead(t *testing.T) {
	m, err := content.DecodeManifest(readGolden(t, manifestGolden), content.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if a := m.Platforms["linux/amd64"]; m.Schema != 1 || a.Schema != 1 || a.Index != nil || len(a.Files) == 0 {
		t.Fatalf("schema 1 manifest decoded as schema %d, index %v, %d files", m.Schema, a.Index, len(a.Files))
	}
	b := bytes.Replace(readGolden(t, manifestGolden), []byte(`"type":"dir","mode":"0755"`), []byte(`"type":"dir","mode":"0755","uid":7`), 1)
	if _, err := content.DecodeManifest(b, content.DefaultLimits()); err == nil || !strings.Contains(err.Error(), "need schema 2") {
		t.Fatalf("a schema 1 manifest with an owner: %v, want refused as needing schema 2", err)
	}
}

// Schema 2 entries that must be refused, each with the reason named.
func TestManifestV2Invalid(t *testing.T) {
	mb := strings.Repeat("x", 1<<20)
	cases := []struct {
		name string
		edit func(files []content.File) []content.File
		want string
	}{
		{"file below an absolute symlink", func(f []content.File) []content.File {
			return insert(f, content.File{Path: "etc/alternatives/pager/passwd", Type: content.TypeFile, Mode: 0o644, SHA256: digestOf("")})
		}, `parent "etc/alternatives/pager" is not a directory (it is a symlink)`},
		{"hard link to a later entry", func(f []content.File) []content.File {
			return insert(f, content.File{Path: "dev/a", Type: content.TypeLink, Link: "usr/bin/su"})
		}, "not a regular file listed before it"},
		{"hard link to a symlink", func(f []content.File) []content.File {
			return insert(f, content.File{Path: "usr/bin/zz", Type: content.TypeLink, Link: "usr/bin/view"})
		}, "not a regular file listed before it"},
		{"hard link escaping", func(f []content.File) []content.File {
			return insert(f, content.File{Path: "usr/bin/zz", Type: content.TypeLink, Link: "../etc/passwd"})
		}, "leaves the tree"},
		{"hard link with a mode", func(f []content.File) []content.File {
			f[len(f)-2].Mode = 0o755
			return f
		}, "a hard link has only the path of its file"},
		{"xattr of a megabyte", func(f []content.File) []content.File {
			f[0].Xattrs = content.Xattrs{"user.big": []byte(mb)}
			return f
		}, "extended attribute user.big of 1048576 bytes exceeds the limit of 65536"},
		{"xattr namespace", func(f []content.File) []content.File {
			f[0].Xattrs = content.Xattrs{"system.posix_acl_access": []byte("x")}
			return f
		}, `"system.posix_acl_access" is not in the security, trusted or user namespace`},
		{"too many xattrs", func(f []content.File) []content.File {
			f[0].Xattrs = content.Xattrs{}
			for i := range 33 {
				f[0].Xattrs[fmt.Sprintf("user.a%d", i)] = nil
			}
			return f
		}, "33 extended attributes; want 1 to 32"},
		{"path not UTF-8", func(f []content.File) []content.File {
			return insert(f, content.File{Path: "etc/caf\xe9", Type: content.TypeDir, Mode: 0o755})
		}, `path "etc/caf\xe9" is not valid UTF-8`},
		{"device with a size", func(f []content.File) []content.File {
			f[2].Size = 1
			return f
		}, "a device has no size"},
		{"fifo with device numbers", func(f []content.File) []content.File {
			f[9].Major = 1
			return f
		}, "a fifo has no size, chunks, digest, target or device numbers"},
		{"mode beyond 07777", func(f []content.File) []content.File {
			f[0].Mode = 0o10000
			return f
		}, "bits beyond 07777"},
		{"root not a directory", func(f []content.File) []content.File {
			f[0].Type = content.TypeFifo
			return f
		}, `the root of the tree is a directory, not a fifo`},
		{"root not first", func(f []content.File) []content.File {
			f[0], f[1] = f[1], f[0]
			return f
		}, `path "." is not clean`},
		{"socket", func(f []content.File) []content.File {
			f[9].Type = "socket"
			return f
		}, `type "socket" is not file, dir, symlink, link, char, block or fifo`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, _, _ := goldenManifestV2(t)
			a := m.Platforms["linux/amd64"]
			a.Files = tc.edit(a.Files)
			a.Index.Entries = len(a.Files)
			_, err := m.Encode()
			if !errors.Is(err, content.ErrBadManifest) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Encode: %v, want a bad manifest error containing %q", err, tc.want)
			}
		})
	}
}

func insert(files []content.File, f content.File) []content.File {
	i := 0
	for i < len(files) && files[i].Path < f.Path {
		i++
	}
	return append(files[:i], append([]content.File{f}, files[i:]...)...)
}

// An index that does not match what the manifest says about it is
// refused before its files are used.
func TestIndexLoadRefuses(t *testing.T) {
	l := content.DefaultLimits()
	for _, tc := range []struct {
		name string
		edit func(x *content.Index)
		want string
	}{
		{"entries lie", func(x *content.Index) { x.Entries-- }, "more than the"},
		{"entries above the limit", func(x *content.Index) { x.Entries = l.Files + 1 }, "exceed the limit"},
		{"size above the limit", func(x *content.Index) { x.Size = l.ManifestBytes + 1 }, "out of range"},
		{"digest", func(x *content.Index) { x.SHA256 = digestOf("other") }, "does not match its size and sha256"},
		{"no chunks", func(x *content.Index) { x.Chunks = nil }, "disagree"},
		{"chunks short of the size", func(x *content.Index) { x.Size++ }, "chunks add up to"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _, store := goldenManifestV2(t)
			a := m.Platforms["linux/amd64"]
			a.Files = nil
			tc.edit(a.Index)
			err := a.Load(t.Context(), store, nil, l)
			if !errors.Is(err, content.ErrBadManifest) || !strings.Contains(err.Error(), tc.want) || a.Files != nil {
				t.Fatalf("Load: %v (%d files), want a bad manifest error containing %q and no files", err, len(a.Files), tc.want)
			}
		})
	}
	m, _, _ := goldenManifestV2(t)
	a := m.Platforms["linux/amd64"]
	a.Files = nil
	if err := a.Load(t.Context(), content.NewMemStore(), nil, l); !errors.Is(err, content.ErrMissingChunk) {
		t.Fatalf("Load from an empty store with nothing to fetch from: %v, want ErrMissingChunk", err)
	}
}

// The index of a tree with one changed file shares every chunk with the
// previous one but those around the changed entry: what makes the file
// list's cost proportional to what changed.
func TestIndexDedup(t *testing.T) {
	var files []content.File
	for i := range 5000 {
		data := fmt.Sprintf("file %d", i)
		files = append(files, content.File{Path: fmt.Sprintf("usr/share/doc/pkg%04d/copyright", i), Type: content.TypeFile, Mode: 0o644,
			Size: int64(len(data)), SHA256: digestOf(data), Chunks: []content.ChunkRef{{ID: content.SumChunk([]byte(data)), Size: len(data), Stored: len(data), Enc: content.EncodingRaw, Pack: digestOf("p"), Offset: int64(i * 16)}}})
	}
	chunks := func(files []content.File) map[content.ChunkID]int {
		stream, err := content.EncodeIndex(files)
		if err != nil {
			t.Fatal(err)
		}
		out := map[content.ChunkID]int{}
		ch := content.NewChunker(bytes.NewReader(stream), content.IndexChunking())
		for {
			b, err := ch.Next()
			if err == io.EOF {
				return out
			}
			out[content.SumChunk(b)] = len(b)
		}
	}
	before := chunks(files)
	files[2500].MTime = 1
	after := chunks(files)
	newBytes, newChunks := 0, 0
	for id, n := range after {
		if _, ok := before[id]; !ok {
			newBytes += n
			newChunks++
		}
	}
	t.Logf("index of %d chunks; one changed entry costs %d new chunks, %d bytes", len(after), newChunks, newBytes)
	if newChunks == 0 || newChunks > 2 || newBytes > 2*content.IndexChunking().Max {
		t.Fatalf("one changed entry made %d new index chunks (%d bytes), want 1 or 2", newChunks, newBytes)
	}
}

// rolloutV2 is the default policy as schema 2 carries it: no soak.
func rolloutV2() content.Rollout {
	r := content.DefaultRollout()
	r.Soak = 0
	return r
}

const manifestV3Golden = "testdata/manifest-v3.golden.json"

// TestManifestV3Golden pins schema 3, which adds the soak and waves as
// node counts to the rollout policy, and checks that schema 2 may not
// carry them.
func TestManifestV3Golden(t *testing.T) {
	m, _, _ := goldenManifestV2(t)
	m.Schema = content.ManifestSchema
	m.Rollout = content.Rollout{Counts: []int{1, 3}, Soak: content.Duration(30 * time.Second),
		HealthTimeout: content.Duration(2 * time.Minute), FailureThreshold: 0.25, SecurityFloor: "2.0.0"}
	got, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(manifestV3Golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden := readGolden(t, manifestV3Golden)
	if !bytes.Equal(got, golden) {
		t.Fatalf("Encode differs from %s: the manifest encoding changed, a format change.\ngot:\n%s", manifestV3Golden, got)
	}
	decoded, err := content.DecodeManifest(golden, content.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(decoded.Rollout, m.Rollout) {
		t.Fatalf("decoded policy %+v, want %+v", decoded.Rollout, m.Rollout)
	}
	v2 := bytes.Replace(golden, []byte(`"schema":3`), []byte(`"schema":2`), 1)
	if _, err := content.DecodeManifest(v2, content.DefaultLimits()); err == nil || !strings.Contains(err.Error(), "schema 2 manifest has no counts or soak") {
		t.Fatalf("a schema 2 manifest with counts and soak: %v", err)
	}
}

// TestRolloutPolicyErrors checks that each bad policy is refused with what
// was wrong.
func TestRolloutPolicyErrors(t *testing.T) {
	for want, r := range map[string]content.Rollout{
		"want 1 to 20 waves, got 0":         {HealthTimeout: content.Duration(time.Minute)},
		"waves must increase":               {Waves: []int{10, 10, 100}, HealthTimeout: content.Duration(time.Minute)},
		"wave 1 is 150%":                    {Waves: []int{10, 150}, HealthTimeout: content.Duration(time.Minute)},
		"the last wave is 50%, want 100":    {Waves: []int{10, 50}, HealthTimeout: content.Duration(time.Minute)},
		"counts must increase":              {Counts: []int{3, 2}, HealthTimeout: content.Duration(time.Minute)},
		"wave 0 is 0 nodes":                 {Counts: []int{0, 2}, HealthTimeout: content.Duration(time.Minute)},
		"both as percentages and as counts": {Waves: []int{100}, Counts: []int{1}, HealthTimeout: content.Duration(time.Minute)},
		"soak -1s out of range":             {Waves: []int{100}, Soak: content.Duration(-time.Second), HealthTimeout: content.Duration(time.Minute)},
	} {
		m, _, _ := goldenManifestV2(t)
		m.Schema, m.Rollout = content.ManifestSchema, r
		if _, err := m.Encode(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("policy %+v: got %v, want an error containing %q", r, err, want)
		}
	}
}
