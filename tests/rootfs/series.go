package rootfs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Series is a base tree and the real Debian updates applied to it one
// after another: tree 0 is Base, tree n is tree n-1 with Steps[n-1]
// installed by dpkg, as an update would leave it.
type Series struct {
	Base  Spec
	Steps []Step
}

// Step installs, with dpkg -i inside the tree, exactly these packages,
// each "name=version": the binary packages of one source package moving
// to one newer version.
type Step struct{ Packages []string }

func (s Step) String() string { return strings.Join(s.Packages, " ") }

// UpdateGroups are the packages the update series moves, one group of
// binary packages of one source package at a time: OpenSSL, curl and the
// Python interpreter, which Debian updates often.
var UpdateGroups = [][]string{
	{"libssl3", "openssl"},
	{"curl", "libcurl4"},
	{"python3.11-minimal", "libpython3.11-minimal"},
}

// resolveTTL is how long a resolved series is used before the mirrors
// are asked again: a week keeps the series, and so its cached trees,
// stable between Debian's updates.
const resolveTTL = 7 * 24 * time.Hour

// UpdateSeries is NewSeries(t, Bookworm, UpdateGroups...).
func UpdateSeries(t testing.TB) Series {
	t.Helper()
	return NewSeries(t, Bookworm, UpdateGroups...)
}

// NewSeries resolves a series from the versions the Debian mirrors have
// now (the release, -updates, -security): the base tree is base with
// every group at its oldest version, and each step moves one group to its
// next version, the groups taking turns (the first group's second
// version, the second's second, …, then the first's third, …). A group's
// versions are those all its packages have. The answer is kept in the
// cache for a week (or longer, while the mirrors cannot be reached), so
// the series and its cached trees stay the same between Debian's updates.
func NewSeries(t testing.TB, base Spec, groups ...[]string) Series {
	t.Helper()
	b := newBuilder(t)
	defer b.release()
	s, err := b.resolve(base, groups)
	if err != nil {
		fail(t, err)
	}
	return s
}

// Len is the number of trees: the base and one per step.
func (s Series) Len() int { return len(s.Steps) + 1 }

// Tree returns a fresh copy of tree n of the series (0 is the base) in a
// directory of t.TempDir(), building it and the trees before it first
// when the cache does not have them. It skips and fails as Build does.
func (s Series) Tree(t testing.TB, n int) string {
	t.Helper()
	if n < 0 || n >= s.Len() {
		t.Fatalf("rootfs: tree %d of a series of %d", n, s.Len())
	}
	b := newBuilder(t)
	key, err := b.ensureSeries(s, n)
	b.release()
	if err != nil {
		fail(t, err)
	}
	return b.copyOut(key)
}

// Listing returns the listing of tree n of the series as it was built,
// building it and the trees before it first when the cache does not have
// them, without copying the tree out: what a test that only compares
// trees needs. It skips and fails as Build does.
func (s Series) Listing(t testing.TB, n int) []Entry {
	t.Helper()
	if n < 0 || n >= s.Len() {
		t.Fatalf("rootfs: tree %d of a series of %d", n, s.Len())
	}
	b := newBuilder(t)
	defer b.release()
	key, err := b.ensureSeries(s, n)
	if err != nil {
		fail(t, err)
	}
	rec, err := b.cache.load(key)
	if err != nil {
		fail(t, err)
	}
	return rec.Listing
}

// stepKey names tree n of the series: the base's key, then each step.
func (s Series) stepKey(arch string, n int) string {
	key := s.Base.key(arch)
	for _, st := range s.Steps[:n] {
		h := sha256.Sum256([]byte(builderVersion + "\nafter " + key + "\ndpkg -i " + st.String() + "\n"))
		key = s.Base.Suite + "-" + hex.EncodeToString(h[:])[:16]
	}
	return key
}

// ensureSeries builds trees 0 to n of s that the cache lacks, and returns
// the key of tree n.
func (b *builder) ensureSeries(s Series, n int) (string, error) {
	key, err := b.ensureSpec(s.Base)
	if err != nil {
		return "", err
	}
	for i := 1; i <= n; i++ {
		next := s.stepKey(b.arch, i)
		if !b.cache.has(next) {
			if err := b.buildStep(s.Base.Suite, key, next, s.Steps[i-1]); err != nil {
				return "", fmt.Errorf("tree %d of the series (%s): %w", i, s.Steps[i-1], err)
			}
		}
		key = next
	}
	return key, nil
}

// buildStep makes the tree next from the cached tree prev by installing
// the packages of step.
func (b *builder) buildStep(suite, prev, next string, step Step) error {
	if testing.Short() {
		return skipf("-short: a tree of the series is not in the cache (%s) and takes a download to build", b.cache.dir)
	}
	work, err := b.cache.workDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	dir := filepath.Join(work, "rootfs")
	if err := b.cache.extract(prev, dir); err != nil {
		return err
	}
	start := time.Now()
	debs, err := newApt(b.cache.dir, suite).download(filepath.Join(work, "debs"), step.Packages)
	if err != nil {
		return err
	}
	if err := dpkgInstall(dir, debs); err != nil {
		return err
	}
	if err := checkInstalled(dir, step.Packages); err != nil {
		return err
	}
	took := time.Since(start)
	b.t.Logf("rootfs: built %s (%s after %s) in %v", next, step, prev, took.Round(time.Millisecond))
	rec := record{Description: fmt.Sprintf("%s, then dpkg -i %s", prev, step), Built: time.Now().UTC(), BuildTime: took}
	return b.cache.store(next, dir, rec)
}

// resolved is a series as the cache keeps it.
type resolved struct {
	At     time.Time
	Series Series
}

// resolve returns the series of base and groups, from the cache while
// it is fresh (or while the mirrors cannot be reached), else from the
// mirrors.
func (b *builder) resolve(base Spec, groups [][]string) (Series, error) {
	h := sha256.New()
	json.NewEncoder(h).Encode([]any{builderVersion, b.arch, base, groups})
	file := filepath.Join(b.cache.dir, "series-"+hex.EncodeToString(h.Sum(nil))[:16]+".json")
	var old resolved
	if data, err := os.ReadFile(file); err == nil && json.Unmarshal(data, &old) == nil {
		if time.Since(old.At) < resolveTTL {
			return old.Series, nil
		}
	}
	s, err := newApt(b.cache.dir, base.Suite).series(base, groups)
	if err != nil {
		if !old.At.IsZero() {
			b.t.Logf("rootfs: resolving the series again failed, so it is the one of %s: %v", old.At.Format(time.DateOnly), err)
			return old.Series, nil
		}
		return Series{}, err
	}
	data, err := json.Marshal(resolved{At: time.Now().UTC(), Series: s})
	if err != nil {
		return Series{}, err
	}
	return s, os.WriteFile(file, data, 0o600)
}

// dropIncluded removes from include the packages that some group names
// (plain or with a version): the series pins those itself.
func dropIncluded(include []string, groups [][]string) []string {
	return slices.DeleteFunc(slices.Clone(include), func(p string) bool {
		name, _, _ := strings.Cut(p, "=")
		return slices.ContainsFunc(groups, func(g []string) bool { return slices.Contains(g, name) })
	})
}
