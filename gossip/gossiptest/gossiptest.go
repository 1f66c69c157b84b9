package gossiptest

import (
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/meshcast/meshcast/gossip"
)

// Links decides which of a site's gossip links are cut. Give every member
// the same Links, each through its own Wrap(name) (see gossip.New's
// WrapTransport), tell Links where each member listens (At), and Cut and
// Heal sides of the site. A cut loses every packet silently and fails
// every stream dial, both ways. It is safe for concurrent use.
type Links struct {
	mu   sync.Mutex
	at   map[string]string // "host:port" → member name
	side map[string]bool   // member name → on the cut-off side
}

// NewLinks returns a Links with nothing cut.
func NewLinks() *Links {
	return &Links{at: map[string]string{}, side: map[string]bool{}}
}

// At records that member name gossips on addr ("host:port"), so that
// traffic to addr counts as traffic to name.
func (l *Links) At(name, addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.at[addr] = name
}

// Cut cuts every link between the named members and the others.
func (l *Links) Cut(names ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.side)
	for _, n := range names {
		l.side[n] = true
	}
}

// Heal restores every link.
func (l *Links) Heal() {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.side)
}

// cut reports whether traffic from member from to addr crosses the cut.
func (l *Links) cut(from, addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.side) == 0 {
		return false
	}
	to, ok := l.at[addr]
	return ok && l.side[from] != l.side[to]
}

// Wrap returns the transport wrapper for the member named name, for
// gossip.WrapTransport.
func (l *Links) Wrap(name string) func(gossip.Transport) gossip.Transport {
	return func(t gossip.Transport) gossip.Transport {
		return &cutTransport{NodeAwareTransport: t, links: l, from: name}
	}
}

// cutTransport is a member's transport with its Links asked before every
// send.
type cutTransport struct {
	memberlist.NodeAwareTransport
	links *Links
	from  string
}

func (t *cutTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.links.cut(t.from, addr) {
		return time.Now(), nil
	}
	return t.NodeAwareTransport.WriteTo(b, addr)
}

func (t *cutTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.links.cut(t.from, a.Addr) {
		return time.Now(), nil
	}
	return t.NodeAwareTransport.WriteToAddress(b, a)
}

func (t *cutTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.links.cut(t.from, addr) {
		return nil, fmt.Errorf("gossip: dial %s: link cut", addr)
	}
	return t.NodeAwareTransport.DialTimeout(addr, timeout)
}

func (t *cutTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.links.cut(t.from, a.Addr) {
		return nil, fmt.Errorf("gossip: dial %s: link cut", a.Addr)
	}
	return t.NodeAwareTransport.DialAddressTimeout(a, timeout)
}
