package p2p

import (
	"context"
	"fmt"
	"net"
	"sync"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// PeerAddr is the net.Addr of a libp2p stream's end: a peer id. Its String
// is the peer id's text form.
type PeerAddr peer.ID

// Network returns "libp2p".
func (PeerAddr) Network() string { return "libp2p" }

func (a PeerAddr) String() string { return peer.ID(a).String() }

// Conn is a libp2p stream as a net.Conn: the stream's Read, Write, Close
// and deadlines, and the two peers' ids as addresses. Close closes the
// stream for both directions (network.Stream.Close).
type Conn struct {
	network.Stream
}

var _ net.Conn = (*Conn)(nil)

// LocalAddr returns our peer id.
func (c *Conn) LocalAddr() net.Addr { return PeerAddr(c.Stream.Conn().LocalPeer()) }

// RemoteAddr returns the remote peer id, which the connection's handshake
// authenticated.
func (c *Conn) RemoteAddr() net.Addr { return PeerAddr(c.Stream.Conn().RemotePeer()) }

// Listen registers a handler for proto on h and returns a listener whose
// Accept returns the inbound streams of that protocol as net.Conns (*Conn).
// Streams come only from peers h's gater admits, with the limits of h's
// resource manager. Addr reports h's peer id.
//
// A stream waits in its handler until it is accepted; closing the listener
// (or the host) resets the streams waiting. Close removes the handler, so
// that new streams of proto are refused, and unblocks Accept, which then
// returns an error wrapping net.ErrClosed. Listen once per protocol: a
// second Listen on the same protocol replaces the first's handler, and
// closing either removes it.
func Listen(h host.Host, proto protocol.ID) net.Listener {
	l := &listener{h: h, proto: proto, conns: make(chan *Conn), done: make(chan struct{})}
	if sw, ok := h.Network().(interface{ Done() <-chan struct{} }); ok {
		l.hostDone = sw.Done()
	}
	h.SetStreamHandler(proto, l.handle)
	return l
}

type listener struct {
	h        host.Host
	proto    protocol.ID
	hostDone <-chan struct{} // nil if the network does not say
	conns    chan *Conn
	done     chan struct{}
	once     sync.Once
}

func (l *listener) handle(s network.Stream) {
	select {
	case l.conns <- &Conn{s}:
	case <-l.done:
		_ = s.Reset()
	case <-l.hostDone:
		_ = s.Reset()
	}
}

func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, fmt.Errorf("accept %s streams: %w", l.proto, net.ErrClosed)
	}
}

func (l *listener) Close() error {
	l.once.Do(func() {
		l.h.RemoveStreamHandler(l.proto)
		close(l.done)
	})
	return nil
}

func (l *listener) Addr() net.Addr { return PeerAddr(l.h.ID()) }

// Dial opens a stream of proto from h to the peer id and returns it as a
// net.Conn (*Conn). It connects first if h is not connected to the peer,
// using the addresses h's peerstore holds for it, and fails if h's gater
// does not allow the peer. The peer is authenticated: the stream's remote
// end is id. ctx bounds connecting and opening the stream, not the
// stream's life. libp2p may negotiate the protocol lazily, so a peer that
// does not speak proto can show up as an error of the first Read or Write.
func Dial(ctx context.Context, h host.Host, id peer.ID, proto protocol.ID) (net.Conn, error) {
	s, err := h.NewStream(ctx, id, proto)
	if err != nil {
		return nil, fmt.Errorf("open %s stream to %s: %w", proto, id, err)
	}
	return &Conn{s}, nil
}
