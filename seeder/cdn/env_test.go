package cdn_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/content/origin"
	"github.com/meshcast/meshcast/seeder/cdn"
	"github.com/meshcast/meshcast/seeder/cdn/cdntest"
	"github.com/meshcast/meshcast/seeder/cdn/devserver"
)

// platform is the one platform the fixtures publish.
const platform = "linux/amd64"

// fixture is an origin holding app@1.0.0 (the cdntest tree) and, once
// cloned for a test, a server that serves it and records its requests.
type fixture struct {
	o    *cdntest.Origin
	tree string                // the published tree; read-only unless ownTree
	rel  *origin.PublishResult // app@1.0.0
	srv  *cdntest.Server
	url  string
	reqs *cdntest.RequestLog
}

// newBase publishes app@1.0.0 once for a group of subtests, which clone
// it: chunking and compressing is the costly part of a test under -race.
func newBase(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{o: cdntest.NewOrigin(t, cdntest.Options{}), tree: filepath.Join(t.TempDir(), "tree")}
	cdntest.WriteTree(t, f.tree)
	f.rel = f.o.Publish("app", "1.0.0", map[string]string{platform: f.tree})
	return f
}

// clone copies the origin for one test and serves the copy with cfg
// (Dir defaults to the copy).
func (f *fixture) clone(t *testing.T, cfg devserver.Config) *fixture {
	t.Helper()
	c := f.copyOf(t)
	if cfg.Dir == "" {
		cfg.Dir = c.o.Dir
	}
	c.srv, c.url, c.reqs = cdntest.ServeRecorded(t, cfg)
	return c
}

// copyOf copies the origin for one test, without serving it.
func (f *fixture) copyOf(t *testing.T) *fixture {
	t.Helper()
	return &fixture{o: f.o.Clone(t), tree: f.tree, rel: f.rel}
}

// ownTree gives f a private copy of its tree, to mutate.
func (f *fixture) ownTree(t *testing.T) {
	t.Helper()
	tree := filepath.Join(t.TempDir(), "tree")
	cdntest.CopyTree(t, f.tree, tree)
	f.tree = tree
}

// subtests runs each test in parallel against its own clone of base.
func subtests(t *testing.T, base *fixture, tests []subtest) {
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, base)
		})
	}
}

type subtest struct {
	name string
	fn   func(t *testing.T, base *fixture)
}

// manifest is the manifest of app@1.0.0 and its platform's artifact.
func (f *fixture) manifest(t *testing.T) (*content.Manifest, *content.Artifact) {
	t.Helper()
	m := f.o.Manifest(f.rel)
	return m, m.Platforms[platform]
}

// packs are the packs app@1.0.0 wrote, the only ones its chunks live in:
// its index's and its files'. A release lists its index's chunks first;
// they tile their pack, and the files' chunks theirs (far below MaxRange),
// so a fetch from scratch asks for each pack with one Range request.
func (f *fixture) packs(t *testing.T) (index, files content.Digest) {
	t.Helper()
	m, art := f.manifest(t)
	packs := cdntest.Packs(m)
	if len(packs) != 2 || packs[0].String() != f.rel.IndexPack || packs[1].String() != f.rel.Pack {
		t.Fatalf("app@1.0.0 has chunks in packs %v, want only the two it wrote, its index's %s and its files' %s", packs, f.rel.IndexPack, f.rel.Pack)
	}
	var off int64
	for i, c := range art.Index.Chunks {
		if c.Pack != packs[0] || c.Offset != off {
			t.Fatalf("index chunk %d is at %s:%d, want %s:%d: the index's chunks tile their pack", i, c.Pack.Short(), c.Offset, packs[0].Short(), off)
		}
		off += int64(c.Stored)
	}
	if size := f.packSize(t, packs[0]); off != size || size != f.rel.IndexNewBytes {
		t.Fatalf("the index's chunks cover %d bytes of its %d-byte pack (publish said %d)", off, size, f.rel.IndexNewBytes)
	}
	return packs[0], packs[1]
}

// pack is the pack app@1.0.0 wrote its files' chunks to.
func (f *fixture) pack(t *testing.T) content.Digest {
	t.Helper()
	_, files := f.packs(t)
	return files
}

// indexPack is the pack app@1.0.0 wrote its index's chunks to.
func (f *fixture) indexPack(t *testing.T) content.Digest {
	t.Helper()
	index, _ := f.packs(t)
	return index
}

// packPath is the URL path of the pack app@1.0.0 wrote its files to.
func (f *fixture) packPath(t *testing.T) string {
	t.Helper()
	return "/" + cdn.PackPath(f.pack(t))
}

// indexPackPath is the URL path of the pack app@1.0.0 wrote its index to.
func (f *fixture) indexPackPath(t *testing.T) string {
	t.Helper()
	return "/" + cdn.PackPath(f.indexPack(t))
}

// packSize is the size of a pack on the origin.
func (f *fixture) packSize(t *testing.T, d content.Digest) int64 {
	t.Helper()
	fi, err := os.Stat(f.o.PackFile(d))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// fetchOpts are the options of a fetch of app into a fresh state and out.
func fetchOpts(t *testing.T, f *fixture, version string) cdn.DirectFetchOptions {
	work := t.TempDir()
	return cdn.DirectFetchOptions{
		StateDir:    filepath.Join(work, "state"),
		TrustedRoot: f.o.RootJSON,
		Release:     content.Release{Name: "app", Version: version},
		Platform:    platform,
		Out:         filepath.Join(work, "out"),
	}
}

func directFetch(t *testing.T, c *cdn.Client, opt cdn.DirectFetchOptions) (*cdn.FetchResult, error) {
	t.Helper()
	return cdn.DirectFetch(context.Background(), c, opt, cdntest.Logger(t, "fetch"))
}

func mustFetch(t *testing.T, c *cdn.Client, opt cdn.DirectFetchOptions) *cdn.FetchResult {
	t.Helper()
	res, err := directFetch(t, c, opt)
	if err != nil {
		t.Fatalf("DirectFetch %s: %v", opt.Release, err)
	}
	t.Logf("fetched: %+v", *res)
	return res
}

// requestsTo returns the recorded requests for one URL path.
func requestsTo(reqs []cdntest.Request, path string) []cdntest.Request {
	var out []cdntest.Request
	for _, r := range reqs {
		if r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// requireNotExist fails unless p does not exist.
func requireNotExist(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !os.IsNotExist(err) {
		t.Fatalf("%s exists (Lstat: %v); it must not", p, err)
	}
}

// requireOnly fails unless dir holds exactly the names given.
func requireOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	slices.Sort(names)
	if !slices.Equal(got, names) {
		t.Fatalf("%s holds %q, want only %q", dir, got, names)
	}
}

// chunkIDs returns the ids of an artifact's distinct chunks.
func chunkIDs(a *content.Artifact) []content.ChunkID {
	chunks := a.Chunks()
	ids := make([]content.ChunkID, len(chunks))
	for i, c := range chunks {
		ids[i] = c.ID
	}
	return ids
}

func sortedIDs(ids []content.ChunkID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	slices.Sort(out)
	return out
}
