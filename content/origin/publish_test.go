package origin_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/content/origin"
)

// checkPublished checks a publish result against what is on the origin:
// the manifest, the pack it wrote and that pack's index.
func checkPublished(t *testing.T, o *testOrigin, res *origin.PublishResult) *content.Manifest {
	t.Helper()
	b, m := o.manifest(t, res)
	if content.ManifestID(b) != res.ReleaseID {
		t.Errorf("manifest hashes to %s, result says %s", content.ManifestID(b), res.ReleaseID)
	}
	if res.Release != m.Name+"@"+m.Version || res.Target != content.ReleaseTarget(m.Name, m.Version) {
		t.Errorf("result names %s at %s for manifest %s@%s", res.Release, res.Target, m.Name, m.Version)
	}
	distinct := map[content.ChunkID]content.ChunkRef{}
	var input int64
	for p, a := range m.Platforms {
		for _, c := range a.Chunks() {
			if prev, ok := distinct[c.ID]; ok && prev != c {
				t.Errorf("%s describes chunk %s as %+v, another platform as %+v", p, c.ID.Short(), c, prev)
			}
			distinct[c.ID] = c
		}
		for _, f := range a.Files {
			input += f.Size
		}
	}
	if res.Chunks != len(distinct) || res.InputBytes != input {
		t.Errorf("result: %d chunks, %d input bytes; manifest: %d distinct chunks, %d bytes of files", res.Chunks, res.InputBytes, len(distinct), input)
	}
	if res.Pack == "" && res.IndexPack == "" {
		if res.NewChunks != 0 || res.NewBytes != 0 {
			t.Errorf("no pack but %d new chunks, %d new bytes", res.NewChunks, res.NewBytes)
		}
		return m
	}
	var newChunks int
	var newBytes int64
	for _, name := range []string{res.Pack, res.IndexPack} {
		if name != "" {
			n, size := checkPack(t, o, m, name, distinct)
			newChunks, newBytes = newChunks+n, newBytes+size
		}
	}
	if res.NewChunks != newChunks || res.NewBytes != newBytes {
		t.Errorf("result: %d new chunks, %d new bytes; packs: %d chunks, %d bytes", res.NewChunks, res.NewBytes, newChunks, newBytes)
	}
	return m
}

// checkPack checks a pack a publish wrote against its index and the
// manifest's chunk references, and returns its chunks and bytes.
func checkPack(t *testing.T, o *testOrigin, m *content.Manifest, name string, distinct map[content.ChunkID]content.ChunkRef) (int, int64) {
	t.Helper()
	pack := o.readFile(t, "packs/"+name+".pack")
	if sum := sha256.Sum256(pack); content.Digest(sum).String() != name {
		t.Errorf("pack %s hashes to %x", name, sum)
	}
	idx, err := content.DecodePackIndex(o.readFile(t, "packs/"+name+".idx"))
	if err != nil {
		t.Fatal(err)
	}
	if idx.Pack.String() != name || idx.Size != int64(len(pack)) {
		t.Errorf("index describes pack %s of %d bytes, want %s of %d", idx.Pack, idx.Size, name, len(pack))
	}
	if !slices.Contains(packsOf(m), idx.Pack) {
		t.Fatalf("manifest does not refer to its new pack %s", name)
	}
	indexed := map[content.ChunkID]bool{}
	for _, e := range idx.Entries {
		indexed[e.ID] = true
		ref, ok := distinct[e.ID]
		want := content.ChunkRef{ID: e.ID, Size: e.Size, Stored: e.Stored, Enc: e.Enc, Pack: idx.Pack, Offset: e.Offset}
		if !ok || ref != want {
			t.Errorf("index entry %+v, manifest has %+v", want, ref)
		}
		if err := content.VerifyChunk(e.ID, e.Size, e.Enc, pack[e.Offset:e.Offset+int64(e.Stored)]); err != nil {
			t.Errorf("pack body: %v", err)
		}
	}
	for _, ref := range distinct {
		if ref.Pack == idx.Pack && !indexed[ref.ID] {
			t.Errorf("manifest places chunk %s in the new pack, whose index lacks it", ref.ID.Short())
		}
	}
	return len(idx.Entries), int64(len(pack))
}

// packsOf returns the distinct packs m's chunks live in, by platform in
// sorted order, then file order.
func packsOf(m *content.Manifest) []content.Digest {
	var packs []content.Digest
	for _, p := range slices.Sorted(maps.Keys(m.Platforms)) {
		for _, c := range m.Platforms[p].Chunks() {
			if !slices.Contains(packs, c.Pack) {
				packs = append(packs, c.Pack)
			}
		}
	}
	return packs
}

func TestPublish(t *testing.T) {
	t.Parallel()
	o := newTestOrigin(t)
	tree := filepath.Join(t.TempDir(), "tree")
	writeTree(t, tree, 1)
	res := o.mustPublish(t, "app", "1.0.0", map[string]string{"linux/amd64": tree})
	m := checkPublished(t, o, res)
	if res.Unchanged || res.NewChunks != res.Chunks || res.NewChunks == 0 {
		t.Errorf("first publish: unchanged %v, %d of %d chunks new; want all new", res.Unchanged, res.NewChunks, res.Chunks)
	}
	if packs := packsOf(m); len(packs) != 2 || packs[0].String() != res.IndexPack || packs[1].String() != res.Pack {
		t.Errorf("manifest packs %v, want the index's %s and the files' %s", packs, res.IndexPack, res.Pack)
	}
	a := m.Platforms["linux/amd64"]
	files := map[string]content.File{}
	for _, f := range a.Files {
		files[f.Path] = f
	}
	for _, want := range []struct {
		path string
		typ  content.FileType
		mode content.Mode
	}{
		{"bin", content.TypeDir, 0o755},
		{"bin/app", content.TypeFile, 0o755},
		{"data/empty", content.TypeFile, 0o644},
		{"x/y/z/deep.txt", content.TypeFile, 0o600},
		{"private", content.TypeDir, 0o700},
		{"readme", content.TypeSymlink, 0},
	} {
		if f, ok := files[want.path]; !ok || f.Type != want.typ || f.Mode != want.mode {
			t.Errorf("%s: %+v, want a %s with mode %04o", want.path, f, want.typ, want.mode)
		}
	}
	if f := files["readme"]; f.Target != "docs/page0.txt" {
		t.Errorf("readme links to %q", f.Target)
	}
	if f := files["data/empty"]; f.Size != 0 || len(f.Chunks) != 0 || f.SHA256 != content.Digest(sha256.Sum256(nil)) {
		t.Errorf("empty file: %+v", f)
	}
	for _, f := range a.Files {
		if f.Type != content.TypeFile {
			continue
		}
		b, err := os.ReadFile(filepath.Join(tree, f.Path))
		if err != nil {
			t.Fatal(err)
		}
		if f.Size != int64(len(b)) || f.SHA256 != content.Digest(sha256.Sum256(b)) {
			t.Errorf("%s: size %d sha %s, want %d %x", f.Path, f.Size, f.SHA256.Short(), len(b), sha256.Sum256(b))
		}
	}
	// Both encodings occur: the code compresses, the random blob does not.
	encs := map[content.Encoding]int{}
	for _, c := range a.Chunks() {
		encs[c.Enc]++
	}
	if encs[content.EncodingRaw] == 0 || encs[content.EncodingZstd] == 0 {
		t.Errorf("chunk encodings %v, want both raw and zstd", encs)
	}
}

// TestPublishInputKinds publishes one tree as a directory and as three
// kinds of tar, and a single file, in one release.
func TestPublishInputKinds(t *testing.T) {
	t.Parallel()
	o := newTestOrigin(t)
	work := t.TempDir()
	tree := filepath.Join(work, "tree")
	writeTree(t, tree, 1)
	for _, name := range []string{"t.tar", "t.tar.gz", "t.tar.zst"} {
		tarTree(t, tree, filepath.Join(work, name))
	}
	res := o.mustPublish(t, "app", "1.0.0", map[string]string{
		"linux/amd64":   tree,
		"linux/arm64":   filepath.Join(work, "t.tar"),
		"linux/arm/v7":  filepath.Join(work, "t.tar.gz"),
		"linux/riscv64": filepath.Join(work, "t.tar.zst"),
		"linux/386":     filepath.Join(tree, "bin", "app"),
	})
	m := checkPublished(t, o, res)
	dir := m.Platforms["linux/amd64"]
	for _, p := range []string{"linux/arm64", "linux/arm/v7", "linux/riscv64"} {
		if !reflect.DeepEqual(m.Platforms[p], dir) {
			t.Errorf("%s (a tar of the tree) differs from the directory's artifact", p)
		}
	}
	single := m.Platforms["linux/386"]
	app, err := os.ReadFile(filepath.Join(tree, "bin", "app"))
	if err != nil {
		t.Fatal(err)
	}
	if single.Kind != content.KindFile || len(single.Files) != 1 {
		t.Fatalf("single file artifact: kind %s with %d files", single.Kind, len(single.Files))
	}
	if f := single.Files[0]; f.Path != "app" || f.Type != content.TypeFile || f.Mode != 0o755 || f.Size != int64(len(app)) || f.SHA256 != content.Digest(sha256.Sum256(app)) {
		t.Errorf("single file: %+v", f)
	}
	// The same bytes are the same chunks: nothing beyond the tree's and
	// the single file's index.
	if want := len(dir.Chunks()) + len(single.Index.Chunks); res.NewChunks != want {
		t.Errorf("%d new chunks, want the tree's %d and the single file's index's %d", res.NewChunks, len(dir.Chunks()), len(single.Index.Chunks))
	}
}

func TestPublishTarHardLink(t *testing.T) {
	t.Parallel()
	o := newTestOrigin(t)
	archive := filepath.Join(t.TempDir(), "links.tar")
	data := bytes.Repeat([]byte("linked bytes\n"), 5000)
	writeTar(t, archive, func(tw *tar.Writer) {
		tarFile(t, tw, "a/orig.txt", data)
		if err := tw.WriteHeader(&tar.Header{Name: "b/link.txt", Typeflag: tar.TypeLink, Linkname: "a/orig.txt", Mode: 0o644}); err != nil {
			t.Fatal(err)
		}
	})
	res := o.mustPublish(t, "app", "1.0.0", map[string]string{"linux/amd64": archive})
	m := checkPublished(t, o, res)
	files := map[string]content.File{}
	for _, f := range m.Platforms["linux/amd64"].Files {
		files[f.Path] = f
	}
	orig, link := files["a/orig.txt"], files["b/link.txt"]
	if want := (content.File{Path: "b/link.txt", Type: content.TypeLink, Link: "a/orig.txt"}); !reflect.DeepEqual(link, want) {
		t.Errorf("hard link %+v, want %+v", link, want)
	}
	if orig.Type != content.TypeFile || orig.Size != int64(len(data)) {
		t.Errorf("linked file %+v", orig)
	}
	if res.InputBytes != int64(len(data)) {
		t.Errorf("input bytes %d, want the data once: %d", res.InputBytes, len(data))
	}
}

func TestPublishRefusesBadInput(t *testing.T) {
	t.Parallel()
	o := newTestOrigin(t)
	work := t.TempDir()
	tarWith := func(name string, hdr *tar.Header) string {
		p := filepath.Join(work, name+".tar")
		writeTar(t, p, func(tw *tar.Writer) {
			tarFile(t, tw, "ok.txt", []byte("fine\n"))
			if err := tw.WriteHeader(hdr); err != nil {
				t.Fatal(err)
			}
			if hdr.Size > 0 {
				if _, err := tw.Write(make([]byte, hdr.Size)); err != nil {
					t.Fatal(err)
				}
			}
		})
		return p
	}
	tests := []struct {
		name, input, want string
	}{
		{"absolute path", tarWith("abs", &tar.Header{Name: "/etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3}), `"/etc/passwd"`},
		{"dot-dot path", tarWith("dotdot", &tar.Header{Name: "a/../../evil", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3}), `"a/../../evil"`},
		{"link to nothing", tarWith("hardlink", &tar.Header{Name: "l", Typeflag: tar.TypeLink, Linkname: "missing"}), `"l"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := state(t, o.dir)
			_, err := o.publish(t, origin.PublishOptions{Name: "app", Version: "1.0.0", Artifacts: map[string]string{"linux/amd64": tt.input}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("publish: %v, want an error naming %s", err, tt.want)
			}
			requireSameState(t, before, state(t, o.dir))
		})
	}
}

func TestRepublishIdenticalIsNoop(t *testing.T) {
	t.Parallel()
	o := newTestOrigin(t)
	tree := filepath.Join(t.TempDir(), "tree")
	writeTree(t, tree, 1)
	first := o.mustPublish(t, "app", "1.0.0", map[string]string{"linux/amd64": tree})
	before := state(t, o.dir)
	ts := o.readFile(t, "metadata/timestamp.json")
	again := o.mustPublish(t, "app", "1.0.0", map[string]string{"linux/amd64": tree})
	if !again.Unchanged || again.ReleaseID != first.ReleaseID || again.NewChunks != 0 || again.NewBytes != 0 || again.IndexNewBytes != 0 || again.Pack != "" || again.IndexPack != "" {
		t.Errorf("identical re-publish: %+v, want unchanged, same id, nothing new", again)
	}
	if again.Chunks != first.Chunks || again.InputBytes != first.InputBytes {
		t.Errorf("re-publish counts %d chunks, %d bytes; first %d, %d", again.Chunks, again.InputBytes, first.Chunks, first.InputBytes)
	}
	if !bytes.Equal(ts, o.readFile(t, "metadata/timestamp.json")) {
		t.Error("timestamp.json was re-signed")
	}
	requireSameState(t, before, state(t, o.dir))
}

func TestPublishSameVersionOtherContent(t *testing.T) {
	t.Parallel()
	o := newTestOrigin(t)
	work := t.TempDir()
	tree := filepath.Join(work, "tree")
	writeTree(t, tree, 1)
	o.mustPublish(t, "app", "1.0.0", map[string]string{"linux/amd64": tree})
	if err := os.WriteFile(filepath.Join(tree, "docs", "page1.txt"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := state(t, o.dir)
	_, err := o.publish(t, origin.PublishOptions{Name: "app", Version: "1.0.0", Artifacts: map[string]string{"linux/amd64": tree}})
	if !errors.Is(err, origin.ErrVersionExists) || !strings.Contains(err.Error(), "app@1.0.0") {
		t.Fatalf("publish of other content as 1.0.0: %v, want ErrVersionExists naming the release", err)
	}
	requireSameState(t, before, state(t, o.dir))
}

func TestPublishSecondVersionSharesChunks(t *testing.T) {
	t.Parallel()
	o := newTestOrigin(t)
	tree := filepath.Join(t.TempDir(), "tree")
	writeTree(t, tree, 1)
	res1 := o.mustPublish(t, "app", "1.0.0", map[string]string{"linux/amd64": tree})
	if err := os.WriteFile(filepath.Join(tree, "docs", "page1.txt"), []byte("a new page\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res2 := o.mustPublish(t, "app", "1.1.0", map[string]string{"linux/amd64": tree})
	m2 := checkPublished(t, o, res2)
	_, m1 := o.manifest(t, res1)
	// The changed page, and the index chunks around its entry; the
	// index's other chunks, if any, are the first release's.
	x1, x2 := m1.Platforms["linux/amd64"].Index, m2.Platforms["linux/amd64"].Index
	oldIndex := map[content.ChunkID]bool{}
	for _, c := range x1.Chunks {
		oldIndex[c.ID] = true
	}
	var newIndex, newIndexBytes int
	for _, c := range x2.Chunks {
		if !oldIndex[c.ID] {
			newIndex++
			newIndexBytes += c.Stored
		}
	}
	if newIndex == 0 || res2.NewChunks != 1+newIndex || res2.NewBytes-int64(newIndexBytes) > 64 || res2.Pack == res1.Pack {
		t.Errorf("second version: %d new chunks, %d new bytes in pack %s; want the one changed page, small, in a new pack, and %d index chunks", res2.NewChunks, res2.NewBytes, res2.Pack, newIndex)
	}
	allowed := []string{res1.Pack, res2.Pack, res2.IndexPack, res1.IndexPack}
	packs := packsOf(m2)
	for _, want := range allowed[:3] {
		if !slices.ContainsFunc(packs, func(d content.Digest) bool { return d.String() == want }) {
			t.Errorf("1.1.0 refers to packs %v, not to %s", packs, want)
		}
	}
	for _, d := range packs {
		if !slices.Contains(allowed, d.String()) {
			t.Errorf("1.1.0 refers to pack %s, want only %v", d, allowed)
		}
	}
	// Every reused chunk points at the same place as in the first release.
	where := map[content.ChunkID]content.ChunkRef{}
	for _, c := range m1.Platforms["linux/amd64"].Chunks() {
		where[c.ID] = c
	}
	reused := 0
	for _, c := range m2.Platforms["linux/amd64"].Chunks() {
		if old, ok := where[c.ID]; ok {
			reused++
			if c != old {
				t.Errorf("chunk %s: %+v, want the first release's %+v", c.ID.Short(), c, old)
			}
		}
	}
	if reused != res2.Chunks-1-newIndex {
		t.Errorf("%d chunks reused, want all but the page and %d index chunks: %d", reused, newIndex, res2.Chunks-1-newIndex)
	}
}

func TestPublishWrongTargetsKey(t *testing.T) {
	t.Parallel()
	o := newTestOrigin(t)
	other, err := origin.GenerateKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(t.TempDir(), "tree")
	writeTree(t, tree, 1)
	before := state(t, o.dir)
	keys := origin.Keys{metadata.TARGETS: other[metadata.TARGETS], metadata.SNAPSHOT: o.keys[metadata.SNAPSHOT], metadata.TIMESTAMP: o.keys[metadata.TIMESTAMP]}
	r := o.open(t)
	_, err = r.Publish(context.Background(), keys, origin.PublishOptions{Name: "app", Version: "1.0.0", Artifacts: map[string]string{"linux/amd64": tree}}, nil)
	if err == nil || !strings.Contains(err.Error(), "targets key") {
		t.Fatalf("publish with a foreign targets key: %v, want an error naming the role", err)
	}
	delete(keys, metadata.TARGETS)
	_, err = r.Publish(context.Background(), keys, origin.PublishOptions{Name: "app", Version: "1.0.0", Artifacts: map[string]string{"linux/amd64": tree}}, nil)
	if err == nil || !strings.Contains(err.Error(), "no targets key") {
		t.Fatalf("publish without a targets key: %v, want an error naming the role", err)
	}
	requireSameState(t, before, state(t, o.dir))
}

func TestAddTarget(t *testing.T) {
	t.Parallel()
	o := newTestOrigin(t)
	r := o.open(t)
	exp := origin.DefaultExpiries()
	for _, bad := range []string{"../up.json", "/abs.json", "a//b.json", ""} {
		if err := r.AddTarget(o.keys, exp, bad, []byte("x"), nil); err == nil {
			t.Errorf("AddTarget(%q) succeeded", bad)
		}
	}
	for i, data := range [][]byte{[]byte(`{"v":1}`), []byte(`{"v":2}`)} {
		if err := r.AddTarget(o.keys, exp, "notes/readme.json", data, nil); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if got := o.readFile(t, "targets/notes/"+content.Digest(sum).String()+".readme.json"); !bytes.Equal(got, data) {
			t.Errorf("version %d of the target reads %q", i+1, got)
		}
	}
	tg := verifyWithGoTUF(t, o, time.Now())
	tf := tg.Signed.Targets["notes/readme.json"]
	if tf == nil || tf.Length != int64(len(`{"v":2}`)) {
		t.Errorf("signed target %+v, want the second version", tf)
	}
}
