package seeder

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Streams is what Raft needs from the mesh: reliable, ordered byte streams
// to and from the other seeders, named by their server id (the libp2p peer
// id text). The mesh provides it over libp2p streams of one protocol; unit
// tests over in-memory pipes.
//
// The contract:
//   - Accept returns inbound streams whose peer has been authenticated
//     (RemoteAddr().String() is its id) and admitted; the mesh should also
//     restrict the Raft protocol to the site's seeders. After Close, Accept
//     returns an error at once.
//   - Addr().String() is this server's id.
//   - Dial opens a stream to the peer with this id, authenticating it, or
//     fails by ctx's deadline.
//   - The returned net.Conns honour deadlines and Close (which unblocks a
//     Read or Write in progress).
//
// Raft owns the Streams it is given: its Close closes them.
type Streams interface {
	net.Listener
	Dial(ctx context.Context, id string) (net.Conn, error)
}

// streamLayer adapts Streams to raft.StreamLayer (the address is the id)
// and keeps track of every stream, which hashicorp/raft's NetworkTransport
// does not: its Close neither closes the streams it accepted (their
// handlers stay blocked in Read) nor the idle ones in its pool. closeAll
// closes them and waits for the handlers.
type streamLayer struct {
	s Streams

	mu       sync.Mutex
	closed   bool
	conns    map[*trackedConn]struct{} // open, either direction
	handlers sync.WaitGroup            // accepted streams not yet closed by raft; Add under mu while !closed
}

var _ raft.StreamLayer = (*streamLayer)(nil)

func newStreamLayer(s Streams) *streamLayer {
	return &streamLayer{s: s, conns: make(map[*trackedConn]struct{})}
}

// errLayerClosed is returned by Dial and Accept after closeAll.
var errLayerClosed = errors.New("raft stream layer closed")

func (l *streamLayer) Accept() (net.Conn, error) {
	c, err := l.s.Accept()
	if err != nil {
		return nil, err
	}
	return l.track(c, true)
}

func (l *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := l.s.Dial(ctx, string(addr))
	if err != nil {
		return nil, fmt.Errorf("raft stream to %s: %w", addr, err)
	}
	return l.track(c, false)
}

// Close closes the Streams; raft's transport calls it on shutdown.
func (l *streamLayer) Close() error { return l.s.Close() }

func (l *streamLayer) Addr() net.Addr { return l.s.Addr() }

func (l *streamLayer) track(c net.Conn, accepted bool) (net.Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		_ = c.Close()
		return nil, errLayerClosed
	}
	tc := &trackedConn{Conn: c, l: l, accepted: accepted}
	l.conns[tc] = struct{}{}
	if accepted {
		l.handlers.Add(1)
	}
	return tc, nil
}

// closeAll closes every stream and refuses new ones, then waits up to
// timeout for raft's handlers of accepted streams to return (each closes its
// stream as it returns). It reports whether they all did.
func (l *streamLayer) closeAll(timeout time.Duration) bool {
	l.mu.Lock()
	l.closed = true
	conns := make([]*trackedConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		_ = c.Conn.Close() // not c.Close: that is raft's handler saying it is done
	}
	done := make(chan struct{})
	go func() {
		l.handlers.Wait()
		close(done)
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false // the waiter goroutine ends with the last handler
	}
}

// trackedConn is a stream the layer tracks until raft closes it.
type trackedConn struct {
	net.Conn
	l        *streamLayer
	accepted bool
	once     sync.Once
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
		if c.accepted {
			c.l.handlers.Done()
		}
	})
	return err
}
