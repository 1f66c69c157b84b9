package cdn

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/content/tuf"
)

// DirectFetchOptions describe a one-shot download of a release.
type DirectFetchOptions struct {
	// StateDir keeps the trusted TUF metadata (tuf/) and the chunk store
	// (chunks/) between runs, so a second fetch resumes or reuses.
	StateDir    string
	TrustedRoot []byte          // the root.json this node trusts initially
	Release     content.Release // the name, and a version or none for the highest signed one
	Platform    string
	Out         string // must not exist, or be an empty directory
	Limits      content.Limits
	// DropPrivileges assembles setuid and setgid files without those
	// bits and files without capabilities (content.AssembleOptions).
	DropPrivileges bool
}

// FetchResult reports a direct fetch; it is also the --json output.
type FetchResult struct {
	Release       string            `json:"release"`
	ReleaseID     content.ReleaseID `json:"release_id"`
	Platform      string            `json:"platform"`
	Out           string            `json:"out"`
	BytesFromCDN  int64             `json:"bytes_from_cdn"` // bytes read from CDN connections
	Requests      int64             `json:"requests"`
	ChunksFetched int               `json:"chunks_fetched"`
	ChunksReused  int               `json:"chunks_reused"` // already in the local store
	ChunkBytes    int64             `json:"chunk_bytes"`   // chunk bodies fetched
	Files         int               `json:"files"`
	Seconds       float64           `json:"seconds"`
}

// platformArtifact returns m's artifact for platform, or an error that
// lists the platforms m has.
func platformArtifact(m *content.Manifest, rel tuf.Target, platform string) (*content.Artifact, error) {
	if art, ok := m.Platforms[platform]; ok {
		return art, nil
	}
	have := make([]string, 0, len(m.Platforms))
	for p := range m.Platforms {
		have = append(have, p)
	}
	slices.Sort(have)
	return nil, fmt.Errorf("release %s has no artifact for %s (it has %s)", rel, platform, strings.Join(have, ", "))
}

// loadIndex loads the artifact's file list (content.Index), fetching the
// chunks of it that store lacks, and returns those.
func loadIndex(ctx context.Context, c *Client, art *content.Artifact, store content.Store, l content.Limits) (map[content.ChunkID]bool, error) {
	fetched := map[content.ChunkID]bool{}
	err := art.Load(ctx, store, func(ctx context.Context, refs []content.ChunkRef) error {
		for _, ref := range refs {
			fetched[ref.ID] = true
		}
		return c.FetchChunks(ctx, refs, store.Put)
	}, l)
	return fetched, err
}

// DirectFetch refreshes the TUF metadata, verifies the release's manifest,
// fetches the chunks the local store lacks, and assembles the platform's
// artifact into opt.Out. Interrupted, it resumes without fetching again
// what it verified.
func DirectFetch(ctx context.Context, c *Client, opt DirectFetchOptions, log *slog.Logger) (*FetchResult, error) {
	start := time.Now()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opt.Limits == (content.Limits{}) {
		opt.Limits = content.DefaultLimits()
	}
	bytes0, req0 := c.BytesFromCDN(), c.Requests()
	res := &FetchResult{Platform: opt.Platform, Out: opt.Out}
	store, err := content.OpenDiskStore(filepath.Join(opt.StateDir, "chunks"))
	if err != nil {
		return nil, err
	}
	defer store.Close()
	trusted, err := tuf.Refresh(ctx, c, c.cfg.URL, filepath.Join(opt.StateDir, "tuf"), opt.TrustedRoot, c.log)
	if err != nil {
		return nil, err
	}
	rel, err := trusted.Find(opt.Release)
	if err != nil {
		return nil, err
	}
	res.Release, res.ReleaseID = rel.String(), rel.ID
	m, err := trusted.Manifest(ctx, rel, opt.Limits)
	if err != nil {
		return nil, err
	}
	art, err := platformArtifact(m, rel, opt.Platform)
	if err != nil {
		return nil, err
	}
	fetchedIndex, err := loadIndex(ctx, c, art, store, opt.Limits)
	if err != nil {
		res.BytesFromCDN, res.Requests = c.BytesFromCDN()-bytes0, c.Requests()-req0
		return res, fmt.Errorf("release %s: %w", rel, err)
	}
	var missing []content.ChunkRef
	chunks := art.Chunks()
	for _, ref := range chunks {
		switch {
		case fetchedIndex[ref.ID]:
			res.ChunksFetched++
			res.ChunkBytes += int64(ref.Stored)
		case store.Has(ref.ID):
			res.ChunksReused++
		default:
			missing = append(missing, ref)
		}
	}
	log.Info("fetching", "release", rel, "platform", opt.Platform, "chunks", len(chunks), "missing", len(missing))
	err = c.FetchChunks(ctx, missing, store.Put)
	// The store writes behind: count what is on disk, which is what a
	// later run will not fetch again.
	if ferr := store.Flush(); err == nil && ferr != nil {
		// The store failed, as when a Put does: a disk full after every
		// Put returned is reported here.
		err = &SinkError{fmt.Errorf("store: %w", ferr)}
	}
	for _, ref := range missing {
		if store.Has(ref.ID) {
			res.ChunksFetched++
			res.ChunkBytes += int64(ref.Stored)
		}
	}
	res.BytesFromCDN, res.Requests = c.BytesFromCDN()-bytes0, c.Requests()-req0
	if err != nil {
		return res, fmt.Errorf("fetch %s: %w", rel, err)
	}
	st, err := content.Assemble(ctx, art, store, opt.Out, content.AssembleOptions{DropPrivileges: opt.DropPrivileges})
	if err != nil {
		return res, err
	}
	res.Files = st.Files
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}
