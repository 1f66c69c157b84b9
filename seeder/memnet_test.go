package seeder_test

import (
	"context"
	"fmt"
	"net"
	"sync"

	"github.com/meshcast/meshcast/seeder"
)

// memNet is an in-memory network of Streams for unit tests: each server
// listens under its id, and a dial hands the listener one end of a
// net.Pipe. A closed listener is gone: dials to its id fail at once, as
// dials to a crashed host's closed port would.
type memNet struct {
	mu        sync.Mutex
	listeners map[string]*memStreams
}

func newMemNet() *memNet { return &memNet{listeners: map[string]*memStreams{}} }

// listen returns the Streams of the server id. It panics if id listens
// already: a test bug.
func (n *memNet) listen(id string) *memStreams {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.listeners[id] != nil {
		panic("memnet: " + id + " listens already")
	}
	s := &memStreams{n: n, id: id, accept: make(chan net.Conn), done: make(chan struct{})}
	n.listeners[id] = s
	return s
}

type memStreams struct {
	n      *memNet
	id     string
	accept chan net.Conn
	done   chan struct{}
	once   sync.Once
}

var _ seeder.Streams = (*memStreams)(nil)

func (s *memStreams) Accept() (net.Conn, error) {
	select {
	case c := <-s.accept:
		return c, nil
	case <-s.done:
		return nil, fmt.Errorf("memnet %s: accept: %w", s.id, net.ErrClosed)
	}
}

func (s *memStreams) Close() error {
	s.once.Do(func() {
		s.n.mu.Lock()
		if s.n.listeners[s.id] == s {
			delete(s.n.listeners, s.id)
		}
		s.n.mu.Unlock()
		close(s.done)
	})
	return nil
}

func (s *memStreams) Addr() net.Addr { return memAddr(s.id) }

func (s *memStreams) Dial(ctx context.Context, id string) (net.Conn, error) {
	s.n.mu.Lock()
	l := s.n.listeners[id]
	s.n.mu.Unlock()
	if l == nil {
		return nil, fmt.Errorf("memnet: dial %s from %s: no such server", id, s.id)
	}
	a, b := net.Pipe()
	select {
	case l.accept <- &memConn{Conn: b, local: id, remote: s.id}:
		return &memConn{Conn: a, local: s.id, remote: id}, nil
	case <-l.done:
		err := fmt.Errorf("memnet: dial %s from %s: %w", id, s.id, net.ErrClosed)
		return nil, err
	case <-ctx.Done():
		return nil, fmt.Errorf("memnet: dial %s from %s: %w", id, s.id, ctx.Err())
	}
}

type memAddr string

func (memAddr) Network() string  { return "mem" }
func (a memAddr) String() string { return string(a) }

// memConn is a pipe end whose addresses are the two server ids.
type memConn struct {
	net.Conn
	local, remote string
}

func (c *memConn) LocalAddr() net.Addr  { return memAddr(c.local) }
func (c *memConn) RemoteAddr() net.Addr { return memAddr(c.remote) }
