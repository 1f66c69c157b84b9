package meta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshcast/meshcast/content/tuf"
)

// maxTimestampPeers bounds how many peers are asked for the timestamp at
// once.
const maxTimestampPeers = 8

// Peers is a tuf.Source over a node's connected peers: it asks them for
// the files they verified (tuf.CachedFile). The freshest timestamp among
// up to eight peers wins; any other file comes from the first peer that
// has it. Everything it returns is verified by the caller, like the CDN's.
type Peers struct {
	h   host.Host
	log *slog.Logger
}

// NoPatches tells content/tuf that peers serve no manifest patches (they
// keep what they verified: metadata, manifests, index chunks), so that a
// node does not ask them for one at each update.
func (p *Peers) NoPatches() bool { return true }

// NewPeers returns the Source over h's peers. A nil log discards.
func NewPeers(h host.Host, log *slog.Logger) *Peers {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Peers{h: h, log: log}
}

var _ tuf.Source = (*Peers)(nil)

// Fetch implements tuf.Source; a file no connected peer has matches
// tuf.ErrNotFound.
func (s *Peers) Fetch(ctx context.Context, path string, maxLength int64) ([]byte, error) {
	peers := s.h.Network().Peers()
	if len(peers) == 0 {
		return nil, fmt.Errorf("%s: no peers connected: %w", path, tuf.ErrNotFound)
	}
	if path == "metadata/timestamp.json" {
		return s.freshest(ctx, peers, path, maxLength)
	}
	for _, p := range peers {
		b, err := Fetch(ctx, s.h, p, path, maxLength)
		if err == nil {
			return b, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !errors.Is(err, ErrNotFound) {
			s.log.Debug("peer file fetch failed", "peer", p, "path", path, "err", err)
		}
	}
	return nil, fmt.Errorf("%s: no peer has it: %w", path, tuf.ErrNotFound)
}

// freshest asks up to maxTimestampPeers peers at once for path and returns
// the answer with the highest signed version.
func (s *Peers) freshest(ctx context.Context, peers []peer.ID, path string, maxLength int64) ([]byte, error) {
	type got struct {
		b []byte
		v int64
	}
	res := make(chan got, len(peers))
	var wg sync.WaitGroup
	for _, p := range peers[:min(len(peers), maxTimestampPeers)] {
		wg.Go(func() {
			b, err := Fetch(ctx, s.h, p, path, maxLength)
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
		})
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
