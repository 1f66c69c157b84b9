package mesh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/content/tuf"
	"github.com/meshcast/meshcast/deploy"
	"github.com/meshcast/meshcast/gossip"
	"github.com/meshcast/meshcast/mesh/control"
	"github.com/meshcast/meshcast/mesh/exchange"
	"github.com/meshcast/meshcast/mesh/p2p"
	"github.com/meshcast/meshcast/seeder"
)

// raftProtocol carries Raft between the site's seeders.
const raftProtocol protocol.ID = "/meshcast/raft/1"

// raftStreams gives seeder.Raft its transport: libp2p streams of
// raftProtocol, accepted only from members that gossip says are seeders
// (or that Raft already counts as servers), so that no node can take part
// in elections.
type raftStreams struct {
	net.Listener
	n *Node
}

func (r raftStreams) Accept() (net.Conn, error) {
	for {
		c, err := r.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if r.n.isSeeder(c.RemoteAddr().String()) {
			return c, nil
		}
		r.n.log.Warn("refused a raft stream from a peer that is not a seeder", "peer", c.RemoteAddr())
		c.Close()
	}
}

func (r raftStreams) Dial(ctx context.Context, id string) (net.Conn, error) {
	pid, err := peer.Decode(id)
	if err != nil {
		return nil, fmt.Errorf("raft peer %q: %w", id, err)
	}
	return p2p.Dial(ctx, r.n.host, pid, raftProtocol)
}

// isSeeder reports whether a peer id belongs to a seeder of the site.
func (n *Node) isSeeder(id string) bool {
	for _, m := range n.gossip.Members() {
		if m.Name == id && m.Meta.Role == gossip.RoleSeeder {
			return true
		}
	}
	// Raft's accept loop runs while NewRaft is still returning n.raft:
	// read it only once Run closed ready after setting it.
	if n.started() && n.raft != nil {
		if servers, err := n.raft.Servers(); err == nil {
			return slices.ContainsFunc(servers, func(s seeder.Server) bool { return s.ID == id })
		}
	}
	return false
}

// p2pPort returns the UDP port of the host's first QUIC listen address.
func (n *Node) p2pPort() uint16 {
	for _, a := range n.host.Network().ListenAddresses() {
		if s, err := a.ValueForProtocol(ma.P_UDP); err == nil {
			if p, err := strconv.Atoi(s); err == nil {
				return uint16(p)
			}
		}
	}
	return 0
}

// runGossip joins the site and keeps the node connected to every member
// it learns of; it wakes the follower when a leader's status changes (a
// node follows the release the leader gossips).
func (n *Node) runGossip(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	if len(n.cfg.Gossip.Seeds) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := n.gossip.Join(ctx, nil); err != nil && ctx.Err() == nil {
				n.log.Warn("join the site", "err", err)
				n.joinErr.Store(&timedErr{fmt.Errorf("join the site: %w", err), time.Now()})
			}
		}()
	}
	for _, m := range n.gossip.Members() {
		n.connectMember(ctx, m)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case msg := <-n.gossip.Messages():
			if _, ok := control.ParseNotice(msg); ok {
				n.agent.Wake()
			}
		case ev := <-n.gossip.Events():
			if n.leader != nil {
				n.leader.WakeRollout() // a member's phase or liveness changed
			}
			switch ev.Kind {
			case gossip.EventJoin, gossip.EventUpdate:
				n.connectMember(ctx, ev.Member)
				if ev.Member.Meta.Leader {
					n.follower.Wake()
					n.agent.Wake()
				}
			}
		}
	}
}

// connectMember admits a gossip member at the gater (gossip is encrypted
// with the site's key, so a member holds it) and dials it if it is not
// connected.
func (n *Node) connectMember(ctx context.Context, m gossip.Member) {
	if m.MetaErr != nil || m.Meta.P2PPort == 0 || m.Name == n.host.ID().String() {
		return
	}
	id, err := peer.Decode(m.Name)
	if err != nil {
		return
	}
	n.gater.Admit(id)
	if !n.gater.Allowed(id) || n.host.Network().Connectedness(id) == network.Connected {
		return
	}
	proto := "ip4"
	if m.Addr.To4() == nil {
		proto = "ip6"
	}
	addr, err := ma.NewMultiaddr(fmt.Sprintf("/%s/%s/udp/%d/quic-v1", proto, m.Addr, m.Meta.P2PPort))
	if err != nil {
		return
	}
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := n.host.Connect(cctx, peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{addr}}); err != nil && ctx.Err() == nil {
			n.log.Debug("connect to site member failed", "peer", id, "err", err)
		}
	}()
}

// publishMeta keeps the node's gossip status current.
func (n *Node) publishMeta(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		changed := n.Changes()
		m := n.meta()
		if m != n.gossip.Meta() {
			if err := n.gossip.SetMeta(m); err != nil {
				n.log.Warn("gossip status", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-t.C:
		}
	}
}

// meta is the node's status as gossip carries it. The leader gossips the
// site's decision, which the nodes follow.
func (n *Node) meta() gossip.Meta {
	st, _ := n.follower.State()
	m := gossip.Meta{ID: n.host.ID().String(), Role: n.cfg.Role, Platform: n.cfg.Platform, P2PPort: n.p2pPort(),
		Staged: st.Release.WithoutID(), Phase: st.Phase}
	as := n.agent.State()
	if as.Running != "" {
		m.Running = content.Release{Name: n.cfg.Release, Version: as.Running}
	}
	if as.Release != "" && as.Release == st.Release.Version {
		m.Phase = as.Phase // the activation phases of the staged release
	}
	if as.Running != "" && as.Phase == deploy.PhaseHealthy && as.Release == as.Running {
		m.Health = gossip.HealthHealthy
	} else if as.Phase == deploy.PhaseFailed {
		m.Health = gossip.HealthUnhealthy // a rolled-back node runs the release before, healthy as far as it knows
	}
	if st.Swarm != nil {
		if have, total := st.Swarm.Progress(); total > 0 {
			m.Progress = uint16(have * gossip.MaxProgress / total)
		}
	}
	if n.raft != nil {
		if _, term, leader := n.raft.Leader(); leader {
			m.Leader, m.Term = true, term
			if t := n.fsm.State().Target; t != nil {
				m.Staged = t.Release.WithoutID()
			}
		}
	}
	return m
}

// leading reports whether this seeder leads its site's Raft.
func (n *Node) leading() bool {
	_, _, leader := n.raft.Leader()
	return leader
}

// The adapters through which the follower and the leader reach the rest
// of the node. Each only translates; none decides.

// gossipSite is a node's deploy.Site: the release the leader gossips.
type gossipSite struct{ n *Node }

func (s gossipSite) Target() (content.Release, bool) {
	m, ok := s.n.gossip.Leader()
	if !ok || m.Meta.Staged.IsZero() {
		return content.Release{}, false
	}
	return m.Meta.Staged, true
}

// fsmSite is a seeder's deploy.Site: the target in the Raft FSM.
type fsmSite struct{ fsm *seeder.FSM }

func (s fsmSite) Target() (content.Release, bool) {
	t := s.fsm.State().Target
	if t == nil {
		return content.Release{}, false
	}
	return t.Release, true
}

// swarms is the follower's deploy.Swarms: swarms of the node's exchange
// for its platform.
type swarms struct{ n *Node }

func (s swarms) Join(ctx context.Context, rel content.Release, chunks []content.ChunkRef) (deploy.Swarm, error) {
	sw, err := s.n.exch.Join(ctx, exchange.SwarmIDFor(rel.ID, s.n.cfg.Platform), chunks, exchange.JoinOptions{})
	if err != nil {
		return nil, err
	}
	return &swarm{n: s.n, sw: sw}, nil
}

func (s swarms) Leave(sw deploy.Swarm) { s.n.exch.Leave(sw.(*swarm).sw.ID) }

// swarm is a joined swarm of the node's exchange: a deploy.Swarm for the
// follower and a seeder.Swarm for the leader, which spreads it.
type swarm struct {
	n  *Node
	sw *exchange.Swarm
}

func (s *swarm) Done() <-chan struct{}       { return s.sw.Done() }
func (s *swarm) Progress() (have, total int) { return s.sw.Progress() }
func (s *swarm) Chunks() []content.ChunkRef  { return s.sw.Chunks }
func (s *swarm) Peers() int                  { return len(s.n.host.Network().Peers()) }
func (s *swarm) SetSpread(on bool) error     { return s.n.exch.SetSpread(s.sw.ID, on) }
func (s *swarm) Offer(i int) error           { return s.n.exch.Offer(s.sw.ID, i) }
func (s *swarm) Held(ctx context.Context) (self, site []bool, members int, err error) {
	return s.n.exch.Held(ctx, s.sw.ID)
}
func (s *swarm) WaitSpread(ctx context.Context, window int) error {
	return s.n.exch.WaitSpread(ctx, s.sw.ID, window)
}

// staging is the leader's seeder.Follower: the swarm this seeder's
// follower staged.
type staging struct{ f *deploy.Follower }

func (s staging) Staged() (seeder.Swarm, <-chan struct{}) {
	st, changed := s.f.State()
	if st.Swarm == nil {
		return nil, changed
	}
	return st.Swarm.(*swarm), changed
}

// members is the leader's seeder.Members: the seeders gossip lists alive.
type members struct{ n *Node }

func (m members) Seeders() []string {
	var ids []string
	for _, mb := range m.n.gossip.Members() {
		if mb.Meta.Role == gossip.RoleSeeder && mb.State == gossip.StateAlive && mb.Name != m.n.host.ID().String() {
			ids = append(ids, mb.Name)
		}
	}
	return ids
}

// origin is the leader's seeder.Origin: the CDN, verified against the
// node's trusted metadata.
type origin struct{ n *Node }

func (o origin) Newest(ctx context.Context, name string) (content.Release, error) {
	trusted, err := tuf.Refresh(ctx, o.n.cdn, o.n.cfg.CDN.URL, o.n.tufDir(), o.n.cfg.TrustedRoot, o.n.log)
	if err != nil {
		return content.Release{}, err
	}
	t, err := trusted.Find(content.Release{Name: name})
	if errors.Is(err, tuf.ErrNoRelease) {
		return content.Release{}, nil // nothing published yet
	}
	return t.Release, err
}

func (o origin) FetchChunks(ctx context.Context, refs []content.ChunkRef, sink func(content.Chunk) error) error {
	return o.n.cdn.FetchChunks(ctx, refs, sink)
}
