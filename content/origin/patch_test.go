package origin_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/content/origin"
)

// signedTargets reads the targets metadata that the origin's timestamp
// and snapshot name, without checking the target files (a test may have
// removed some).
func signedTargets(t *testing.T, o *testOrigin) *metadata.Metadata[metadata.TargetsType] {
	t.Helper()
	ts, err := metadata.Timestamp().FromFile(o.metaFile("timestamp.json"))
	if err != nil {
		t.Fatal(err)
	}
	sn, err := metadata.Snapshot().FromFile(o.metaFile(fmt.Sprintf("%d.snapshot.json", ts.Signed.Meta["snapshot.json"].Version)))
	if err != nil {
		t.Fatal(err)
	}
	tg, err := metadata.Targets().FromFile(o.metaFile(fmt.Sprintf("%d.targets.json", sn.Signed.Meta["targets.json"].Version)))
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

// targetCustom decodes the custom field of a signed release target.
func targetCustom(t *testing.T, tg *metadata.Metadata[metadata.TargetsType], res *origin.PublishResult) content.TargetInfo {
	t.Helper()
	tf := tg.Signed.Targets[res.Target]
	if tf == nil {
		t.Fatalf("%s is not a signed target", res.Target)
	}
	if tf.Custom == nil {
		t.Fatalf("%s has no custom field", res.Target)
	}
	var c content.TargetCustom
	if err := json.Unmarshal(*tf.Custom, &c); err != nil {
		t.Fatalf("%s custom %s: %v", res.Target, *tf.Custom, err)
	}
	if c.Meshcast.Name+"@"+c.Meshcast.Version != res.Release {
		t.Errorf("%s custom names %s@%s, want %s", res.Target, c.Meshcast.Name, c.Meshcast.Version, res.Release)
	}
	return c.Meshcast
}

// patchFiles returns the manifest patches on the origin, as slash paths
// below targets/.
func patchFiles(t *testing.T, o *testOrigin) []string {
	t.Helper()
	root := filepath.Join(o.dir, "targets")
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".patch") {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// releaseLine publishes versions of one release, each a small change of
// the one before, and checks the manifest patches each publish wrote.
type releaseLine struct {
	o    *testOrigin
	name string
	tree string
	rels map[string]*origin.PublishResult // by version
	// wantPatches are the patch files every publish so far should have
	// written, below targets/.
	wantPatches []string
}

func newReleaseLine(t *testing.T, o *testOrigin, name string, seed uint64) *releaseLine {
	tree := filepath.Join(t.TempDir(), "tree")
	writeTree(t, tree, seed)
	return &releaseLine{o: o, name: name, tree: tree, rels: map[string]*origin.PublishResult{}}
}

// publish changes one page of the tree and publishes it as version; the
// signed target must list patches from exactly the versions in from, and
// each must turn its base's manifest into the new one.
func (l *releaseLine) publish(t *testing.T, version string, from ...string) *origin.PublishResult {
	t.Helper()
	page := filepath.Join(l.tree, "docs", fmt.Sprintf("page%d.txt", len(l.rels)%4))
	if err := os.WriteFile(page, fmt.Appendf(nil, "%s@%s rewrote this page\n", l.name, version), 0o644); err != nil {
		t.Fatal(err)
	}
	res := l.o.mustPublish(t, l.name, version, map[string]string{"linux/amd64": l.tree})
	l.rels[version] = res
	for _, v := range from {
		l.wantPatches = append(l.wantPatches, content.ManifestPatchPath(res.Target, res.ReleaseID, l.rels[v].ReleaseID))
	}
	slices.Sort(l.wantPatches)
	l.check(t, signedTargets(t, l.o), version, from...)
	return res
}

// check checks the patches the signed target of version lists against
// from, and against the files on the origin.
func (l *releaseLine) check(t *testing.T, tg *metadata.Metadata[metadata.TargetsType], version string, from ...string) {
	t.Helper()
	res := l.rels[version]
	info := targetCustom(t, tg, res)
	want := map[string]string{} // base id → base version
	for _, v := range from {
		want[l.rels[v].ReleaseID.String()] = v
	}
	if !slices.Equal(slices.Sorted(maps.Keys(info.Patches)), slices.Sorted(maps.Keys(want))) {
		var got []string
		for id := range info.Patches {
			got = append(got, l.versionOf(id))
		}
		slices.Sort(got)
		t.Fatalf("%s lists patches from %q, want from %q", res.Release, got, from)
	}
	target, _ := l.o.manifest(t, res)
	for id, n := range info.Patches {
		var baseID content.ReleaseID
		if err := baseID.UnmarshalText([]byte(id)); err != nil {
			t.Fatal(err)
		}
		base, _ := l.o.manifest(t, l.rels[want[id]])
		patch := l.o.readFile(t, "targets/"+content.ManifestPatchPath(res.Target, res.ReleaseID, baseID))
		if int64(len(patch)) != n {
			t.Errorf("%s from %s: the target lists %d bytes, the patch file has %d", res.Release, want[id], n, len(patch))
		}
		if len(patch) > len(target)/2 {
			t.Errorf("%s from %s: a %d-byte patch for a %d-byte manifest was kept", res.Release, want[id], len(patch), len(target))
		}
		got, err := content.ApplyManifestPatch(base, patch, int64(len(target)))
		if err != nil || !bytes.Equal(got, target) {
			t.Errorf("%s from %s: the patch gives %d bytes (%v), not the %d-byte manifest", res.Release, want[id], len(got), err, len(target))
		}
	}
}

func (l *releaseLine) versionOf(id string) string {
	for v, r := range l.rels {
		if r.ReleaseID.String() == id {
			return v
		}
	}
	return "unknown " + id
}

// TestPublishManifestPatches publishes a line of versions, out of order
// too, next to another release: each publish patches from the three
// highest lower versions of its own release only.
func TestPublishManifestPatches(t *testing.T) {
	t.Parallel()
	o := newTestOrigin(t)
	app := newReleaseLine(t, o, "app", 1)
	app.publish(t, "1.0.0")
	app.publish(t, "1.1.0", "1.0.0")
	app.publish(t, "1.2.0", "1.1.0", "1.0.0")
	app.publish(t, "1.3.0", "1.2.0", "1.1.0", "1.0.0")
	app.publish(t, "2.0.0", "1.3.0", "1.2.0", "1.1.0")
	if got := patchFiles(t, o); !slices.Equal(got, app.wantPatches) {
		t.Fatalf("patch files on the origin:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(app.wantPatches, "\n"))
	}

	// Another release, with versions below and above app's, patches
	// only from its own versions.
	other := newReleaseLine(t, o, "other", 2)
	other.publish(t, "1.5.0")
	other.publish(t, "3.0.0", "1.5.0")

	// Below the highest: from the versions under it, never from above.
	app.publish(t, "1.2.5", "1.2.0", "1.1.0", "1.0.0")
	app.publish(t, "0.9.0")
	app.publish(t, "1.0.1", "1.0.0", "0.9.0")

	// Every target still lists what its publish wrote, and the origin
	// holds exactly those patches.
	tg := verifyWithGoTUF(t, o, time.Now())
	for _, c := range []struct {
		l       *releaseLine
		version string
		from    []string
	}{
		{app, "1.0.0", nil},
		{app, "1.1.0", []string{"1.0.0"}},
		{app, "1.2.0", []string{"1.1.0", "1.0.0"}},
		{app, "1.3.0", []string{"1.2.0", "1.1.0", "1.0.0"}},
		{app, "2.0.0", []string{"1.3.0", "1.2.0", "1.1.0"}},
		{app, "1.2.5", []string{"1.2.0", "1.1.0", "1.0.0"}},
		{app, "0.9.0", nil},
		{app, "1.0.1", []string{"1.0.0", "0.9.0"}},
		{other, "1.5.0", nil},
		{other, "3.0.0", []string{"1.5.0"}},
	} {
		c.l.check(t, tg, c.version, c.from...)
	}
	want := slices.Sorted(slices.Values(append(slices.Clone(app.wantPatches), other.wantPatches...)))
	if got := patchFiles(t, o); !slices.Equal(got, want) {
		t.Fatalf("patch files on the origin:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A target without patches has no "patches" key at all.
	if tf := tg.Signed.Targets[app.rels["1.0.0"].Target]; strings.Contains(string(*tf.Custom), "patches") {
		t.Errorf("app@1.0.0 custom %s mentions patches", *tf.Custom)
	}
}

// TestPublishManifestPatchSkipsMissingBase removes one earlier manifest
// from the origin and damages another: the publish succeeds and patches
// only from the intact one of the three highest lower versions.
func TestPublishManifestPatchSkipsMissingBase(t *testing.T) {
	t.Parallel()
	o := newTestOrigin(t)
	app := newReleaseLine(t, o, "app", 1)
	app.publish(t, "1.0.0")
	app.publish(t, "1.1.0", "1.0.0")
	app.publish(t, "1.2.0", "1.1.0", "1.0.0")
	app.publish(t, "1.3.0", "1.2.0", "1.1.0", "1.0.0")

	manifestFile := func(v string) string {
		res := app.rels[v]
		dir, base := filepath.Split(res.Target)
		return filepath.Join(o.dir, "targets", dir, res.ReleaseID.String()+"."+base)
	}
	if err := os.Remove(manifestFile("1.3.0")); err != nil {
		t.Fatal(err)
	}
	damaged, err := os.ReadFile(manifestFile("1.2.0"))
	if err != nil {
		t.Fatal(err)
	}
	damaged[len(damaged)/2] ^= 1
	if err := os.WriteFile(manifestFile("1.2.0"), damaged, 0o644); err != nil {
		t.Fatal(err)
	}

	app.publish(t, "2.0.0", "1.1.0")
	if got := patchFiles(t, o); !slices.Equal(got, app.wantPatches) {
		t.Fatalf("patch files on the origin:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(app.wantPatches, "\n"))
	}
}
