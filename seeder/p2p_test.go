package seeder_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/meshcast/meshcast/mesh/p2p"
	"github.com/meshcast/meshcast/seeder"
)

// raftProto is the protocol the Raft streams use in this test; the mesh
// picks the real one.
const raftProto = protocol.ID("/meshcast/test/raft/1")

// p2pStreams is seeder.Streams over a libp2p host, as the mesh will wire
// it: p2p.Listen for inbound streams, p2p.Dial by peer id.
type p2pStreams struct {
	net.Listener
	h host.Host
}

func (s p2pStreams) Dial(ctx context.Context, id string) (net.Conn, error) {
	p, err := peer.Decode(id)
	if err != nil {
		return nil, err
	}
	return p2p.Dial(ctx, s.h, p, raftProto)
}

// TestRaftOverLibp2p runs a 3-voter cluster whose Raft traffic goes over
// libp2p QUIC streams between three hosts (ids are peer ids), applies a
// command, kills the leader and checks that the others elect a new one
// and go on committing.
func TestRaftOverLibp2p(t *testing.T) {
	c := newCluster(t, seeder.TestRaftConfig())
	var hosts []host.Host
	var gaters []*p2p.Gater
	for i := range 3 {
		key, err := p2p.LoadIdentity(t.TempDir() + "/identity.key")
		if err != nil {
			t.Fatal(err)
		}
		g := p2p.NewGater()
		h, err := p2p.New(p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}}, key, g, testLog(t, "host"+string(rune('1'+i)), c.logs))
		if err != nil {
			t.Fatal(err)
		}
		// Registered before the cluster's nodes, so closed after them.
		t.Cleanup(func() {
			if err := h.Close(); err != nil {
				t.Errorf("close host: %v", err)
			}
		})
		hosts = append(hosts, h)
		gaters = append(gaters, g)
	}
	// Everyone admits everyone and knows their addresses.
	for i, a := range hosts {
		for _, b := range hosts {
			if a != b {
				gaters[i].Allow(b.ID())
				a.Peerstore().AddAddrs(b.ID(), b.Addrs(), time.Hour)
			}
		}
	}

	var nodes []*node
	start := time.Now()
	for i, h := range hosts {
		id := h.ID().String()
		n := &node{c: c, id: id, dir: t.TempDir(), logs: testLog(t, "s"+string(rune('1'+i)), c.logs)}
		n.fsm = seeder.NewFSM()
		cfg := c.cfg
		cfg.Dir, cfg.ID, cfg.Bootstrap = n.dir, id, i == 0
		r, err := seeder.NewRaft(cfg, p2pStreams{p2p.Listen(h, raftProto), h}, n.fsm, n.logs)
		if err != nil {
			t.Fatal(err)
		}
		n.r = r
		c.nodes = append(c.nodes, n)
		nodes = append(nodes, n)
		if i == 0 {
			if l, _ := c.waitLeader(wait, 0); l != n {
				t.Fatalf("leader %s", l.id)
			}
			t.Logf("over libp2p: first voter elected in %v", time.Since(start))
			continue
		}
		if err := nodes[0].r.AddVoter(ctx(t), id); err != nil {
			t.Fatal(err)
		}
	}
	leader, _ := c.waitLeader(wait, 0)
	start = time.Now()
	leader.mustPropose("1.0.0")
	t.Logf("over libp2p: a stage committed in %v", time.Since(start))
	c.waitTarget("1.0.0")

	term := leader.r.Term()
	leader.kill()
	next, waited := c.waitLeader(5*time.Second, term)
	t.Logf("over libp2p: failover to %s in %v", next.id, waited)
	next.mustPropose("1.1.0")
	c.waitTarget("1.1.0")
}
