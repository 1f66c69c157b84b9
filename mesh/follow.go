package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/content/tuf"
	"github.com/meshcast/meshcast/deploy"
	"github.com/meshcast/meshcast/gossip"
	"github.com/meshcast/meshcast/mesh/exchange"
	"github.com/meshcast/meshcast/mesh/meta"
	"github.com/meshcast/meshcast/seeder"
)

// staged is the release a node is working on, and the goroutine that
// works on it.
type staged struct {
	rel    tuf.Target
	swarm  *exchange.Swarm
	cancel context.CancelFunc
	done   sync.WaitGroup
}

func (s *staged) stop() {
	s.cancel()
	s.done.Wait()
}

// follow keeps the node on the release its site stages: the target in the
// Raft FSM on a seeder, the leader's gossiped decision on a node. When the
// target changes it refreshes the TUF metadata (the leader from the CDN,
// everyone else from peers), verifies the release and joins its swarm. It
// owns the staged release.
func (n *Node) follow(ctx context.Context) error {
	var cur *staged
	defer func() {
		if cur != nil {
			cur.stop()
		}
	}()
	var changes <-chan struct{}
	if n.fsm != nil {
		changes = n.fsm.Changes()
	}
	t := time.NewTicker(n.cfg.Refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changes:
		case <-n.changed:
		case <-t.C:
		}
		want, ok := n.siteTarget()
		if !ok || (cur != nil && cur.rel.Matches(want)) {
			continue
		}
		rel, art, err := n.resolve(ctx, want)
		if err != nil {
			if ctx.Err() == nil {
				n.note(err)
			}
			continue
		}
		next, err := n.stage(ctx, rel, art)
		if err != nil {
			n.note(err)
			continue
		}
		if cur != nil {
			cur.stop()
			n.exch.Leave(cur.swarm.ID)
		}
		cur = next
		n.wakeLeader()
	}
}

// source is where the node gets signed metadata: the CDN for the leading
// seeder, the site's peers for everyone else.
func (n *Node) source() (tuf.Source, string) {
	if n.cdn != nil && n.raft != nil {
		if _, _, leader := n.raft.Leader(); leader {
			return n.cdn, n.cfg.CDN.URL
		}
	}
	return &peerSource{h: n.host, log: n.log}, "site peers"
}

// resolve finds a release in freshly verified metadata and returns its
// artifact for the node's platform.
func (n *Node) resolve(ctx context.Context, want content.Release) (tuf.Target, *content.Artifact, error) {
	src, name := n.source()
	trusted, err := tuf.Refresh(ctx, src, name, n.tufDir(), n.cfg.TrustedRoot, n.log)
	if err != nil {
		return tuf.Target{}, nil, err
	}
	rel, err := trusted.Find(want)
	if err != nil {
		return tuf.Target{}, nil, err
	}
	if n.fsm != nil {
		if t := n.fsm.State().Target; t != nil && t.Name == rel.Name && t.Version == rel.Version && t.ID != rel.ID {
			return tuf.Target{}, nil, fmt.Errorf("release %s: the site staged id %s, the signed metadata says %s", rel, t.ID.Short(), rel.ID.Short())
		}
	}
	m, err := trusted.Manifest(ctx, rel, n.cfg.Limits)
	if err != nil {
		return tuf.Target{}, nil, err
	}
	art := m.Platforms[n.cfg.Platform]
	if art == nil {
		return tuf.Target{}, nil, fmt.Errorf("release %s has no artifact for %s", rel, n.cfg.Platform)
	}
	return rel, art, nil
}

// stagedRef is the release the node stages, for its gossiped status.
func (n *Node) stagedRef() (content.Release, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.status.Release.IsZero() {
		return content.Release{}, false
	}
	return n.staged.Release.WithoutID(), true
}

// lead runs while this seeder leads its site, for one Raft term: it
// watches the CDN and stages each new version through Raft (the command
// carries the term, so a deposed leader's stale decision is refused), adds
// the seeders gossip knows to Raft, and brings into the site, from the
// CDN, the chunks of the target that no member holds. Everything it does
// stops when ctx ends with its leadership.
func (n *Node) lead(ctx context.Context, term uint64) {
	n.log.Info("leading the site", "term", term)
	var seeding context.CancelFunc
	var seedingID exchange.SwarmID
	var wg sync.WaitGroup
	defer func() {
		if seeding != nil {
			seeding()
		}
		wg.Wait()
		if seedingID != (exchange.SwarmID{}) {
			n.exch.SetSpread(seedingID, false)
		}
	}()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			t.Reset(n.cfg.Refresh)
			n.stageNewest(ctx, term)
			n.addSeeders(ctx)
		case <-n.leaderWake:
		}
		// Seed the staged swarm once it is the site's target.
		sw := n.currentSwarm()
		if sw == nil || sw.ID == seedingID {
			continue
		}
		if seeding != nil {
			seeding()
			wg.Wait()
			n.exch.SetSpread(seedingID, false)
		}
		sctx, cancel := context.WithCancel(ctx)
		seeding, seedingID = cancel, sw.ID
		n.exch.SetSpread(sw.ID, true)
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.seedFromCDN(sctx, sw)
		}()
	}
}

// stageNewest proposes the highest signed version of the release if the
// site does not stage it yet.
func (n *Node) stageNewest(ctx context.Context, term uint64) {
	trusted, err := tuf.Refresh(ctx, n.cdn, n.cfg.CDN.URL, n.tufDir(), n.cfg.TrustedRoot, n.log)
	if err != nil {
		if ctx.Err() == nil {
			n.note(err)
		}
		return
	}
	rel, err := trusted.Find(content.Release{Name: n.cfg.Release})
	if err != nil {
		return // nothing published yet
	}
	if t := n.fsm.State().Target; t != nil && t.ID == rel.ID {
		return
	}
	cmd, err := seeder.EncodeCommand(seeder.CmdStageRelease, seeder.StageRelease{Release: rel.Release, Term: term})
	if err != nil {
		n.note(err)
		return
	}
	if _, err := n.raft.Apply(ctx, cmd); err != nil {
		if ctx.Err() == nil {
			n.note(fmt.Errorf("stage %s: %w", rel, err))
		}
		return
	}
	n.log.Info("staged for the site", "release", rel, "term", term)
}

// addSeeders adds to Raft, as voters, the seeders that gossip knows and
// Raft does not.
func (n *Node) addSeeders(ctx context.Context) {
	servers, err := n.raft.Servers()
	if err != nil {
		return
	}
	for _, m := range n.gossip.Members() {
		if m.Meta.Role != gossip.RoleSeeder || m.State != gossip.StateAlive ||
			slices.ContainsFunc(servers, func(s seeder.Server) bool { return s.ID == m.Name }) {
			continue
		}
		if err := n.raft.AddVoter(ctx, m.Name); err != nil {
			n.log.Warn("add seeder to raft", "peer", m.Name, "err", err)
			continue
		}
		n.log.Info("added seeder to raft", "peer", m.Name)
	}
}

// leaderLoop starts lead for each term this seeder leads, and stops it
// when the leadership ends.
func (n *Node) leaderLoop(ctx context.Context) {
	var cancel context.CancelFunc
	var wg sync.WaitGroup
	stop := func() {
		if cancel != nil {
			cancel()
			wg.Wait()
			cancel = nil
		}
	}
	defer stop()
	check := func() {
		_, term, leader := n.raft.Leader()
		switch {
		case leader && cancel == nil:
			var lctx context.Context
			lctx, cancel = context.WithCancel(ctx)
			wg.Add(1)
			go func() { defer wg.Done(); n.lead(lctx, term) }()
		case !leader && cancel != nil:
			n.log.Info("no longer leading the site")
			stop()
		}
	}
	check()
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.raft.LeaderCh():
			check()
		}
	}
}

func (n *Node) wakeLeader() {
	select {
	case n.leaderWake <- struct{}{}:
	default:
	}
}

func (n *Node) currentSwarm() *exchange.Swarm {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.swarm
}

// note records an error in the status and the log.
func (n *Node) note(err error) {
	n.log.Warn("follow", "err", err)
	n.setStatus(func(s *Status) { s.Err = err.Error() })
}

// stage joins a release's swarm and starts the goroutine that waits for
// it (and, on a seeder, fetches from the CDN what the site lacks).
func (n *Node) stage(ctx context.Context, rel tuf.Target, art *content.Artifact) (*staged, error) {
	chunks := art.Chunks()
	id := exchange.SwarmIDFor(rel.ID, n.cfg.Platform)
	sw, err := n.exch.Join(ctx, id, chunks, exchange.JoinOptions{})
	if err != nil {
		return nil, err
	}
	n.log.Info("staging", "release", rel, "chunks", len(chunks))
	sctx, cancel := context.WithCancel(ctx)
	st := &staged{rel: rel, swarm: sw, cancel: cancel}
	n.setStatus(func(s *Status) {
		s.Release, s.Phase, s.Err, s.DoneAt = rel.Release, deploy.PhaseFetching, "", time.Time{}
		s.Total = len(chunks)
	})
	n.mu.Lock()
	n.swarm, n.staged = sw, rel
	n.mu.Unlock()
	st.done.Add(1)
	go func() {
		defer st.done.Done()
		select {
		case <-sw.Done():
		case <-sctx.Done():
			return
		}
		n.log.Info("release verified", "release", rel)
		n.setStatus(func(s *Status) { s.Phase, s.DoneAt = deploy.PhaseVerified, time.Now() })
	}()
	return st, nil
}

const (
	// spreadStall is how long the seeder waits for the site to take its
	// chunks before it fetches on regardless (a site too slow or too busy
	// must not stall the release; it is below the CDN client's idle
	// timeout).
	spreadStall = 5 * time.Second
)

// spreadWindow is how many chunks the active seeder may hold that no other
// member holds yet, for a release of n chunks: 1 % of the release, at
// least 8 and at most 64 chunks. It bounds what a failover fetches twice
// (at most 1 % of the release beyond the first 8 chunks) and, with the
// push round trip, the pace at which the seeder feeds the site: at 64 KiB
// chunks, 8 chunks per 20 ms round trip is 25 MB/s, 64 is 200 MB/s.
func spreadWindow(n int) int { return min(max(n/100, 8), 64) }

// seedFromCDN fetches from the CDN the chunks that neither this seeder nor
// any site peer holds, offering each to the exchange as soon as it is
// verified and stored. It re-checks until the site holds everything, so a
// peer that leaves with the only copy of a chunk costs one more fetch of
// that chunk, not of the release.
func (n *Node) seedFromCDN(ctx context.Context, sw *exchange.Swarm) {
	index := make(map[content.ChunkID]int, len(sw.Chunks))
	for i, c := range sw.Chunks {
		index[c.ID] = i
	}
	// Give the connected peers a moment to say what they hold.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		_, _, members, err := n.exch.Held(ctx, sw.ID)
		if err != nil || members >= len(n.host.Network().Peers()) {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	window := spreadWindow(len(sw.Chunks))
	backoff := time.Second
	for ctx.Err() == nil {
		self, site, _, err := n.exch.Held(ctx, sw.ID)
		if err != nil {
			return
		}
		var refs []content.ChunkRef
		for i, c := range sw.Chunks {
			if !self[i] && !site[i] {
				refs = append(refs, c)
			}
		}
		if len(refs) == 0 {
			return
		}
		n.log.Info("fetching from the CDN what the site lacks", "chunks", len(refs), "of", len(sw.Chunks))
		err = n.cdn.FetchChunks(ctx, refs, func(c content.Chunk) error {
			if err := n.store.Put(c); err != nil {
				return err
			}
			n.cdnChunks.Add(1)
			n.cdnChunkBytes.Add(int64(len(c.Body)))
			if err := n.exch.Offer(sw.ID, index[c.ID]); err != nil {
				return err
			}
			// Stay at most a window of chunks ahead of the site: what
			// only this seeder holds is fetched again if it dies. The
			// CDN's TCP window holds the rest back meanwhile. A site that
			// takes no chunks for spreadStall does not stop the fetch.
			wctx, cancel := context.WithTimeout(ctx, spreadStall)
			err := n.exch.WaitSpread(wctx, sw.ID, window)
			cancel()
			if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				n.log.Debug("the site is slow to take chunks; fetching on", "waited", spreadStall)
				return nil
			}
			return err
		})
		if err != nil && ctx.Err() == nil {
			n.note(fmt.Errorf("fetch from the CDN: %w", err))
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Minute)
		}
	}
}

// peerSource is a tuf.Source over the site's peers: it asks them for the
// files they verified (see tuf.CachedFile). The freshest timestamp among
// the peers wins; any other file comes from the first peer that has it.
type peerSource struct {
	h   host.Host
	log interface {
		Debug(msg string, args ...any)
	}
}

// Fetch implements tuf.Source.
func (s *peerSource) Fetch(ctx context.Context, path string, maxLength int64) ([]byte, error) {
	peers := s.h.Network().Peers()
	if len(peers) == 0 {
		return nil, fmt.Errorf("%s: no peers connected: %w", path, tuf.ErrNotFound)
	}
	if path == "metadata/timestamp.json" {
		return s.freshest(ctx, peers, path, maxLength)
	}
	for _, p := range peers {
		b, err := meta.Fetch(ctx, s.h, p, path, maxLength)
		if err == nil {
			return b, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !errors.Is(err, meta.ErrNotFound) {
			s.log.Debug("peer file fetch failed", "peer", p, "path", path, "err", err)
		}
	}
	return nil, fmt.Errorf("%s: no peer has it: %w", path, tuf.ErrNotFound)
}

func (s *peerSource) freshest(ctx context.Context, peers []peer.ID, path string, maxLength int64) ([]byte, error) {
	type got struct {
		b []byte
		v int64
	}
	res := make(chan got, len(peers))
	var wg sync.WaitGroup
	for _, p := range peers[:min(len(peers), 8)] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := meta.Fetch(ctx, s.h, p, path, maxLength)
			if err != nil {
				return
			}
			var m struct {
				Signed struct {
					Version int64 `json:"version"`
				} `json:"signed"`
			}
			if json.Unmarshal(b, &m) == nil {
				res <- got{b, m.Signed.Version}
			}
		}()
	}
	wg.Wait()
	close(res)
	var best got
	for g := range res {
		if g.v > best.v {
			best = g
		}
	}
	if best.b == nil {
		return nil, fmt.Errorf("%s: no peer has it: %w", path, tuf.ErrNotFound)
	}
	return best.b, nil
}
