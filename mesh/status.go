package mesh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/deploy"
	"github.com/meshcast/meshcast/gossip"
	"github.com/meshcast/meshcast/mesh/api"
	"github.com/meshcast/meshcast/seeder"
)

var _ api.Node = (*Node)(nil)

// Status returns the node's status, with its view of the site once Run
// has started.
func (n *Node) Status() api.Status {
	st, _ := n.follower.State()
	s := api.Status{ID: n.host.ID().String(), Site: n.cfg.Site, Role: n.cfg.Role,
		Release: st.Release, Phase: st.Phase, DoneAt: st.DoneAt, Exchange: n.exch.Stats(), Peers: len(n.host.Network().Peers())}
	if st.Swarm != nil {
		s.Have, s.Total = st.Swarm.Progress()
	}
	as := n.agent.State()
	if as.Running != "" {
		s.Running = content.Release{Name: n.cfg.Release, Version: as.Running}
	}
	if as.Release != "" && as.Release == st.Release.Version {
		s.Phase = as.Phase
	}
	if len(as.Outcomes) > 0 {
		s.Activations = as.Outcomes
	}
	if n.cdn != nil {
		s.BytesFromCDN = n.cdn.BytesFromCDN()
	}
	last := timedErr{st.Err, st.ErrAt}
	if as.ErrAt.After(last.at) {
		last = timedErr{as.Err, as.ErrAt}
	}
	if je := n.joinErr.Load(); je != nil && je.at.After(last.at) {
		last = *je
	}
	if n.started() {
		if n.leader != nil {
			ls := n.leader.Stats()
			s.ChunksFromCDN = ls.ChunksFromCDN + n.indexChunks.Load()
			s.ChunkBytesFromCDN = ls.ChunkBytesFromCDN + n.indexBytes.Load()
			if ls.ErrAt.After(last.at) {
				last = timedErr{ls.Err, ls.ErrAt}
			}
		}
		s.SiteView = n.siteView()
	}
	if last.err != nil {
		s.Err = last.err.Error()
	}
	return s
}

// siteView is the node's view of its site for the status API.
func (n *Node) siteView() *api.SiteStatus {
	s := &api.SiteStatus{GossipHealth: n.gossip.Health()}
	s.Target, _ = n.site.Target()
	n.rolloutView(s)
	for _, m := range n.gossip.Members() {
		s.Members = append(s.Members, api.MemberStatus{ID: m.Name, Addr: net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Meta.P2PPort))),
			Role: m.Meta.Role, Platform: m.Meta.Platform, Running: m.Meta.Running, Staged: m.Meta.Staged, Phase: m.Meta.Phase,
			Progress: float64(m.Meta.Progress) / gossip.MaxProgress, Health: healthName(m.Meta.Health), Leader: m.Meta.Leader, State: m.State})
	}
	if m, ok := n.gossip.Leader(); ok {
		s.Leader, s.Term = m.Name, m.Meta.Term
	}
	if n.raft != nil {
		s.Raft = strings.ToLower(n.raft.Stats()["state"])
		if id, term, _ := n.raft.Leader(); id != "" {
			s.Leader, s.Term = id, term
		}
	}
	return s
}

// rolloutView fills in the site's rollout: a seeder's from its FSM, a
// node's as it last read it from the seeders.
func (n *Node) rolloutView(s *api.SiteStatus) {
	if n.fsm != nil {
		st := n.fsm.State()
		s.Running, s.Rollout = st.Running, st.Rollout
	} else {
		s.Rollout = n.agent.State().Rollout
	}
	switch {
	case s.Rollout != nil && s.Rollout.Release.Matches(s.Target):
		s.RolloutState = s.Rollout.State
	case !s.Target.IsZero():
		s.Rollout, s.RolloutState = nil, deploy.RolloutStaged
	}
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

// RemoveSeeder removes a dead seeder from the site's Raft; only the
// leading seeder can (seeder.Leader.RemoveSeeder).
func (n *Node) RemoveSeeder(ctx context.Context, id string) error {
	if n.leader == nil || !n.started() {
		return errors.New("not a running seeder")
	}
	return n.leader.RemoveSeeder(ctx, id)
}

// Voters returns the number of voters in the seeder's Raft configuration.
func (n *Node) Voters() int {
	if n.raft == nil || !n.started() {
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

// Changes returns a channel closed at the next change of the node's
// release, phase, running release, error or view of the site's rollout
// (Status().Release, Phase, Running, Err, SiteView.RolloutState and the
// wave), and when Run returns: a test or a dashboard waits on it instead
// of polling.
func (n *Node) Changes() <-chan struct{} {
	n.chgMu.Lock()
	defer n.chgMu.Unlock()
	return n.chg
}

// watchChanges closes the Changes channel at each change, until ctx ends.
// The follower signals its changes; the agent's and the activator's, which
// happen while the agent waits on hooks and health checks, are seen by
// comparing the status every 100 ms.
func (n *Node) watchChanges(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	last := n.changeKey()
	for {
		_, followed := n.follower.State()
		select {
		case <-ctx.Done():
			n.chgMu.Lock()
			close(n.chg)
			n.chg = make(chan struct{})
			n.chgMu.Unlock()
			return
		case <-followed:
		case <-t.C:
		}
		if k := n.changeKey(); k != last {
			last = k
			n.chgMu.Lock()
			close(n.chg)
			n.chg = make(chan struct{})
			n.chgMu.Unlock()
		}
	}
}

// changeKey sums up what Changes reports.
func (n *Node) changeKey() string {
	st, _ := n.follower.State()
	as := n.agent.State()
	k := fmt.Sprintf("%s %s %v %s %s %s %v", st.Release, st.Phase, st.Err, as.Running, as.Release, as.Phase, as.Err)
	if r := as.Rollout; r != nil {
		k += fmt.Sprintf(" %s %s %d", r.Release, r.State, r.Wave)
	}
	if n.fsm != nil {
		if r := n.fsm.State().Rollout; r != nil {
			k += fmt.Sprintf(" %s %s %d", r.Release, r.State, r.Wave)
		}
	}
	return k
}
