package p2p_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshcast/meshcast/mesh/p2p"
)

func TestAllowedHostsExchangeStream(t *testing.T) {
	a, b := newHost(t, "a", p2p.Limits{}), newHost(t, "b", p2p.Limits{})
	allowEachOther(a, b)
	ctx := ctxT(t)
	if err := a.Connect(ctx, p2p.AddrInfo(b)); err != nil {
		t.Fatal(err)
	}
	if err := echoOnce(ctx, a, b.ID()); err != nil {
		t.Fatalf("a → b: %v", err)
	}
	if err := echoOnce(ctx, b, a.ID()); err != nil {
		t.Fatalf("b → a over the same connection: %v", err)
	}
}

func TestHostListensOnlyOnQUIC(t *testing.T) {
	h := newHost(t, "h", p2p.Limits{})
	if len(h.Addrs()) == 0 {
		t.Fatal("no addresses")
	}
	for _, a := range h.Addrs() {
		if _, err := a.ValueForProtocol(ma.P_QUIC_V1); err != nil {
			t.Errorf("address %s is not QUIC v1", a)
		}
		for _, p := range []int{ma.P_TCP, ma.P_WS, ma.P_WSS, ma.P_WEBTRANSPORT, ma.P_CIRCUIT, ma.P_WEBRTC_DIRECT} {
			if _, err := a.ValueForProtocol(p); err == nil {
				t.Errorf("address %s carries %s", a, ma.ProtocolWithCode(p).Name)
			}
		}
	}
	for _, a := range h.Network().ListenAddresses() {
		if _, err := a.ValueForProtocol(ma.P_QUIC_V1); err != nil {
			t.Errorf("listening on %s", a)
		}
	}
	// Addrs and AddrInfo: what another host dials.
	full := p2p.Addrs(h)
	if len(full) != len(h.Addrs()) {
		t.Fatalf("Addrs: %d, host has %d", len(full), len(h.Addrs()))
	}
	for _, a := range full {
		id, err := a.ValueForProtocol(ma.P_P2P)
		if err != nil || id != h.ID().String() {
			t.Errorf("Addrs: %s does not end in /p2p/%s", a, h.ID())
		}
	}
	if ai := p2p.AddrInfo(h); ai.ID != h.ID() || len(ai.Addrs) == 0 {
		t.Errorf("AddrInfo = %v", ai)
	}
}

// A peer that is not on the allow list gets no connection in either
// direction. On QUIC the side that refuses does so after the handshake,
// so the dialer's Connect may succeed: a stream is what must fail.
func TestGaterRefusesPeerNotAllowed(t *testing.T) {
	gated := newHost(t, "gated", p2p.Limits{}) // allows nobody
	other := newHost(t, "other", p2p.Limits{})
	other.gater.Allow(gated.ID()) // only other's side would let it through
	ctx := ctxT(t)

	t.Run("dial out", func(t *testing.T) {
		err := gated.Connect(ctx, p2p.AddrInfo(other))
		if err == nil {
			err = echoOnce(ctx, gated, other.ID())
		}
		if err == nil {
			t.Fatal("gated host reached a peer it does not allow")
		}
		t.Log(err)
	})
	t.Run("dial in", func(t *testing.T) {
		err := other.Connect(ctx, p2p.AddrInfo(gated))
		t.Logf("Connect: %v", err)
		if err == nil {
			err = echoOnce(ctx, other, gated.ID())
		}
		if err == nil {
			t.Fatal("a peer not allowed reached the gated host")
		}
		t.Log(err)
	})
	if c := gated.Network().ConnsToPeer(other.ID()); len(c) != 0 {
		t.Errorf("gated host holds %d connections to a peer it does not allow", len(c))
	}
	select {
	case <-gated.served:
		t.Error("the gated host ran a stream handler for a peer it does not allow")
	default:
	}

	// The dialer may still hold the refused connection until QUIC's close
	// reaches it: a stream opened on it now would fail.
	waitNotConnected(t, other, gated.ID())

	// Allowing the peer is all it takes.
	gated.gater.Allow(other.ID())
	if err := echoOnce(ctx, other, gated.ID()); err != nil {
		t.Fatalf("after Allow: %v", err)
	}
}

func TestRevokeClosesExistingConnection(t *testing.T) {
	a, b := newHost(t, "a", p2p.Limits{}), newHost(t, "b", p2p.Limits{})
	allowEachOther(a, b)
	ctx := ctxT(t)
	s, err := func() (network.Stream, error) {
		if err := a.Connect(ctx, p2p.AddrInfo(b)); err != nil {
			return nil, err
		}
		return echo(ctx, a, b.ID())
	}()
	if err != nil {
		t.Fatal(err)
	}
	subA, err := a.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		t.Fatal(err)
	}
	defer subA.Close()
	subB, err := b.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		t.Fatal(err)
	}
	defer subB.Close()

	b.gater.Revoke(a.ID())
	waitDisconnected(t, subB, a.ID()) // b closed it
	waitDisconnected(t, subA, b.ID()) // and a saw it go
	if err := roundTrip(ctx, s); err == nil {
		t.Error("a stream of the revoked connection still works")
	}
	if b.gater.Allowed(a.ID()) {
		t.Error("still allowed after Revoke")
	}
	// And a cannot come back.
	err = a.Connect(ctx, p2p.AddrInfo(b))
	if err == nil {
		err = echoOnce(ctx, a, b.ID())
	}
	if err == nil {
		t.Fatal("revoked peer reconnected")
	}
}

func TestOpenGaterAdmitsAnyone(t *testing.T) {
	a, b := newHost(t, "a", p2p.Limits{}), newHost(t, "b", p2p.Limits{})
	a.gater.SetOpen(true)
	b.gater.SetOpen(true)
	if a.gater.Allowed(b.ID()) != true {
		t.Fatal("open gater does not allow")
	}
	ctx := ctxT(t)
	if err := a.Connect(ctx, p2p.AddrInfo(b)); err != nil {
		t.Fatal(err)
	}
	if err := echoOnce(ctx, a, b.ID()); err != nil {
		t.Fatalf("a → b: %v", err)
	}
	if err := echoOnce(ctx, b, a.ID()); err != nil {
		t.Fatalf("b → a: %v", err)
	}

	// Closing open mode drops the peers that are not on the allow list.
	sub, err := a.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	b.gater.SetOpen(false)
	waitDisconnected(t, sub, b.ID())
}

// StreamsPerPeer bounds the streams a peer can push on us (inbound) and the
// streams we open to one peer (outbound).
func TestStreamsPerPeerLimit(t *testing.T) {
	const limit = 4
	limited := p2p.Limits{StreamsPerPeer: limit}

	t.Run("inbound", func(t *testing.T) {
		pusher := newHost(t, "pusher", p2p.Limits{})
		target := newHost(t, "target", limited)
		allowEachOther(pusher, target)
		connect(t, pusher, target)
		waitPeerStreams(t, target, pusher.ID(), 0) // identify's are gone
		ctx := ctxT(t)

		var open []network.Stream
		for i := range limit {
			s, err := echo(ctx, pusher, target.ID())
			if err != nil {
				t.Fatalf("stream %d of %d: %v", i+1, limit, err)
			}
			open = append(open, s)
		}
		for i := limit; i < limit+3; i++ {
			s, err := echo(ctx, pusher, target.ID())
			if err == nil {
				s.Close()
				t.Fatalf("stream %d went through with %d open and a limit of %d", i+1, limit, limit)
			}
			t.Logf("stream %d: %v", i+1, err)
		}
		// The refused streams did not break the others.
		for i, s := range open {
			if err := roundTrip(ctx, s); err != nil {
				t.Fatalf("open stream %d after the refusals: %v", i+1, err)
			}
		}
		// Closing one frees a slot once the target has released it.
		if err := open[0].Close(); err != nil {
			t.Fatal(err)
		}
		waitPeerStreams(t, target, pusher.ID(), limit-1)
		s, err := echo(ctx, pusher, target.ID())
		if err != nil {
			t.Fatalf("no stream after closing one: %v", err)
		}
		s.Close()
		for _, s := range open[1:] {
			s.Close()
		}
	})

	t.Run("outbound", func(t *testing.T) {
		opener := newHost(t, "opener", limited)
		target := newHost(t, "target", p2p.Limits{})
		allowEachOther(opener, target)
		connect(t, opener, target)
		waitPeerStreams(t, opener, target.ID(), 0) // identify's are gone
		ctx := ctxT(t)

		for i := range limit {
			if _, err := echo(ctx, opener, target.ID()); err != nil {
				t.Fatalf("stream %d of %d: %v", i+1, limit, err)
			}
		}
		_, err := opener.NewStream(ctx, target.ID(), echoProto)
		if err == nil {
			t.Fatalf("stream %d opened with a limit of %d", limit+1, limit)
		}
		if !errors.Is(err, network.ErrResourceLimitExceeded) {
			t.Errorf("stream %d: %v, want network.ErrResourceLimitExceeded", limit+1, err)
		}
	})
}

func TestDefaultListenAddrsAreQUIC(t *testing.T) {
	addrs := p2p.DefaultListenAddrs()
	if !slices.Contains(addrs, "/ip4/0.0.0.0/udp/4433/quic-v1") || !slices.Contains(addrs, "/ip6/::/udp/4433/quic-v1") {
		t.Fatalf("DefaultListenAddrs = %v", addrs)
	}
	if err := (p2p.Config{ListenAddrs: addrs}).Validate(); err != nil {
		t.Fatal(err)
	}
}

// Ban refuses a peer even in open mode, closes its connection, and Allow
// lifts it.
func TestBanOverridesOpenMode(t *testing.T) {
	a, b := newHost(t, "a", p2p.Limits{}), newHost(t, "b", p2p.Limits{})
	a.gater.SetOpen(true)
	b.gater.SetOpen(true)
	ctx := ctxT(t)
	if err := a.Connect(ctx, p2p.AddrInfo(b)); err != nil {
		t.Fatal(err)
	}
	if err := echoOnce(ctx, a, b.ID()); err != nil {
		t.Fatal(err)
	}
	sub, err := a.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	b.gater.Ban(a.ID())
	waitDisconnected(t, sub, b.ID())
	if b.gater.Allowed(a.ID()) {
		t.Fatal("banned peer allowed by an open gater")
	}
	err = a.Connect(ctx, p2p.AddrInfo(b))
	if err == nil {
		err = echoOnce(ctx, a, b.ID())
	}
	if err == nil {
		t.Fatal("banned peer reconnected")
	}
	waitNotConnected(t, a, b.ID())
	// Admit (the site vouching for a member) does not lift a ban.
	b.gater.Admit(a.ID())
	if b.gater.Allowed(a.ID()) {
		t.Fatal("Admit lifted a ban")
	}

	b.gater.Allow(a.ID())
	if err := a.Connect(ctx, p2p.AddrInfo(b)); err != nil {
		t.Fatal(err)
	}
	if err := echoOnce(ctx, a, b.ID()); err != nil {
		t.Fatalf("after Allow: %v", err)
	}
}
