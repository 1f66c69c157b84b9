package p2p

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	cryptopb "github.com/libp2p/go-libp2p/core/crypto/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	ma "github.com/multiformats/go-multiaddr"
)

// userAgent is what the host tells peers in identify.
const userAgent = "meshcast"

// New starts a libp2p host with identity key, listening on cfg.ListenAddrs,
// gated by g, and with a resource manager holding it to cfg.Limits. It logs
// to log (nil discards) and routes go-libp2p's own logs there too (see
// libp2pLogs). g must not be nil: a host that admits everyone is asked for
// with g.SetOpen(true).
//
// The host runs QUIC v1 only. It does not run TCP, websocket, WebTransport
// or WebRTC, the relay transport or service, hole punching, NAT port mapping,
// AutoNAT probing (reachability is fixed to private), ping, address
// discovery from what peers observe, or UDP/IPv6 black-hole detection (which
// would stop dialing QUIC after a run of failed dials, as happens when many
// gateways of a site are powered off). It does run identify, which libp2p
// needs to learn which protocols a peer speaks, and identify push, which
// tells connected peers when our protocols or addresses change; there is no
// option to turn push off. There is no connection manager: nothing trims
// connections, the resource manager's limits are the only bound.
//
// Close the returned host to stop it. host.Close closes every listener and
// connection (resetting their streams), waits for libp2p's own goroutines,
// stops the transports and closes the resource manager; afterwards nothing of
// the host keeps running but a few event-bus drainers that exit within
// milliseconds (the package tests check). It does not wait for stream
// handlers to return: a handler's goroutine is the caller's to end, so a
// handler must return once its stream fails.
func New(cfg Config, key crypto.PrivKey, g *Gater, log *slog.Logger) (host.Host, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if key == nil {
		return nil, errors.New("start libp2p host: no identity key")
	}
	if t := key.Type(); t != cryptopb.KeyType_Ed25519 {
		return nil, fmt.Errorf("start libp2p host: identity is a %s key; meshcast identities are ed25519", t)
	}
	if g == nil {
		return nil, errors.New("start libp2p host: no connection gater (use NewGater, and SetOpen(true) to admit everyone)")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("start libp2p host: %w", err)
	}
	addrs, _ := cfg.listenAddrs() // validated above

	// Before any libp2p code runs, so that its loggers pick up the route.
	detach := libp2pLogs.attach(log)
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(cfg.Limits.concrete()), rcmgr.WithMetricsDisabled())
	if err != nil {
		detach()
		return nil, fmt.Errorf("start libp2p host: resource manager: %w", err)
	}
	h, err := libp2p.New(
		libp2p.Identity(key),
		libp2p.ListenAddrs(addrs...),
		libp2p.Transport(libp2pquic.NewTransport), // replaces the default transports
		libp2p.ConnectionGater(g),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(&connmgr.NullConnMgr{}),
		libp2p.DisableRelay(),
		libp2p.ForceReachabilityPrivate(),
		libp2p.DisableIdentifyAddressDiscovery(),
		libp2p.Ping(false),
		libp2p.DisableMetrics(),
		libp2p.UDPBlackHoleSuccessCounter(nil),
		libp2p.IPv6BlackHoleSuccessCounter(nil),
		libp2p.UserAgent(userAgent),
	)
	if err != nil {
		rm.Close()
		detach()
		return nil, fmt.Errorf("start libp2p host on %v: %w", cfg.ListenAddrs, err)
	}
	g.Attach(h)
	// Stop routing libp2p's logs here once the host closes (the swarm's
	// Done channel closes first thing in host.Close).
	if sw, ok := h.Network().(interface{ Done() <-chan struct{} }); ok {
		go func() {
			<-sw.Done()
			detach()
		}()
	}
	warnSmallUDPBuffers(log)
	log.Info("libp2p host started", "peer", h.ID(), "listen", h.Network().ListenAddresses())
	return h, nil
}

// Addrs returns the addresses peers can dial h at, each with h's /p2p/
// component.
func Addrs(h host.Host) []ma.Multiaddr {
	addrs, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
	if err != nil { // only for an empty peer id, which a host never has
		return nil
	}
	return addrs
}

// AddrInfo returns h's peer id and addresses, what another host needs to
// Connect to it.
func AddrInfo(h host.Host) peer.AddrInfo {
	return peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}
}
