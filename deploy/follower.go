package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/content/tuf"
)

// Site tells a follower which release its site stages: the Raft FSM's
// target on a seeder, the leader's gossiped decision on a node.
type Site interface {
	// Target returns the release the site stages, with its id when the
	// source knows it, or false while the site stages none.
	Target() (content.Release, bool)
}

// Swarms is what a follower needs of the chunk exchange.
type Swarms interface {
	// Join joins the swarm of a release's artifact for this node's
	// platform, whose chunks are given in file order, and starts fetching
	// what the node lacks.
	Join(ctx context.Context, rel content.Release, chunks []content.ChunkRef) (Swarm, error)
	// Leave leaves a swarm that Join returned.
	Leave(Swarm)
}

// Swarm is one joined swarm, as a follower watches it.
type Swarm interface {
	// Done is closed when every chunk is held and verified.
	Done() <-chan struct{}
	// Progress returns the chunks held and the chunks in the swarm.
	Progress() (have, total int)
}

// Sources are where a follower gets the site's signed metadata.
type Sources struct {
	// Peers serve what they verified (mesh/meta). Required.
	Peers tuf.Source
	// Origin is the CDN, for a seeder: it refreshes from the origin while
	// Leading says this seeder leads its site, from its peers otherwise.
	// Nil on a node.
	Origin     tuf.Source
	OriginName string
	Leading    func() bool
	// PeerChunks and OriginChunks fetch the chunks of a release's index
	// (content.Index) that the store lacks, from the site's peers and the
	// origin, as the metadata comes. PeerChunks is required;
	// OriginChunks goes with Origin.
	PeerChunks   content.FetchFunc
	OriginChunks content.FetchFunc
}

// FollowerConfig configures a Follower. Zero values mean the documented
// defaults, except where a field says it is required.
type FollowerConfig struct {
	// Platform picks the artifact of a release. Required.
	Platform string
	// Limits bound what a manifest may ask of the node. Default
	// content.DefaultLimits().
	Limits content.Limits
	// TUFDir keeps the node's trusted metadata (tuf.Refresh). Required.
	TUFDir string
	// TrustedRoot is the root.json the node trusts initially. Required.
	TrustedRoot []byte
	// Store holds the node's chunks, those of release indexes among
	// them. Required.
	Store content.Store
	// Refresh is how often the follower looks at its site's target
	// without being woken. Default 30 s.
	Refresh time.Duration
}

// FollowerState is where a follower stands: the release it stages (its
// site's target, resolved in verified metadata) and its phase.
type FollowerState struct {
	Release content.Release // staged, with its id; zero: none yet
	Phase   Phase           // PhaseIdle, PhaseFetching or PhaseVerified
	Swarm   Swarm           // the staged release's swarm; nil: none
	// Artifact is the staged release's artifact for the node's platform,
	// its files loaded; shared, never modified. Policy is the release's
	// signed rollout policy.
	Artifact *content.Artifact
	Policy   content.Rollout
	// Platforms are the platforms the release has an artifact for.
	Platforms []string
	DoneAt    time.Time // when it was verified
	Err       error     // the last failure, cleared when a release is staged
	ErrAt     time.Time
}

// Follower keeps a node on the release its site stages. When the site's
// target changes it refreshes the signed metadata (a leading seeder from
// the origin, everyone else from its peers), resolves the target in it,
// verifies its manifest and joins the swarm of the node's platform
// artifact, leaving the swarm of the release it staged before. It reports
// its state for the node's status and gossip, and for the leader, which
// spreads the staged swarm.
//
// All of its state is owned by the goroutine of Run; State returns a copy
// and a channel closed at the next change.
type Follower struct {
	cfg     FollowerConfig
	log     *slog.Logger
	site    Site
	sources Sources
	swarms  Swarms
	wake    chan struct{} // 1-buffered: look at the site's target again

	mu      sync.Mutex
	state   FollowerState
	changed chan struct{} // closed and replaced at each change of state
}

// NewFollower returns a follower; Run starts it. A nil log discards.
func NewFollower(cfg FollowerConfig, site Site, sources Sources, swarms Swarms, log *slog.Logger) (*Follower, error) {
	switch {
	case cfg.TUFDir == "" || len(cfg.TrustedRoot) == 0:
		return nil, errors.New("deploy: follower: TUFDir and TrustedRoot are required")
	case cfg.Store == nil:
		return nil, errors.New("deploy: follower: Store is required")
	case site == nil || sources.Peers == nil || sources.PeerChunks == nil || swarms == nil:
		return nil, errors.New("deploy: follower: a site, peers (files and chunks) and swarms are required")
	case sources.Origin != nil && (sources.Leading == nil || sources.OriginChunks == nil):
		return nil, errors.New("deploy: follower: an origin needs Leading and OriginChunks")
	case cfg.Refresh < 0:
		return nil, fmt.Errorf("deploy: follower: refresh %v is negative", cfg.Refresh)
	}
	if err := content.ValidatePlatform(cfg.Platform); err != nil {
		return nil, fmt.Errorf("deploy: follower: %w", err)
	}
	if cfg.Limits == (content.Limits{}) {
		cfg.Limits = content.DefaultLimits()
	}
	if cfg.Refresh == 0 {
		cfg.Refresh = 30 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Follower{cfg: cfg, log: log, site: site, sources: sources, swarms: swarms,
		wake: make(chan struct{}, 1), changed: make(chan struct{})}, nil
}

// Wake asks the follower to look at its site's target now. It never
// blocks; wakes collapse.
func (f *Follower) Wake() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// State returns the follower's state and a channel closed at its next
// change.
func (f *Follower) State() (FollowerState, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state, f.changed
}

// update changes the state (on Run's goroutine) and wakes its watchers.
func (f *Follower) update(fn func(*FollowerState)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.state)
	close(f.changed)
	f.changed = make(chan struct{})
}

// fail records a failure in the state and the log.
func (f *Follower) fail(err error) {
	f.log.Warn("follow the site's release", "err", err)
	f.update(func(s *FollowerState) { s.Err, s.ErrAt = err, time.Now() })
}

// Run follows the site until ctx ends; then it leaves the staged swarm.
func (f *Follower) Run(ctx context.Context) error {
	t := time.NewTicker(f.cfg.Refresh)
	defer t.Stop()
	defer func() {
		if st, _ := f.State(); st.Swarm != nil {
			f.swarms.Leave(st.Swarm)
		}
	}()
	for {
		st, _ := f.State()
		var done <-chan struct{}
		if st.Phase == PhaseFetching {
			done = st.Swarm.Done()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-done:
			f.log.Info("release verified", "release", st.Release)
			f.update(func(s *FollowerState) { s.Phase, s.DoneAt = PhaseVerified, time.Now() })
			continue
		case <-f.wake:
		case <-t.C:
		}
		want, ok := f.site.Target()
		if !ok || (st.Swarm != nil && st.Release.Matches(want)) {
			continue
		}
		if err := f.stage(ctx, want, st.Swarm); err != nil && ctx.Err() == nil {
			f.fail(err)
		}
	}
}

// stage resolves the site's target in freshly verified metadata, joins the
// swarm of its artifact and then leaves prev, the swarm staged before.
func (f *Follower) stage(ctx context.Context, want content.Release, prev Swarm) error {
	rel, m, art, err := f.resolve(ctx, want)
	if err != nil {
		return err
	}
	chunks := art.Chunks()
	sw, err := f.swarms.Join(ctx, rel, chunks)
	if err != nil {
		return fmt.Errorf("join the swarm of %s: %w", rel, err)
	}
	if prev != nil {
		f.swarms.Leave(prev)
	}
	f.log.Info("staging", "release", rel, "chunks", len(chunks))
	f.update(func(s *FollowerState) {
		*s = FollowerState{Release: rel, Phase: PhaseFetching, Swarm: sw, Artifact: art, Policy: m.Rollout,
			Platforms: slices.Sorted(maps.Keys(m.Platforms))}
	})
	return nil
}

// source is where the follower refreshes the signed metadata now: the
// origin for the leading seeder, the site's peers for everyone else.
func (f *Follower) source() (tuf.Source, content.FetchFunc, string) {
	if f.sources.Origin != nil && f.sources.Leading() {
		return f.sources.Origin, f.sources.OriginChunks, f.sources.OriginName
	}
	return f.sources.Peers, f.sources.PeerChunks, "site peers"
}

// resolve finds a release in freshly verified metadata and returns it
// (with its signed id), its manifest and its artifact for the node's
// platform, loaded. A target that names an id must be signed with that
// id.
func (f *Follower) resolve(ctx context.Context, want content.Release) (content.Release, *content.Manifest, *content.Artifact, error) {
	src, chunks, name := f.source()
	trusted, err := tuf.Refresh(ctx, src, name, f.cfg.TUFDir, f.cfg.TrustedRoot, f.log)
	if err != nil {
		return content.Release{}, nil, nil, err
	}
	target, err := trusted.Find(want)
	if err != nil {
		return content.Release{}, nil, nil, err
	}
	m, err := trusted.Manifest(ctx, target, f.cfg.Limits)
	if err != nil {
		return content.Release{}, nil, nil, err
	}
	art := m.Platforms[f.cfg.Platform]
	if art == nil {
		return content.Release{}, nil, nil, fmt.Errorf("release %s has no artifact for %s", target, f.cfg.Platform)
	}
	if err := art.Load(ctx, f.cfg.Store, chunks, f.cfg.Limits); err != nil {
		return content.Release{}, nil, nil, fmt.Errorf("release %s: %w", target, err)
	}
	return target.Release, m, art, nil
}
