package tuf_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/content/tuf"
	"github.com/meshcast/meshcast/content/tuf/tuftest"
)

// TestCachedFile hands out, by origin path, what a refresh and two
// manifest fetches verified (every root from the configured one to the
// newest, one manifest downloaded whole, one built from a patch), byte
// for byte as the origin has it, and nothing else.
func TestCachedFile(t *testing.T) {
	o := appOrigin(t)
	// Root 2 is neither the configured root nor the trusted one: only
	// the refresh that fetched it can keep it.
	o.rotateRoot(t)
	o.rotateRoot(t)
	src := tuftest.NewDiskSource(o.dir)
	state := t.TempDir()
	tr, _ := refresh(t, src, state, o.root)
	for _, r := range []string{"app@1.9.0", "app@1.10.0"} {
		if _, err := tr.Manifest(context.Background(), find(t, tr, r), content.DefaultLimits()); err != nil {
			t.Fatal(err)
		}
	}
	if asked := src.Take(); !strings.HasSuffix(asked[len(asked)-1], ".patch") {
		t.Fatalf("the test premise fails: app@1.10.0's manifest was not patched (asked %q)", asked)
	}
	snapshot, targets := o.metaPaths(t)
	sv, tv := version(t, o.read(t, snapshot), ""), version(t, o.read(t, targets), "")

	t.Run("verified files", func(t *testing.T) {
		for _, p := range []string{
			"metadata/timestamp.json", snapshot, targets, "metadata/1.root.json", "metadata/2.root.json", "metadata/3.root.json",
			o.manifestPath(t, "app@1.9.0"), o.manifestPath(t, "app@1.10.0"),
		} {
			b, err := tuf.CachedFile(state, p)
			if err != nil {
				t.Errorf("CachedFile %s: %v", p, err)
			} else if want := o.read(t, p); !bytes.Equal(b, want) {
				t.Errorf("CachedFile %s: %d bytes, not the origin's %d", p, len(b), len(want))
			}
		}
	})

	t.Run("anything else", func(t *testing.T) {
		for _, p := range []string{
			// Out of the origin, or out of the state directory.
			"metadata/../timestamp.json",
			"../" + filepath.Base(state) + "/timestamp.json",
			"targets/releases/app/../../../root.json",
			"/metadata/timestamp.json",
			"/" + filepath.ToSlash(filepath.Join(state, "timestamp.json")),
			// Not an origin path.
			"", "timestamp.json", "root.json", "metadata", "metadata/", "packs/x.pack", "chunks/x",
			// Roles that are not, or not versioned so.
			"metadata/1.mirror.json", "metadata/1.timestamp.json", "metadata/root.json",
			"metadata/snapshot.json", "metadata/targets.json", "metadata/1.root", "metadata/x.root.json",
			"metadata/0.root.json", "metadata/-1.root.json",
			// Versions other than the ones kept.
			"metadata/4.root.json",
			fmt.Sprintf("metadata/%d.snapshot.json", sv-1), fmt.Sprintf("metadata/%d.snapshot.json", sv+1),
			fmt.Sprintf("metadata/%d.targets.json", tv-1), fmt.Sprintf("metadata/%d.targets.json", tv+1),
			// Targets not fetched, by the wrong hash, without one, patches.
			o.manifestPath(t, "app@1.2.0"),
			strings.Replace(o.manifestPath(t, "app@1.9.0"), o.rel(t, "app@1.9.0").ReleaseID.String(), o.rel(t, "app@1.10.0").ReleaseID.String(), 1),
			"targets/releases/app/1.9.0.json",
			"targets/releases/app/" + o.rel(t, "app@1.9.0").ReleaseID.String()[:8] + ".1.9.0.json",
			o.patchPath(t, "app@1.10.0", "app@1.9.0"),
		} {
			if b, err := tuf.CachedFile(state, p); !errors.Is(err, fs.ErrNotExist) || b != nil {
				t.Errorf("CachedFile %q: %d bytes, %v; want fs.ErrNotExist", p, len(b), err)
			}
		}
	})

	t.Run("empty state", func(t *testing.T) {
		for _, p := range []string{"metadata/timestamp.json", "metadata/1.root.json", snapshot, o.manifestPath(t, "app@1.9.0")} {
			if b, err := tuf.CachedFile(t.TempDir(), p); !errors.Is(err, fs.ErrNotExist) || b != nil {
				t.Errorf("CachedFile %q: %d bytes, %v; want fs.ErrNotExist", p, len(b), err)
			}
		}
	})

	// Last: it damages the state.
	t.Run("damaged target", func(t *testing.T) {
		corruptCached(t, state, o.rel(t, "app@1.9.0").Target)
		p := o.manifestPath(t, "app@1.9.0")
		if b, err := tuf.CachedFile(state, p); !errors.Is(err, fs.ErrNotExist) || b != nil {
			t.Errorf("CachedFile %s, damaged: %d bytes, %v; want fs.ErrNotExist", p, len(b), err)
		}
		if _, err := tuf.CachedFile(state, o.manifestPath(t, "app@1.10.0")); err != nil {
			t.Errorf("CachedFile of another, intact target: %v", err)
		}
	})
}

// CachedFile's doc: "Anything else is fs.ErrNotExist." Versions spelt
// other than the origin spells them ("05", "+5") used to be served.
func TestCachedFileNonCanonicalVersion(t *testing.T) {
	o := appOrigin(t)
	state := t.TempDir()
	refresh(t, tuftest.NewDiskSource(o.dir), state, o.root)
	snapshot, _ := o.metaPaths(t)
	sv := version(t, o.read(t, snapshot), "")
	for _, p := range []string{fmt.Sprintf("metadata/0%d.snapshot.json", sv), fmt.Sprintf("metadata/+%d.snapshot.json", sv), "metadata/01.root.json", "metadata/+1.root.json"} {
		if b, err := tuf.CachedFile(state, p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("CachedFile %q: %d bytes, %v; want fs.ErrNotExist", p, len(b), err)
		}
	}
}
