package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/mesh/exchange"
	"github.com/meshcast/meshcast/mesh/meta"
	"github.com/meshcast/meshcast/seeder/cdn"
)

// staged is the release a node is working on, and the goroutine that
// works on it.
type staged struct {
	rel    cdn.Release
	swarm  *exchange.Swarm
	cancel context.CancelFunc
	done   sync.WaitGroup
}

func (s *staged) stop() {
	s.cancel()
	s.done.Wait()
}

// follow keeps the node on the highest signed version of its release: it
// refreshes the TUF metadata (from the CDN on a seeder, from peers on a
// node), and when a new version appears it joins that version's swarm.
// It owns the staged release.
func (n *Node) follow(ctx context.Context) error {
	var src cdn.Source = &peerSource{h: n.host, log: n.log}
	name := "site peers"
	if n.cdn != nil {
		src, name = n.cdn, n.cfg.CDN.URL
	}
	var cur *staged
	defer func() {
		if cur != nil {
			cur.stop()
		}
	}()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		t.Reset(n.cfg.Refresh)
		trusted, err := cdn.RefreshFrom(ctx, src, name, n.tufDir(), n.cfg.TrustedRoot, n.log)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			n.note(err)
			continue
		}
		rel, err := trusted.Find(n.cfg.Release, "")
		if err != nil {
			n.note(err)
			continue
		}
		if cur != nil && cur.rel.ID == rel.ID {
			continue
		}
		m, err := trusted.Manifest(ctx, rel, n.cfg.Limits)
		if err != nil {
			n.note(err)
			continue
		}
		art := m.Platforms[n.cfg.Platform]
		if art == nil {
			n.note(fmt.Errorf("release %s has no artifact for %s", rel, n.cfg.Platform))
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
	}
}

// note records an error in the status and the log.
func (n *Node) note(err error) {
	n.log.Warn("follow", "err", err)
	n.setStatus(func(s *Status) { s.Err = err.Error() })
}

// stage joins a release's swarm and starts the goroutine that waits for
// it (and, on a seeder, fetches from the CDN what the site lacks).
func (n *Node) stage(ctx context.Context, rel cdn.Release, art *content.Artifact) (*staged, error) {
	chunks := art.Chunks()
	id := exchange.SwarmIDFor(rel.ID, n.cfg.Platform)
	sw, err := n.exch.Join(ctx, id, chunks, exchange.JoinOptions{Spread: n.cdn != nil})
	if err != nil {
		return nil, err
	}
	n.log.Info("staging", "release", rel, "chunks", len(chunks))
	sctx, cancel := context.WithCancel(ctx)
	st := &staged{rel: rel, swarm: sw, cancel: cancel}
	n.setStatus(func(s *Status) {
		s.Release, s.ReleaseID, s.Phase, s.Err, s.DoneAt = rel.String(), rel.ID, PhaseFetching, "", time.Time{}
		s.Total = len(chunks)
	})
	n.mu.Lock()
	n.swarm = sw
	n.mu.Unlock()
	st.done.Add(1)
	go func() {
		defer st.done.Done()
		if n.cdn != nil {
			n.seedFromCDN(sctx, sw)
		}
		select {
		case <-sw.Done():
		case <-sctx.Done():
			return
		}
		n.log.Info("release verified", "release", rel)
		n.setStatus(func(s *Status) { s.Phase, s.DoneAt = PhaseVerified, time.Now() })
	}()
	return st, nil
}

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
			return n.exch.Offer(sw.ID, index[c.ID])
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

// peerSource is a cdn.Source over the site's peers: it asks them for the
// files they verified (see cdn.CachedFile). The freshest timestamp among
// the peers wins; any other file comes from the first peer that has it.
type peerSource struct {
	h   host.Host
	log interface {
		Debug(msg string, args ...any)
	}
}

// Fetch implements cdn.Source.
func (s *peerSource) Fetch(ctx context.Context, path string, maxLength int64) ([]byte, error) {
	peers := s.h.Network().Peers()
	if len(peers) == 0 {
		return nil, fmt.Errorf("%s: no peers connected: %w", path, cdn.ErrNotOnOrigin)
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
	return nil, fmt.Errorf("%s: no peer has it: %w", path, cdn.ErrNotOnOrigin)
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
		return nil, fmt.Errorf("%s: no peer has it: %w", path, cdn.ErrNotOnOrigin)
	}
	return best.b, nil
}
