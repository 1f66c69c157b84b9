package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/meshcast/meshcast/tests/scenario"
	"github.com/meshcast/meshcast/tests/treegen"
)

// fetchOverhead bounds what a node holding v1 reads from the CDN for v2
// besides the new chunks: HTTP headers, the TUF metadata and the
// manifest patch (about 3 KiB), where the whole manifest of these trees
// is about 200 KiB.
const fetchOverhead = 8 << 10

// indexPerChange bounds the new index chunks (content.Index) per changed
// file: a changed file changes its entry and its directory's (the mtime),
// and each costs the index chunk around it, about 4 KiB of JSON of which
// the hashes do not compress (about 2 KiB stored).
const indexPerChange = 4 << 10

// TestDelta runs the delta scenario on small trees: a node holding v1
// fetches a v2 that changes a few files. Publishing v2 writes, and the
// node fetches, about what compressing the changed files alone with
// zstd -19 would give: no more than 1.3 times that for the files'
// chunks, plus the index chunks around the changed entries (at most
// indexPerChange each), in a handful of requests (metadata, the manifest
// patch, one range per pack), reusing every chunk it holds and assembling
// v2 exactly. On trees this small the index is felt: a zstd patch of the
// whole file list, as schema 1 had, costs less for one version's step,
// but a node several versions behind fetched the whole list (about
// 200 KiB here).
func TestDelta(t *testing.T) {
	if _, err := exec.LookPath("zstd"); err != nil {
		t.Fatalf("the delta scenario's baseline needs the zstd command (%v): apt-get install zstd", err)
	}
	for _, tc := range []struct {
		name     string
		maxFiles int
		// fetchRatio checks FetchRatio ≤ 1.3. Three files change about
		// 12 KiB of baseline, against which the fixed overhead alone is
		// a quarter; fetchOverhead bounds it instead.
		fetchRatio bool
	}{
		{"MaxFiles10", 10, true},
		{"MaxFiles3", 3, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opt := scenario.DeltaOptions{Dir: t.TempDir(), Seed: 1, Files: 400, Bytes: 24 << 20, MaxFiles: tc.maxFiles}
			res, err := scenario.Delta(context.Background(), opt, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
			if res != nil {
				b, _ := json.MarshalIndent(res, "", "  ")
				t.Logf("delta, %d files of %d bytes, at most %d changed:\n%s", opt.Files, opt.Bytes, opt.MaxFiles, b)
			}
			if err != nil {
				t.Fatal(err)
			}
			if !res.IdenticalTree {
				t.Error("the assembled v2 differs from the input")
			}
			if res.ChangedFiles <= 0 || res.ChangedFiles > opt.MaxFiles {
				t.Errorf("the upgrade changed %d files, want 1..%d", res.ChangedFiles, opt.MaxFiles)
			}
			if res.BaselineBytes <= 0 {
				t.Fatalf("baseline of %d bytes: the upgrade changed no regular file's bytes", res.BaselineBytes)
			}
			files := res.V2NewBytes - res.IndexNewBytes
			if r := float64(files) / float64(res.BaselineBytes); r > 1.3 {
				t.Errorf("publishing v2 wrote %d bytes of file chunks, %.3f times the %d-byte baseline; want at most 1.3", files, r, res.BaselineBytes)
			}
			if max := int64(indexPerChange * res.ChangedFiles); res.IndexNewBytes > max {
				t.Errorf("publishing v2 wrote %d bytes of index for %d changed paths, want at most %d", res.IndexNewBytes, res.ChangedFiles, max)
			}
			if r := float64(res.FetchBytesFromCDN-res.IndexNewBytes) / float64(res.BaselineBytes); tc.fetchRatio && r > 1.3 {
				t.Errorf("fetching v2 read %d bytes from the CDN, %d of them index: %.3f times the %d-byte baseline besides the index; want at most 1.3", res.FetchBytesFromCDN, res.IndexNewBytes, r, res.BaselineBytes)
			}
			if extra := res.FetchBytesFromCDN - res.V2NewBytes; extra > fetchOverhead {
				t.Errorf("fetching v2 read %d bytes from the CDN besides the %d bytes of new chunks, want at most %d (the whole manifest is %d)", extra, res.V2NewBytes, fetchOverhead, res.ManifestBytes)
			}
			if res.FetchRequests > 16 {
				t.Errorf("fetching v2 made %d requests, want at most 16", res.FetchRequests)
			}
			if res.FetchChunks != res.V2NewChunks {
				t.Errorf("fetching v2 fetched %d chunks, want the %d that publishing v2 added", res.FetchChunks, res.V2NewChunks)
			}
			if res.ReusedChunks <= 0 {
				t.Errorf("fetching v2 reused %d chunks of v1, want some", res.ReusedChunks)
			}
		})
	}
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// TestDeltaSkippedReleases publishes four versions of a tree, each
// changing a few files, and measures a node one version behind and a node
// three behind: each fetches about what the changed files compressed
// alone cost, the index included, and the skipped versions cost it
// nothing they did not leave in the last one.
func TestDeltaSkippedReleases(t *testing.T) {
	if _, err := exec.LookPath("zstd"); err != nil {
		t.Fatalf("the baseline needs the zstd command (%v): apt-get install zstd", err)
	}
	dir := t.TempDir()
	trees := []string{filepath.Join(dir, "v0")}
	if _, err := treegen.Generate(trees[0], treegen.Options{Seed: 7, Files: 400, Bytes: 24 << 20}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		trees = append(trees, filepath.Join(dir, fmt.Sprintf("v%d", i)))
		if _, err := treegen.Upgrade(trees[i-1], trees[i], uint64(7+i), 10); err != nil {
			t.Fatal(err)
		}
	}
	res, err := scenario.Series(t.Context(), scenario.SeriesOptions{Dir: filepath.Join(dir, "work"), Trees: trees, Steps: [][2]int{{2, 3}, {0, 3}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Steps {
		b, _ := json.Marshal(s)
		t.Logf("%d → %d: %s", s.From, s.To, b)
		if err := scenario.SameTree(trees[s.To], s.Out); err != nil {
			t.Errorf("%d → %d: %v", s.From, s.To, err)
		}
		// The index's chunks around the changed entries (indexPerChange
		// each) and about 8 KiB of metadata and manifest come on top of
		// the files.
		want := float64(s.BaselineBytes)*1.3 + float64(indexPerChange*s.ChangedFiles) + fetchOverhead
		if float64(s.BytesFromCDN) > want {
			t.Errorf("%d → %d: %d bytes from the CDN for %d changed files (baseline %d), want at most %.0f", s.From, s.To, s.BytesFromCDN, s.ChangedFiles, s.BaselineBytes, want)
		}
		if s.Requests > 16 {
			t.Errorf("%d → %d: %d requests, want at most 16", s.From, s.To, s.Requests)
		}
	}
}
