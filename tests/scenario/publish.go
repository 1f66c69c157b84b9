package scenario

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/meshcast/meshcast/content/origin"
	"github.com/meshcast/meshcast/tests/treegen"
)

// PublishSpeedOptions size the publish-speed scenario.
type PublishSpeedOptions struct {
	Dir     string // work directory; must exist
	Size    int64  // image size (default 1 GiB)
	Seed    uint64
	Runs    int // alternating runs of each side; medians are reported (default 3)
	Level   int // publish's zstd level (default: publish's default)
	Threads int // zstd -T (default 2)
	ZstdLvl int // zstd level of the baseline (default 3)
}

// PublishSpeedResult compares a first publish of one image with the zstd
// CLI compressing the same file, in the same run.
type PublishSpeedResult struct {
	Bytes        int64     `json:"bytes"`
	ZstdSeconds  []float64 `json:"zstd_seconds"`
	PubSeconds   []float64 `json:"publish_seconds"`
	ZstdMBps     float64   `json:"zstd_mb_s"`    // median
	PublishMBps  float64   `json:"publish_mb_s"` // median
	Ratio        float64   `json:"ratio"`        // publish_mb_s / zstd_mb_s
	ZstdBytes    int64     `json:"zstd_bytes"`
	PublishBytes int64     `json:"publish_new_bytes"`
	Chunks       int       `json:"chunks"`
	Baseline     string    `json:"baseline"`
}

// PublishSpeed writes a disk-image-like file and alternately compresses it
// with the zstd CLI and publishes it into a fresh origin.
func PublishSpeed(ctx context.Context, opt PublishSpeedOptions, log *slog.Logger) (*PublishSpeedResult, error) {
	if opt.Size == 0 {
		opt.Size = 1 << 30
	}
	if opt.Runs == 0 {
		opt.Runs = 3
	}
	if opt.Threads == 0 {
		opt.Threads = 2
	}
	if opt.ZstdLvl == 0 {
		opt.ZstdLvl = 3
	}
	img := filepath.Join(opt.Dir, "image.bin")
	if err := treegen.Image(img, opt.Size, opt.Seed); err != nil {
		return nil, err
	}
	if err := warm(img); err != nil {
		return nil, err
	}
	res := &PublishSpeedResult{Bytes: opt.Size, Baseline: fmt.Sprintf("zstd -%d -T%d", opt.ZstdLvl, opt.Threads)}
	for run := 0; run < opt.Runs; run++ {
		out := filepath.Join(opt.Dir, "image.zst")
		start := time.Now()
		cmd := exec.CommandContext(ctx, "zstd", "-q", "-f", "-"+strconv.Itoa(opt.ZstdLvl), "-T"+strconv.Itoa(opt.Threads), img, "-o", out)
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("zstd: %v: %s", err, b)
		}
		res.ZstdSeconds = append(res.ZstdSeconds, time.Since(start).Seconds())
		fi, err := os.Stat(out)
		if err != nil {
			return nil, err
		}
		res.ZstdBytes = fi.Size()
		os.Remove(out)

		dir := filepath.Join(opt.Dir, "run"+strconv.Itoa(run))
		o, err := newOrigin(filepath.Join(dir, "keys"), filepath.Join(dir, "origin"))
		if err != nil {
			return nil, err
		}
		start = time.Now()
		pr, err := o.repo.Publish(ctx, o.keys, origin.PublishOptions{
			Name: "image", Version: "1.0.0", Level: opt.Level, Artifacts: map[string]string{"linux/amd64": img},
		}, log)
		o.repo.Close()
		if err != nil {
			return nil, err
		}
		res.PubSeconds = append(res.PubSeconds, time.Since(start).Seconds())
		res.PublishBytes, res.Chunks = pr.NewBytes, pr.Chunks
		os.RemoveAll(dir)
	}
	res.ZstdMBps = float64(opt.Size) / 1e6 / median(res.ZstdSeconds)
	res.PublishMBps = float64(opt.Size) / 1e6 / median(res.PubSeconds)
	res.Ratio = res.PublishMBps / res.ZstdMBps
	return res, nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// warm reads a file once so that both sides start from the page cache.
func warm(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(io.Discard, f)
	return err
}
