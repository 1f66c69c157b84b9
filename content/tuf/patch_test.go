package tuf_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/content/tuf"
	"github.com/meshcast/meshcast/content/tuf/tuftest"
)

// TestManifestPatch fetches manifests with earlier ones of the same
// release cached: a patch the signed target lists replaces the manifest
// download when it yields the signed bytes, and anything else falls back
// to the whole manifest, once, with a warning that says why.
func TestManifestPatch(t *testing.T) {
	o := appOrigin(t)
	ctx := context.Background()

	// manifest fetches r's manifest, checks it is the signed one, and
	// returns the paths it asked the source for.
	manifest := func(t *testing.T, src *tuftest.DiskSource, tr *tuf.Trusted, r string) []string {
		t.Helper()
		src.Take()
		m, err := tr.Manifest(ctx, find(t, tr, r), content.DefaultLimits())
		if err != nil {
			t.Fatalf("Manifest %s: %v", r, err)
		}
		if want := o.decoded(t, r); !reflect.DeepEqual(m, want) {
			t.Fatalf("Manifest %s returned %s@%s, not the signed manifest", r, m.Name, m.Version)
		}
		return src.Take()
	}
	// setup refreshes a fresh state and fetches the manifests of held.
	setup := func(t *testing.T, held ...string) (*tuftest.DiskSource, string, *tuf.Trusted, *testLog) {
		src := tuftest.NewDiskSource(o.dir)
		state := t.TempDir()
		tr, log := refresh(t, src, state, o.root)
		for _, r := range held {
			manifest(t, src, tr, r)
		}
		return src, state, tr, log
	}
	// requireCached fails unless CachedFile hands out r's signed manifest.
	requireCached := func(t *testing.T, state, r string) {
		t.Helper()
		b, err := tuf.CachedFile(state, o.manifestPath(t, r))
		if want := o.manifest(t, r); err != nil || !bytes.Equal(b, want) {
			t.Errorf("CachedFile of the manifest of %s: %d bytes, %v; want its %d signed bytes", r, len(b), err, len(want))
		}
	}

	t.Run("fetches the patch", func(t *testing.T) {
		src, state, tr, log := setup(t, "app@1.2.0")
		patch, whole := o.read(t, o.patchPath(t, "app@1.9.0", "app@1.2.0")), o.manifest(t, "app@1.9.0")
		if len(patch) >= len(whole)/2 {
			t.Fatalf("the test premise fails: a %d-byte patch for a %d-byte manifest", len(patch), len(whole))
		}
		if got, want := manifest(t, src, tr, "app@1.9.0"), []string{o.patchPath(t, "app@1.9.0", "app@1.2.0")}; !slices.Equal(got, want) {
			t.Errorf("Manifest asked for %q, want only the patch %q", got, want)
		}
		requireCached(t, state, "app@1.9.0")
		// Cached: nothing more to fetch.
		if got := manifest(t, src, tr, "app@1.9.0"); len(got) != 0 {
			t.Errorf("Manifest of the patched, cached manifest asked for %q, want nothing", got)
		}
		if w := log.warnings(); len(w) != 0 {
			t.Errorf("warnings: %q", w)
		}
	})

	t.Run("patches from the newest base held", func(t *testing.T) {
		src, state, tr, log := setup(t, "app@1.2.0", "app@1.9.0")
		if got, want := manifest(t, src, tr, "app@1.10.0"), []string{o.patchPath(t, "app@1.10.0", "app@1.9.0")}; !slices.Equal(got, want) {
			t.Errorf("Manifest asked for %q, want only the patch from 1.9.0 %q", got, want)
		}
		requireCached(t, state, "app@1.10.0")
		if w := log.warnings(); len(w) != 0 {
			t.Errorf("warnings: %q", w)
		}
	})

	t.Run("a source that serves no patches is not asked for one", func(t *testing.T) {
		disk := tuftest.NewDiskSource(o.dir)
		tr, log := refresh(t, noPatches{disk}, t.TempDir(), o.root)
		manifest(t, disk, tr, "app@1.2.0")
		if got := manifest(t, disk, tr, "app@1.9.0"); !slices.Equal(got, []string{o.manifestPath(t, "app@1.9.0")}) {
			t.Errorf("Manifest asked for %q, want only the whole manifest", got)
		}
		if w := log.warnings(); len(w) != 0 {
			t.Errorf("warnings: %q", w)
		}
	})

	t.Run("no earlier manifest held", func(t *testing.T) {
		// tool@0.1.0 is held: another name is no base.
		src, _, tr, _ := setup(t, "tool@0.1.0")
		if got := manifest(t, src, tr, "app@1.9.0"); !slices.Equal(got, []string{o.manifestPath(t, "app@1.9.0")}) {
			t.Errorf("Manifest asked for %q, want only the whole manifest", got)
		}
	})

	t.Run("damaged base", func(t *testing.T) {
		src, state, tr, log := setup(t, "app@1.2.0")
		corruptCached(t, state, "releases/app/1.2.0.json")
		if got := manifest(t, src, tr, "app@1.9.0"); !slices.Equal(got, []string{o.manifestPath(t, "app@1.9.0")}) {
			t.Errorf("Manifest asked for %q, want only the whole manifest", got)
		}
		if w := log.warnings(); len(w) != 0 {
			t.Errorf("warnings: %q", w)
		}
	})

	// Each unusable patch: asked for once, then the whole manifest once;
	// the result is the signed manifest, cached; one warning says why.
	patch := o.patchPath(t, "app@1.9.0", "app@1.2.0")
	real := o.read(t, patch)
	garbage := make([]byte, len(real))
	rand.NewChaCha8([32]byte{1}).Read(garbage)
	forged := forgedPatch(t, o)
	for _, tt := range []struct {
		name   string
		source func(src *tuftest.DiskSource)
		reason string // in the warning
	}{
		{"patch missing", func(src *tuftest.DiskSource) { src.Fail(patch, tuf.ErrNotFound) }, tuf.ErrNotFound.Error()},
		{"patch fetch fails", func(src *tuftest.DiskSource) { src.Fail(patch, errors.New("connection reset")) }, "connection reset"},
		{"garbage patch", func(src *tuftest.DiskSource) { src.Serve(patch, garbage) }, content.ErrBadPatch.Error()},
		{"patch to other bytes", func(src *tuftest.DiskSource) { src.Serve(patch, forged) }, "does not match the signed hash"},
		{"patch over its signed length", func(src *tuftest.DiskSource) { src.Serve(patch, append(bytes.Clone(real), 0)) }, "length mismatch"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src, state, tr, log := setup(t, "app@1.2.0")
			tt.source(src)
			if got, want := manifest(t, src, tr, "app@1.9.0"), []string{patch, o.manifestPath(t, "app@1.9.0")}; !slices.Equal(got, want) {
				t.Errorf("Manifest asked for %q, want %q", got, want)
			}
			requireCached(t, state, "app@1.9.0")
			w := log.warnings()
			if len(w) != 1 {
				t.Fatalf("warnings: %q; want one", w)
			}
			for _, s := range []string{tt.reason, "app@1.9.0", "app@1.2.0"} {
				if !strings.Contains(w[0], s) {
					t.Errorf("the warning %q does not say %q", w[0], s)
				}
			}
		})
	}
}

// forgedPatch returns a patch from app@1.2.0's manifest that applies
// cleanly and builds bytes of the length signed for app@1.9.0's, but
// others (one character of the id of an index chunk that 1.9.0's edit
// made new changed), and no longer than the patch the target lists: only
// the signed hash tells it from the real one.
func forgedPatch(t *testing.T, o *testOrigin) []byte {
	t.Helper()
	base, signed := o.manifest(t, "app@1.2.0"), o.manifest(t, "app@1.9.0")
	listed := len(o.read(t, o.patchPath(t, "app@1.9.0", "app@1.2.0")))
	old := o.decoded(t, "app@1.2.0").Platforms["linux/amd64"].Index.Chunks
	id := -1
	for _, c := range o.decoded(t, "app@1.9.0").Platforms["linux/amd64"].Index.Chunks {
		if !slices.ContainsFunc(old, func(r content.ChunkRef) bool { return r.ID == c.ID }) {
			id = bytes.Index(signed, []byte(`"id":"`+c.ID.String()+`"`))
			break
		}
	}
	if id < 0 {
		t.Fatal("the test premise fails: app@1.9.0's manifest has no index chunk that app@1.2.0's lacks")
	}
	id += len(`"id":"`)
	// The chunk id is new bytes in any patch, but which character changes
	// decides how well the rest compresses, so try each in turn (the first
	// usually does).
	for i := id; i < len(signed) && signed[i] != '"'; i++ {
		forged := bytes.Clone(signed)
		forged[i] ^= 1
		patch, err := content.MakeManifestPatch(base, forged)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := content.ApplyManifestPatch(base, patch, int64(len(signed))); err != nil || !bytes.Equal(got, forged) {
			t.Fatalf("the test premise fails: the forged patch builds %d bytes, %v", len(got), err)
		}
		if len(patch) <= listed {
			return patch
		}
	}
	t.Fatalf("the test premise fails: every forged patch is longer than the listed one (%d bytes)", listed)
	return nil
}

// noPatches is a source that says it serves no manifest patches, as a
// node's site peers do (mesh/meta.Peers).
type noPatches struct{ *tuftest.DiskSource }

func (noPatches) NoPatches() bool { return true }
