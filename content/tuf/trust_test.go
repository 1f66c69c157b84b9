package tuf_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/content/tuf"
	"github.com/meshcast/meshcast/content/tuf/tuftest"
)

// TestRefreshFromRoot refreshes a fresh state directory from the
// configured root: it asks for the next root (absent), the timestamp,
// the snapshot and targets it names and nothing else, keeps what it
// verified, and lists every signed release by name and then by version
// (1.10.0 after 1.9.0, as semver orders them and text does not).
func TestRefreshFromRoot(t *testing.T) {
	o := appOrigin(t)
	src := tuftest.NewDiskSource(o.dir)
	state := t.TempDir()
	tr, _ := refresh(t, src, state, o.root)

	snapshot, targets := o.metaPaths(t)
	if got, want := src.Take(), []string{"metadata/2.root.json", "metadata/timestamp.json", snapshot, targets}; !slices.Equal(got, want) {
		t.Errorf("refresh asked for %q, want %q", got, want)
	}
	for file, p := range map[string]string{"root.json": "metadata/1.root.json", "timestamp.json": "metadata/timestamp.json", "snapshot.json": snapshot, "targets.json": targets} {
		if got := readTree(t, state)[file]; got != string(o.read(t, p)) {
			t.Errorf("the state's %s is not the origin's %s", file, p)
		}
	}

	var got []string
	for _, r := range tr.Releases() {
		got = append(got, r.String())
		res, n := o.rel(t, r.String()), len(o.manifest(t, r.String()))
		if r.ID != res.ReleaseID || r.Path != res.Target || r.Length != int64(n) {
			t.Errorf("%s is listed with id %s, path %s, length %d; want %s, %s, %d",
				r, r.ID.Short(), r.Path, r.Length, res.ReleaseID.Short(), res.Target, n)
		}
	}
	if want := []string{"app@1.2.0", "app@1.9.0", "app@1.10.0", "tool@0.1.0"}; !slices.Equal(got, want) {
		t.Errorf("Releases lists %q, want %q", got, want)
	}

	// Releases hands out a copy.
	rs := tr.Releases()
	rs[0].Version = "9.9.9"
	if again := tr.Releases(); again[0].Version != "1.2.0" {
		t.Errorf("editing what Releases returned changed the list: %s", again[0])
	}
}

// TestFind looks releases up in the signed list: an empty version is the
// highest, an id must be the signed one, and whatever is not signed is
// ErrNoRelease naming the release asked for.
func TestFind(t *testing.T) {
	o := appOrigin(t)
	tr, _ := refresh(t, tuftest.NewDiskSource(o.dir), t.TempDir(), o.root)
	id := func(r string) content.ReleaseID { return o.rel(t, r).ReleaseID }

	found := []struct {
		name string
		want content.Release
		is   string // the release found
	}{
		{"empty version is the highest", content.Release{Name: "app"}, "app@1.10.0"},
		{"version", content.Release{Name: "app", Version: "1.9.0"}, "app@1.9.0"},
		{"version with its signed id", content.Release{Name: "app", Version: "1.2.0", ID: id("app@1.2.0")}, "app@1.2.0"},
		{"the only version of another name", content.Release{Name: "tool"}, "tool@0.1.0"},
	}
	for _, tt := range found {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tr.Find(tt.want)
			if err != nil {
				t.Fatalf("Find %s: %v", tt.want, err)
			}
			res := o.rel(t, tt.is)
			if got.String() != tt.is || got.ID != res.ReleaseID || got.Path != res.Target {
				t.Errorf("Find %s = %s %s at %s, want %s %s at %s", tt.want, got, got.ID.Short(), got.Path, tt.is, res.ReleaseID.Short(), res.Target)
			}
		})
	}

	refused := []struct {
		name string
		want content.Release
		says []string // in the error
	}{
		{"id that is not the signed one", content.Release{Name: "app", Version: "1.9.0", ID: id("app@1.2.0")},
			[]string{"app@1.9.0", id("app@1.9.0").Short(), id("app@1.2.0").Short()}},
		{"unsigned version", content.Release{Name: "app", Version: "2.0.0"}, []string{"app@2.0.0"}},
		{"unknown name", content.Release{Name: "nope"}, []string{"nope"}},
		{"unknown name with a version", content.Release{Name: "nope", Version: "1.2.0"}, []string{"nope@1.2.0"}},
		{"prefix of a name", content.Release{Name: "ap"}, []string{"ap"}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tr.Find(tt.want)
			if !errors.Is(err, tuf.ErrNoRelease) {
				t.Fatalf("Find %s = %s, %v; want ErrNoRelease", tt.want, got, err)
			}
			for _, s := range tt.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Find %s: %q does not say %q", tt.want, err, s)
				}
			}
		})
	}
}

// TestManifest fetches manifests through the signed targets: the signed
// bytes decode to the manifest, are fetched once and then come from the
// cache; bytes other than the signed ones, and a manifest over the limit,
// are refused, the latter without asking the source.
func TestManifest(t *testing.T) {
	o := appOrigin(t)
	ctx := context.Background()
	// setup refreshes a fresh state from its own source.
	setup := func(t *testing.T) (*tuftest.DiskSource, string, *tuf.Trusted) {
		src := tuftest.NewDiskSource(o.dir)
		state := t.TempDir()
		tr, _ := refresh(t, src, state, o.root)
		src.Take()
		return src, state, tr
	}
	signed, want, path := o.manifest(t, "app@1.9.0"), o.decoded(t, "app@1.9.0"), o.manifestPath(t, "app@1.9.0")

	t.Run("decodes the signed manifest", func(t *testing.T) {
		src, _, tr := setup(t)
		target := find(t, tr, "app@1.9.0")
		m, err := tr.Manifest(ctx, target, content.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(m, want) {
			t.Errorf("Manifest returned %s@%s, not the signed manifest", m.Name, m.Version)
		}
		if got := src.Take(); !slices.Equal(got, []string{path}) {
			t.Errorf("Manifest asked for %q, want only %s", got, path)
		}
		m, err = tr.Manifest(ctx, target, content.DefaultLimits())
		if err != nil || !reflect.DeepEqual(m, want) {
			t.Errorf("Manifest again: %v", err)
		}
		if got := src.Take(); len(got) != 0 {
			t.Errorf("Manifest of a cached manifest asked for %q, want nothing", got)
		}
	})

	flipped := bytes.Clone(signed)
	flipped[len(flipped)/2] ^= 1
	for _, tt := range []struct {
		name  string
		bytes []byte
		err   error // matched with errors.Is
	}{
		{"one byte changed", flipped, &metadata.ErrLengthOrHashMismatch{}},
		{"truncated", signed[:len(signed)-1], &metadata.ErrLengthOrHashMismatch{}},
		{"empty", nil, &metadata.ErrLengthOrHashMismatch{}},
		// The source is asked for at most the signed length.
		{"longer", append(bytes.Clone(signed), ' '), &metadata.ErrDownloadLengthMismatch{}},
	} {
		t.Run("refuses bytes "+tt.name, func(t *testing.T) {
			src, state, tr := setup(t)
			target := find(t, tr, "app@1.9.0")
			src.Serve(path, tt.bytes)
			m, err := tr.Manifest(ctx, target, content.DefaultLimits())
			if !errors.Is(err, tt.err) || m != nil {
				t.Fatalf("Manifest of other bytes: %v; want %T", err, tt.err)
			}
			if !strings.Contains(err.Error(), "app@1.9.0") {
				t.Errorf("%q does not name the release", err)
			}
			if _, err := tuf.CachedFile(state, path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the refused manifest is cached: %v", err)
			}
			// The honest origin's manifest is still accepted.
			src.Restore(path)
			if m, err := tr.Manifest(ctx, target, content.DefaultLimits()); err != nil || !reflect.DeepEqual(m, want) {
				t.Errorf("Manifest from the honest origin after a refusal: %v", err)
			}
		})
	}

	// The limit bounds a schema 2 manifest's index stream too: at the
	// limit exactly, tool@0.1.0, whose index is no larger than its
	// manifest, is fetched and decoded, while app@1.9.0's index is over.
	t.Run("over the limit, before fetching it", func(t *testing.T) {
		const r = "tool@0.1.0"
		if n, x := len(o.manifest(t, r)), o.decoded(t, r).Platforms["linux/amd64"].Index; x.Size > int64(n) {
			t.Fatalf("the test premise fails: the index of %s is %d bytes, more than its %d-byte manifest", r, x.Size, n)
		}
		src, _, tr := setup(t)
		target := find(t, tr, r)
		l := content.DefaultLimits()
		l.ManifestBytes = target.Length - 1
		_, err := tr.Manifest(ctx, target, l)
		if !errors.Is(err, content.ErrBadManifest) {
			t.Fatalf("Manifest over the limit: %v, want ErrBadManifest", err)
		}
		for _, s := range []string{r, fmt.Sprintf("exceeds the limit of %d", l.ManifestBytes)} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%q does not say %q", err, s)
			}
		}
		if got := src.Take(); len(got) != 0 {
			t.Errorf("Manifest over the limit asked for %q, want nothing", got)
		}
		// At the limit exactly, it is fetched.
		l.ManifestBytes = target.Length
		if m, err := tr.Manifest(ctx, target, l); err != nil || !reflect.DeepEqual(m, o.decoded(t, r)) {
			t.Errorf("Manifest at the limit: %v", err)
		}
		if got, want := src.Take(), []string{o.manifestPath(t, r)}; !slices.Equal(got, want) {
			t.Errorf("Manifest at the limit asked for %q, want %q", got, want)
		}
		// At its own length, app@1.9.0's manifest is within the limit and
		// its index is not.
		l.ManifestBytes = int64(len(signed))
		size := want.Platforms["linux/amd64"].Index.Size
		if size <= l.ManifestBytes {
			t.Fatalf("the test premise fails: app@1.9.0 has a %d-byte index, within its manifest's %d bytes", size, len(signed))
		}
		_, err = tr.Manifest(ctx, find(t, tr, "app@1.9.0"), l)
		if !errors.Is(err, content.ErrBadManifest) || !strings.Contains(err.Error(), fmt.Sprintf("index: bad manifest: %d bytes out of range 0..%d", size, l.ManifestBytes)) {
			t.Errorf("Manifest of app@1.9.0 with its index over the limit: %v, want ErrBadManifest saying so", err)
		}
	})
}

// TestManifestNamesAnotherRelease signs, with the right keys, a manifest
// under a target path that names another release than the manifest
// does: the bytes are the signed ones, and still the manifest is refused.
func TestManifestNamesAnotherRelease(t *testing.T) {
	o := newOrigin(t)
	o.publish(t, "app", "1.0.0", appFiles(nil))
	good := o.manifest(t, "app@1.0.0")
	o.addTarget(t, content.ReleaseTarget("evil", "1.0.0"), good)
	o.addTarget(t, content.ReleaseTarget("app", "3.0.0"), good)
	src := tuftest.NewDiskSource(o.dir)
	tr, _ := refresh(t, src, t.TempDir(), o.root)
	for _, release := range []string{"evil@1.0.0", "app@3.0.0"} {
		t.Run(release, func(t *testing.T) {
			target := find(t, tr, release)
			if target.ID != content.ManifestID(good) {
				t.Fatalf("the test premise fails: %s is signed with id %s, not app@1.0.0's manifest", release, target.ID.Short())
			}
			m, err := tr.Manifest(context.Background(), target, content.DefaultLimits())
			if !errors.Is(err, content.ErrBadManifest) || m != nil {
				t.Fatalf("Manifest of %s: %v; want ErrBadManifest", release, err)
			}
			for _, s := range []string{release, "describes app@1.0.0"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%q does not say %q", err, s)
				}
			}
		})
	}
	if _, err := tr.Manifest(context.Background(), find(t, tr, "app@1.0.0"), content.DefaultLimits()); err != nil {
		t.Errorf("Manifest of the release the manifest names: %v", err)
	}
}

// TestRefreshRefusesRollback: a state directory that trusts timestamp
// version N refuses an origin that serves version N-1, validly signed,
// and its files stay as they were; a fresh state accepts that timestamp,
// so it is the state that refuses it.
func TestRefreshRefusesRollback(t *testing.T) {
	o := appOrigin(t)
	state := t.TempDir()
	refresh(t, tuftest.NewDiskSource(o.dir), state, o.root)
	current, old := o.timestamps[len(o.timestamps)-1], o.timestamps[len(o.timestamps)-2]
	if n := version(t, current, ""); version(t, old, "") != n-1 {
		t.Fatalf("the test premise fails: the origin's timestamps are versions %d and %d, want N-1 and N", version(t, old, ""), n)
	}
	before := readTree(t, state)

	src := tuftest.NewDiskSource(o.dir)
	src.Serve("metadata/timestamp.json", old)
	log, _ := newTestLog(t)
	_, err := tuf.Refresh(context.Background(), src, "rolled-back origin", state, o.root, log)
	if !errors.Is(err, &metadata.ErrBadVersionNumber{}) {
		t.Fatalf("refresh from a rolled-back timestamp: %v, want ErrBadVersionNumber", err)
	}
	if !strings.Contains(err.Error(), "rolled-back origin") {
		t.Errorf("%q does not name the source", err)
	}
	requireSameTree(t, before, readTree(t, state))

	// The old timestamp is validly signed: a state that never saw a newer
	// one takes it, and lists what was signed then.
	tr, _ := refresh(t, src, t.TempDir(), o.root)
	if got := len(tr.Releases()); got != 3 {
		t.Errorf("a fresh state refreshed from the old timestamp lists %d releases, want the 3 signed then", got)
	}
	// And the state that refused it still refreshes from the honest origin.
	if tr, _ := refresh(t, tuftest.NewDiskSource(o.dir), state, o.root); len(tr.Releases()) != 4 {
		t.Errorf("after the refusal, the state lists %d releases, want 4", len(tr.Releases()))
	}
}

// TestRootVersions: a refresh looks for the root after the one it trusts;
// not finding it (ErrNotFound from the source) means there is none newer,
// any other failure fails the refresh, and a newer root found is trusted
// from then on.
func TestRootVersions(t *testing.T) {
	o := appOrigin(t)
	t.Run("no newer root", func(t *testing.T) {
		src := tuftest.NewDiskSource(o.dir)
		src.Fail("metadata/2.root.json", fmt.Errorf("no peer has it: %w", tuf.ErrNotFound))
		tr, _ := refresh(t, src, t.TempDir(), o.root)
		if asked := src.Take(); len(asked) == 0 || asked[0] != "metadata/2.root.json" {
			t.Errorf("refresh asked for %q, want metadata/2.root.json first", asked)
		}
		if len(tr.Releases()) != 4 {
			t.Errorf("refresh lists %d releases, want 4", len(tr.Releases()))
		}
	})
	t.Run("root probe fails", func(t *testing.T) {
		src := tuftest.NewDiskSource(o.dir)
		broken := errors.New("connection reset")
		src.Fail("metadata/2.root.json", broken)
		state := t.TempDir()
		log, _ := newTestLog(t)
		_, err := tuf.Refresh(context.Background(), src, "broken origin", state, o.root, log)
		if !errors.Is(err, broken) || !strings.Contains(err.Error(), "broken origin") {
			t.Fatalf("refresh with a failing root probe: %v; want %v, naming the source", err, broken)
		}
		if asked := src.Take(); !slices.Equal(asked, []string{"metadata/2.root.json"}) {
			t.Errorf("refresh asked for %q after the root probe failed, want nothing more", asked)
		}
		if _, ok := readTree(t, state)["timestamp.json"]; ok {
			t.Error("the failed refresh kept a timestamp")
		}
	})
	t.Run("newer root", func(t *testing.T) {
		o := appOrigin(t)
		root2 := o.rotateRoot(t)
		src := tuftest.NewDiskSource(o.dir)
		state := t.TempDir()
		refresh(t, src, state, o.root)
		if asked := src.Take(); len(asked) < 2 || !slices.Equal(asked[:2], []string{"metadata/2.root.json", "metadata/3.root.json"}) {
			t.Errorf("refresh asked for %q, want metadata/2.root.json, then metadata/3.root.json", asked)
		}
		if got := readTree(t, state)["root.json"]; got != string(root2) {
			t.Error("the state does not trust root version 2")
		}
		// The next refresh, configured with root 1 still, starts from the
		// kept root 2.
		refresh(t, src, state, o.root)
		if asked := src.Take(); len(asked) == 0 || asked[0] != "metadata/3.root.json" {
			t.Errorf("the next refresh asked for %q, want metadata/3.root.json first", asked)
		}
	})
}

// A Target that did not come from Find or Releases (its go-tuf target
// files unset) used to be dereferenced as nil: Manifest now looks the
// release up in what it trusts, so a hand-made target naming a signed
// release gets its manifest, and one naming an unsigned id an error.
func TestManifestOfHandMadeTarget(t *testing.T) {
	o := appOrigin(t)
	tr, _ := refresh(t, tuftest.NewDiskSource(o.dir), t.TempDir(), o.root)
	res := o.rel(t, "app@1.2.0")
	target := tuf.Target{
		Release: content.Release{Name: "app", Version: "1.2.0", ID: res.ReleaseID},
		Path:    res.Target,
		Length:  int64(len(o.manifest(t, "app@1.2.0"))),
	}
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("Manifest of a hand-made target panicked: %v", p)
		}
	}()
	m, err := tr.Manifest(context.Background(), target, content.DefaultLimits())
	if err != nil || m.Name != "app" || m.Version != "1.2.0" {
		t.Fatalf("Manifest of a hand-made target of a signed release: %v", err)
	}
	target.ID = content.ReleaseID{0xee}
	if _, err := tr.Manifest(context.Background(), target, content.DefaultLimits()); !errors.Is(err, tuf.ErrNoRelease) {
		t.Fatalf("Manifest of a hand-made target with an unsigned id: %v, want ErrNoRelease", err)
	}
}

// Find's doc: "A release with an id must have that id in the signed
// metadata." With no version, the id used to be ignored and the highest
// version returned whatever its id.
func TestFindIDWithoutVersion(t *testing.T) {
	o := appOrigin(t)
	tr, _ := refresh(t, tuftest.NewDiskSource(o.dir), t.TempDir(), o.root)
	want := content.Release{Name: "app", ID: o.rel(t, "app@1.2.0").ReleaseID}
	got, err := tr.Find(want)
	if err != nil || got.ID != want.ID || got.Version != "1.2.0" {
		t.Errorf("Find %s with id %s = %s with id %s, %v; want 1.2.0, whose id it is", want, want.ID.Short(), got, got.ID.Short(), err)
	}
	want.ID = content.ReleaseID{0xee}
	if _, err := tr.Find(want); !errors.Is(err, tuf.ErrNoRelease) {
		t.Errorf("Find with an id nothing is signed with: %v, want ErrNoRelease", err)
	}
}
