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

// firstChunk returns the first chunk reference of a's first file that has
// any.
func firstChunk(t *testing.T, a *content.Artifact) *content.ChunkRef {
	t.Helper()
	for i := range a.Files {
		if len(a.Files[i].Chunks) > 0 {
			return &a.Files[i].Chunks[0]
		}
	}
	t.Fatal("no file has chunks")
	return nil
}

// testRefusesHostileManifest signs, with the right key, manifests
// that a stolen key or a buggy publisher could produce. Each must fail as
// a bad manifest before anything is written outside the state dir.
func testRefusesHostileManifest(t *testing.T, base *fixture) {
	f := base.clone(t, devserver.Config{})
	good := f.o.ManifestBytes(f.rel)
	evil := func(edit func(m *content.Manifest)) []byte {
		var m content.Manifest
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		m.Name = "evil"
		edit(&m)
		b, err := json.MarshalIndent(&m, "", " ") // no validation
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	abs := filepath.Join(t.TempDir(), "absolute-target")
	limited := func(edit func(l *content.Limits)) content.Limits {
		l := content.DefaultLimits()
		edit(&l)
		return l
	}
	tests := []struct {
		name     string
		manifest []byte
		limits   content.Limits
		want     string // in the error
	}{
		{"path traversal", evil(func(m *content.Manifest) { m.Platforms[platform].Files[0].Path = "../escape" }), content.Limits{}, "leaves the tree"},
		{"absolute path", evil(func(m *content.Manifest) { m.Platforms[platform].Files[0].Path = abs }), content.Limits{}, "is absolute"},
		{"escaping symlink", evil(func(m *content.Manifest) {
			for i, fl := range m.Platforms[platform].Files {
				if fl.Type == content.TypeSymlink {
					m.Platforms[platform].Files[i].Target = "../../../../../../etc"
				}
			}
		}), content.Limits{}, "leaves the tree"},
		{"too many files", evil(func(*content.Manifest) {}), limited(func(l *content.Limits) { l.Files = 3 }), "exceed the limit of 3"},
		{"chunk too big", evil(func(m *content.Manifest) {
			firstChunk(t, m.Platforms[platform]).Size = content.MaxChunkSize + 1
		}), content.Limits{}, "out of range"},
		{"chunk with no pack", evil(func(m *content.Manifest) {
			firstChunk(t, m.Platforms[platform]).Pack = content.Digest{}
		}), content.Limits{}, "no pack"},
		{"names another release", good, content.Limits{}, "describes app@1.0.0"},
		{"too big", evil(func(*content.Manifest) {}), limited(func(l *content.Limits) { l.ManifestBytes = 1 << 10 }), "exceeds the limit of 1024"},
	}
	for _, tt := range tests {
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
			if ids := cdntest.StoredChunks(t, filepath.Join(opt.StateDir, "chunks")); len(ids) != 0 {
				t.Errorf("%d chunks fetched for a bad manifest", len(ids))
			}
			if tt.name == "too big" {
				// The signed length is checked before the download.
				for _, r := range f.reqs.Wait(t, before+int(c.Requests()))[before:] {
					if strings.HasPrefix(r.Path, "/targets/") {
						t.Errorf("requested %s, over the manifest limit", r.Path)
					}
				}
			}
		})
	}
}
