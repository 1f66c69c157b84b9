package exchange

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Wrap, if set on Attach, wraps every stream in both directions (a node's
// LAN rate limits).
type Wrap struct {
	Reader func(io.ReadCloser) io.ReadCloser
	Writer func(io.WriteCloser) io.WriteCloser
}

// Attach runs the engine over a libp2p host until ctx is done: it answers
// inbound exchange streams and opens one outbound stream to every peer
// that connects (and to those already connected). It returns when its
// goroutines are done.
func (e *Engine) Attach(ctx context.Context, h host.Host, wrap Wrap) {
	if wrap.Reader == nil {
		wrap.Reader = func(r io.ReadCloser) io.ReadCloser { return r }
	}
	if wrap.Writer == nil {
		wrap.Writer = func(w io.WriteCloser) io.WriteCloser { return w }
	}
	h.SetStreamHandler(Protocol, func(s network.Stream) {
		closeStaleConns(h, s.Conn())
		e.HandleInbound(s.Conn().RemotePeer(), wrap.Reader(readOnly{s}))
	})
	defer h.RemoveStreamHandler(Protocol)

	// libp2p's notifications must not block: each hands its peer to a
	// goroutine of ours, which the WaitGroup joins before Attach returns
	// (after StopNotify, so no new one starts).
	var wg sync.WaitGroup
	defer wg.Wait()
	ups := make(chan peer.ID, 64)
	spawn := func(fn func()) {
		wg.Add(1)
		go func() { defer wg.Done(); fn() }()
	}
	n := &notifiee{up: func(id peer.ID) {
		spawn(func() {
			select {
			case ups <- id:
			case <-ctx.Done():
			}
		})
	}, down: func(id peer.ID) {
		spawn(func() {
			if h.Network().Connectedness(id) != network.Connected {
				e.RemovePeer(id)
			}
		})
	}}
	h.Network().Notify(n)
	defer h.Network().StopNotify(n)
	for _, id := range h.Network().Peers() {
		n.up(id)
	}
	opening := map[peer.ID]bool{}
	done := make(chan peer.ID)
	// A stream can fail while its connection lives on (a duplicate
	// connection closed, a reset): every second, reopen the stream to any
	// connected peer the engine lost.
	heal := time.NewTicker(time.Second)
	defer heal.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-done:
			delete(opening, id)
		case <-heal.C:
			for _, id := range h.Network().Peers() {
				if !e.HasPeer(id) && !opening[id] {
					n.up(id)
				}
			}
		case id := <-ups:
			if opening[id] || e.HasPeer(id) {
				continue
			}
			opening[id] = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				e.open(ctx, h, id, wrap)
				select {
				case done <- id:
				case <-ctx.Done():
				}
			}()
		}
	}
}

// open opens the outbound stream to a peer, retrying while the peer stays
// connected: it may not have started its exchange yet when the connection
// comes up.
func (e *Engine) open(ctx context.Context, h host.Host, id peer.ID, wrap Wrap) {
	for attempt := 0; ; attempt++ {
		if h.Network().Connectedness(id) != network.Connected {
			return
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		s, err := h.NewStream(sctx, id, Protocol)
		cancel()
		if err == nil {
			e.AddPeer(id, wrap.Writer(writeOnly{s}))
			return
		}
		e.log.Debug("exchange: open stream failed", "peer", id, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(min(time.Duration(50<<min(attempt, 10))*time.Millisecond, 2*time.Second)):
		}
	}
}

// readOnly and writeOnly close only their half of a stream, so that the
// peer's writer is not cut off when our reader ends, and vice versa;
// Reset aborts a stream we give up on.
type readOnly struct{ s network.Stream }

func (r readOnly) Read(p []byte) (int, error) { return r.s.Read(p) }
func (r readOnly) Close() error               { return r.s.Reset() }

type writeOnly struct{ s network.Stream }

func (w writeOnly) Write(p []byte) (int, error) { return w.s.Write(p) }
func (w writeOnly) Close() error                { return w.s.Reset() }

type notifiee struct {
	up, down func(peer.ID)
}

func (n *notifiee) Listen(network.Network, ma.Multiaddr)           {}
func (n *notifiee) ListenClose(network.Network, ma.Multiaddr)      {}
func (n *notifiee) Connected(_ network.Network, c network.Conn)    { n.up(c.RemotePeer()) }
func (n *notifiee) Disconnected(_ network.Network, c network.Conn) { n.down(c.RemotePeer()) }

// closeStaleConns closes the connections to a peer that are clearly older
// than the one it just opened an exchange stream on: a peer that restarted
// (same id, new port) would otherwise still be written to over the
// connection of its former life until that times out. Connections opened
// within a second of each other are duplicates of one dial race and stay.
func closeStaleConns(h host.Host, c network.Conn) {
	opened := c.Stat().Opened
	for _, other := range h.Network().ConnsToPeer(c.RemotePeer()) {
		if other != c && other.Stat().Opened.Before(opened.Add(-time.Second)) {
			other.Close()
		}
	}
}
