package scenario

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/content/origin"
	"github.com/meshcast/meshcast/seeder/cdn"
	"github.com/meshcast/meshcast/seeder/cdn/devserver"
	"github.com/meshcast/meshcast/tests/treegen"
)

// DeltaOptions size the delta scenario.
type DeltaOptions struct {
	Dir      string // work directory; must exist and be empty
	Seed     uint64
	Files    int   // tree size (treegen defaults when zero)
	Bytes    int64 //
	MaxFiles int   // files the upgrade may touch (default 10)
	Level    int   // zstd level of publish (default: publish's default)
}

// DeltaResult is what the delta scenario measured.
type DeltaResult struct {
	Files         int   `json:"files"`          // regular files in v1
	TreeBytes     int64 `json:"tree_bytes"`     // bytes of regular files in v1
	ChangedFiles  int   `json:"changed_files"`  // paths the upgrade touched
	ChangedBytes  int64 `json:"changed_bytes"`  // bytes of v2's modified and added regular files
	BaselineBytes int64 `json:"baseline_bytes"` // the same files, each compressed alone with zstd -19

	V1NewBytes    int64   `json:"v1_new_bytes"`
	V2NewBytes    int64   `json:"v2_new_bytes"` // chunk bytes publishing v2 wrote, the index's included
	V2NewChunks   int     `json:"v2_new_chunks"`
	PublishRatio  float64 `json:"publish_ratio"` // v2_new_bytes / baseline_bytes
	ManifestBytes int64   `json:"manifest_bytes"`
	// IndexNewBytes are the new chunks of v2's file list (content.Index),
	// part of v2_new_bytes.
	IndexNewBytes int64 `json:"index_new_bytes"`

	FetchBytesFromCDN int64   `json:"fetch_bytes_from_cdn"` // node holding v1 fetching v2, wire bytes
	FetchRequests     int64   `json:"fetch_requests"`
	FetchRatio        float64 `json:"fetch_ratio"` // fetch_bytes_from_cdn / baseline_bytes
	FetchChunks       int     `json:"fetch_chunks"`
	ReusedChunks      int     `json:"reused_chunks"`
	IdenticalTree     bool    `json:"identical_tree"` // assembled v2 equals the input byte for byte
}

// Delta generates a tree and its upgrade, publishes both, measures what
// publishing v2 wrote and what a node holding v1 fetched for v2, and checks
// the assembled tree against the input.
func Delta(ctx context.Context, opt DeltaOptions, log *slog.Logger) (*DeltaResult, error) {
	if opt.MaxFiles == 0 {
		opt.MaxFiles = 10
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	v1, v2 := filepath.Join(opt.Dir, "v1"), filepath.Join(opt.Dir, "v2")
	tree, err := treegen.Generate(v1, treegen.Options{Seed: opt.Seed, Files: opt.Files, Bytes: opt.Bytes})
	if err != nil {
		return nil, err
	}
	change, err := treegen.Upgrade(v1, v2, opt.Seed+1, opt.MaxFiles)
	if err != nil {
		return nil, err
	}
	res := &DeltaResult{Files: tree.Files, TreeBytes: tree.Bytes, ChangedFiles: change.Len()}
	for _, p := range append(append([]string(nil), change.Modified...), change.Added...) {
		full := filepath.Join(v2, filepath.FromSlash(p))
		fi, err := os.Lstat(full)
		if err != nil {
			return nil, err
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		n, err := zstdSize(ctx, full, 19)
		if err != nil {
			return nil, err
		}
		res.ChangedBytes += fi.Size()
		res.BaselineBytes += n
	}

	o, err := newOrigin(filepath.Join(opt.Dir, "keys"), filepath.Join(opt.Dir, "origin"))
	if err != nil {
		return nil, err
	}
	defer o.repo.Close()
	// As in the field: v1 is published and fetched, then v2 is published
	// and the node holding v1 fetches it.
	var fr [2]*cdn.FetchResult
	err = serve(ctx, devserver.Config{Dir: o.dir, Gzip: true}, log, func(url string) error {
		state := filepath.Join(opt.Dir, "node")
		for i, in := range []string{v1, v2} {
			version := fmt.Sprintf("1.%d.0", i)
			pr, err := o.repo.Publish(ctx, o.keys, origin.PublishOptions{
				Name: "rootfs", Version: version, Level: opt.Level,
				Artifacts: map[string]string{"linux/amd64": in},
			}, log)
			if err != nil {
				return err
			}
			if i == 0 {
				res.V1NewBytes = pr.NewBytes
			} else {
				res.V2NewBytes, res.V2NewChunks, res.IndexNewBytes = pr.NewBytes, pr.NewChunks, pr.IndexNewBytes
				fi, err := targetFile(o.dir, pr)
				if err != nil {
					return err
				}
				res.ManifestBytes = fi.Size()
			}
			c, err := cdn.NewClient(cdn.ClientConfig{URL: url}, log)
			if err != nil {
				return err
			}
			fr[i], err = cdn.DirectFetch(ctx, c, cdn.DirectFetchOptions{
				StateDir: state, TrustedRoot: o.root, Release: content.Release{Name: "rootfs", Version: version},
				Platform: "linux/amd64", Out: filepath.Join(state, "releases", strconv.Itoa(i)),
			}, log)
			c.Close()
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	res.PublishRatio = float64(res.V2NewBytes) / float64(res.BaselineBytes)
	res.FetchBytesFromCDN, res.FetchRequests = fr[1].BytesFromCDN, fr[1].Requests
	res.FetchChunks, res.ReusedChunks = fr[1].ChunksFetched, fr[1].ChunksReused
	res.FetchRatio = float64(res.FetchBytesFromCDN) / float64(res.BaselineBytes)
	if err := SameTree(v2, fr[1].Out); err != nil {
		return res, fmt.Errorf("assembled v2 differs from the input: %w", err)
	}
	res.IdenticalTree = true
	return res, nil
}

// zstdSize returns the size of a file compressed alone by the zstd CLI.
func zstdSize(ctx context.Context, path string, level int) (int64, error) {
	out, err := exec.CommandContext(ctx, "zstd", "-q", "-c", "-"+strconv.Itoa(level), path).Output()
	if err != nil {
		var ee *exec.Error
		if errors.As(err, &ee) {
			return 0, fmt.Errorf("the zstd command is needed for the baseline (apt-get install zstd): %w", err)
		}
		return 0, fmt.Errorf("zstd -%d %s: %w", level, path, err)
	}
	return int64(len(out)), nil
}

type testOrigin struct {
	dir  string
	keys origin.Keys
	repo *origin.Repo
	root []byte
}

func newOrigin(keyDir, dir string) (*testOrigin, error) {
	keys, err := origin.GenerateKeys(keyDir)
	if err != nil {
		return nil, err
	}
	if err := origin.Init(dir, keys, origin.DefaultExpiries(), time.Now()); err != nil {
		return nil, err
	}
	repo, err := origin.Open(dir)
	if err != nil {
		return nil, err
	}
	root, err := os.ReadFile(filepath.Join(dir, "metadata", "1.root.json"))
	if err != nil {
		repo.Close()
		return nil, err
	}
	return &testOrigin{dir: dir, keys: keys, repo: repo, root: root}, nil
}

func targetFile(dir string, pr *origin.PublishResult) (fs.FileInfo, error) {
	d, base := filepath.Split(pr.Target)
	return os.Stat(filepath.Join(dir, "targets", d, pr.ReleaseID.String()+"."+base))
}

// serve runs a development CDN over dir on loopback for the duration of fn.
func serve(ctx context.Context, cfg devserver.Config, log *slog.Logger, fn func(url string) error) error {
	srv, err := devserver.New(cfg, log, nil)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	sctx, stop := context.WithCancel(gctx)
	g.Go(func() error { return srv.Serve(sctx, ln) })
	ferr := fn("http://" + ln.Addr().String())
	stop()
	if err := g.Wait(); err != nil && ferr == nil {
		ferr = err
	}
	return ferr
}

// SameTree compares two trees: the same paths, types, permission bits,
// link targets and bytes.
func SameTree(a, b string) error {
	type node struct {
		mode   fs.FileMode
		target string
		sum    [32]byte
	}
	read := func(root string) (map[string]node, error) {
		m := map[string]node{}
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == root {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			n := node{mode: fi.Mode() & (fs.ModeType | fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)}
			switch {
			case fi.Mode()&fs.ModeSymlink != 0:
				n.target, err = os.Readlink(p)
			case fi.Mode().IsRegular():
				n.sum, err = fileSum(p)
			}
			m[rel] = n
			return err
		})
		return m, err
	}
	ma, err := read(a)
	if err != nil {
		return err
	}
	mb, err := read(b)
	if err != nil {
		return err
	}
	for p, na := range ma {
		nb, ok := mb[p]
		switch {
		case !ok:
			return fmt.Errorf("%s: missing", p)
		case na.mode != nb.mode:
			return fmt.Errorf("%s: mode %v, want %v", p, nb.mode, na.mode)
		case na.target != nb.target:
			return fmt.Errorf("%s: link to %q, want %q", p, nb.target, na.target)
		case na.sum != nb.sum:
			return fmt.Errorf("%s: contents differ", p)
		}
	}
	for p := range mb {
		if _, ok := ma[p]; !ok {
			return fmt.Errorf("%s: not in the input", p)
		}
	}
	return nil
}

func fileSum(p string) (sum [32]byte, err error) {
	f, err := os.Open(p)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}
