package p2p_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/meshcast/meshcast/mesh/p2p"
)

// echoProto is a tiny protocol of the tests: the handler writes back what it
// reads until EOF, then closes the stream.
const echoProto = protocol.ID("/meshcast/test/echo/1")

// wait bounds every wait for an event in these tests.
const wait = 10 * time.Second

// logger writes records to t.Log, prefixed with name.
func logger(t testing.TB, name string) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t, name}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct {
	t    testing.TB
	name string
}

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(w.name + ": " + strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// testHost is a host on 127.0.0.1 with a fresh identity, its gater and an
// echo handler, closed when the test ends.
type testHost struct {
	host.Host
	gater *p2p.Gater
	// served receives the remote peer of every echo stream the host
	// accepted (up to its buffer).
	served chan peer.ID
}

func newHost(t testing.TB, name string, limits p2p.Limits) *testHost {
	t.Helper()
	key, err := p2p.LoadIdentity(t.TempDir() + "/identity.key")
	if err != nil {
		t.Fatal(err)
	}
	g := p2p.NewGater()
	cfg := p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}, Limits: limits}
	h, err := p2p.New(cfg, key, g, logger(t, name))
	if err != nil {
		t.Fatal(err)
	}
	th := &testHost{Host: h, gater: g, served: make(chan peer.ID, 64)}
	h.SetStreamHandler(echoProto, func(s network.Stream) {
		select {
		case th.served <- s.Conn().RemotePeer():
		default:
		}
		if _, err := io.Copy(s, s); err != nil {
			_ = s.Reset()
			return
		}
		_ = s.Close()
	})
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("close %s: %v", name, err)
		}
	})
	return th
}

// allowEachOther puts each host on the other's allow list.
func allowEachOther(a, b *testHost) {
	a.gater.Allow(b.ID())
	b.gater.Allow(a.ID())
}

// connect connects a to b and waits until both have identified the other,
// so that no identify stream is in flight afterwards.
func connect(t testing.TB, a, b *testHost) {
	t.Helper()
	sub, err := b.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	// Connect returns once a has identified b.
	if err := a.Connect(ctx, p2p.AddrInfo(b)); err != nil {
		t.Fatalf("connect %s to %s: %v", a.ID(), b.ID(), err)
	}
	for {
		select {
		case e := <-sub.Out():
			if e.(event.EvtPeerIdentificationCompleted).Peer == a.ID() {
				return
			}
		case <-ctx.Done():
			t.Fatalf("%s did not identify %s: %v", b.ID(), a.ID(), ctx.Err())
		}
	}
}

// echo opens an echo stream from h to p, checks one round trip and returns
// the open stream.
func echo(ctx context.Context, h host.Host, p peer.ID) (network.Stream, error) {
	s, err := h.NewStream(ctx, p, echoProto)
	if err != nil {
		return nil, fmt.Errorf("new stream: %w", err)
	}
	if err := roundTrip(ctx, s); err != nil {
		_ = s.Reset()
		return nil, err
	}
	return s, nil
}

// roundTrip writes a message on an echo stream and reads it back.
func roundTrip(ctx context.Context, s network.Stream) error {
	if d, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(d)
		defer s.SetDeadline(time.Time{})
	}
	msg := []byte("hello over quic")
	if _, err := s.Write(msg); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(s, got); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo: got %q, want %q", got, msg)
	}
	return nil
}

// echoOnce opens an echo stream, checks one round trip and closes it.
func echoOnce(ctx context.Context, h host.Host, p peer.ID) error {
	s, err := echo(ctx, h, p)
	if err != nil {
		return err
	}
	return s.Close()
}

// waitDisconnected waits on sub (EvtPeerConnectednessChanged) until p is
// reported not connected.
func waitDisconnected(t testing.TB, sub event.Subscription, p peer.ID) {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case e := <-sub.Out():
			ev := e.(event.EvtPeerConnectednessChanged)
			if ev.Peer == p && ev.Connectedness == network.NotConnected {
				return
			}
		case <-timeout:
			t.Fatalf("no disconnect from %s within %v", p, wait)
		}
	}
}

// waitNotConnected waits until h has no connection to p.
func waitNotConnected(t testing.TB, h host.Host, p peer.ID) {
	t.Helper()
	sub, err := h.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	// Subscribed first, so a change after this check is not missed.
	if h.Network().Connectedness(p) == network.NotConnected {
		return
	}
	waitDisconnected(t, sub, p)
}

// waitPeerStreams waits until h's resource manager counts n streams (either
// direction) with p. libp2p emits no event when a stream's resources are
// released (identify, for one, reports a peer identified before it closes
// its stream), so this polls the resource manager, bounded by wait.
func waitPeerStreams(t testing.TB, h host.Host, p peer.ID, n int) {
	t.Helper()
	count := func() int {
		var c int
		_ = h.Network().ResourceManager().ViewPeer(p, func(s network.PeerScope) error {
			st := s.Stat()
			c = st.NumStreamsInbound + st.NumStreamsOutbound
			return nil
		})
		return c
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	timeout := time.After(wait)
	for {
		c := count()
		if c == n {
			return
		}
		select {
		case <-tick.C:
		case <-timeout:
			t.Fatalf("%s holds %d streams with %s after %v, want %d", h.ID(), c, p, wait, n)
		}
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}
