package p2p

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Gater is the host's connection gater: a connection to or from a peer
// exists only while the peer is allowed. A peer is allowed when it is not
// banned and it is on the allow list or the gater is open.
//
// Revoke takes a peer off the allow list (admission withdrawn); Ban also
// refuses it in open mode (a peer that misbehaved, say by sending chunks
// that do not match their ids). Allow lifts a ban: the latest decision
// about a peer wins.
//
// Open mode admits every peer. It exists for development and for the
// insecure site mode, and must be asked for with SetOpen(true): a new Gater
// admits nobody.
//
// The gater is checked when dialing a peer (before any packet is sent), and
// after every handshake in both directions, when the remote peer's identity
// is known. Revoke, Ban and SetOpen(false) also close the connections the gater
// would now refuse, and a connection that slips past a check while such a
// change is being made is closed as soon as the host registers it; this needs
// the host, which New gives the gater with Attach.
//
// How a refusal shows up on QUIC: dialing a peer our gater refuses fails at
// once (Connect returns an error). A remote host that refuses us does so
// right after the handshake, which has already completed on our side: our
// Connect returns nil, the first NewStream fails, and until QUIC's close
// reaches us we may hold that dead connection (a stream opened on it fails
// too, even if the remote allows us in the meantime).
//
// A Gater serves one host. Its methods are safe for concurrent use, and the
// Intercept methods never block on the network.
type Gater struct {
	mu      sync.RWMutex
	open    bool
	allowed map[peer.ID]struct{}
	banned  map[peer.ID]struct{}
	host    host.Host // nil until Attach
}

var _ connmgr.ConnectionGater = (*Gater)(nil)

// NewGater returns a gater that allows nobody.
func NewGater() *Gater {
	return &Gater{allowed: make(map[peer.ID]struct{}), banned: make(map[peer.ID]struct{})}
}

// SetOpen switches open mode. Closing the gater (open=false) closes the
// existing connections to peers that are not on the allow list.
func (g *Gater) SetOpen(open bool) {
	g.mu.Lock()
	g.open = open
	h := g.host
	g.mu.Unlock()
	if !open && h != nil {
		for _, p := range h.Network().Peers() {
			if !g.Allowed(p) {
				_ = h.Network().ClosePeer(p)
			}
		}
	}
}

// Allow adds peers to the allow list and lifts any ban on them.
func (g *Gater) Allow(ids ...peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, id := range ids {
		g.allowed[id] = struct{}{}
		delete(g.banned, id)
	}
}

// Admit adds peers to the allow list, except banned ones: it is how a
// member the site vouches for (it gossips with the site's key) gets in
// without undoing a ban for misbehaviour.
func (g *Gater) Admit(ids ...peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, id := range ids {
		if _, banned := g.banned[id]; !banned {
			g.allowed[id] = struct{}{}
		}
	}
}

// Revoke removes peers from the allow list and closes the host's existing
// connections to them, unless the gater is open (then they stay allowed;
// Ban refuses a peer in open mode too).
// Streams on those connections fail. Revoke returns once the connections
// are closed.
func (g *Gater) Revoke(ids ...peer.ID) {
	g.mu.Lock()
	for _, id := range ids {
		delete(g.allowed, id)
	}
	h, open := g.host, g.open
	g.mu.Unlock()
	if open || h == nil {
		return
	}
	for _, id := range ids {
		_ = h.Network().ClosePeer(id)
	}
}

// Ban removes peers from the allow list and refuses them even while the
// gater is open, until Allow is called for them; it closes the host's
// existing connections to them and returns once they are closed.
func (g *Gater) Ban(ids ...peer.ID) {
	g.mu.Lock()
	for _, id := range ids {
		delete(g.allowed, id)
		g.banned[id] = struct{}{}
	}
	h := g.host
	g.mu.Unlock()
	if h == nil {
		return
	}
	for _, id := range ids {
		_ = h.Network().ClosePeer(id)
	}
}

// Allowed reports whether id may connect: it is not banned, and it is on
// the allow list or the gater is open.
func (g *Gater) Allowed(id peer.ID) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if _, ok := g.banned[id]; ok {
		return false
	}
	if g.open {
		return true
	}
	_, ok := g.allowed[id]
	return ok
}

// Attach gives the gater the host whose connections it gates, so that
// Revoke and SetOpen(false) can close connections. New calls it; it has to
// be called only for a host built some other way.
func (g *Gater) Attach(h host.Host) {
	g.mu.Lock()
	g.host = h
	g.mu.Unlock()
	// A connection whose handshake passed the gater just before a Revoke
	// may be registered just after Revoke closed the peer's connections:
	// close it when it shows up. Connected runs after the connection is
	// registered, so a Revoke either sees it or this does. Closing runs on
	// its own goroutine because notifiees must not block the swarm.
	h.Network().Notify(&network.NotifyBundle{
		ConnectedF: func(_ network.Network, c network.Conn) {
			if !g.Allowed(c.RemotePeer()) {
				go c.Close()
			}
		},
	})
}

// InterceptPeerDial implements connmgr.ConnectionGater: we dial only allowed
// peers.
func (g *Gater) InterceptPeerDial(p peer.ID) bool { return g.Allowed(p) }

// InterceptAddrDial implements connmgr.ConnectionGater: we dial only allowed
// peers, whatever the address.
func (g *Gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.Allowed(p) }

// InterceptAccept implements connmgr.ConnectionGater. It admits every
// incoming connection: the remote peer is not known before the handshake;
// InterceptSecured decides right after it.
func (g *Gater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

// InterceptSecured implements connmgr.ConnectionGater: after the handshake,
// in either direction, the authenticated peer must be allowed.
func (g *Gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.Allowed(p)
}

// InterceptUpgraded implements connmgr.ConnectionGater: checked once more
// just before the host registers the connection.
func (g *Gater) InterceptUpgraded(c network.Conn) (bool, control.DisconnectReason) {
	return g.Allowed(c.RemotePeer()), 0
}
