package content_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshcast/meshcast/content"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

const manifestGolden = "testdata/manifest.golden.json"

// goldenManifestID is the release id of testdata/manifest.golden.json. It
// changes only when the manifest encoding changes, which is a format change.
const goldenManifestID = "5545cff49de19d01a2ad1b4ff768a099c0b1b17cc8438529a3ad41f3e092d440"

func digestOf(s string) content.Digest { return content.Digest(sha256.Sum256([]byte(s))) }

// goldenManifest is a representative release: a tree for linux/amd64 with a
// directory, an executable, a private file split over two chunks (one raw,
// one zstd), an empty file and a symlink; a single image file for
// linux/arm64; two packs; a rollout with a security floor.
func goldenManifest() *content.Manifest {
	app := "#!/bin/sh\nexec /usr/bin/gateway-agent \"$@\"\n"
	confA, confB := strings.Repeat("a", 100), strings.Repeat("listen = 0.0.0.0:7946\n", 10)
	image := "disk image bytes"
	pack0, pack1 := digestOf("pack 0"), digestOf("pack 1")
	return &content.Manifest{
		Schema:   content.ManifestSchemaV1,
		Name:     "gateway-os",
		Version:  "2.4.1-rc.1+build.7",
		Chunking: content.DefaultChunking(),
		Rollout: content.Rollout{
			Waves:            []int{1, 10, 50, 100},
			HealthTimeout:    content.Duration(5 * time.Minute),
			FailureThreshold: 0.05,
			SecurityFloor:    "2.3.0",
		},
		Platforms: map[string]*content.Artifact{
			"linux/amd64": {
				Kind: content.KindTree,
				Files: []content.File{
					{Path: "bin", Type: content.TypeDir, Mode: 0o755},
					{Path: "bin/agent", Type: content.TypeFile, Mode: 0o755, Size: int64(len(app)), SHA256: digestOf(app), Chunks: []content.ChunkRef{
						{ID: content.SumChunk([]byte(app)), Size: len(app), Stored: len(app), Enc: content.EncodingRaw, Pack: pack0, Offset: 0},
					}},
					{Path: "current", Type: content.TypeSymlink, Target: "bin/agent"},
					{Path: "etc", Type: content.TypeDir, Mode: 0o555},
					{Path: "etc/agent.conf", Type: content.TypeFile, Mode: 0o600, Size: int64(len(confA + confB)), SHA256: digestOf(confA + confB), Chunks: []content.ChunkRef{
						{ID: content.SumChunk([]byte(confA)), Size: len(confA), Stored: 17, Enc: content.EncodingZstd, Pack: pack0, Offset: int64(len(app))},
						{ID: content.SumChunk([]byte(confB)), Size: len(confB), Stored: len(confB), Enc: content.EncodingRaw, Pack: pack1, Offset: 0},
					}},
					{Path: "etc/empty", Type: content.TypeFile, Mode: 0o644, SHA256: digestOf("")},
					{Path: "etc/link", Type: content.TypeSymlink, Target: "../bin/agent"},
				},
			},
			"linux/arm64": {
				Kind: content.KindFile,
				Files: []content.File{
					{Path: "gateway.img", Type: content.TypeFile, Mode: 0o644, Size: int64(len(image)), SHA256: digestOf(image), Chunks: []content.ChunkRef{
						{ID: content.SumChunk([]byte(image)), Size: len(image), Stored: len(image), Enc: content.EncodingRaw, Pack: pack1, Offset: int64(len(confB))},
					}},
				},
			},
		},
	}
}

func readGolden(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		tb.Fatalf("%v (run go test -run %s -update to create it)", err, tb.Name())
	}
	return b
}

func TestManifestGolden(t *testing.T) {
	m := goldenManifest()
	got, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.MkdirAll(filepath.Dir(manifestGolden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(manifestGolden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s; ManifestID %s", manifestGolden, content.ManifestID(got))
	}
	golden := readGolden(t, manifestGolden)
	if !bytes.Equal(got, golden) {
		t.Fatalf("Encode differs from %s: the manifest encoding changed, which changes every release id.\ngot:\n%s", manifestGolden, got)
	}

	decoded, err := content.DecodeManifest(golden, content.DefaultLimits())
	if err != nil {
		t.Fatalf("DecodeManifest(golden): %v", err)
	}
	if !reflect.DeepEqual(decoded, m) {
		t.Fatalf("DecodeManifest(golden) differs from the struct it was encoded from:\ngot  %+v\nwant %+v", decoded, m)
	}
	if id := content.ManifestID(golden).String(); id != goldenManifestID {
		t.Fatalf("ManifestID(golden) = %s, want %s", id, goldenManifestID)
	}
	// Encoding is canonical: a second Encode gives the same bytes.
	again, err := decoded.Encode()
	if err != nil || !bytes.Equal(again, golden) {
		t.Fatalf("re-encoding the decoded manifest differs (%v)", err)
	}
}

func TestReleaseTarget(t *testing.T) {
	if got := content.ReleaseTarget("gateway-os", "2.4.1"); got != "releases/gateway-os/2.4.1.json" {
		t.Fatalf("ReleaseTarget = %s", got)
	}
}

func TestDefaultRolloutValid(t *testing.T) {
	m, _, _ := goldenManifestV2(t)
	m.Schema, m.Rollout = content.ManifestSchema, content.DefaultRollout()
	if err := m.Validate(content.DefaultLimits()); err != nil {
		t.Fatalf("the default rollout does not validate: %v", err)
	}
}

// manifestCase is one invalid manifest: a change to the golden struct, or
// to its JSON bytes, and the substring its error must contain.
type manifestCase struct {
	name   string
	mutate func(m *content.Manifest)  // on the struct, before marshalling
	edit   func(b []byte) []byte      // on the JSON bytes
	limits func(l *content.Limits)    // tighter limits for this case
	raw    func(tb testing.TB) []byte // the whole input, instead of the golden manifest
	want   string                     // substring of the error
}

func amd64(m *content.Manifest) *content.Artifact { return m.Platforms["linux/amd64"] }
func arm64(m *content.Manifest) *content.Artifact { return m.Platforms["linux/arm64"] }

// file returns the amd64 tree's entry at path.
func file(m *content.Manifest, path string) *content.File {
	a := amd64(m)
	for i := range a.Files {
		if a.Files[i].Path == path {
			return &a.Files[i]
		}
	}
	panic("no file " + path)
}

// insertFile adds f to the amd64 tree, keeping the paths sorted.
func insertFile(m *content.Manifest, f content.File) {
	a := amd64(m)
	i := 0
	for i < len(a.Files) && a.Files[i].Path < f.Path {
		i++
	}
	a.Files = append(a.Files[:i], append([]content.File{f}, a.Files[i:]...)...)
}

// chunk returns the i'th chunk reference of the amd64 tree's entry at path.
func chunk(m *content.Manifest, path string, i int) *content.ChunkRef {
	return &file(m, path).Chunks[i]
}

// insertCopy adds bin/agent2 to the amd64 tree: a copy of bin/agent,
// whose chunk reference edit may change.
func insertCopy(m *content.Manifest, edit func(c *content.ChunkRef)) {
	f := *file(m, "bin/agent")
	f.Path = "bin/agent2"
	f.Chunks = slices.Clone(f.Chunks)
	if edit != nil {
		edit(&f.Chunks[0])
	}
	insertFile(m, f)
}

func replaceJSON(old, new string) func([]byte) []byte {
	return func(b []byte) []byte {
		if !bytes.Contains(b, []byte(old)) {
			panic("golden manifest has no " + old)
		}
		return bytes.Replace(b, []byte(old), []byte(new), 1)
	}
}

func emptyFileEntry(path string) content.File {
	return content.File{Path: path, Type: content.TypeFile, Mode: 0o644, SHA256: digestOf("")}
}

var manifestCases = []manifestCase{
	{name: "unknown field", edit: replaceJSON(`"schema":1,`, `"schema":1,"signed_by":"mallory",`), want: `unknown field "signed_by"`},
	{name: "unknown nested field", edit: replaceJSON(`"kind":"file",`, `"kind":"file","compression":"xz",`), want: `unknown field "compression"`},
	{name: "unknown field in a chunk", edit: replaceJSON(`"enc":"zstd",`, `"enc":"zstd","dict":7,`), want: `unknown field "dict"`},
	// The format before chunks were inline: a pack table, a chunk table per
	// artifact, and files and chunks referring to them by index.
	{name: "pack table", edit: replaceJSON(`"platforms":`, `"packs":["`+digestOf("pack 0").String()+`"],"platforms":`), want: `unknown field "packs"`},
	{name: "chunk table", edit: replaceJSON(`"kind":"file",`, `"kind":"file","chunks":[],`), want: `unknown field "chunks"`},
	{name: "chunk index", edit: func(b []byte) []byte {
		i := bytes.Index(b, []byte(`"chunks":[{`))
		j := i + bytes.Index(b[i:], []byte(`}]`))
		return slices.Concat(b[:i], []byte(`"chunks":[0]`), b[j+2:])
	}, want: "cannot unmarshal number"},
	{name: "pack index", edit: replaceJSON(`"pack":"`+digestOf("pack 1").String()+`"`, `"pack":1`), want: "cannot unmarshal number"},
	{name: "schema 2 with inline files", edit: replaceJSON(`"schema":1,`, `"schema":2,`), want: "lists its files in an index, not inline"},
	{name: "schema 4", edit: func(b []byte) []byte {
		return replaceJSON(`"schema":1,`, `"schema":4,"signatures":[],`)(b)
	}, want: "schema 4 is not supported"},
	{name: "schema missing", edit: replaceJSON(`"schema":1,`, ``), want: "schema 0 is not supported"},
	{name: "schema as string", edit: replaceJSON(`"schema":1,`, `"schema":"1",`), want: "cannot unmarshal string"},
	{name: "not an object", raw: func(testing.TB) []byte { return []byte(`[1,2,3]`) }, want: "cannot unmarshal array"},
	{name: "empty input", raw: func(testing.TB) []byte { return nil }, want: "unexpected end of JSON input"},
	{name: "trailing data", edit: func(b []byte) []byte { return append(b, `{"schema":1}`...) }, want: "after top-level value"},
	{name: "trailing garbage", edit: func(b []byte) []byte { return append(b, "xyz"...) }, want: "after top-level value"},
	{name: "name upper case", mutate: func(m *content.Manifest) { m.Name = "Gateway" }, want: `release name "Gateway"`},
	{name: "name with slash", mutate: func(m *content.Manifest) { m.Name = "../etc" }, want: `release name "../etc"`},
	{name: "name empty", mutate: func(m *content.Manifest) { m.Name = "" }, want: `release name ""`},
	{name: "name too long", mutate: func(m *content.Manifest) { m.Name = strings.Repeat("a", 129) }, want: "release name"},
	{name: "version not semver", mutate: func(m *content.Manifest) { m.Version = "1.2" }, want: `version "1.2" is not a semantic version`},
	{name: "version with v", mutate: func(m *content.Manifest) { m.Version = "v1.2.3" }, want: `version "v1.2.3" is not a semantic version`},
	{name: "version empty", mutate: func(m *content.Manifest) { m.Version = "" }, want: `version "" is not a semantic version`},
	{name: "bad chunking", mutate: func(m *content.Manifest) { m.Chunking = content.Chunking{Min: 64, Avg: 100, Max: 256} }, want: "power of two"},
	{name: "platform without arch", mutate: func(m *content.Manifest) {
		m.Platforms["linux"] = m.Platforms["linux/arm64"]
		delete(m.Platforms, "linux/arm64")
	}, want: `platform "linux" is not of the form`},
	{name: "platform upper case", mutate: func(m *content.Manifest) {
		m.Platforms["Linux/ARM64"] = m.Platforms["linux/arm64"]
		delete(m.Platforms, "linux/arm64")
	}, want: `platform "Linux/ARM64"`},
	{name: "no platforms", mutate: func(m *content.Manifest) { m.Platforms = nil }, want: "no platforms"},
	{name: "null artifact", mutate: func(m *content.Manifest) { m.Platforms["linux/arm64"] = nil }, want: "null artifact"},
	{name: "unknown kind", mutate: func(m *content.Manifest) { arm64(m).Kind = "tarball" }, want: `artifact kind "tarball"`},
	{name: "absolute path", mutate: func(m *content.Manifest) { insertFile(m, emptyFileEntry("/etc/passwd")) }, want: `path "/etc/passwd" is absolute`},
	{name: "dot dot path", mutate: func(m *content.Manifest) { insertFile(m, emptyFileEntry("../evil")) }, want: `path "../evil" leaves the tree`},
	{name: "dot dot inside path", mutate: func(m *content.Manifest) { insertFile(m, emptyFileEntry("etc/../../evil")) }, want: "leaves the tree"},
	{name: "dot component", mutate: func(m *content.Manifest) { insertFile(m, emptyFileEntry("a/./b")) }, want: `path "a/./b" is not clean`},
	{name: "double slash", mutate: func(m *content.Manifest) { insertFile(m, emptyFileEntry("a//b")) }, want: `path "a//b" is not clean`},
	{name: "trailing slash", mutate: func(m *content.Manifest) { insertFile(m, emptyFileEntry("a/")) }, want: `path "a/" is not clean`},
	{name: "dot path", mutate: func(m *content.Manifest) { insertFile(m, emptyFileEntry(".")) }, want: `path "." is not clean`},
	{name: "empty path", mutate: func(m *content.Manifest) { insertFile(m, emptyFileEntry("")) }, want: "empty path"},
	{name: "NUL in path", mutate: func(m *content.Manifest) { insertFile(m, emptyFileEntry("etc/pass\x00wd")) }, want: "contains NUL"},
	{name: "path too long", mutate: func(m *content.Manifest) { insertFile(m, emptyFileEntry(strings.Repeat("d/", 2100)+"f")) }, want: "longer than 4096 bytes"},
	{name: "component too long", mutate: func(m *content.Manifest) { insertFile(m, emptyFileEntry(strings.Repeat("x", 256))) }, want: "longer than 255 bytes"},
	{name: "duplicate path", mutate: func(m *content.Manifest) { insertFile(m, emptyFileEntry("etc/empty")) }, want: `"etc/empty": paths must be unique and sorted`},
	{name: "unsorted paths", mutate: func(m *content.Manifest) {
		a := amd64(m)
		a.Files[0], a.Files[1] = a.Files[1], a.Files[0]
	}, want: "paths must be unique and sorted"},
	{name: "file under a symlink", mutate: func(m *content.Manifest) { insertFile(m, emptyFileEntry("current/x")) }, want: `parent "current" is not a directory`},
	{name: "file deep under a symlink", mutate: func(m *content.Manifest) { insertFile(m, emptyFileEntry("etc/link/a/b")) }, want: `parent "etc/link" is not a directory`},
	{name: "file under a file", mutate: func(m *content.Manifest) { insertFile(m, emptyFileEntry("etc/empty/x")) }, want: `parent "etc/empty" is not a directory`},
	{name: "dir under a file", mutate: func(m *content.Manifest) {
		insertFile(m, content.File{Path: "bin/agent/d", Type: content.TypeDir, Mode: 0o755})
	}, want: `parent "bin/agent" is not a directory`},
	{name: "symlink absolute target", mutate: func(m *content.Manifest) { file(m, "current").Target = "/etc/shadow" }, want: `link target "/etc/shadow" is absolute`},
	{name: "symlink escaping at top", mutate: func(m *content.Manifest) { file(m, "current").Target = "../x" }, want: `link target "../x" leaves the tree`},
	{name: "symlink escaping via a subdir", mutate: func(m *content.Manifest) { file(m, "current").Target = "a/../../x" }, want: `link target "a/../../x"`},
	{name: "symlink escaping from a subdir", mutate: func(m *content.Manifest) { file(m, "etc/link").Target = "../../x" }, want: `link target "../../x" leaves the tree`},
	{name: "symlink climbing after descending", mutate: func(m *content.Manifest) { file(m, "current").Target = "bin/../bin/agent" }, want: `only leading ".." elements are allowed`},
	{name: "symlink escaping through a symlink", mutate: func(m *content.Manifest) {
		// Lexically d/d/../.. is the top of the tree, but with d -> "."
		// the kernel resolves it to the tree's parent.
		insertFile(m, content.File{Path: "d", Type: content.TypeSymlink, Target: "."})
		file(m, "current").Target = "d/d/../../outside"
	}, want: `link target "d/d/../../outside"`},
	{name: "symlink empty target", mutate: func(m *content.Manifest) { file(m, "current").Target = "" }, want: "empty target"},
	{name: "symlink NUL target", mutate: func(m *content.Manifest) { file(m, "current").Target = "bin\x00" }, want: "contains NUL"},
	{name: "symlink with mode", mutate: func(m *content.Manifest) { file(m, "current").Mode = 0o777 }, want: "a symlink has only a target"},
	{name: "symlink with chunks", mutate: func(m *content.Manifest) { file(m, "current").Chunks = file(m, "bin/agent").Chunks }, want: "a symlink has only a target"},
	{name: "dir with size", mutate: func(m *content.Manifest) { file(m, "etc").Size = 1 }, want: "a directory has no size"},
	{name: "dir with chunks", mutate: func(m *content.Manifest) { file(m, "etc").Chunks = file(m, "bin/agent").Chunks }, want: "a directory has no size"},
	{name: "dir with target", mutate: func(m *content.Manifest) { file(m, "etc").Target = "bin" }, want: "a directory has no size"},
	{name: "file with target", mutate: func(m *content.Manifest) { file(m, "etc/empty").Target = "bin" }, want: "a regular file has no link target"},
	{name: "type device", mutate: func(m *content.Manifest) { file(m, "etc/empty").Type = "device" }, want: `type "device" is not file, dir or symlink`},
	{name: "type fifo", mutate: func(m *content.Manifest) { file(m, "etc/empty").Type = "fifo" }, want: `type "fifo"`},
	{name: "type empty", mutate: func(m *content.Manifest) { file(m, "etc/empty").Type = "" }, want: `type ""`},
	{name: "mode 9999", edit: replaceJSON(`"mode":"0600"`, `"mode":"9999"`), want: `mode "9999" is not octal`},
	{name: "mode too big", edit: replaceJSON(`"mode":"0600"`, `"mode":"17777"`), want: `mode "17777" is not octal`},
	{name: "mode as number", edit: replaceJSON(`"mode":"0600"`, `"mode":384`), want: "cannot unmarshal number"},
	{name: "mode negative", edit: replaceJSON(`"mode":"0600"`, `"mode":"-1"`), want: `mode "-1"`},
	{name: "health timeout unparsable", edit: replaceJSON(`"health_timeout":"5m0s"`, `"health_timeout":"soon"`), want: `duration "soon"`},
	{name: "encoding unknown", edit: replaceJSON(`"enc":"zstd"`, `"enc":"brotli"`), want: `unknown chunk encoding "brotli"`},
	{name: "chunk id not a CID", edit: replaceJSON(`"id":"bafkrei`, `"id":"Qm`), want: "not a CIDv1 raw sha2-256"},
	{name: "pack digest short", edit: func(b []byte) []byte {
		return replaceJSON(`"`+digestOf("pack 0").String()+`"`, `"abcd"`)(b)
	}, want: `sha256 "abcd"`},
	{name: "pack missing", edit: replaceJSON(`"pack":"`+digestOf("pack 1").String()+`",`, ``), want: "no pack"},
	{name: "negative size", mutate: func(m *content.Manifest) { file(m, "etc/empty").Size = -1 }, want: "size -1 out of range"},
	{name: "size above file limit", mutate: func(m *content.Manifest) { file(m, "etc/empty").Size = 1 << 41 }, want: "out of range 0..1099511627776"},
	{name: "chunks do not add up", mutate: func(m *content.Manifest) { f := file(m, "etc/agent.conf"); f.Chunks = f.Chunks[:1] }, want: "chunks add up to 100 bytes, size says 320"},
	{name: "chunks short of size by one", mutate: func(m *content.Manifest) { file(m, "etc/agent.conf").Size++ }, want: "chunks add up to 320 bytes, size says 321"},
	{name: "chunks exceed size", mutate: func(m *content.Manifest) {
		f := file(m, "etc/agent.conf")
		f.Chunks = append(f.Chunks, *chunk(m, "bin/agent", 0))
	}, want: "chunks add up to 363 bytes, size says 320"},
	{name: "chunks in the wrong file", mutate: func(m *content.Manifest) {
		// Each file's chunks are valid and add up to the other's size.
		a, b := file(m, "bin/agent"), file(m, "etc/agent.conf")
		a.Chunks, b.Chunks = b.Chunks, a.Chunks
	}, want: `file 1 "bin/agent": bad manifest: chunks add up to 100 bytes, size says 43`}, // counting stops past the size
	{name: "size without chunks", mutate: func(m *content.Manifest) { file(m, "etc/empty").Size = 10 }, want: "size 10 but no chunks"},
	{name: "chunk size zero", mutate: func(m *content.Manifest) { chunk(m, "etc/agent.conf", 1).Size = 0 }, want: "size 0 out of range"},
	{name: "chunk size above format", mutate: func(m *content.Manifest) {
		c := chunk(m, "etc/agent.conf", 1)
		c.Size, c.Stored = content.MaxChunkSize+1, content.MaxChunkSize+1
	}, want: "size 4194305 out of range 1..4194304"},
	{name: "raw stored differs from size", mutate: func(m *content.Manifest) { chunk(m, "bin/agent", 0).Stored++ }, want: "raw body of 44 bytes for a chunk of 43"},
	{name: "zstd stored above size", mutate: func(m *content.Manifest) { chunk(m, "etc/agent.conf", 0).Stored = 101 }, want: "zstd body of 101 bytes for a chunk of 100"},
	{name: "zstd stored zero", mutate: func(m *content.Manifest) { chunk(m, "etc/agent.conf", 0).Stored = 0 }, want: "zstd body of 0 bytes"},
	{name: "no pack", mutate: func(m *content.Manifest) { chunk(m, "etc/agent.conf", 1).Pack = content.Digest{} }, want: `file 4 "etc/agent.conf": chunk 1 (` + content.SumChunk([]byte(strings.Repeat("listen = 0.0.0.0:7946\n", 10))).String() + `): bad manifest: no pack`},
	{name: "no pack in a file artifact", mutate: func(m *content.Manifest) { arm64(m).Files[0].Chunks[0].Pack = content.Digest{} }, want: "no pack"},
	{name: "offset negative", mutate: func(m *content.Manifest) { chunk(m, "etc/agent.conf", 1).Offset = -1 }, want: "offset -1 out of range"},
	{name: "offset too big", mutate: func(m *content.Manifest) { chunk(m, "etc/agent.conf", 1).Offset = 1<<50 + 1 }, want: "offset 1125899906842625 out of range"},
	// A chunk shared by several files is one chunk: each must say the
	// same about it.
	{name: "shared chunk at another offset", mutate: func(m *content.Manifest) {
		insertCopy(m, func(c *content.ChunkRef) { c.Offset++ })
	}, want: `file 2 "bin/agent2": bad manifest: chunk 0 (` + content.SumChunk([]byte("#!/bin/sh\nexec /usr/bin/gateway-agent \"$@\"\n")).String() + `) is described differently by another file`},
	{name: "shared chunk in another pack", mutate: func(m *content.Manifest) {
		insertCopy(m, func(c *content.ChunkRef) { c.Pack = digestOf("pack 1") })
	}, want: "is described differently by another file"},
	{name: "shared chunk of another size", mutate: func(m *content.Manifest) {
		// Each file adds up on its own.
		insertCopy(m, func(c *content.ChunkRef) { c.Size++; c.Stored++ })
		file(m, "bin/agent2").Size++
	}, want: "is described differently by another file"},
	{name: "shared chunk with another encoding", mutate: func(m *content.Manifest) {
		insertCopy(m, func(c *content.ChunkRef) { c.Enc = content.EncodingZstd })
	}, want: "is described differently by another file"},
	{name: "shared chunk invalid in both files", mutate: func(m *content.Manifest) {
		chunk(m, "bin/agent", 0).Pack = content.Digest{}
		insertCopy(m, nil)
	}, want: `file 1 "bin/agent": chunk 0`},
	{name: "repeated chunk described differently within a file", mutate: func(m *content.Manifest) {
		f := file(m, "etc/agent.conf")
		other := f.Chunks[0]
		other.Offset += 1000
		f.Chunks = []content.ChunkRef{f.Chunks[0], other, f.Chunks[1]}
		f.Size += 100
	}, want: `file 4 "etc/agent.conf": bad manifest: chunk 1 (`},
	{name: "waves not increasing", mutate: func(m *content.Manifest) { m.Rollout.Waves = []int{10, 10, 100} }, want: "waves must increase"},
	{name: "waves decreasing", mutate: func(m *content.Manifest) { m.Rollout.Waves = []int{50, 10, 100} }, want: "wave 1 is 10%"},
	{name: "wave zero", mutate: func(m *content.Manifest) { m.Rollout.Waves = []int{0, 100} }, want: "wave 0 is 0%"},
	{name: "wave above 100", mutate: func(m *content.Manifest) { m.Rollout.Waves = []int{50, 101} }, want: "wave 1 is 101%"},
	{name: "waves not ending at 100", mutate: func(m *content.Manifest) { m.Rollout.Waves = []int{1, 10, 50} }, want: "the last wave is 50%, want 100"},
	{name: "waves empty", mutate: func(m *content.Manifest) { m.Rollout.Waves = nil }, want: "want 1 to 20 waves, got 0"},
	{name: "too many waves", mutate: func(m *content.Manifest) {
		m.Rollout.Waves = nil
		for w := 5; w <= 100; w += 4 {
			m.Rollout.Waves = append(m.Rollout.Waves, w)
		}
	}, want: "want 1 to 20 waves"},
	{name: "health timeout zero", mutate: func(m *content.Manifest) { m.Rollout.HealthTimeout = 0 }, want: "health timeout 0s out of range"},
	{name: "health timeout negative", mutate: func(m *content.Manifest) { m.Rollout.HealthTimeout = content.Duration(-time.Second) }, want: "health timeout -1s"},
	{name: "health timeout too long", mutate: func(m *content.Manifest) { m.Rollout.HealthTimeout = content.Duration(25 * time.Hour) }, want: "health timeout 25h0m0s"},
	{name: "failure threshold 1.5", mutate: func(m *content.Manifest) { m.Rollout.FailureThreshold = 1.5 }, want: "failure threshold 1.5 out of range"},
	{name: "failure threshold negative", mutate: func(m *content.Manifest) { m.Rollout.FailureThreshold = -0.1 }, want: "failure threshold -0.1"},
	{name: "failure threshold NaN", mutate: func(m *content.Manifest) { m.Rollout.FailureThreshold = math.NaN() }, want: "failure threshold NaN out of range"},
	{name: "failure threshold Inf", mutate: func(m *content.Manifest) { m.Rollout.FailureThreshold = math.Inf(1) }, want: "failure threshold +Inf"},
	{name: "security floor above version", mutate: func(m *content.Manifest) { m.Rollout.SecurityFloor = "2.4.1" }, want: "security floor 2.4.1 is above the release version 2.4.1-rc.1+build.7"},
	{name: "security floor not semver", mutate: func(m *content.Manifest) { m.Rollout.SecurityFloor = "2.3" }, want: "security floor"},
	{name: "file artifact with two files", mutate: func(m *content.Manifest) {
		a := arm64(m)
		a.Files = append(a.Files, emptyFileEntry("zzz"))
	}, want: "a file artifact has exactly one regular file"},
	{name: "file artifact in a directory", mutate: func(m *content.Manifest) { arm64(m).Files[0].Path = "boot/gateway.img" }, want: "a file artifact has exactly one regular file at the top level"},
	{name: "file artifact with no file", mutate: func(m *content.Manifest) { arm64(m).Files = nil }, want: "a file artifact has exactly one"},
	{name: "file artifact of a symlink", mutate: func(m *content.Manifest) {
		arm64(m).Files[0] = content.File{Path: "gateway.img", Type: content.TypeSymlink, Target: "x"}
	}, want: "a file artifact has exactly one regular file"},
	{name: "too many files", limits: func(l *content.Limits) { l.Files = 6 }, want: "7 files exceed the limit of 6"},
	{name: "too many chunk references", limits: func(l *content.Limits) { l.Chunks = 2 }, want: "platform linux/amd64: bad manifest: more than 2 chunk references"},
	{name: "shared chunk counts per reference", mutate: func(m *content.Manifest) { insertCopy(m, nil) }, limits: func(l *content.Limits) { l.Chunks = 3 }, want: "more than 3 chunk references"},
	{name: "repeated chunk counts per reference", mutate: func(m *content.Manifest) {
		f := file(m, "etc/agent.conf")
		f.Chunks = []content.ChunkRef{f.Chunks[0], f.Chunks[0], f.Chunks[1]}
		f.Size += 100
	}, limits: func(l *content.Limits) { l.Chunks = 3 }, want: "more than 3 chunk references"},
	{name: "too many platforms", limits: func(l *content.Limits) { l.Platforms = 1 }, want: "2 platforms exceed the limit of 1"},
	{name: "file too big for limits", limits: func(l *content.Limits) { l.FileSize = 100 }, want: "size 320 out of range 0..100"},
	{name: "total too big for limits", limits: func(l *content.Limits) { l.TotalSize = 300 }, want: "total size exceeds the limit of 300 bytes"},
	{name: "path too long for limits", limits: func(l *content.Limits) { l.PathBytes = 12 }, want: `path "etc/agent.conf" is longer than 12 bytes`},
	{name: "manifest bytes over limit", limits: func(l *content.Limits) { l.ManifestBytes = 1000 }, want: "exceeds the limit of 1000"},
}

// build returns the case's input bytes and limits.
func (c manifestCase) build(tb testing.TB) ([]byte, content.Limits) {
	tb.Helper()
	l := content.DefaultLimits()
	if c.limits != nil {
		c.limits(&l)
	}
	if c.raw != nil {
		return c.raw(tb), l
	}
	m := goldenManifest()
	if c.mutate != nil {
		c.mutate(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, l // NaN and Inf have no JSON form; see TestManifestInvalid
	}
	if c.edit != nil {
		b = c.edit(b)
	}
	return b, l
}

func TestManifestInvalid(t *testing.T) {
	for _, tt := range manifestCases {
		t.Run(tt.name, func(t *testing.T) {
			b, l := tt.build(t)
			check := func(what string, err error) {
				t.Helper()
				if err == nil {
					t.Fatalf("%s succeeded, want an error containing %q", what, tt.want)
				}
				if !errors.Is(err, content.ErrBadManifest) {
					t.Fatalf("%s: error %q does not wrap ErrBadManifest", what, err)
				}
				if !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("%s: error %q does not contain %q", what, err, tt.want)
				}
			}
			if b != nil || tt.raw != nil {
				m, err := content.DecodeManifest(b, l)
				if m != nil {
					t.Errorf("DecodeManifest returned a manifest along with its error")
				}
				check("DecodeManifest", err)
			}
			if tt.mutate != nil {
				m := goldenManifest()
				tt.mutate(m)
				check("Validate", m.Validate(l))
				if tt.limits == nil {
					_, err := m.Encode()
					check("Encode", err)
				}
			}
		})
	}
}

func TestManifestValidVariants(t *testing.T) {
	// Things that look odd but are allowed, so the table above does not
	// drift into refusing legitimate releases.
	tests := map[string]func(m *content.Manifest){
		"symlink to parent dir":       func(m *content.Manifest) { file(m, "etc/link").Target = ".." },
		"symlink with dot components": func(m *content.Manifest) { file(m, "etc/link").Target = "./../bin/./agent" },
		"symlink dangling inside":     func(m *content.Manifest) { file(m, "current").Target = "nowhere/at/all" },
		"symlink to a symlink":        func(m *content.Manifest) { file(m, "current").Target = "etc/link" },
		"symlink through a symlink":   func(m *content.Manifest) { file(m, "etc/link").Target = "../current/x" },
		"symlink at depth going up": func(m *content.Manifest) {
			insertFile(m, content.File{Path: "a/b/c", Type: content.TypeSymlink, Target: "../../bin/agent"})
		},
		"implicit parent directories": func(m *content.Manifest) { insertFile(m, emptyFileEntry("x/y/z")) },
		"setuid file":                 func(m *content.Manifest) { file(m, "bin/agent").Mode = 0o4755 },
		"no security floor":           func(m *content.Manifest) { m.Rollout.SecurityFloor = "" },
		"security floor equal":        func(m *content.Manifest) { m.Version, m.Rollout.SecurityFloor = "2.3.0", "2.3.0" },
		"single wave":                 func(m *content.Manifest) { m.Rollout.Waves = []int{100} },
		"threshold bounds":            func(m *content.Manifest) { m.Rollout.FailureThreshold = 1 },
		"platform with variant":       func(m *content.Manifest) { m.Platforms["linux/arm/v7"] = m.Platforms["linux/arm64"] },
		"path sorting is by bytes":    func(m *content.Manifest) { insertFile(m, emptyFileEntry("bin-old")) },
		"unicode path":                func(m *content.Manifest) { insertFile(m, emptyFileEntry("etc/café")) },
		"dir with no mode (0000)":     func(m *content.Manifest) { file(m, "etc").Mode = 0 },
		"chunk shared by two files":   func(m *content.Manifest) { insertCopy(m, nil) },
		"chunk repeated within a file": func(m *content.Manifest) {
			f := file(m, "etc/agent.conf")
			f.Chunks = []content.ChunkRef{f.Chunks[0], f.Chunks[0], f.Chunks[1]}
			f.Size += 100
		},
		"chunk shared by two platforms": func(m *content.Manifest) {
			a := arm64(m)
			a.Kind = content.KindTree
			a.Files = append(a.Files, *file(m, "bin/agent"))
			a.Files[1].Path = "z"
		},
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			m := goldenManifest()
			mutate(m)
			b, err := m.Encode()
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			back, err := content.DecodeManifest(b, content.DefaultLimits())
			if err != nil {
				t.Fatalf("DecodeManifest: %v", err)
			}
			if !reflect.DeepEqual(back, m) {
				t.Fatalf("round trip changed the manifest")
			}
		})
	}
}

func TestManifestChunkLimitExact(t *testing.T) {
	// Limits.Chunks bounds the references of each platform, each shared or
	// repeated chunk counted every time it is named: linux/amd64 names 3.
	l := content.DefaultLimits()
	l.Chunks = 3
	m := goldenManifest()
	if err := m.Validate(l); err != nil {
		t.Fatalf("3 chunk references with a limit of 3: %v", err)
	}
	insertCopy(m, nil)
	l.Chunks = 4
	if err := m.Validate(l); err != nil {
		t.Fatalf("4 chunk references with a limit of 4: %v", err)
	}
}

func TestArtifactChunks(t *testing.T) {
	m := goldenManifest()
	agent, conf := file(m, "bin/agent"), file(m, "etc/agent.conf")
	want := []content.ChunkRef{agent.Chunks[0], conf.Chunks[0], conf.Chunks[1]}
	if got := amd64(m).Chunks(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Chunks() = %+v, want %+v", got, want)
	}
	if got := arm64(m).Chunks(); !reflect.DeepEqual(got, arm64(m).Files[0].Chunks) {
		t.Fatalf("Chunks() of the file artifact = %+v, want %+v", got, arm64(m).Files[0].Chunks)
	}
	// A chunk named again, by another file or the same one, is listed
	// once, where it first appears.
	insertCopy(m, nil)
	conf = file(m, "etc/agent.conf")
	conf.Chunks = []content.ChunkRef{conf.Chunks[0], conf.Chunks[1], conf.Chunks[0]}
	conf.Size += 100
	if err := m.Validate(content.DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	if got := amd64(m).Chunks(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Chunks() with shared and repeated chunks = %+v, want %+v", got, want)
	}
	if got := (&content.Artifact{Kind: content.KindTree}).Chunks(); len(got) != 0 {
		t.Fatalf("Chunks() of an empty tree = %+v", got)
	}
}

func TestValidatePathAndPlatformDirect(t *testing.T) {
	for _, p := range []string{"a", "a/b", "a b/c", ".hidden", "..foo", "foo..", "a/.b"} {
		if err := content.ValidatePath(p, 4096); err != nil {
			t.Errorf("ValidatePath(%q) = %v, want nil", p, err)
		}
	}
	for _, p := range []string{"linux/amd64", "linux/arm/v7", "darwin/arm64", "linux/mips64_le"} {
		if err := content.ValidatePlatform(p); err != nil {
			t.Errorf("ValidatePlatform(%q) = %v", p, err)
		}
	}
	for _, p := range []string{"linux", "linux/", "/amd64", "linux/amd64/", "linux/arm/7", "linux/arm/v7/x", "linux/AMD64", "linux amd64"} {
		if err := content.ValidatePlatform(p); !errors.Is(err, content.ErrBadManifest) {
			t.Errorf("ValidatePlatform(%q) = %v, want ErrBadManifest", p, err)
		}
	}
}

func TestModeText(t *testing.T) {
	for m, s := range map[content.Mode]string{0: "0000", 0o755: "0755", 0o4755: "4755", 0o7777: "7777"} {
		b, err := m.MarshalText()
		if err != nil || string(b) != s {
			t.Errorf("Mode(%o).MarshalText() = %q, %v; want %q", m, b, err, s)
		}
		var back content.Mode
		if err := back.UnmarshalText(b); err != nil || back != m {
			t.Errorf("Mode round trip of %s gave %o, %v", s, back, err)
		}
	}
	for _, s := range []string{"", "8", "0o755", "+755", "10000", "0x1ff", "７５５"} {
		var m content.Mode
		if err := m.UnmarshalText([]byte(s)); err == nil {
			t.Errorf("Mode.UnmarshalText(%q) = %o, want an error", s, m)
		}
	}
	for fm, m := range map[os.FileMode]content.Mode{0o644: 0o644, 0o755 | os.ModeSetuid: 0o4755, 0o1777&^0o1000 | os.ModeSticky: 0o1777, 0o2750&^0o2000 | os.ModeSetgid: 0o2750} {
		if got := content.ModeOf(fm); got != m {
			t.Errorf("ModeOf(%v) = %o, want %o", fm, got, m)
		}
		if got := m.FileMode(); got != fm {
			t.Errorf("Mode(%o).FileMode() = %v, want %v", m, got, fm)
		}
	}
}

// FuzzDecodeManifest checks that DecodeManifest never panics, and that a
// manifest it accepts encodes, and decodes again to the same value and the
// same bytes.
func FuzzDecodeManifest(f *testing.F) {
	f.Add(readGolden(f, manifestGolden))
	for _, c := range manifestCases {
		if b, _ := c.build(f); b != nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := content.DecodeManifest(b, content.DefaultLimits())
		if err != nil {
			if m != nil {
				t.Fatal("manifest returned with an error")
			}
			if !errors.Is(err, content.ErrBadManifest) {
				t.Fatalf("error %q does not wrap ErrBadManifest", err)
			}
			return
		}
		enc, err := m.Encode()
		if err != nil {
			t.Fatalf("a decoded manifest does not encode: %v", err)
		}
		m2, err := content.DecodeManifest(enc, content.DefaultLimits())
		if err != nil {
			t.Fatalf("an encoded manifest does not decode: %v\n%s", err, enc)
		}
		enc2, err := m2.Encode()
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable (%v):\n%s\n%s", err, enc, enc2)
		}
		if !reflect.DeepEqual(normalized(m), normalized(m2)) {
			t.Fatalf("re-decoded manifest differs:\n%+v\n%+v", m, m2)
		}
	})
}

// normalized returns a copy of m where empty chunk lists are nil: the
// encoding omits them, so the two are the same manifest.
func normalized(m *content.Manifest) *content.Manifest {
	c := *m
	c.Platforms = make(map[string]*content.Artifact, len(m.Platforms))
	for p, a := range m.Platforms {
		ac := *a
		ac.Files = append([]content.File(nil), a.Files...)
		for i := range ac.Files {
			if len(ac.Files[i].Chunks) == 0 {
				ac.Files[i].Chunks = nil
			}
		}
		c.Platforms[p] = &ac
	}
	return &c
}
