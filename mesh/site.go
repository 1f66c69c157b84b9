package mesh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/gossip"
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
	if n.raft != nil {
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
// it learns of; it wakes the follower when a leader's status changes.
func (n *Node) runGossip(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	if len(n.cfg.Gossip.Seeds) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := n.gossip.Join(ctx, nil); err != nil && ctx.Err() == nil {
				n.note(fmt.Errorf("join the site: %w", err))
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
		case ev := <-n.gossip.Events():
			switch ev.Kind {
			case gossip.EventJoin, gossip.EventUpdate:
				n.connectMember(ctx, ev.Member)
				if ev.Member.Meta.Leader {
					n.wake()
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

// wake tells the follower to look at the site's target again.
func (n *Node) wake() {
	select {
	case n.changed <- struct{}{}:
	default:
	}
}

// publishMeta keeps the node's gossip status current.
func (n *Node) publishMeta(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		m := n.meta()
		if m != n.gossip.Meta() {
			if err := n.gossip.SetMeta(m); err != nil {
				n.log.Warn("gossip status", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// meta is the node's status as gossip carries it.
func (n *Node) meta() gossip.Meta {
	st := n.localStatus()
	m := gossip.Meta{ID: n.host.ID().String(), Role: n.cfg.Role, Platform: n.cfg.Platform, P2PPort: n.p2pPort(), Phase: st.Phase}
	if rel, ok := n.stagedRef(); ok {
		m.Staged = rel
	}
	if st.Total > 0 {
		m.Progress = uint16(st.Have * gossip.MaxProgress / st.Total)
	}
	if n.raft != nil {
		if _, term, leader := n.raft.Leader(); leader {
			m.Leader, m.Term = true, term
			// The leader gossips the site's decision, which nodes follow.
			if t := n.fsm.State().Target; t != nil {
				m.Staged = t.Release.WithoutID()
			}
		}
	}
	return m
}

// siteTarget is the release the site stages, and where the node learned it:
// a seeder reads the Raft FSM, a node the gossiped status of the leader
// with the highest term.
func (n *Node) siteTarget() (content.Release, bool) {
	if n.fsm != nil {
		if t := n.fsm.State().Target; t != nil {
			return t.Release.WithoutID(), true
		}
		return content.Release{}, false
	}
	var best *gossip.Member
	for _, m := range n.gossip.Members() {
		if m.Meta.Leader && m.State == gossip.StateAlive && m.Meta.Staged.Name != "" && (best == nil || m.Meta.Term > best.Meta.Term) {
			best = &m
		}
	}
	if best == nil {
		return content.Release{}, false
	}
	return best.Meta.Staged, true
}

// siteView is the node's view of its site for the status API.
func (n *Node) siteView() *SiteStatus {
	s := &SiteStatus{GossipHealth: n.gossip.Health()}
	if t, ok := n.siteTarget(); ok {
		s.Target = t
	}
	for _, m := range n.gossip.Members() {
		ms := MemberStatus{ID: m.Name, Addr: net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Meta.P2PPort))),
			Role: m.Meta.Role, Platform: m.Meta.Platform, Phase: m.Meta.Phase, Running: m.Meta.Running, Staged: m.Meta.Staged,
			Progress: float64(m.Meta.Progress) / gossip.MaxProgress, Health: healthName(m.Meta.Health), Leader: m.Meta.Leader, State: m.State}
		if m.Meta.Leader && m.Meta.Term >= s.Term {
			s.Leader, s.Term = m.Name, m.Meta.Term
		}
		s.Members = append(s.Members, ms)
	}
	if n.raft != nil {
		s.Raft = strings.ToLower(n.raft.Stats()["state"])
		if id, term, _ := n.raft.Leader(); id != "" {
			s.Leader, s.Term = id, term
		}
	}
	return s
}

func healthName(h uint8) string {
	switch h {
	case gossip.HealthHealthy:
		return "healthy"
	case gossip.HealthUnhealthy:
		return "unhealthy"
	}
	return "unknown"
}

// RemoveSeeder removes a (dead) seeder from the site's Raft; only the
// leader can.
func (n *Node) RemoveSeeder(ctx context.Context, id string) error {
	if n.raft == nil {
		return errors.New("not a seeder")
	}
	return n.raft.RemoveServer(ctx, id)
}

// Voters returns the number of voters in the seeder's Raft configuration.
func (n *Node) Voters() int {
	if n.raft == nil {
		return 0
	}
	servers, err := n.raft.Servers()
	if err != nil {
		return 0
	}
	v := 0
	for _, s := range servers {
		if s.Suffrage == seeder.Voter {
			v++
		}
	}
	return v
}
