package cdn_test

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/content/origin"
	"github.com/meshcast/meshcast/seeder/cdn"
	"github.com/meshcast/meshcast/seeder/cdn/cdntest"
	"github.com/meshcast/meshcast/seeder/cdn/devserver"
)

// patchFixture is an origin holding app@1.0.0 (the cdntest tree), 1.1.0
// (the tree after cdntest.Mutate) and 1.2.0 (1.1.0 with its config
// edited), so that 1.1.0 lists a manifest patch from 1.0.0 and 1.2.0 from
// both.
type patchFixture struct {
	*fixture
	trees map[string]string // by version; read-only
	rels  map[string]*origin.PublishResult
}

func newPatchBase(t *testing.T) *patchFixture {
	t.Helper()
	f := newBase(t)
	p := &patchFixture{fixture: f, trees: map[string]string{"1.0.0": f.tree}, rels: map[string]*origin.PublishResult{"1.0.0": f.rel}}
	next := func(version, from string, edit func(dir string)) {
		tree := filepath.Join(t.TempDir(), "tree")
		cdntest.CopyTree(t, p.trees[from], tree)
		edit(tree)
		p.trees[version] = tree
		p.rels[version] = f.o.Publish("app", version, map[string]string{platform: tree})
	}
	next("1.1.0", "1.0.0", func(dir string) { cdntest.Mutate(t, dir) })
	next("1.2.0", "1.1.0", func(dir string) {
		if err := os.WriteFile(filepath.Join(dir, "etc", "app.conf"), []byte("listen = 127.0.0.1:8081\nworkers = 8\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	})
	return p
}

// clone copies the origin for one test and serves the copy, recording
// its requests.
func (p *patchFixture) clone(t *testing.T) *patchFixture {
	t.Helper()
	return &patchFixture{fixture: p.fixture.clone(t, devserver.Config{}), trees: p.trees, rels: p.rels}
}

// manifestPath is the URL path of a release's whole manifest.
func (p *patchFixture) manifestPath(version string) string {
	r := p.rels[version]
	dir, file := path.Split(r.Target)
	return "/targets/" + dir + r.ReleaseID.String() + "." + file
}

// patchPath is the URL path of the patch from one release's manifest to
// another's.
func (p *patchFixture) patchPath(to, from string) string {
	return "/targets/" + content.ManifestPatchPath(p.rels[to].Target, p.rels[to].ReleaseID, p.rels[from].ReleaseID)
}

// patchFile is where that patch lives in the served origin.
func (p *patchFixture) patchFile(to, from string) string {
	return filepath.Join(p.o.Dir, filepath.FromSlash(strings.TrimPrefix(p.patchPath(to, from), "/")))
}

func (p *patchFixture) readPatch(t *testing.T, to, from string) []byte {
	t.Helper()
	b, err := os.ReadFile(p.patchFile(to, from))
	if err != nil {
		t.Fatalf("app@%s lists no patch from %s on the origin: %v", to, from, err)
	}
	return b
}

func (p *patchFixture) writePatch(t *testing.T, to, from string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p.patchFile(to, from), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fetch fetches a version with opt's state into a new out directory,
// checks the tree, and returns the result and the requests this fetch
// made.
func (p *patchFixture) fetch(t *testing.T, c *cdn.Client, opt cdn.DirectFetchOptions, version string) (*cdn.FetchResult, []cdntest.Request) {
	t.Helper()
	before := len(p.reqs.Wait(t, int(c.Requests())))
	opt.Release.Version = version
	opt.Out = filepath.Join(t.TempDir(), "out")
	res := mustFetch(t, c, opt)
	if res.ReleaseID != p.rels[version].ReleaseID {
		t.Fatalf("fetched release %s, want app@%s %s", res.ReleaseID, version, p.rels[version].ReleaseID)
	}
	cdntest.RequireSameTree(t, p.trees[version], opt.Out)
	return res, p.reqs.Wait(t, before+int(res.Requests))[before:]
}

// requireCached fails unless the state's TUF cache holds exactly the
// signed manifest of version.
func (p *patchFixture) requireCached(t *testing.T, opt cdn.DirectFetchOptions, version string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(opt.StateDir, "tuf", "targets", url.PathEscape(p.rels[version].Target)))
	if err != nil {
		t.Fatalf("the TUF cache lacks app@%s: %v", version, err)
	}
	if want := p.o.ManifestBytes(p.rels[version]); !bytes.Equal(b, want) {
		t.Fatalf("the TUF cache holds %d bytes for app@%s, not its %d-byte manifest", len(b), version, len(want))
	}
}

// requireOne fails unless reqs hold exactly one request for urlPath, with
// the status given, and returns it.
func requireOne(t *testing.T, reqs []cdntest.Request, urlPath string, status int) cdntest.Request {
	t.Helper()
	got := requestsTo(reqs, urlPath)
	if len(got) != 1 || got[0].Status != status {
		t.Fatalf("requests for %s: %+v; want one %d\nall requests: %+v", urlPath, got, status, reqs)
	}
	return got[0]
}

func requireNone(t *testing.T, reqs []cdntest.Request, what string, match func(string) bool) {
	t.Helper()
	for _, r := range reqs {
		if match(r.Path) {
			t.Fatalf("requested %s (%s); want no %s\nall requests: %+v", r.Path, r.Range, what, reqs)
		}
	}
}

func isPatch(p string) bool { return strings.HasSuffix(p, ".patch") }

// patchWarnings is a slog.Handler for a client that records why it gave
// up on a manifest patch, and logs everything to the test.
type patchWarnings struct {
	next  slog.Handler
	state *patchWarningsState
}

type patchWarningsState struct {
	mu   sync.Mutex
	errs []string // guarded by mu
}

func (h patchWarnings) Enabled(context.Context, slog.Level) bool { return true }

func (h patchWarnings) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Message == "manifest patch unusable; fetching the whole manifest" {
		var err string
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == "err" {
				err = a.Value.String()
			}
			return true
		})
		h.state.mu.Lock()
		h.state.errs = append(h.state.errs, err)
		h.state.mu.Unlock()
	}
	return h.next.Handle(ctx, rec)
}

func (h patchWarnings) WithAttrs(as []slog.Attr) slog.Handler {
	return patchWarnings{h.next.WithAttrs(as), h.state}
}

func (h patchWarnings) WithGroup(name string) slog.Handler {
	return patchWarnings{h.next.WithGroup(name), h.state}
}

// errors returns the reasons recorded so far.
func (h patchWarnings) errors() []string {
	h.state.mu.Lock()
	defer h.state.mu.Unlock()
	return append([]string(nil), h.state.errs...)
}

// newPatchClient is cdntest.NewClient that also records the client's
// reasons for giving up on manifest patches.
func newPatchClient(t *testing.T, url string) (*cdn.Client, patchWarnings) {
	t.Helper()
	w := patchWarnings{next: cdntest.Logger(t, "client").Handler(), state: &patchWarningsState{}}
	c, err := cdn.NewClient(cdntest.ClientConfig(url), slog.New(w))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, w
}

// TestManifestPatch fetches releases with a state that holds earlier
// manifests, against copies of one origin: a patch replaces the manifest
// download when it yields the signed bytes, and anything else falls back
// to the whole manifest.
func TestManifestPatch(t *testing.T) {
	base := newPatchBase(t)
	tests := []struct {
		name string
		fn   func(t *testing.T, base *patchFixture)
	}{
		{"FetchesPatch", testFetchesPatch},
		{"PatchesFromNewestHeldBase", testPatchesFromNewestHeldBase},
		{"NoEarlierManifest", testNoEarlierManifest},
		{"DamagedCachedBase", testDamagedCachedBase},
		{"PatchNotOnOrigin", testPatchNotOnOrigin},
		{"GarbagePatch", testGarbagePatch},
		{"PatchFromAnotherBase", testPatchFromAnotherBase},
		{"PatchToAnotherManifest", testPatchToAnotherManifest},
		{"PatchOverSignedLength", testPatchOverSignedLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, base)
		})
	}
}

// testFetchesPatch: a node that fetched 1.0.0 gets 1.1.0's manifest as a
// patch (the whole manifest is never asked for), caches it where the
// next fetch finds it, and assembles 1.1.0.
func testFetchesPatch(t *testing.T, base *patchFixture) {
	f := base.clone(t)
	c, warnings := newPatchClient(t, f.url)
	opt := fetchOpts(t, f.fixture, "")
	f.fetch(t, c, opt, "1.0.0")

	patch := f.readPatch(t, "1.1.0", "1.0.0")
	manifest := f.o.ManifestBytes(f.rels["1.1.0"])
	if len(patch) >= len(manifest)/2 {
		t.Fatalf("the test premise fails: a %d-byte patch for a %d-byte manifest", len(patch), len(manifest))
	}
	res, reqs := f.fetch(t, c, opt, "1.1.0")
	if r := requireOne(t, reqs, f.patchPath("1.1.0", "1.0.0"), http.StatusOK); r.Bytes != int64(len(patch)) {
		t.Errorf("the server sent %d bytes of the %d-byte patch", r.Bytes, len(patch))
	}
	requireNone(t, reqs, "request for the manifest of 1.1.0", func(p string) bool { return p == f.manifestPath("1.1.0") })
	f.requireCached(t, opt, "1.1.0")
	if res.ChunksReused == 0 || res.ChunksFetched == 0 {
		t.Errorf("fetched %d chunks, reused %d; want both", res.ChunksFetched, res.ChunksReused)
	}

	// Again into another directory: the manifest comes from the cache;
	// only the root probe and the timestamp go to the CDN.
	res, reqs = f.fetch(t, c, opt, "1.1.0")
	requireNone(t, reqs, "target request", func(p string) bool { return strings.HasPrefix(p, "/targets/") })
	if res.Requests != 2 || res.ChunksFetched != 0 {
		t.Errorf("refetch made %d requests and fetched %d chunks, want 2 (root probe, timestamp) and 0", res.Requests, res.ChunksFetched)
	}
	if w := warnings.errors(); len(w) != 0 {
		t.Errorf("the client gave up on patches: %q", w)
	}
}

// testPatchesFromNewestHeldBase: holding 1.0.0 and 1.1.0, the node
// patches 1.2.0 from 1.1.0, the closer of the two.
func testPatchesFromNewestHeldBase(t *testing.T, base *patchFixture) {
	f := base.clone(t)
	c, warnings := newPatchClient(t, f.url)
	opt := fetchOpts(t, f.fixture, "")
	f.fetch(t, c, opt, "1.0.0")
	f.fetch(t, c, opt, "1.1.0")
	_, reqs := f.fetch(t, c, opt, "1.2.0")
	requireOne(t, reqs, f.patchPath("1.2.0", "1.1.0"), http.StatusOK)
	requireNone(t, reqs, "patch from 1.0.0", func(p string) bool { return p == f.patchPath("1.2.0", "1.0.0") })
	requireNone(t, reqs, "request for the manifest of 1.2.0", func(p string) bool { return p == f.manifestPath("1.2.0") })
	f.requireCached(t, opt, "1.2.0")
	if w := warnings.errors(); len(w) != 0 {
		t.Errorf("the client gave up on patches: %q", w)
	}
}

// testNoEarlierManifest: a node that holds no earlier manifest asks for
// no patch.
func testNoEarlierManifest(t *testing.T, base *patchFixture) {
	f := base.clone(t)
	c, warnings := newPatchClient(t, f.url)
	opt := fetchOpts(t, f.fixture, "")
	_, reqs := f.fetch(t, c, opt, "1.1.0")
	requireNone(t, reqs, "patch request", isPatch)
	requireOne(t, reqs, f.manifestPath("1.1.0"), http.StatusOK)
	f.requireCached(t, opt, "1.1.0")
	if w := warnings.errors(); len(w) != 0 {
		t.Errorf("the client gave up on patches: %q", w)
	}
}

// testDamagedCachedBase: a cached base that no longer hashes to its signed
// id is not a base; the node fetches the whole manifest.
func testDamagedCachedBase(t *testing.T, base *patchFixture) {
	f := base.clone(t)
	c, warnings := newPatchClient(t, f.url)
	opt := fetchOpts(t, f.fixture, "")
	f.fetch(t, c, opt, "1.0.0")
	cached := filepath.Join(opt.StateDir, "tuf", "targets", url.PathEscape(f.rels["1.0.0"].Target))
	b, err := os.ReadFile(cached)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(cached, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, reqs := f.fetch(t, c, opt, "1.1.0")
	requireNone(t, reqs, "patch request", isPatch)
	requireOne(t, reqs, f.manifestPath("1.1.0"), http.StatusOK)
	f.requireCached(t, opt, "1.1.0")
	if w := warnings.errors(); len(w) != 0 {
		t.Errorf("the client gave up on patches: %q", w)
	}
}

// requireFallback fetches version with a state that holds from, the
// patch between them being unusable: the node asks for the patch once,
// gives up on it for the reason given, asks for the whole manifest once,
// and caches the signed manifest.
func (p *patchFixture) requireFallback(t *testing.T, opt cdn.DirectFetchOptions, version, from string, patchStatus int, reason string) {
	t.Helper()
	c, warnings := newPatchClient(t, p.url)
	p.fetch(t, c, opt, from)
	if w := warnings.errors(); len(w) != 0 {
		t.Fatalf("fetching %s, the client gave up on patches: %q", from, w)
	}
	_, reqs := p.fetch(t, c, opt, version)
	requireOne(t, reqs, p.patchPath(version, from), patchStatus)
	requireOne(t, reqs, p.manifestPath(version), http.StatusOK)
	p.requireCached(t, opt, version)
	if w := warnings.errors(); len(w) != 1 || !strings.Contains(w[0], reason) {
		t.Errorf("the client gave up on the patch because of %q; want one reason containing %q", w, reason)
	}
}

// testPatchNotOnOrigin: the listed patch is gone (404, not retried).
func testPatchNotOnOrigin(t *testing.T, base *patchFixture) {
	f := base.clone(t)
	if err := os.Remove(f.patchFile("1.1.0", "1.0.0")); err != nil {
		t.Fatal(err)
	}
	f.requireFallback(t, fetchOpts(t, f.fixture, ""), "1.1.0", "1.0.0", http.StatusNotFound, "404")
}

// testGarbagePatch: the patch is garbage of its signed length, with or
// without the zstd magic number in front.
func testGarbagePatch(t *testing.T, base *patchFixture) {
	for name, magic := range map[string][]byte{"NoMagic": nil, "ZstdMagic": {0x28, 0xb5, 0x2f, 0xfd}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := base.clone(t)
			garbage := make([]byte, len(f.readPatch(t, "1.1.0", "1.0.0")))
			rand.NewChaCha8([32]byte{1}).Read(garbage)
			copy(garbage, magic)
			f.writePatch(t, "1.1.0", "1.0.0", garbage)
			f.requireFallback(t, fetchOpts(t, f.fixture, ""), "1.1.0", "1.0.0", http.StatusOK, content.ErrBadPatch.Error())
		})
	}
}

// testPatchFromAnotherBase: 1.2.0's patch from one earlier version is
// replaced by its (valid) patch from another; a node holding only the
// first applies it to the wrong base, notices, and fetches the whole
// manifest. The substitute must be no longer than the patch listed, or
// the client refuses it for its length: of 1.0.0 and 1.1.0, the base
// whose patch is the longer is the one replaced (the fixture's mtimes,
// and so the patches' lengths, vary from run to run).
func testPatchFromAnotherBase(t *testing.T, base *patchFixture) {
	f := base.clone(t)
	held, other := "1.0.0", "1.1.0"
	fromOther, listed := f.readPatch(t, "1.2.0", other), f.readPatch(t, "1.2.0", held)
	if len(fromOther) > len(listed) {
		held, other, fromOther, listed = other, held, listed, fromOther
	}
	if bytes.Equal(fromOther, listed) {
		t.Fatalf("the test premise fails: the patches from %s and %s are the same", held, other)
	}
	f.writePatch(t, "1.2.0", held, fromOther)
	// A node holding only that base.
	f.requireFallback(t, fetchOpts(t, f.fixture, ""), "1.2.0", held, http.StatusOK, content.ErrBadPatch.Error())
}

// testPatchToAnotherManifest: the patch applies cleanly to the node's
// base but builds other bytes of the signed length (one digit of the
// digest of 1.1.0's index changed): only the signed hash tells, and the
// result is neither used nor cached.
func testPatchToAnotherManifest(t *testing.T, base *patchFixture) {
	f := base.clone(t)
	v1, v2 := f.o.ManifestBytes(f.rels["1.0.0"]), f.o.ManifestBytes(f.rels["1.1.0"])
	listed := len(f.readPatch(t, "1.1.0", "1.0.0"))
	// 1.1.0 changed files, so its index's digest is new bytes in any
	// patch, and the forgery costs about what the real patch does.
	sum := f.o.Manifest(f.rels["1.1.0"]).Platforms[platform].Index.SHA256
	if f.o.Manifest(f.rels["1.0.0"]).Platforms[platform].Index.SHA256 == sum {
		t.Fatal("the test premise fails: 1.0.0 and 1.1.0 have the same index")
	}
	at := bytes.Index(v2, []byte(`"sha256":"`+sum.String()+`"`))
	if at < 0 {
		t.Fatal("the test premise fails: 1.1.0's manifest does not hold its index's digest")
	}
	at += len(`"sha256":"`)
	// Which digit changes decides how well the rest compresses; the
	// patch must be no longer than the listed one, or it would fail the
	// length bound, not the hash: try each in turn.
	var wrong []byte
	for i := at; i < at+2*len(sum) && wrong == nil; i++ {
		forged := bytes.Clone(v2)
		forged[i] ^= 1 // '0'..'9' and 'a'..'f' stay hex digits
		patch, err := content.MakeManifestPatch(v1, forged)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := content.ApplyManifestPatch(v1, patch, int64(len(v2))); err != nil || !bytes.Equal(got, forged) {
			t.Fatalf("the test premise fails: the forged patch gives %d bytes, %v", len(got), err)
		}
		if len(patch) <= listed {
			wrong = patch
		}
	}
	if wrong == nil {
		t.Fatalf("the test premise fails: every forged patch is longer than the listed one (%d bytes)", listed)
	}
	f.writePatch(t, "1.1.0", "1.0.0", wrong)
	f.requireFallback(t, fetchOpts(t, f.fixture, ""), "1.1.0", "1.0.0", http.StatusOK, "does not match the signed hash")
}

// testPatchOverSignedLength: the patch is its signed bytes and more; the
// length bound refuses it without retrying, and the node fetches the
// whole manifest.
func testPatchOverSignedLength(t *testing.T, base *patchFixture) {
	f := base.clone(t)
	f.writePatch(t, "1.1.0", "1.0.0", append(f.readPatch(t, "1.1.0", "1.0.0"), make([]byte, 64)...))
	f.requireFallback(t, fetchOpts(t, f.fixture, ""), "1.1.0", "1.0.0", http.StatusOK, "length mismatch")
}
