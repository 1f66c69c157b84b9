package p2p

import (
	"fmt"
	"maps"

	"github.com/libp2p/go-libp2p"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// Limits are the hard limits of the host's resource manager (go-libp2p's
// rcmgr with a fixed limiter). A zero field takes its value from
// DefaultLimits, so Limits{StreamsPerPeer: 4} changes one limit only; a
// negative field is refused by Config.Validate.
//
// What happens when a limit is hit: the resource manager refuses the
// reservation and nothing waits or queues.
//   - A connection over a limit is refused: an outbound dial fails with an
//     error wrapping network.ErrResourceLimitExceeded, an inbound one is closed
//     by the listener (the remote dial fails or, on QUIC, its first stream
//     does).
//   - A stream over a limit: opening one locally fails at NewStream with an
//     error wrapping network.ErrResourceLimitExceeded; one the remote opens is
//     reset, which the remote sees at NewStream or, when libp2p negotiates the
//     protocol lazily, at its first read or write.
//   - Memory over the limit: on QUIC, connections reserve memory when they
//     grow their flow-control receive window beyond the initial 512 KiB; a
//     refused reservation leaves the window where it is, so the connection is
//     slower, never broken. Protocols that reserve memory for a message
//     (identify) fail that message.
//
// Limits bound what libp2p accounts for (connections, streams, receive
// windows); they do not bound quic-go's own per-connection state or what
// protocol handlers allocate.
type Limits struct {
	// Conns is the most connections the host holds at once, inbound and
	// outbound together. Connections still in their handshake count too,
	// and at most Conns/16 of them may be handshaking at once (libp2p's
	// "transient" scope), so a flood of handshakes cannot take every slot.
	Conns int
	// ConnsPerPeer is the most connections to one peer at once, including
	// dial attempts in flight: the swarm may dial several addresses of one
	// peer in parallel and each attempt holds a slot until it fails.
	ConnsPerPeer int
	// Streams is the most streams open at once over all connections,
	// inbound and outbound together (at most Streams/16 of them still
	// negotiating their protocol).
	Streams int
	// StreamsPerPeer is the most streams open at once with one peer, over
	// all its connections and protocols, in either direction. It bounds how
	// many streams a peer can push on us.
	StreamsPerPeer int
	// StreamsPerProtocolPerPeer is the most streams of one protocol open at
	// once with one peer, so that one protocol (say, a flood of chunk
	// requests) cannot take a peer's whole stream budget from the others
	// (Raft, peer RPCs). libp2p's own protocols (identify) keep their own,
	// smaller, per-protocol limits.
	StreamsPerProtocolPerPeer int
	// Memory is the most memory, in bytes, the host reserves through the
	// resource manager: on QUIC that is receive-window growth beyond the
	// initial window, plus small message buffers of libp2p protocols. One
	// connection may reserve at most 16 MiB (quic-go's largest connection
	// window in libp2p's config is 15 MB) and one peer at most 32 MiB.
	Memory int64
	// FDs is the most file descriptors connections may hold. QUIC
	// connections share the listener's UDP socket and hold none, so this
	// only caps descriptor-backed transports, which this host does not run;
	// it is kept explicit so that no transport gets libp2p's default of
	// half the process's descriptors.
	FDs int
}

// DefaultLimits returns the limits for a gateway site of up to a few
// thousand peers on a host with a small memory budget:
//
//   - Conns 4096: a seeder may hold a connection to every gateway of the
//     site at once (DESIGN: up to a few thousand). An idle QUIC connection
//     reserves no resource-manager memory, so the count is cheap to allow.
//   - ConnsPerPeer 8: libp2p's own default, sized for the dial attempts the
//     swarm may run in parallel to one peer; the steady state is one (two
//     after a simultaneous dial).
//   - Streams 8192: two per connection with the whole site connected.
//   - StreamsPerPeer 64: one peer needs a few streams per protocol (chunk
//     exchange, Raft's pooled connections, short peer RPCs); 64 leaves room
//     for bursts and stays well below QUIC's 256 streams per connection.
//   - StreamsPerProtocolPerPeer 32: half a peer's budget, so any one
//     protocol leaves the others room with that peer.
//   - Memory 128 MiB: eight connections at the largest QUIC receive window
//     at once. On a site LAN the bandwidth-delay product is far below the
//     initial 512 KiB window, so connections beyond that stay fast.
//   - FDs 256: libp2p's minimum; QUIC does not use them (see Limits.FDs).
func DefaultLimits() Limits {
	return Limits{
		Conns:                     4096,
		ConnsPerPeer:              8,
		Streams:                   8192,
		StreamsPerPeer:            64,
		StreamsPerProtocolPerPeer: 32,
		Memory:                    128 << 20,
		FDs:                       256,
	}
}

// Memory caps below the system scope; see Limits.Memory.
const (
	maxConnMemory   = 16 << 20
	maxPeerMemory   = 2 * maxConnMemory
	maxStreamMemory = 16 << 20 // libp2p's default for a stream scope
)

// withDefaults returns l with every zero field replaced by its default.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	set := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	set(&l.Conns, d.Conns)
	set(&l.ConnsPerPeer, d.ConnsPerPeer)
	set(&l.Streams, d.Streams)
	set(&l.StreamsPerPeer, d.StreamsPerPeer)
	set(&l.StreamsPerProtocolPerPeer, d.StreamsPerProtocolPerPeer)
	set(&l.FDs, d.FDs)
	if l.Memory == 0 {
		l.Memory = d.Memory
	}
	return l
}

// validate refuses negative limits; zero means default.
func (l Limits) validate() error {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"Conns", int64(l.Conns)},
		{"ConnsPerPeer", int64(l.ConnsPerPeer)},
		{"Streams", int64(l.Streams)},
		{"StreamsPerPeer", int64(l.StreamsPerPeer)},
		{"StreamsPerProtocolPerPeer", int64(l.StreamsPerProtocolPerPeer)},
		{"Memory", l.Memory},
		{"FDs", int64(l.FDs)},
	} {
		if f.v < 0 {
			return fmt.Errorf("limits: %s is %d; limits are positive (0 means the default)", f.name, f.v)
		}
	}
	return nil
}

// partial maps l (defaults applied) onto the resource manager's scopes. Every
// default scope is set explicitly: nothing is left to libp2p's autoscaling,
// which sizes limits from the machine's total memory.
//
//	system, allowlisted system      Conns, Streams, Memory, FDs
//	transient, allowlisted transient 1/16 of those (handshakes, unnegotiated streams)
//	service, protocol (all peers)   Streams, Memory: no bound beyond the system's
//	peer                            ConnsPerPeer, StreamsPerPeer, 32 MiB
//	service-peer                    StreamsPerPeer
//	protocol-peer                   StreamsPerProtocolPerPeer
//	connection                      one connection, 16 MiB
//	stream                          one stream, 16 MiB
//
// Each limit applies to inbound, outbound and both together alike. The
// allowlisted scopes are only used for multiaddrs on the resource manager's
// allowlist, which this package never fills; they mirror the normal ones.
func (l Limits) partial() rcmgr.PartialLimitConfig {
	l = l.withDefaults()
	system := rcmgr.ResourceLimits{
		Conns:           lv(l.Conns),
		ConnsInbound:    lv(l.Conns),
		ConnsOutbound:   lv(l.Conns),
		Streams:         lv(l.Streams),
		StreamsInbound:  lv(l.Streams),
		StreamsOutbound: lv(l.Streams),
		Memory:          lv64(l.Memory),
		FD:              lv(l.FDs),
	}
	transient := rcmgr.ResourceLimits{
		Conns:           lv(frac(l.Conns)),
		ConnsInbound:    lv(frac(l.Conns)),
		ConnsOutbound:   lv(frac(l.Conns)),
		Streams:         lv(frac(l.Streams)),
		StreamsInbound:  lv(frac(l.Streams)),
		StreamsOutbound: lv(frac(l.Streams)),
		Memory:          lv64(max(l.Memory/16, 1)),
		FD:              lv(frac(l.FDs)),
	}
	streams := func(n int, mem int64) rcmgr.ResourceLimits {
		return rcmgr.ResourceLimits{
			Streams:         lv(n),
			StreamsInbound:  lv(n),
			StreamsOutbound: lv(n),
			Memory:          lv64(mem),
		}
	}
	peerMem := min(l.Memory, maxPeerMemory)
	return rcmgr.PartialLimitConfig{
		System:               system,
		Transient:            transient,
		AllowlistedSystem:    system,
		AllowlistedTransient: transient,
		ServiceDefault:       streams(l.Streams, l.Memory),
		ProtocolDefault:      streams(l.Streams, l.Memory),
		ServicePeerDefault:   streams(l.StreamsPerPeer, peerMem),
		ProtocolPeerDefault:  streams(l.StreamsPerProtocolPerPeer, peerMem),
		PeerDefault: rcmgr.ResourceLimits{
			Conns:           lv(l.ConnsPerPeer),
			ConnsInbound:    lv(l.ConnsPerPeer),
			ConnsOutbound:   lv(l.ConnsPerPeer),
			Streams:         lv(l.StreamsPerPeer),
			StreamsInbound:  lv(l.StreamsPerPeer),
			StreamsOutbound: lv(l.StreamsPerPeer),
			Memory:          lv64(peerMem),
			FD:              lv(min(l.FDs, l.ConnsPerPeer)),
		},
		Conn: rcmgr.ResourceLimits{
			Conns:         1,
			ConnsInbound:  1,
			ConnsOutbound: 1,
			FD:            1,
			Memory:        lv64(min(l.Memory, maxConnMemory)),
		},
		Stream: rcmgr.ResourceLimits{
			Streams:         1,
			StreamsInbound:  1,
			StreamsOutbound: 1,
			Memory:          lv64(min(l.Memory, maxStreamMemory)),
		},
	}
}

// concrete returns the limiter configuration for l. The per-service and
// per-protocol limits of libp2p's own protocols (identify, and ping were it
// enabled) come from libp2p's defaults for them, scaled to l.Memory; every
// default scope comes from partial.
func (l Limits) concrete() rcmgr.ConcreteLimitConfig {
	l = l.withDefaults()
	scaling := rcmgr.DefaultLimits
	// Copy the maps too, in case someone filled the package variable's:
	// SetDefaultServiceLimits writes into them.
	scaling.ServiceLimits = maps.Clone(scaling.ServiceLimits)
	scaling.ServicePeerLimits = maps.Clone(scaling.ServicePeerLimits)
	scaling.ProtocolLimits = maps.Clone(scaling.ProtocolLimits)
	scaling.ProtocolPeerLimits = maps.Clone(scaling.ProtocolPeerLimits)
	scaling.PeerLimits = maps.Clone(scaling.PeerLimits)
	libp2p.SetDefaultServiceLimits(&scaling)
	return l.partial().Build(scaling.Scale(l.Memory, l.FDs))
}

// frac is the share of a system limit given to the transient scope.
func frac(n int) int { return max(n/16, 1) }

// lv converts a positive limit. rcmgr reads 0 as "default" and negative
// values as unlimited or block-all, so callers pass only positive values.
func lv(n int) rcmgr.LimitVal { return rcmgr.LimitVal(n) }

func lv64(n int64) rcmgr.LimitVal64 { return rcmgr.LimitVal64(n) }
