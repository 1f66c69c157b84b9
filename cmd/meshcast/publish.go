package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/content/origin"
)

type publishOpts struct {
	repo, keys string
	pub        origin.PublishOptions
	artifacts  []string
	waves      string
	counts     string
	soak       time.Duration
	health     time.Duration
	failures   float64
	floor      string
	chunking   string
	mtime      string
	asJSON     bool
}

func newPublishCmd(g *globals, stdout io.Writer) *cobra.Command {
	o := &publishOpts{}
	def := content.DefaultRollout()
	cmd := &cobra.Command{
		Use:   "publish --repo ORIGIN --keys KEYS --name NAME --version VER --artifact PLATFORM=PATH [--artifact …]",
		Short: "Chunk, compress and sign a release into an origin, writing only the chunks it lacks",
		Long: `Publishes one release. Each --artifact is a directory or a tar (.tar, .tar.gz,
.tgz, .tar.zst), chunked file by file, or any other single file (a disk image),
chunked whole. Chunks the origin already holds are not written again; the new
ones go into one pack. The manifest becomes a TUF target and targets, snapshot
and timestamp are re-signed. A version is immutable: publishing it again with
identical content changes nothing, with other content is refused.

A tree keeps owners, all mode bits, mtimes, extended attributes (security,
trusted, user), hard links, devices and fifos. --mtime sets every mtime to one
value, so that a tree built twice publishes the same release.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "repo", "keys", "name", "version", "artifact"); err != nil {
				return err
			}
			return runPublish(cmd.Context(), g, o, stdout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.repo, "repo", "", "origin directory (from meshcast repo init)")
	f.StringVar(&o.keys, "keys", "", "key directory holding targets.key, snapshot.key and timestamp.key")
	f.StringVar(&o.pub.Name, "name", "", "release name (lower case letters, digits, '.', '_', '-')")
	f.StringVar(&o.pub.Version, "version", "", "semantic version, e.g. 1.4.2")
	f.StringArrayVar(&o.artifacts, "artifact", nil, "PLATFORM=PATH, e.g. linux/arm64=./rootfs (repeatable)")
	f.IntVar(&o.pub.Level, "level", content.DefaultLevel, "zstd level for new chunks (1–22)")
	f.StringVar(&o.chunking, "chunking", "16K/64K/256K", "FastCDC min/avg/max chunk sizes; keep the same value for every release so that chunks are shared")
	f.StringVar(&o.waves, "waves", joinInts(def.Waves), "rollout waves: cumulative percentages of each site's nodes, ending at 100")
	f.StringVar(&o.counts, "wave-nodes", "", "rollout waves as cumulative node counts instead of --waves, e.g. 1,5 (a last wave takes every node)")
	f.DurationVar(&o.soak, "soak", time.Duration(def.Soak), "time every node of a wave must stay healthy before the next wave opens (0: one check)")
	f.DurationVar(&o.health, "health-timeout", time.Duration(def.HealthTimeout), "time a node has to report healthy after it activates")
	f.Float64Var(&o.failures, "failure-threshold", def.FailureThreshold, "fraction of a wave that may fail before the site rolls back")
	f.StringVar(&o.floor, "security-floor", "", "lowest version a node may run once it has seen this release")
	f.StringVar(&o.mtime, "mtime", "", "set every entry's mtime to this time, for reproducible releases: unix seconds (as SOURCE_DATE_EPOCH) or RFC 3339")
	f.BoolVar(&o.asJSON, "json", false, "print the result as one JSON object")
	addExpiryFlags(f, &o.pub.Expiries)
	return cmd
}

func runPublish(ctx context.Context, g *globals, o *publishOpts, stdout io.Writer) error {
	o.pub.Artifacts = map[string]string{}
	for _, a := range o.artifacts {
		pl, path, ok := strings.Cut(a, "=")
		if !ok || pl == "" || path == "" {
			return fmt.Errorf("--artifact %q: want PLATFORM=PATH, e.g. linux/arm64=./rootfs", a)
		}
		if _, dup := o.pub.Artifacts[pl]; dup {
			return fmt.Errorf("--artifact: platform %s given twice", pl)
		}
		o.pub.Artifacts[pl] = path
	}
	waves, err := parseInts(o.waves)
	if err != nil {
		return fmt.Errorf("--waves %q: %w", o.waves, err)
	}
	var counts []int
	if o.counts != "" {
		if counts, err = parseInts(o.counts); err != nil {
			return fmt.Errorf("--wave-nodes %q: %w", o.counts, err)
		}
		waves = nil
	}
	o.pub.Rollout = content.Rollout{Waves: waves, Counts: counts, Soak: content.Duration(o.soak),
		HealthTimeout: content.Duration(o.health), FailureThreshold: o.failures, SecurityFloor: o.floor}
	if o.pub.Chunking, err = parseChunking(o.chunking); err != nil {
		return fmt.Errorf("--chunking %q: %w", o.chunking, err)
	}
	if o.mtime != "" {
		t, err := parseMTime(o.mtime)
		if err != nil {
			return fmt.Errorf("--mtime %q: %w", o.mtime, err)
		}
		o.pub.MTime = &t
	}
	keys, err := origin.LoadKeys(o.keys, "targets", "snapshot", "timestamp")
	if err != nil {
		return err
	}
	r, err := origin.Open(o.repo)
	if err != nil {
		return err
	}
	defer r.Close()
	bar := newProgress(g.stderr, "publish "+o.pub.Name+"@"+o.pub.Version)
	o.pub.Progress = bar.update
	res, err := r.Publish(ctx, keys, o.pub, g.logger())
	bar.done()
	if err != nil {
		return err
	}
	if o.asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	if res.Unchanged {
		fmt.Fprintf(stdout, "%s is already published with this content (release id %s); nothing written\n", res.Release, res.ReleaseID.Short())
		return nil
	}
	fmt.Fprintf(stdout, "published %s (release id %s): %d chunks, %d new; %s written for %s of input in %.1fs\n",
		res.Release, res.ReleaseID.Short(), res.Chunks, res.NewChunks, humanBytes(res.NewBytes), humanBytes(res.InputBytes), res.Seconds)
	return nil
}

// parseMTime reads a time as unix seconds (the form of SOURCE_DATE_EPOCH)
// or RFC 3339, with fractional seconds if wanted.
func parseMTime(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, errors.New("want unix seconds, e.g. 1700000000, or RFC 3339, e.g. 2023-11-14T22:13:20Z")
	}
	return t, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", p)
		}
		out = append(out, n)
	}
	return out, nil
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// parseChunking reads "MIN/AVG/MAX" with optional K or M suffixes.
func parseChunking(s string) (content.Chunking, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return content.Chunking{}, fmt.Errorf("want MIN/AVG/MAX, e.g. 16K/64K/256K")
	}
	var v [3]int
	for i, p := range parts {
		n, err := parseSize(p)
		if err != nil {
			return content.Chunking{}, err
		}
		v[i] = int(n)
	}
	c := content.Chunking{Min: v[0], Avg: v[1], Max: v[2]}
	return c, c.Validate()
}

// parseSize reads a byte count with an optional K, M or G suffix (powers
// of 1024).
func parseSize(in string) (int64, error) {
	s := strings.TrimSpace(in)
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"), strings.HasSuffix(s, "k"):
		mult, s = 1<<10, s[:len(s)-1]
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, s[:len(s)-1]
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size", in)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is too large", in)
	}
	return n * mult, nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
