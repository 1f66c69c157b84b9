package seeder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshcast/meshcast/content"
)

// Consensus is what the leader loop needs of the site's Raft: *Raft has
// it.
type Consensus interface {
	// Leader returns the leader's id, the current term and whether this
	// server leads.
	Leader() (id string, term uint64, isLeader bool)
	// LeaderCh receives this server's leadership when it changes.
	LeaderCh() <-chan bool
	// Apply proposes a command and waits until it is applied.
	Apply(ctx context.Context, cmd []byte) (any, error)
	// Servers lists the Raft configuration.
	Servers() ([]Server, error)
	// AddVoter adds a server as a voter; RemoveServer removes one.
	AddVoter(ctx context.Context, id string) error
	RemoveServer(ctx context.Context, id string) error
}

// Origin is the release origin as the leader uses it.
type Origin interface {
	// Newest refreshes the signed metadata from the origin and returns
	// the highest signed version of the release named name, with its id,
	// or the zero Release while none is signed.
	Newest(ctx context.Context, name string) (content.Release, error)
	// FetchChunks fetches chunks from the origin and hands each, verified,
	// to sink (cdn.Client.FetchChunks).
	FetchChunks(ctx context.Context, refs []content.ChunkRef, sink func(content.Chunk) error) error
}

// Members is what the leader needs of the site's membership.
type Members interface {
	// Seeders returns the ids of the members alive in the site's gossip
	// that run as seeders.
	Seeders() []string
}

// Follower tells the leader which swarm this seeder has joined: the one of
// the site's target, once this seeder's release follower (deploy.Follower)
// resolved it.
type Follower interface {
	// Staged returns the staged swarm (nil: none yet) and a channel closed
	// when that may have changed.
	Staged() (Swarm, <-chan struct{})
}

// Swarm is the chunk exchange's swarm of the staged release, as the
// leader spreads it into the site (mesh/exchange in spread mode).
type Swarm interface {
	// Chunks are the swarm's chunks, by index.
	Chunks() []content.ChunkRef
	// Held reports, by index, the chunks this seeder holds and those some
	// other member announced, and how many members said what they hold.
	Held(ctx context.Context) (self, site []bool, members int, err error)
	// Peers is how many peers this seeder is connected to.
	Peers() int
	// SetSpread turns spread mode on or off: in it, the seeder announces
	// nothing and pushes each chunk it offers to one member.
	SetSpread(on bool) error
	// Offer hands the exchange a chunk, by index, that the store holds.
	Offer(i int) error
	// WaitSpread waits until at most window chunks are held by this
	// seeder alone.
	WaitSpread(ctx context.Context, window int) error
}

// ChunkStore is where the leader puts the chunks it fetches; Put verifies.
type ChunkStore interface {
	Put(c content.Chunk) error
}

// LeaderConfig configures a Leader. Zero durations mean the defaults.
type LeaderConfig struct {
	// Release is the name of the release the site follows. Required.
	Release string
	// Refresh is how often the leader checks the origin for a new version
	// and gossip for new seeders. Default 30 s.
	Refresh time.Duration
	// SpreadStall is how long the leader waits for the site to take its
	// chunks before it fetches on regardless: a site too slow or too busy
	// must not stall the release. Keep it below the CDN client's idle
	// timeout. Default 5 s.
	SpreadStall time.Duration
	// Settle is how long the leader waits, at most, for the connected
	// peers to say what they hold before it fetches what the site lacks.
	// Default 2 s.
	Settle time.Duration
	// MaxBackoff caps the wait between failed fetches (doubling from 1 s).
	// Default 1 min.
	MaxBackoff time.Duration
	// RolloutTick is how often the leader looks at the rollout's gates
	// and what gossip says of the members. Default 500 ms.
	RolloutTick time.Duration
}

func (c LeaderConfig) withDefaults() LeaderConfig {
	set := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	set(&c.Refresh, 30*time.Second)
	set(&c.SpreadStall, 5*time.Second)
	set(&c.Settle, 2*time.Second)
	set(&c.MaxBackoff, time.Minute)
	set(&c.RolloutTick, 500*time.Millisecond)
	return c
}

// LeaderDeps are what a Leader works with; every one is required.
type LeaderDeps struct {
	Raft     Consensus
	FSM      *FSM
	Origin   Origin
	Members  Members
	Follower Follower
	Store    ChunkStore
	Views    Views
	Policy   Policy
}

// LeaderStats count what the leader fetched from the origin.
type LeaderStats struct {
	ChunksFromCDN, ChunkBytesFromCDN int64
	Err                              error // the last failure
	ErrAt                            time.Time
}

// Leader is the site's active seeder while this seeder leads the site's
// Raft: for each term it leads, it watches the origin and stages each new
// signed version through Raft (the command carries the term, so a deposed
// leader's stale decision is refused), adds the seeders gossip knows to
// Raft as voters, and brings into the site, from the origin, the chunks of
// the staged release that no member holds, spreading each to one member as
// soon as it verified it (see Swarm). Everything it does for a term stops
// when that leadership ends.
//
// Run owns every goroutine the leader starts. Stats and RemoveSeeder are
// safe for concurrent use.
type Leader struct {
	cfg LeaderConfig
	d   LeaderDeps
	log *slog.Logger

	chunks, chunkBytes atomic.Int64
	rolloutWake        chan struct{} // 1-buffered: look at the rollout now

	mu    sync.Mutex
	err   error
	errAt time.Time
}

// NewLeader returns a leader loop; Run starts it. A nil log discards.
func NewLeader(cfg LeaderConfig, d LeaderDeps, log *slog.Logger) (*Leader, error) {
	if err := content.ValidateName(cfg.Release); err != nil {
		return nil, fmt.Errorf("seeder: leader: %w", err)
	}
	if d.Raft == nil || d.FSM == nil || d.Origin == nil || d.Members == nil || d.Follower == nil || d.Store == nil || d.Views == nil || d.Policy == nil {
		return nil, errors.New("seeder: leader: every dependency is required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Leader{cfg: cfg.withDefaults(), d: d, log: log, rolloutWake: make(chan struct{}, 1)}, nil
}

// Stats returns what the leader fetched, over every term, and its last
// failure.
func (l *Leader) Stats() LeaderStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return LeaderStats{ChunksFromCDN: l.chunks.Load(), ChunkBytesFromCDN: l.chunkBytes.Load(), Err: l.err, ErrAt: l.errAt}
}

// note records a failure in the stats and the log.
func (l *Leader) note(err error) {
	l.log.Warn("lead the site", "err", err)
	l.mu.Lock()
	l.err, l.errAt = err, time.Now()
	l.mu.Unlock()
}

// Run leads the site for each term this seeder leads its Raft, until ctx
// ends.
func (l *Leader) Run(ctx context.Context) error {
	var stopLead func()
	var leadTerm uint64
	defer func() {
		if stopLead != nil {
			stopLead()
		}
	}()
	for {
		// LeaderCh collapses changes: leadership lost and won back shows
		// as leading in a new term, whose decisions carry the new term.
		switch _, term, leading := l.d.Raft.Leader(); {
		case leading && (stopLead == nil || term != leadTerm):
			if stopLead != nil {
				stopLead()
			}
			leadTerm = term
			stopLead = goWithCancel(ctx, func(ctx context.Context) { l.lead(ctx, term) })
		case !leading && stopLead != nil:
			l.log.Info("no longer leading the site")
			stopLead()
			stopLead = nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-l.d.Raft.LeaderCh():
		}
	}
}

// lead runs while this seeder leads its site, for one Raft term.
func (l *Leader) lead(ctx context.Context, term uint64) {
	l.log.Info("leading the site", "term", term)
	var seeding Swarm
	var stopSeeding func()
	stop := func() {
		if stopSeeding != nil {
			stopSeeding()
			seeding.SetSpread(false)
			seeding, stopSeeding = nil, nil
		}
	}
	defer stop()
	defer goWithCancel(ctx, func(ctx context.Context) { l.driveRollout(ctx, term) })()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		// Seed the staged swarm, the site's target.
		sw, changed := l.d.Follower.Staged()
		if sw != nil && sw != seeding {
			stop()
			if err := sw.SetSpread(true); err != nil {
				l.note(fmt.Errorf("spread the staged release: %w", err))
			}
			seeding = sw
			stopSeeding = goWithCancel(ctx, func(ctx context.Context) { l.seed(ctx, sw) })
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-t.C:
			t.Reset(l.cfg.Refresh)
			l.stageNewest(ctx, term)
			l.addSeeders(ctx)
		}
	}
}

// goWithCancel runs fn on a goroutine of its own with a context derived
// from ctx; the function it returns cancels that context and waits for fn
// to return.
func goWithCancel(ctx context.Context, fn func(context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// stageNewest proposes the highest signed version of the release if the
// site does not stage it yet.
func (l *Leader) stageNewest(ctx context.Context, term uint64) {
	rel, err := l.d.Origin.Newest(ctx, l.cfg.Release)
	if err != nil {
		if ctx.Err() == nil {
			l.note(err)
		}
		return
	}
	if rel.IsZero() {
		return // nothing published yet
	}
	if t := l.d.FSM.State().Target; t != nil && t.ID == rel.ID {
		return
	}
	cmd, err := EncodeCommand(CmdStageRelease, StageRelease{Release: rel, Term: term})
	if err != nil {
		l.note(err)
		return
	}
	if _, err := l.d.Raft.Apply(ctx, cmd); err != nil {
		if ctx.Err() == nil {
			l.note(fmt.Errorf("stage %s: %w", rel, err))
		}
		return
	}
	l.log.Info("staged for the site", "release", rel, "term", term)
}

// addSeeders adds to Raft, as voters, the seeders that gossip knows and
// Raft does not.
func (l *Leader) addSeeders(ctx context.Context) {
	servers, err := l.d.Raft.Servers()
	if err != nil {
		return
	}
	for _, id := range l.d.Members.Seeders() {
		if slices.ContainsFunc(servers, func(s Server) bool { return s.ID == id }) {
			continue
		}
		if err := l.d.Raft.AddVoter(ctx, id); err != nil {
			l.log.Warn("add seeder to raft", "peer", id, "err", err)
			continue
		}
		l.log.Info("added seeder to raft", "peer", id)
	}
}

// ErrSeederAlive is returned by RemoveSeeder for a seeder that gossip
// lists alive: the leader would add it back at its next check.
var ErrSeederAlive = errors.New("the seeder is alive in the site's gossip")

// RemoveSeeder removes a seeder that is gone for good from the site's
// Raft, so that it no longer counts toward the quorum (an operator's
// decision; only the leader can). A seeder gossip still lists alive is
// refused with ErrSeederAlive: stop it first.
func (l *Leader) RemoveSeeder(ctx context.Context, id string) error {
	if slices.Contains(l.d.Members.Seeders(), id) {
		return fmt.Errorf("remove seeder %s: %w; stop it first, or the leader adds it back", id, ErrSeederAlive)
	}
	return l.d.Raft.RemoveServer(ctx, id)
}

// spreadWindow is how many chunks the active seeder may hold that no other
// member holds yet, for a release of n chunks: 1 % of the release, at
// least 8 and at most 64 chunks. It bounds what a failover fetches twice
// (at most 1 % of the release beyond the first 8 chunks) and, with the
// push round trip, the pace at which the seeder feeds the site: at 64 KiB
// chunks, 8 chunks per 20 ms round trip is 25 MB/s, 64 is 200 MB/s.
func spreadWindow(n int) int { return min(max(n/100, 8), 64) }

// seed fetches from the origin the chunks of sw that neither this seeder
// nor any site peer holds, offering each to the exchange as soon as it is
// verified and stored. It re-checks until the site holds everything, so a
// peer that leaves with the only copy of a chunk costs one more fetch of
// that chunk, not of the release.
func (l *Leader) seed(ctx context.Context, sw Swarm) {
	if !l.settle(ctx, sw) {
		return
	}
	chunks := sw.Chunks()
	index := make(map[content.ChunkID]int, len(chunks))
	for i, c := range chunks {
		index[c.ID] = i
	}
	window := spreadWindow(len(chunks))
	backoff := time.Second
	for ctx.Err() == nil {
		self, site, _, err := sw.Held(ctx)
		if err != nil {
			return
		}
		var refs []content.ChunkRef
		for i, c := range chunks {
			if !self[i] && !site[i] {
				refs = append(refs, c)
			}
		}
		if len(refs) == 0 {
			return
		}
		l.log.Info("fetching from the CDN what the site lacks", "chunks", len(refs), "of", len(chunks))
		err = l.d.Origin.FetchChunks(ctx, refs, func(c content.Chunk) error {
			if err := l.d.Store.Put(c); err != nil {
				return err
			}
			l.chunks.Add(1)
			l.chunkBytes.Add(int64(len(c.Body)))
			if err := sw.Offer(index[c.ID]); err != nil {
				return err
			}
			return l.waitSpread(ctx, sw, window)
		})
		if err != nil && ctx.Err() == nil {
			l.note(fmt.Errorf("fetch from the CDN: %w", err))
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, l.cfg.MaxBackoff)
		}
	}
}

// settle gives the connected peers up to Settle to say what they hold, so
// that the leader does not fetch what the site has. It reports false when
// ctx ended.
func (l *Leader) settle(ctx context.Context, sw Swarm) bool {
	t := time.NewTimer(l.cfg.Settle)
	defer t.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, _, members, err := sw.Held(ctx); err != nil || members >= sw.Peers() {
			return ctx.Err() == nil
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		case <-tick.C:
		}
	}
}

// waitSpread keeps the leader at most a window of chunks ahead of the
// site: what only this seeder holds is fetched again if it dies. The
// origin's TCP window holds the rest back meanwhile. A site that takes no
// chunks for SpreadStall does not stop the fetch.
func (l *Leader) waitSpread(ctx context.Context, sw Swarm, window int) error {
	wctx, cancel := context.WithTimeout(ctx, l.cfg.SpreadStall)
	defer cancel()
	err := sw.WaitSpread(wctx, window)
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		l.log.Debug("the site is slow to take chunks; fetching on", "waited", l.cfg.SpreadStall)
		return nil
	}
	return err
}

// sleep waits for d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
