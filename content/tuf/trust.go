package tuf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/meshcast/meshcast/content"
)

// Target is a release as the signed targets metadata lists it: the
// release (with the id its manifest must hash to), the manifest's target
// path and its length.
type Target struct {
	content.Release
	Path   string // TUF target path, releases/<name>/<version>.json
	Length int64  // manifest bytes
	tf     *metadata.TargetFiles
}

// patches returns the manifest patches the signed target lists, by base
// id, with their lengths.
func (r Target) patches() map[content.ReleaseID]int64 {
	if r.tf == nil || r.tf.Custom == nil {
		return nil
	}
	var c content.TargetCustom
	if json.Unmarshal(*r.tf.Custom, &c) != nil {
		return nil
	}
	out := map[content.ReleaseID]int64{}
	for k, n := range c.Meshcast.Patches {
		var id content.ReleaseID
		if id.UnmarshalText([]byte(k)) == nil && n > 0 {
			out[id] = n
		}
	}
	return out
}

// Source delivers the files of an origin by path below it, such as
// "metadata/timestamp.json" or "targets/releases/x/<sha256>.1.0.0.json",
// at most maxLength bytes. A file the source does not have is an error
// matching ErrNotFound. The CDN client (seeder/cdn) is one Source; a
// node's site peers, which keep what they verified (mesh/meta), are
// another. Sources are trusted for availability only: everything they
// deliver is verified.
type Source interface {
	Fetch(ctx context.Context, path string, maxLength int64) ([]byte, error)
}

// A Source that serves no manifest patches (a node's site peers keep
// manifests, not patches) has a method NoPatches that returns true, and a
// Trusted over it fetches whole manifests without asking for a patch.

// ErrNotFound is matched by a Source's error for a file it does not have
// (a CDN's 404, no peer holding the file).
var ErrNotFound = errors.New("file not found at the source")

// Trusted is a node's verified view of the origin's TUF metadata after a
// refresh. Its methods are not safe for concurrent use.
type Trusted struct {
	src        Source
	name       string // of the source, for errors
	log        *slog.Logger
	up         *updater.Updater
	fetcher    *sourceFetcher
	targetsDir string
	releases   []Target
}

// ErrNoRelease means the signed metadata does not list the release asked
// for.
var ErrNoRelease = errors.New("no such release in the signed metadata")

// sourceBase is the URL go-tuf is given for the origin; the fetcher turns
// its URLs back into origin paths for the Source.
const sourceBase = "https://origin.meshcast.invalid/"

// sourceFetcher adapts a Source to go-tuf's Fetcher.
type sourceFetcher struct {
	src   Source
	ctx   context.Context
	roots []fetchedRoot // root versions downloaded by this refresh
}

type fetchedRoot struct {
	path string
	b    []byte
}

// DownloadFile implements fetcher.Fetcher.
func (f *sourceFetcher) DownloadFile(u string, maxLength int64, _ time.Duration) ([]byte, error) {
	path, ok := strings.CutPrefix(u, sourceBase)
	if !ok {
		return nil, fmt.Errorf("tuf asked for %s, outside the origin", u)
	}
	b, err := f.src.Fetch(f.ctx, path, maxLength)
	if err == nil && strings.HasSuffix(path, ".root.json") {
		f.roots = append(f.roots, fetchedRoot{path, b})
	}
	var dh *metadata.ErrDownloadHTTP
	if errors.Is(err, ErrNotFound) && !errors.As(err, &dh) {
		// go-tuf reads a 404 on N+1.root.json as "no newer root".
		return nil, errors.Join(err, &metadata.ErrDownloadHTTP{StatusCode: 404, URL: u})
	}
	return b, err
}

// Refresh runs a TUF client update against src (named name in
// errors), starting from the trusted metadata kept in dir (or from
// trustedRoot on first use), and persists what it verified in dir.
// Expired, rolled-back, mix-and-matched or wrongly signed metadata fails
// the refresh, and what dir trusts never moves backwards: as the TUF
// client workflow requires, a newer timestamp or snapshot that verified
// before the failure is kept (it guards the next refresh against
// rollback), while the trusted targets, and so the list of releases,
// change only when the whole refresh verified.
func Refresh(ctx context.Context, src Source, name, dir string, trustedRoot []byte, log *slog.Logger) (*Trusted, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Join(dir, "targets"), 0o700); err != nil {
		return nil, fmt.Errorf("tuf refresh: %w", err)
	}
	root, err := trustAnchor(dir, trustedRoot)
	if err != nil {
		return nil, fmt.Errorf("tuf refresh: %w", err)
	}
	cfg, err := config.New(sourceBase+"metadata", root)
	if err != nil {
		return nil, fmt.Errorf("tuf refresh: %w", err)
	}
	f := &sourceFetcher{src: src, ctx: ctx}
	cfg.Fetcher = f
	cfg.LocalMetadataDir = dir
	cfg.LocalTargetsDir = filepath.Join(dir, "targets")
	cfg.RemoteTargetsURL = sourceBase + "targets"
	cfg.PrefixTargetsWithHash = true
	up, err := updater.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("tuf refresh: trusted root: %w", err)
	}
	if err := up.Refresh(); err != nil {
		return nil, fmt.Errorf("tuf refresh from %s: %w", name, err)
	}
	// Keep every root version the refresh verified, so that this node can
	// hand a peer the chain from its root to the newest (CachedFile).
	trusted := up.GetTrustedMetadataSet().Root.Signed.Version
	if err := os.MkdirAll(filepath.Join(dir, "roots"), 0o700); err == nil {
		for _, r := range f.roots {
			if v := metaVersion(r.b); v >= 1 && v <= trusted {
				os.WriteFile(filepath.Join(dir, "roots", strconv.FormatInt(v, 10)+".root.json"), r.b, 0o600)
			}
		}
		if given := metaVersion(root); given >= 1 {
			os.WriteFile(filepath.Join(dir, "roots", strconv.FormatInt(given, 10)+".root.json"), root, 0o600)
		}
	}
	t := &Trusted{src: src, name: name, log: log, up: up, fetcher: f, targetsDir: cfg.LocalTargetsDir}
	for path, tf := range up.GetTopLevelTargets() {
		if r, ok := parseReleaseTarget(path, tf); ok {
			t.releases = append(t.releases, r)
		}
	}
	sort.Slice(t.releases, func(i, j int) bool {
		a, b := t.releases[i], t.releases[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return semver.MustParse(a.Version).LessThan(semver.MustParse(b.Version))
	})
	return t, nil
}

// trustAnchor returns the newest root this node trusts: the one a previous
// refresh persisted in dir, or the configured one if it is newer.
func trustAnchor(dir string, configured []byte) ([]byte, error) {
	given, err := metadata.Root().FromBytes(configured)
	if err != nil {
		return nil, fmt.Errorf("trusted root: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "root.json"))
	if errors.Is(err, os.ErrNotExist) {
		return configured, nil
	}
	if err != nil {
		return nil, err
	}
	kept, err := metadata.Root().FromBytes(b)
	if err != nil || kept.Signed.Version < given.Signed.Version {
		return configured, nil
	}
	return b, nil
}

func parseReleaseTarget(path string, tf *metadata.TargetFiles) (Target, bool) {
	rest, ok := strings.CutPrefix(path, "releases/")
	if !ok {
		return Target{}, false
	}
	name, file, ok := strings.Cut(rest, "/")
	version, ok2 := strings.CutSuffix(file, ".json")
	if !ok || !ok2 || content.ValidateName(name) != nil {
		return Target{}, false
	}
	if _, err := content.ParseVersion(version); err != nil {
		return Target{}, false
	}
	h := tf.Hashes["sha256"]
	if len(h) != len(content.ReleaseID{}) {
		return Target{}, false
	}
	return Target{Release: content.Release{Name: name, Version: version, ID: content.ReleaseID(h)}, Path: path, Length: tf.Length, tf: tf}, true
}

// Releases lists the signed releases, by name and then version.
func (t *Trusted) Releases() []Target { return append([]Target(nil), t.releases...) }

// Find returns the target of a release: of want's version, or of the
// highest one when want has none. A release with an id must have that id
// in the signed metadata (with no version: the release signed with it).
func (t *Trusted) Find(want content.Release) (Target, error) {
	var zero content.ReleaseID
	var found *Target
	for i := range t.releases {
		r := &t.releases[i]
		if r.Name == want.Name && (want.Version == "" || r.Version == want.Version) && (want.Version != "" || want.ID == zero || r.ID == want.ID) {
			found = r // sorted ascending: the last match is the highest
		}
	}
	switch {
	case found == nil && want.Version == "" && want.ID != zero:
		return Target{}, fmt.Errorf("%w: %s with id %s", ErrNoRelease, want, want.ID.Short())
	case found == nil:
		return Target{}, fmt.Errorf("%w: %s", ErrNoRelease, want)
	case want.Version != "" && !want.Matches(found.Release):
		return Target{}, fmt.Errorf("%w: %s is signed with id %s, not %s", ErrNoRelease, want, found.ID.Short(), want.ID.Short())
	}
	return *found, nil
}

// patched builds r's manifest from the newest earlier manifest of the same
// release that the local cache holds and a patch the origin lists for it,
// and caches the result. It returns nil when there is no such pair or the
// patch does not produce the signed bytes; the caller then downloads the
// whole manifest.
func (t *Trusted) patched(r Target) []byte {
	patches := r.patches()
	if np, ok := t.src.(interface{ NoPatches() bool }); len(patches) == 0 || (ok && np.NoPatches()) {
		return nil
	}
	for i := len(t.releases) - 1; i >= 0; i-- {
		base := t.releases[i]
		n, ok := patches[base.ID]
		if base.Name != r.Name || !ok {
			continue
		}
		_, old, err := t.up.FindCachedTarget(base.tf, "")
		if err != nil || old == nil {
			continue
		}
		patch, err := t.src.Fetch(t.fetcher.ctx, "targets/"+content.ManifestPatchPath(r.Path, r.ID, base.ID), n)
		if err == nil {
			var b []byte
			if b, err = content.ApplyManifestPatch(old, patch, r.Length); err == nil {
				if content.ManifestID(b) == r.ID {
					t.cache(r, b)
					return b
				}
				err = errors.New("the patched manifest does not match the signed hash")
			}
		}
		t.log.Warn("manifest patch unusable; fetching the whole manifest", "release", r, "base", base, "err", err)
		return nil
	}
	return nil
}

// cache stores a verified manifest where go-tuf's FindCachedTarget looks.
func (t *Trusted) cache(r Target, b []byte) {
	p := filepath.Join(t.targetsDir, url.PathEscape(r.Path))
	tmp := p + ".tmp"
	if os.WriteFile(tmp, b, 0o644) == nil {
		os.Rename(tmp, p)
	}
}

// Manifest downloads (or takes from the local cache) a release's manifest,
// checks its length and hash against the signed target, decodes and
// validates it, and checks that it names the release it is signed as. r
// names the release; its signed target is looked up again (Find), so a
// Target built by hand is as good as one Find returned.
func (t *Trusted) Manifest(ctx context.Context, r Target, l content.Limits) (*content.Manifest, error) {
	r, err := t.Find(r.Release)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if r.Length > l.ManifestBytes {
		return nil, fmt.Errorf("manifest %s: %w: %d bytes exceeds the limit of %d", r, content.ErrBadManifest, r.Length, l.ManifestBytes)
	}
	t.fetcher.ctx = ctx
	var b []byte
	_, b, err = t.up.FindCachedTarget(r.tf, "")
	if err != nil || b == nil {
		b = t.patched(r)
	}
	if b == nil {
		if _, b, err = t.up.DownloadTarget(r.tf, "", ""); err != nil {
			return nil, fmt.Errorf("manifest %s: %w", r, err)
		}
	}
	m, err := content.DecodeManifest(b, l)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", r, err)
	}
	if m.Name != r.Name || m.Version != r.Version {
		return nil, fmt.Errorf("manifest %s: %w: it describes %s@%s", r, content.ErrBadManifest, m.Name, m.Version)
	}
	return m, nil
}
