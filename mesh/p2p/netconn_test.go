package p2p_test

import (
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/meshcast/meshcast/mesh/p2p"
)

const connProto = protocol.ID("/meshcast/test/netconn/1")

func TestListenDial(t *testing.T) {
	a, b := newHost(t, "a", p2p.Limits{}), newHost(t, "b", p2p.Limits{})
	allowEachOther(a, b)
	connect(t, a, b)
	ctx := ctxT(t)

	l := p2p.Listen(b, connProto)
	defer l.Close()
	if got := l.Addr().String(); got != b.ID().String() {
		t.Errorf("listener Addr %q, want b's peer id %q", got, b.ID())
	}
	if n := l.Addr().Network(); n != "libp2p" {
		t.Errorf("listener Addr network %q", n)
	}

	type accepted struct {
		c   net.Conn
		err error
	}
	acc := make(chan accepted, 1)
	go func() {
		c, err := l.Accept()
		acc <- accepted{c, err}
	}()

	c, err := p2p.Dial(ctx, a, b.ID(), connProto)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.LocalAddr().String(); got != a.ID().String() {
		t.Errorf("dialer LocalAddr %q, want %q", got, a.ID())
	}
	if got := c.RemoteAddr().String(); got != b.ID().String() {
		t.Errorf("dialer RemoteAddr %q, want %q", got, b.ID())
	}
	msg := []byte("ping over a stream")
	if _, err := c.Write(msg); err != nil { // the stream reaches b's handler with its first bytes
		t.Fatal(err)
	}
	var s accepted
	select {
	case s = <-acc:
	case <-ctx.Done():
		t.Fatal("nothing accepted")
	}
	if s.err != nil {
		t.Fatal(s.err)
	}
	defer s.c.Close()
	if got, want := s.c.RemoteAddr().String(), a.ID().String(); got != want {
		t.Errorf("accepted RemoteAddr %q, want the dialer's peer id %q", got, want)
	}
	if pa, ok := s.c.RemoteAddr().(p2p.PeerAddr); !ok || string(pa) != string(a.ID()) {
		t.Errorf("accepted RemoteAddr is %#v, want p2p.PeerAddr(%s)", s.c.RemoteAddr(), a.ID())
	}
	if got := s.c.LocalAddr().String(); got != b.ID().String() {
		t.Errorf("accepted LocalAddr %q, want %q", got, b.ID())
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(s.c, got); err != nil || string(got) != string(msg) {
		t.Fatalf("read %q, %v; want %q", got, err, msg)
	}
	// And back.
	if _, err := s.c.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	back := make([]byte, 4)
	if _, err := io.ReadFull(c, back); err != nil || string(back) != "pong" {
		t.Fatalf("read %q, %v; want pong", back, err)
	}

	// Deadlines work as net.Conn's do.
	if err := s.c.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	_, err = s.c.Read(make([]byte, 1))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read past the deadline: %v, want a timeout", err)
	}

	// Close on one end is EOF on the other.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	_ = s.c.SetReadDeadline(time.Now().Add(wait))
	if n, err := s.c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("read after the dialer closed: %d, %v; want EOF", n, err)
	}
}

func TestListenerClose(t *testing.T) {
	a, b := newHost(t, "a", p2p.Limits{}), newHost(t, "b", p2p.Limits{})
	allowEachOther(a, b)
	connect(t, a, b)
	ctx := ctxT(t)

	l := p2p.Listen(b, connProto)
	errc := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		errc <- err
	}()
	if !slices.Contains(b.Mux().Protocols(), connProto) {
		t.Fatalf("no handler for %s on b", connProto)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-ctx.Done():
		t.Fatal("Close did not unblock Accept")
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Accept after Close: %v, want net.ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if slices.Contains(b.Mux().Protocols(), connProto) {
		t.Errorf("handler for %s left on b after Close", connProto)
	}

	// A stream of the protocol is refused now: at NewStream or, negotiated
	// lazily, at its first read.
	c, err := p2p.Dial(ctx, a, b.ID(), connProto)
	if err == nil {
		_ = c.SetDeadline(time.Now().Add(wait))
		_, _ = c.Write([]byte("x"))
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("stream to a closed listener: %v, want a refusal", err)
	}
	t.Logf("stream to a closed listener: %v", err)
}

// A stream waiting in the handler when the listener closes is reset, and
// its handler returns (TestMain checks no goroutine is left).
func TestListenerCloseResetsWaiting(t *testing.T) {
	a, b := newHost(t, "a", p2p.Limits{}), newHost(t, "b", p2p.Limits{})
	allowEachOther(a, b)
	connect(t, a, b)
	ctx := ctxT(t)

	l := p2p.Listen(b, connProto)
	c, err := p2p.Dial(ctx, a, b.ID(), connProto)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	// Nobody accepts. The handler holds b's side of the stream.
	waitPeerStreams(t, b, a.ID(), 1)
	l.Close()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	_, err = c.Read(make([]byte, 1))
	if err == nil || err == io.EOF || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read from a stream the closed listener held: %v, want a reset", err)
	}
	t.Logf("read from a stream the closed listener held: %v", err)
	waitPeerStreams(t, b, a.ID(), 0)
}

func TestDialUnknownPeer(t *testing.T) {
	a, b := newHost(t, "a", p2p.Limits{}), newHost(t, "b", p2p.Limits{})
	allowEachOther(a, b)
	// a does not know b's addresses: no connect.
	ctx := ctxT(t)
	if _, err := p2p.Dial(ctx, a, b.ID(), connProto); err == nil {
		t.Fatal("dial to a peer without known addresses succeeded")
	} else if !strings.Contains(err.Error(), b.ID().String()) {
		t.Errorf("error does not name the peer: %v", err)
	}
}
