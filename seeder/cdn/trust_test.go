package cdn_test

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/content/origin"
	"github.com/meshcast/meshcast/seeder/cdn"
	"github.com/meshcast/meshcast/seeder/cdn/cdntest"
	"github.com/meshcast/meshcast/seeder/cdn/devserver"
)

// testExpiredTimestamp signs the timestamp in the past: go-tuf refuses it
// and nothing is fetched.
func testExpiredTimestamp(t *testing.T, base *fixture) {
	f := base.clone(t, devserver.Config{})
	// Signed two days ago with a one-day period: expired yesterday.
	res := f.o.Refresh(origin.DefaultExpiries(), time.Now().Add(-48*time.Hour))
	if !res.TimestampExpires.Before(time.Now()) {
		t.Fatalf("timestamp expires %s, want in the past", res.TimestampExpires)
	}
	c := cdntest.NewClient(t, cdntest.ClientConfig(f.url))
	opt := fetchOpts(t, f, "1.0.0")
	_, err := directFetch(t, c, opt)
	if !errors.Is(err, &metadata.ErrExpiredMetadata{}) {
		t.Fatalf("fetch with an expired timestamp: %v, want ErrExpiredMetadata", err)
	}
	requireNotExist(t, opt.Out)
	if ids := cdntest.StoredChunks(t, filepath.Join(opt.StateDir, "chunks")); len(ids) != 0 {
		t.Errorf("%d chunks fetched on expired metadata", len(ids))
	}
}

// trustedFiles returns the metadata a client persisted in its state dir.
func trustedFiles(t *testing.T, state string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, role := range []string{"root", "timestamp", "snapshot", "targets"} {
		b, err := os.ReadFile(filepath.Join(state, "tuf", role+".json"))
		if err == nil {
			out[role] = string(b)
		} else if !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	if len(out) < 3 {
		t.Fatalf("state %s holds only %d trusted metadata files", state, len(out))
	}
	return out
}

func requireSameTrusted(t *testing.T, before, after map[string]string, roles ...string) {
	t.Helper()
	for _, role := range roles {
		if before[role] != after[role] {
			t.Errorf("the trusted %s.json changed in the state dir", role)
		}
	}
}

// copyDir copies a directory of regular files.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// originMeta is the current signed metadata of an origin, to forge from.
type originMeta struct {
	dir string
	ts  *metadata.Metadata[metadata.TimestampType]
	sn  *metadata.Metadata[metadata.SnapshotType]
	tg  *metadata.Metadata[metadata.TargetsType]
}

func loadMeta(t *testing.T, o *cdntest.Origin) *originMeta {
	t.Helper()
	m := &originMeta{dir: o.MetadataDir()}
	var err error
	if m.ts, err = metadata.Timestamp().FromFile(filepath.Join(m.dir, "timestamp.json")); err != nil {
		t.Fatal(err)
	}
	sv := m.ts.Signed.Meta["snapshot.json"].Version
	if m.sn, err = metadata.Snapshot().FromFile(filepath.Join(m.dir, fmt.Sprintf("%d.snapshot.json", sv))); err != nil {
		t.Fatal(err)
	}
	tv := m.sn.Signed.Meta["targets.json"].Version
	if m.tg, err = metadata.Targets().FromFile(filepath.Join(m.dir, fmt.Sprintf("%d.targets.json", tv))); err != nil {
		t.Fatal(err)
	}
	return m
}

// writeSigned signs m with key alone and writes it to name in dir.
func writeSigned[T metadata.Roles](t *testing.T, m *metadata.Metadata[T], key ed25519.PrivateKey, dir, name string) {
	t.Helper()
	s, err := signature.LoadSigner(key, crypto.Hash(0))
	if err != nil {
		t.Fatal(err)
	}
	m.ClearSignatures()
	if _, err := m.Sign(s); err != nil {
		t.Fatal(err)
	}
	if err := m.ToFile(filepath.Join(dir, name), true); err != nil {
		t.Fatal(err)
	}
}

// publishTimestamp signs a new timestamp that points at snapshot version v.
func (m *originMeta) publishTimestamp(t *testing.T, key ed25519.PrivateKey, v int64) {
	t.Helper()
	m.ts.Signed.Version++
	m.ts.Signed.Meta = map[string]*metadata.MetaFiles{"snapshot.json": metadata.MetaFile(v)}
	writeSigned(t, m.ts, key, m.dir, "timestamp.json")
}

// publishSnapshot signs a new snapshot that points at targets version v,
// and a timestamp for it.
func (m *originMeta) publishSnapshot(t *testing.T, keys origin.Keys, v int64) {
	t.Helper()
	m.sn.Signed.Version++
	m.sn.Signed.Meta = map[string]*metadata.MetaFiles{"targets.json": metadata.MetaFile(v)}
	writeSigned(t, m.sn, keys[metadata.SNAPSHOT], m.dir, fmt.Sprintf("%d.snapshot.json", m.sn.Signed.Version))
	m.publishTimestamp(t, keys[metadata.TIMESTAMP], m.sn.Signed.Version)
}

// testRefusesRollback shows a client that trusts 2.0.0's metadata older
// metadata: the whole directory of 1.0.0, a new timestamp listing the old
// snapshot, a new snapshot listing the old targets. Each is refused and
// the trusted snapshot and targets stay where they were.
func testRefusesRollback(t *testing.T, base *fixture) {
	// One origin at app@2.0.0, with the metadata of 1.0.0 kept aside.
	v2 := base.copyOf(t)
	v2.ownTree(t)
	old := filepath.Join(t.TempDir(), "metadata-1.0.0")
	copyDir(t, v2.o.MetadataDir(), old)
	cdntest.Mutate(t, v2.tree)
	v2.o.Publish("app", "2.0.0", map[string]string{platform: v2.tree})
	// Each case starts from a copy of it and a client that trusts its
	// metadata.
	setup := func(t *testing.T) (*fixture, *cdn.Client, cdn.DirectFetchOptions, string) {
		f := v2.clone(t, devserver.Config{})
		c := cdntest.NewClient(t, cdntest.ClientConfig(f.url))
		opt := fetchOpts(t, f, "")
		if res := mustFetch(t, c, opt); res.Release != "app@2.0.0" {
			t.Fatalf("fetched %s, want app@2.0.0", res.Release)
		}
		opt.Out = filepath.Join(t.TempDir(), "out")
		return f, c, opt, old
	}
	t.Run("whole metadata restored", func(t *testing.T) {
		t.Parallel()
		f, c, opt, old := setup(t)
		before := trustedFiles(t, opt.StateDir)
		if err := os.RemoveAll(f.o.MetadataDir()); err != nil {
			t.Fatal(err)
		}
		copyDir(t, old, f.o.MetadataDir())
		_, err := directFetch(t, c, opt)
		if !errors.Is(err, &metadata.ErrBadVersionNumber{}) {
			t.Fatalf("fetch from rolled-back metadata: %v, want ErrBadVersionNumber", err)
		}
		requireSameTrusted(t, before, trustedFiles(t, opt.StateDir), "root", "timestamp", "snapshot", "targets")
		requireNotExist(t, opt.Out)
	})
	t.Run("snapshot", func(t *testing.T) {
		t.Parallel()
		f, c, opt, _ := setup(t)
		before := trustedFiles(t, opt.StateDir)
		// A fresh timestamp (the timestamp key is online) that points at
		// the snapshot of 1.0.0.
		m := loadMeta(t, f.o)
		m.publishTimestamp(t, f.o.Keys[metadata.TIMESTAMP], m.sn.Signed.Version-1)
		_, err := directFetch(t, c, opt)
		if !errors.Is(err, &metadata.ErrBadVersionNumber{}) {
			t.Fatalf("fetch with a rolled-back snapshot: %v, want ErrBadVersionNumber", err)
		}
		requireSameTrusted(t, before, trustedFiles(t, opt.StateDir), "root", "timestamp", "snapshot", "targets")
		requireNotExist(t, opt.Out)
	})
	t.Run("targets", func(t *testing.T) {
		t.Parallel()
		f, c, opt, _ := setup(t)
		before := trustedFiles(t, opt.StateDir)
		// A fresh snapshot and timestamp that point at the targets of 1.0.0.
		m := loadMeta(t, f.o)
		m.publishSnapshot(t, f.o.Keys, m.tg.Signed.Version-1)
		_, err := directFetch(t, c, opt)
		if !errors.Is(err, &metadata.ErrBadVersionNumber{}) {
			t.Fatalf("fetch with rolled-back targets: %v, want ErrBadVersionNumber", err)
		}
		// The new timestamp verified and may be kept (TUF persists it);
		// what the client trusts about releases must not move.
		requireSameTrusted(t, before, trustedFiles(t, opt.StateDir), "root", "snapshot", "targets")
		requireNotExist(t, opt.Out)
	})
}

// testRefusesWrongKey serves metadata signed by keys the root does not
// list: another origin's timestamp, or targets signed by a stranger under
// a correctly signed snapshot and timestamp.
func testRefusesWrongKey(t *testing.T, base *fixture) {
	t.Run("timestamp of another origin", func(t *testing.T) {
		t.Parallel()
		f := base.clone(t, devserver.Config{})
		other := cdntest.NewOrigin(t, cdntest.Options{})
		b, err := os.ReadFile(filepath.Join(other.MetadataDir(), "timestamp.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(f.o.MetadataDir(), "timestamp.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		c := cdntest.NewClient(t, cdntest.ClientConfig(f.url))
		opt := fetchOpts(t, f, "1.0.0")
		_, err = directFetch(t, c, opt)
		if !errors.Is(err, &metadata.ErrUnsignedMetadata{}) {
			t.Fatalf("fetch with a foreign timestamp: %v, want ErrUnsignedMetadata", err)
		}
		requireNotExist(t, opt.Out)
	})
	t.Run("targets signed by a foreign key", func(t *testing.T) {
		t.Parallel()
		f := base.clone(t, devserver.Config{})
		c := cdntest.NewClient(t, cdntest.ClientConfig(f.url))
		opt := fetchOpts(t, f, "1.0.0")
		mustFetch(t, c, opt)
		before := trustedFiles(t, opt.StateDir)

		// targets N+1 adds a release and is signed by a key root does not
		// list; snapshot and timestamp are signed correctly.
		_, foreign, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		m := loadMeta(t, f.o)
		m.tg.Signed.Version++
		m.tg.Signed.Targets["releases/app/9.0.0.json"] = m.tg.Signed.Targets[f.rel.Target]
		writeSigned(t, m.tg, foreign, m.dir, fmt.Sprintf("%d.targets.json", m.tg.Signed.Version))
		m.publishSnapshot(t, f.o.Keys, m.tg.Signed.Version)

		opt.Release.Version, opt.Out = "", filepath.Join(t.TempDir(), "out")
		_, err = directFetch(t, c, opt)
		if !errors.Is(err, &metadata.ErrUnsignedMetadata{}) {
			t.Fatalf("fetch with targets signed by a foreign key: %v, want ErrUnsignedMetadata", err)
		}
		requireSameTrusted(t, before, trustedFiles(t, opt.StateDir), "root", "targets")
		requireNotExist(t, opt.Out)
	})
}

// firstChunk returns the first chunk reference of the first file that has
// any.
func firstChunk(t *testing.T, files []content.File) *content.ChunkRef {
	t.Helper()
	for i := range files {
		if len(files[i].Chunks) > 0 {
			return &files[i].Chunks[0]
		}
	}
	t.Fatal("no file has chunks")
	return nil
}

// hostileManifest is a manifest signed as evil@1.0.0 and the limits to
// fetch it with, and how the fetch must fail.
type hostileManifest struct {
	name     string
	manifest []byte
	limits   content.Limits
	want     string // in the error
	// index says the manifest passes and its index is fetched, to be
	// refused: its chunks are then all the store holds.
	index bool
}

// hostileManifests returns manifests that a stolen key or a buggy
// publisher could sign: app@1.0.0's renamed, with its file list edited
// and written, unvalidated, as a new index on the origin, whose fields
// a case may then falsify. outside is a directory out of every tree.
func hostileManifests(t *testing.T, f *fixture, abs, outside string) []hostileManifest {
	t.Helper()
	good := f.o.ManifestBytes(f.rel)
	_, art := f.manifest(t)
	evil := func(edit func(files []content.File) []content.File, editIndex func(x *content.Index)) []byte {
		var m content.Manifest
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		m.Name = "evil"
		files := make([]content.File, len(art.Files))
		for i, fl := range art.Files {
			fl.Chunks = slices.Clone(fl.Chunks)
			files[i] = fl
		}
		if edit != nil {
			files = edit(files)
		}
		x := f.o.WriteIndex(files)
		if editIndex != nil {
			editIndex(x)
		}
		m.Platforms[platform].Index, m.Platforms[platform].Files = x, nil
		b, err := json.MarshalIndent(&m, "", " ") // no validation
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	limited := func(edit func(l *content.Limits)) content.Limits {
		l := content.DefaultLimits()
		edit(&l)
		return l
	}
	// A symlink out of the tree is data in schema 2; an entry below it
	// would be written through it.
	belowSymlink := func(files []content.File) []content.File {
		i := slices.IndexFunc(files, func(fl content.File) bool { return fl.Type == content.TypeFile && fl.Size > 0 })
		passwd := files[i]
		passwd.Path = "a/passwd"
		files = append(files, content.File{Path: "a", Type: content.TypeSymlink, Target: outside}, passwd)
		slices.SortFunc(files, func(a, b content.File) int { return strings.Compare(a.Path, b.Path) })
		return files
	}
	unedited := evil(nil, nil)
	n := len(art.Files)
	return []hostileManifest{
		{"path traversal", evil(func(fs []content.File) []content.File { fs[0].Path = "../escape"; return fs }, nil), content.Limits{}, "leaves the tree", true},
		{"absolute path", evil(func(fs []content.File) []content.File { fs[0].Path = abs; return fs }, nil), content.Limits{}, "is absolute", true},
		{"file below a symlink", evil(belowSymlink, nil), content.Limits{}, `parent "a" is not a directory (it is a symlink)`, true},
		{"too many files", unedited, limited(func(l *content.Limits) { l.Files = 3 }), "exceed the limit of 3", false},
		{"chunk too big", evil(func(fs []content.File) []content.File {
			firstChunk(t, fs).Size = content.MaxChunkSize + 1
			return fs
		}, nil), content.Limits{}, fmt.Sprintf("size %d out of range", content.MaxChunkSize+1), true},
		{"chunk with no pack", evil(func(fs []content.File) []content.File {
			firstChunk(t, fs).Pack = content.Digest{}
			return fs
		}, nil), content.Limits{}, "no pack", true},
		{"index not its sha256", evil(nil, func(x *content.Index) { x.SHA256[0] ^= 1 }), content.Limits{}, "the stream does not match its size and sha256", true},
		{"index with more entries than it declares", evil(nil, func(x *content.Index) { x.Entries-- }), content.Limits{},
			fmt.Sprintf("more than the %d entries it declares", n-1), true},
		{"index with fewer entries than it declares", evil(nil, func(x *content.Index) { x.Entries++ }), content.Limits{},
			fmt.Sprintf("index has %d entries, declares %d", n, n+1), true},
		{"names another release", good, content.Limits{}, "describes app@1.0.0", false},
		{"too big", unedited, limited(func(l *content.Limits) { l.ManifestBytes = int64(len(unedited)) - 1 }),
			fmt.Sprintf("exceeds the limit of %d", len(unedited)-1), false},
	}
}

// testRefusesHostileManifest signs, with the right key, manifests
// that a stolen key or a buggy publisher could produce. Each must fail as
// a bad manifest before anything is written outside the state dir, and
// without fetching any file's chunk.
func testRefusesHostileManifest(t *testing.T, base *fixture) {
	f := base.clone(t, devserver.Config{})
	abs := filepath.Join(t.TempDir(), "absolute-target")
	outside := t.TempDir()
	for _, tt := range hostileManifests(t, f, abs, outside) {
		t.Run(tt.name, func(t *testing.T) {
			f.o.AddTarget(content.ReleaseTarget("evil", "1.0.0"), tt.manifest)
			c := cdntest.NewClient(t, cdntest.ClientConfig(f.url))
			before := len(f.reqs.Requests())
			work := t.TempDir()
			opt := cdn.DirectFetchOptions{
				StateDir: filepath.Join(work, "state"), TrustedRoot: f.o.RootJSON,
				Release: content.Release{Name: "evil", Version: "1.0.0"}, Platform: platform,
				Out: filepath.Join(work, "out"), Limits: tt.limits,
			}
			_, err := directFetch(t, c, opt)
			if !errors.Is(err, content.ErrBadManifest) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("fetch: %v; want ErrBadManifest saying %q", err, tt.want)
			}
			requireOnly(t, work, "state")
			requireNotExist(t, abs)
			requireNotExist(t, filepath.Join(filepath.Dir(work), "escape"))
			requireOnly(t, outside)
			var index []content.ChunkID
			var m content.Manifest
			if err := json.Unmarshal(tt.manifest, &m); err != nil {
				t.Fatal(err)
			}
			if tt.index {
				for _, c := range m.Platforms[platform].Index.Chunks {
					index = append(index, c.ID)
				}
			}
			if got := cdntest.StoredChunks(t, filepath.Join(opt.StateDir, "chunks")); !slices.Equal(sortedIDs(got), sortedIDs(index)) {
				t.Errorf("the store holds %d chunks for a bad manifest, want only the %d of its index", len(got), len(index))
			}
			reqs := f.reqs.Wait(t, before+int(c.Requests()))[before:]
			for _, r := range reqs {
				// The signed length is checked before the download; no
				// file's chunk is fetched.
				if tt.name == "too big" && strings.HasPrefix(r.Path, "/targets/") || r.Path == f.packPath(t) {
					t.Errorf("requested %s", r.Path)
				}
			}
			if indexPack := "/" + cdn.PackPath(m.Platforms[platform].Index.Chunks[0].Pack); tt.index != (len(requestsTo(reqs, indexPack)) == 1) {
				t.Errorf("requests %+v; want the index's pack %s asked for once if and only if the manifest passes", reqs, indexPack)
			}
		})
	}
}
