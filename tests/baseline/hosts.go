package baseline

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/sync/errgroup"

	"github.com/meshcast/meshcast/mesh/p2p"
)

// loopback is where every host of this package listens: one QUIC port on
// 127.0.0.1, picked by the kernel.
const loopback = "/ip4/127.0.0.1/udp/0/quic-v1"

// maxDials bounds the handshakes connectAll runs at once.
const maxDials = 8

// setupTimeout bounds connectAll: on loopback it takes milliseconds, so a
// setup that takes this long is broken, not slow.
const setupTimeout = 30 * time.Second

// startHosts starts n hosts on loopback, each with a fresh identity, default
// limits and an open gater, logging to log with host=names[i]. On error the
// hosts already started are closed.
func startHosts(n int, names func(i int) string, log *slog.Logger) ([]host.Host, error) {
	hosts := make([]host.Host, 0, n)
	for i := range n {
		key, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("identity for %s: %w", names(i), err), closeHosts(hosts))
		}
		g := p2p.NewGater()
		g.SetOpen(true)
		h, err := p2p.New(p2p.Config{ListenAddrs: []string{loopback}}, key, g, log.With("host", names(i)))
		if err != nil {
			return nil, errors.Join(fmt.Errorf("start host %s: %w", names(i), err), closeHosts(hosts))
		}
		hosts = append(hosts, h)
	}
	return hosts, nil
}

// closeHosts closes every host, last started first, and returns their
// errors joined.
func closeHosts(hosts []host.Host) error {
	var errs []error
	for i := len(hosts) - 1; i >= 0; i-- {
		if err := hosts[i].Close(); err != nil {
			errs = append(errs, fmt.Errorf("close host %s: %w", hosts[i].ID(), err))
		}
	}
	return errors.Join(errs...)
}

// connectAll connects every host to every other (one dial per pair, from
// the lower index) and returns once every host has identified every other,
// so that no connection setup or identify exchange overlaps what is
// measured afterwards.
func connectAll(ctx context.Context, hosts []host.Host) error {
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	subs := make([]event.Subscription, len(hosts))
	defer func() {
		for _, s := range subs {
			if s != nil {
				s.Close()
			}
		}
	}()
	// Subscribed before any dial, so no identification is missed.
	for i, h := range hosts {
		s, err := h.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
		if err != nil {
			return fmt.Errorf("subscribe to identify events of %s: %w", h.ID(), err)
		}
		subs[i] = s
	}

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(maxDials)
	for i, a := range hosts {
		for _, b := range hosts[i+1:] {
			g.Go(func() error {
				if err := a.Connect(gctx, p2p.AddrInfo(b)); err != nil {
					return fmt.Errorf("connect %s to %s: %w", a.ID(), b.ID(), err)
				}
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return err
	}

	for i, h := range hosts {
		want := make(map[peer.ID]struct{}, len(hosts)-1)
		for j, o := range hosts {
			if j != i {
				want[o.ID()] = struct{}{}
			}
		}
		for len(want) > 0 {
			select {
			case e, ok := <-subs[i].Out():
				if !ok {
					return fmt.Errorf("identify events of %s: subscription closed", h.ID())
				}
				delete(want, e.(event.EvtPeerIdentificationCompleted).Peer)
			case <-ctx.Done():
				return fmt.Errorf("wait for %s to identify %d peers: %w", h.ID(), len(want), ctx.Err())
			}
		}
	}
	return nil
}
