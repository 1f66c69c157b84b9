package content_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/meshcast/meshcast/content"
)

// releaseManifest is a manifest as publish writes it for a system tree:
// files in directories, each of one to three chunks that live in one of a
// few packs, some raw and some zstd. The same seed gives the same manifest.
func releaseManifest(seed uint64, files int) *content.Manifest {
	r := rand.New(rand.NewPCG(seed, 7))
	digest := func() content.Digest {
		var d content.Digest
		for i := 0; i < len(d); i += 8 {
			binary.LittleEndian.PutUint64(d[i:], r.Uint64())
		}
		return d
	}
	packs := []content.Digest{digest(), digest(), digest()}
	offsets := make([]int64, len(packs))
	var list []content.File
	dirs := []string{"bin", "etc", "lib", "lib/x86_64-linux-gnu", "usr", "usr/share", "usr/share/doc"}
	for _, d := range dirs {
		list = append(list, content.File{Path: d, Type: content.TypeDir, Mode: 0o755})
	}
	for i := range files {
		dir := dirs[r.IntN(len(dirs))]
		f := content.File{Path: fmt.Sprintf("%s/file-%05d.bin", dir, i), Type: content.TypeFile, Mode: 0o644, SHA256: digest()}
		for range 1 + r.IntN(3) {
			p := r.IntN(len(packs))
			size := 1 + r.IntN(256<<10)
			ref := content.ChunkRef{ID: content.ChunkID(digest()), Size: size, Stored: size, Enc: content.EncodingRaw, Pack: packs[p], Offset: offsets[p]}
			if r.IntN(2) == 0 {
				ref.Enc, ref.Stored = content.EncodingZstd, 1+size/2
			}
			offsets[p] += int64(ref.Stored)
			f.Size += int64(size)
			f.Chunks = append(f.Chunks, ref)
		}
		list = append(list, f)
	}
	list = append(list, content.File{Path: "lib/libz.so", Type: content.TypeSymlink, Target: "x86_64-linux-gnu/libz.so.1"})
	slices.SortFunc(list, func(a, b content.File) int { return strings.Compare(a.Path, b.Path) })
	return &content.Manifest{
		Schema: content.ManifestSchemaV1, Name: "gateway-os", Version: "1.0.0",
		Chunking: content.DefaultChunking(), Rollout: rolloutV2(),
		Platforms: map[string]*content.Artifact{"linux/amd64": {Kind: content.KindTree, Files: list}},
	}
}

// upgradeManifest returns a copy of m as the next release: version 1.1.0,
// changed regular files getting a new digest and new chunks in a new pack,
// one file removed and one added.
func upgradeManifest(m *content.Manifest, changed int) *content.Manifest {
	r := rand.New(rand.NewPCG(99, 1))
	next := *m
	next.Version = "1.1.0"
	art := *m.Platforms["linux/amd64"]
	art.Files = slices.Clone(art.Files)
	newPack := digestOf("the upgrade's pack")
	var offset int64
	newChunk := func(size int) content.ChunkRef {
		id := content.SumChunk(fmt.Appendf(nil, "new chunk %d", r.Uint64()))
		ref := content.ChunkRef{ID: id, Size: size, Stored: size, Enc: content.EncodingRaw, Pack: newPack, Offset: offset}
		offset += int64(size)
		return ref
	}
	var regular []int
	for i, f := range art.Files {
		if f.Type == content.TypeFile {
			regular = append(regular, i)
		}
	}
	for _, i := range regular[:changed] {
		f := art.Files[i]
		f.SHA256 = digestOf(f.Path + " 1.1.0")
		f.Chunks = []content.ChunkRef{newChunk(int(f.Size))}
		if f.Size > content.MaxChunkSize {
			panic("test manifest file too large for one chunk")
		}
		art.Files[i] = f
	}
	removed := regular[len(regular)/2]
	art.Files = slices.Delete(art.Files, removed, removed+1)
	added := content.File{Path: "etc/added.conf", Type: content.TypeFile, Mode: 0o600, Size: 100, SHA256: digestOf("added"), Chunks: []content.ChunkRef{newChunk(100)}}
	i, _ := slices.BinarySearchFunc(art.Files, added.Path, func(f content.File, p string) int { return strings.Compare(f.Path, p) })
	art.Files = slices.Insert(art.Files, i, added)
	next.Platforms = map[string]*content.Artifact{"linux/amd64": &art}
	return &next
}

// encodedPair returns the encoded manifests of a release of files files
// and of its upgrade changing changed of them.
func encodedPair(tb testing.TB, files, changed int) (v1, v2 []byte) {
	tb.Helper()
	m1 := releaseManifest(1, files)
	v1, err := m1.Encode()
	if err != nil {
		tb.Fatal(err)
	}
	if v2, err = upgradeManifest(m1, changed).Encode(); err != nil {
		tb.Fatal(err)
	}
	return v1, v2
}

func makePatch(tb testing.TB, base, target []byte) []byte {
	tb.Helper()
	p, err := content.MakeManifestPatch(base, target)
	if err != nil {
		tb.Fatalf("MakeManifestPatch: %v", err)
	}
	return p
}

func TestManifestPatchRoundTrip(t *testing.T) {
	t.Parallel()
	v1, v2 := encodedPair(t, 3000, 5)
	patch := makePatch(t, v1, v2)
	t.Logf("manifest %d bytes, patch %d bytes (%.2f%%)", len(v2), len(patch), 100*float64(len(patch))/float64(len(v2)))
	if len(patch)*10 >= len(v2) {
		t.Errorf("patch of %d bytes for a %d-byte manifest with 7 entries changed; want under 10%%", len(patch), len(v2))
	}
	got, err := content.ApplyManifestPatch(v1, patch, int64(len(v2)))
	if err != nil {
		t.Fatalf("ApplyManifestPatch: %v", err)
	}
	if !bytes.Equal(got, v2) || content.ManifestID(got) != content.ManifestID(v2) {
		t.Fatalf("the patched manifest (%d bytes) differs from the target (%d bytes)", len(got), len(v2))
	}
	// A bound above the length is fine; one byte below is not.
	if got, err := content.ApplyManifestPatch(v1, patch, int64(len(v2))+1000); err != nil || !bytes.Equal(got, v2) {
		t.Fatalf("with a generous bound: %d bytes, %v", len(got), err)
	}
	if got, err := content.ApplyManifestPatch(v1, patch, int64(len(v2))-1); !errors.Is(err, content.ErrBadPatch) {
		t.Fatalf("with a bound one byte short: %d bytes, err %v; want ErrBadPatch", len(got), err)
	}

	// Backwards works too, and the same input gives the same patch.
	back := makePatch(t, v2, v1)
	if got, err := content.ApplyManifestPatch(v2, back, int64(len(v1))); err != nil || !bytes.Equal(got, v1) {
		t.Fatalf("reverse patch: %d bytes, %v", len(got), err)
	}
	if again := makePatch(t, v1, v2); !bytes.Equal(again, patch) {
		t.Errorf("MakeManifestPatch is not deterministic: %d then %d bytes", len(patch), len(again))
	}
}

// TestManifestPatchIdentical: a manifest patched to itself costs a few
// bytes.
func TestManifestPatchIdentical(t *testing.T) {
	t.Parallel()
	v1, _ := encodedPair(t, 500, 0)
	patch := makePatch(t, v1, v1)
	if len(patch) > 200 {
		t.Errorf("patch from a manifest to itself is %d bytes", len(patch))
	}
	if got, err := content.ApplyManifestPatch(v1, patch, int64(len(v1))); err != nil || !bytes.Equal(got, v1) {
		t.Fatalf("identity patch: %d bytes, %v", len(got), err)
	}
}

// TestManifestPatchWrongBase applies a patch to manifests it was not made
// from: the result is an error or bytes other than the target, never a
// panic and never the target's hash.
func TestManifestPatchWrongBase(t *testing.T) {
	t.Parallel()
	v1, v2 := encodedPair(t, 1000, 5)
	patch := makePatch(t, v1, v2)
	other, err := releaseManifest(2, 1000).Encode()
	if err != nil {
		t.Fatal(err)
	}
	shifted := append([]byte("{}\n"), v1...) // the same bytes at other offsets from the end
	shifted = append(shifted[:len(shifted)-1], "  \n"...)
	bases := map[string][]byte{
		"another release": other,
		"shifted":         shifted,
		"truncated":       v1[:len(v1)/2],
		"empty":           nil,
		"the target":      v2,
	}
	for name, base := range bases {
		got, err := content.ApplyManifestPatch(base, patch, int64(len(v2)))
		switch {
		case err != nil:
			if !errors.Is(err, content.ErrBadPatch) {
				t.Errorf("%s: error %v does not wrap ErrBadPatch", name, err)
			}
			t.Logf("%s: %v", name, err)
		case bytes.Equal(got, v2):
			t.Errorf("%s: patch made for another base produced the target", name)
		default:
			t.Logf("%s: %d other bytes", name, len(got))
		}
		if len(got) > len(v2) {
			t.Errorf("%s: %d bytes, more than the bound %d", name, len(got), len(v2))
		}
	}
}

func TestManifestPatchGarbage(t *testing.T) {
	t.Parallel()
	v1, v2 := encodedPair(t, 200, 3)
	patch := makePatch(t, v1, v2)
	flipped := bytes.Clone(patch)
	flipped[len(flipped)/2] ^= 0xff
	bad := map[string][]byte{
		"text":         []byte("this is not a zstd frame"),
		"random":       randomBytes(3, 4096),
		"magic only":   {0x28, 0xb5, 0x2f, 0xfd},
		"truncated":    patch[:len(patch)/2],
		"the manifest": v2,
	}
	for name, p := range bad {
		got, err := content.ApplyManifestPatch(v1, p, int64(len(v2)))
		if !errors.Is(err, content.ErrBadPatch) {
			t.Errorf("%s: got %d bytes, err %v; want ErrBadPatch", name, len(got), err)
		}
	}
	// No frame at all (nothing, or only a skippable frame) is a patch to
	// nothing: no bytes, which no signed manifest hashes to.
	for name, p := range map[string][]byte{"empty": nil, "skippable only": {0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4}} {
		if got, err := content.ApplyManifestPatch(v1, p, int64(len(v2))); len(got) != 0 || (err != nil && !errors.Is(err, content.ErrBadPatch)) {
			t.Errorf("%s: got %d bytes, err %v; want no bytes", name, len(got), err)
		}
	}
	// A flipped byte inside the frame: zstd has no checksum over a
	// dictionary-compressed block, so it may decode; it must not produce
	// the target.
	if got, err := content.ApplyManifestPatch(v1, flipped, int64(len(v2))); err == nil && bytes.Equal(got, v2) {
		t.Errorf("a patch with a flipped byte produced the target")
	} else if err != nil && !errors.Is(err, content.ErrBadPatch) {
		t.Errorf("flipped byte: %v does not wrap ErrBadPatch", err)
	}
}

func TestManifestPatchBoundRange(t *testing.T) {
	t.Parallel()
	v1, v2 := encodedPair(t, 50, 1)
	patch := makePatch(t, v1, v2)
	for _, n := range []int64{0, -1, -1 << 62, content.DefaultLimits().ManifestBytes + 1, 1 << 62} {
		if got, err := content.ApplyManifestPatch(v1, patch, n); !errors.Is(err, content.ErrBadPatch) || got != nil {
			t.Errorf("bound %d: %d bytes, err %v; want nil and ErrBadPatch", n, len(got), err)
		}
	}
}

// TestManifestPatchBound feeds patches whose output exceeds the bound (a
// large manifest, and a bomb of zeros with and without a declared content
// size): each fails with ErrBadPatch after allocating about the bound, not
// the output.
func TestManifestPatchBound(t *testing.T) {
	v1, _ := encodedPair(t, 100, 0)
	big, err := releaseManifest(5, 1000).Encode() // about 570 KB
	if err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 16<<20)
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderDictRaw(0x6d63, v1), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	patches := map[string][]byte{
		"large manifest": makePatch(t, v1, big),
		"zeros, sized":   enc.EncodeAll(zeros, nil),
		// A streamed frame with a small window and no content size:
		// stopped only by the output cap.
		"zeros, streamed": zstdFrame(t, zeros, zstd.WithWindowSize(1<<20), zstd.WithEncoderDictRaw(0x6d63, v1)),
		// The same without the dictionary: the frame names no dictionary
		// and decodes alone.
		"zeros, no dictionary": zstdFrame(t, zeros, zstd.WithWindowSize(1<<20)),
	}
	enc.Close()
	zeros = nil
	const bound = 256 << 10
	for name, p := range patches {
		t.Run(name, func(t *testing.T) {
			content.ApplyManifestPatch(v1, p, bound) // warm up
			const runs = 5
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			for range runs {
				got, err := content.ApplyManifestPatch(v1, p, bound)
				if !errors.Is(err, content.ErrBadPatch) || len(got) > bound {
					t.Fatalf("%d-byte patch: %d bytes, err %v; want ErrBadPatch", len(p), len(got), err)
				}
			}
			runtime.ReadMemStats(&after)
			perRun := (after.TotalAlloc - before.TotalAlloc) / runs
			t.Logf("%d-byte patch: %d bytes allocated per apply with a bound of %d", len(p), perRun, bound)
			// The output buffer is the bound, allocated up front; nothing
			// grows with what the patch would produce.
			if limit := uint64(2 * bound); perRun > limit {
				t.Fatalf("applying a patch bounded to %d bytes allocated %d bytes (limit %d)", bound, perRun, limit)
			}
		})
	}
}

func TestManifestPatchPath(t *testing.T) {
	var to, from content.ReleaseID
	for i := range to {
		to[i], from[i] = 0x11, 0xab
	}
	want := "releases/gateway-os/" + strings.Repeat("11", 32) + ".from-" + strings.Repeat("ab", 32) + ".patch"
	if got := content.ManifestPatchPath("releases/gateway-os/2.4.1.json", to, from); got != want {
		t.Errorf("ManifestPatchPath = %s\nwant %s", got, want)
	}
	if got := content.ManifestPatchPath(content.ReleaseTarget("app", "1.0.0"), to, from); !strings.HasPrefix(got, "releases/app/"+to.String()) {
		t.Errorf("ManifestPatchPath of ReleaseTarget = %s", got)
	}
}

// TestTargetCustomJSON pins the custom field of a release's TUF target,
// which other TUF clients and older nodes read.
func TestTargetCustomJSON(t *testing.T) {
	id := content.ReleaseID(sha256.Sum256([]byte("base")))
	c := content.TargetCustom{Meshcast: content.TargetInfo{Name: "app", Version: "1.1.0", Patches: map[string]int64{id.String(): 1234}}}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"meshcast":{"name":"app","version":"1.1.0","patches":{"` + id.String() + `":1234}}}`; string(b) != want {
		t.Errorf("TargetCustom JSON\n got %s\nwant %s", b, want)
	}
	b, _ = json.Marshal(content.TargetCustom{Meshcast: content.TargetInfo{Name: "app", Version: "1.0.0"}})
	if want := `{"meshcast":{"name":"app","version":"1.0.0"}}`; string(b) != want {
		t.Errorf("TargetCustom JSON without patches\n got %s\nwant %s", b, want)
	}
}

// FuzzApplyManifestPatch applies arbitrary patches to arbitrary bases: no
// panic, an error wraps ErrBadPatch, and the output never exceeds the
// bound.
func FuzzApplyManifestPatch(f *testing.F) {
	v1, v2 := encodedPair(f, 20, 2)
	patch := makePatch(f, v1, v2)
	f.Add(v1, patch)
	f.Add(v2, patch)
	f.Add(v1, makePatch(f, v1, v1))
	f.Add([]byte(nil), makePatch(f, nil, v2))
	f.Add(v1, []byte{0x28, 0xb5, 0x2f, 0xfd})
	f.Add([]byte("{}"), []byte("garbage"))
	f.Fuzz(func(t *testing.T, base, patch []byte) {
		for _, bound := range []int64{int64(len(v2)), 64, 1} {
			got, err := content.ApplyManifestPatch(base, patch, bound)
			if err != nil {
				if !errors.Is(err, content.ErrBadPatch) {
					t.Fatalf("bound %d: error %v does not wrap ErrBadPatch", bound, err)
				}
				if got != nil {
					t.Fatalf("bound %d: %d bytes with an error", bound, len(got))
				}
				continue
			}
			if int64(len(got)) > bound {
				t.Fatalf("bound %d: %d bytes", bound, len(got))
			}
		}
	})
}
