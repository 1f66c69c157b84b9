package scenario

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/content/origin"
	"github.com/meshcast/meshcast/seeder/cdn"
	"github.com/meshcast/meshcast/seeder/cdn/devserver"
)

// SeriesOptions configure the series scenario: trees published one after
// the other as versions 1.0.0, 1.0.1, …, and nodes that hold one version
// fetching a later one.
type SeriesOptions struct {
	Dir   string   // work directory
	Trees []string // the trees, oldest first; at least two
	// Steps are the fetches to measure, as (from, to) indexes into Trees;
	// from -1 is a node that holds nothing (and has no baseline).
	Steps [][2]int
	Level int // zstd level of publish (default: publish's default)
}

// SeriesStep is what one fetch cost: a node holding Trees[From] fetching
// Trees[To] from the CDN.
type SeriesStep struct {
	From, To      int
	ChangedFiles  int   `json:"changed_files"`  // regular files of To not in From with the same bytes
	ChangedBytes  int64 `json:"changed_bytes"`  // their bytes
	BaselineBytes int64 `json:"baseline_bytes"` // the same files, each compressed alone with zstd -19

	BytesFromCDN  int64   `json:"bytes_from_cdn"` // wire bytes: metadata, manifest, index and file chunks
	Requests      int64   `json:"requests"`
	Ratio         float64 `json:"ratio"` // bytes_from_cdn / baseline_bytes
	ManifestBytes int64   `json:"manifest_bytes"`
	IndexBytes    int64   `json:"index_bytes"` // of To's file list, whole
	ChunksFetched int     `json:"chunks_fetched"`
	ChunksReused  int     `json:"chunks_reused"`
	Out           string  `json:"out"` // where To was assembled
}

// SeriesResult is what the series scenario measured.
type SeriesResult struct {
	Published []*origin.PublishResult `json:"published"`
	Steps     []SeriesStep            `json:"steps"`
}

// Series publishes opt.Trees in order to one origin, then for each step
// assembles From on a node of its own and fetches To there, measuring
// what To cost from the CDN against the files that changed, compressed
// alone at zstd -19.
func Series(ctx context.Context, opt SeriesOptions, log *slog.Logger) (*SeriesResult, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(opt.Trees) < 2 {
		return nil, fmt.Errorf("series: %d trees, want at least two", len(opt.Trees))
	}
	o, err := newOrigin(filepath.Join(opt.Dir, "keys"), filepath.Join(opt.Dir, "origin"))
	if err != nil {
		return nil, err
	}
	defer o.repo.Close()
	res := &SeriesResult{}
	for i, tree := range opt.Trees {
		pr, err := o.repo.Publish(ctx, o.keys, origin.PublishOptions{
			Name: "rootfs", Version: seriesVersion(i), Level: opt.Level,
			Artifacts: map[string]string{"linux/amd64": tree},
		}, log)
		if err != nil {
			return nil, fmt.Errorf("publish tree %d: %w", i, err)
		}
		res.Published = append(res.Published, pr)
	}
	err = serve(ctx, devserver.Config{Dir: o.dir, Gzip: true}, log, func(url string) error {
		for n, s := range opt.Steps {
			step, err := seriesStep(ctx, o, url, opt, n, s, res.Published[s[1]], log)
			if err != nil {
				return err
			}
			res.Steps = append(res.Steps, *step)
		}
		return nil
	})
	return res, err
}

func seriesVersion(i int) string { return "1.0." + strconv.Itoa(i) }

// seriesStep runs one step on a node of its own: it fetches From (not
// measured), then To.
func seriesStep(ctx context.Context, o *testOrigin, url string, opt SeriesOptions, n int, s [2]int, to *origin.PublishResult, log *slog.Logger) (*SeriesStep, error) {
	step := &SeriesStep{From: s[0], To: s[1], IndexBytes: to.IndexBytes}
	// A node that holds nothing has no baseline: it fetches the release.
	if s[0] >= 0 {
		if err := changedBaseline(ctx, opt.Trees[s[0]], opt.Trees[s[1]], step); err != nil {
			return nil, err
		}
	}
	if fi, err := targetFile(o.dir, to); err == nil {
		step.ManifestBytes = fi.Size()
	}
	state := filepath.Join(opt.Dir, "node-"+strconv.Itoa(n))
	var last *cdn.FetchResult
	for _, i := range s {
		if i < 0 {
			continue
		}
		c, err := cdn.NewClient(cdn.ClientConfig{URL: url}, log)
		if err != nil {
			return nil, err
		}
		last, err = cdn.DirectFetch(ctx, c, cdn.DirectFetchOptions{
			StateDir: state, TrustedRoot: o.root, Release: content.Release{Name: "rootfs", Version: seriesVersion(i)},
			Platform: "linux/amd64", Out: filepath.Join(state, "releases", seriesVersion(i)),
		}, log)
		c.Close()
		if err != nil {
			return nil, fmt.Errorf("step %d: fetch tree %d: %w", n, i, err)
		}
	}
	step.BytesFromCDN, step.Requests, step.Out = last.BytesFromCDN, last.Requests, last.Out
	step.ChunksFetched, step.ChunksReused = last.ChunksFetched, last.ChunksReused
	if step.BaselineBytes > 0 {
		step.Ratio = float64(step.BytesFromCDN) / float64(step.BaselineBytes)
	}
	return step, nil
}

// changedBaseline finds the regular files of to that from lacks with the
// same bytes, and adds their sizes, alone and compressed at zstd -19, to
// step.
func changedBaseline(ctx context.Context, from, to string, step *SeriesStep) error {
	return filepath.WalkDir(to, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(to, p)
		if err != nil {
			return err
		}
		if same, err := sameFile(filepath.Join(from, rel), p); err != nil || same {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n, err := zstdSize(ctx, p, 19)
		if err != nil {
			return err
		}
		step.ChangedFiles++
		step.ChangedBytes += fi.Size()
		step.BaselineBytes += n
		return nil
	})
}

// sameFile reports whether a is a regular file with b's bytes.
func sameFile(a, b string) (bool, error) {
	fa, err := os.Lstat(a)
	if err != nil || !fa.Mode().IsRegular() {
		return false, nil
	}
	fb, err := os.Lstat(b)
	if err != nil || fa.Size() != fb.Size() {
		return false, err
	}
	sa, err := fileSum(a)
	if err != nil {
		return false, err
	}
	sb, err := fileSum(b)
	return sa == sb, err
}
