package mesh

import (
	"context"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/deploy"
	"github.com/meshcast/meshcast/gossip"
	"github.com/meshcast/meshcast/mesh/control"
	"github.com/meshcast/meshcast/seeder"
)

// The adapters through which the rollout agent, the leader and the
// control protocol reach the rest of the node. Each only translates.

// fsmRollout is a seeder's deploy.SiteRollout: its own FSM (a follower
// answers from its FSM too).
type fsmRollout struct{ fsm *seeder.FSM }

func (s fsmRollout) Rollout(context.Context) (*deploy.Rollout, error) {
	return s.fsm.State().Rollout, nil
}

// seedersRollout is a node's deploy.SiteRollout: the freshest state the
// seeders answer.
type seedersRollout struct{ s *control.Seeders }

func (s seedersRollout) Rollout(ctx context.Context) (*deploy.Rollout, error) {
	st, err := s.s.State(ctx)
	if err != nil {
		return nil, err
	}
	if st.Rollout != nil && st.Rollout.Release != st.Target {
		return nil, nil // a rollout of a release the site no longer targets
	}
	return st.Rollout, nil
}

// seederIDs lists the seeders gossip knows alive, the leader first.
func (n *Node) seederIDs() []peer.ID {
	var ids []peer.ID
	for _, m := range n.gossip.Members() {
		if m.Meta.Role != gossip.RoleSeeder || m.State != gossip.StateAlive || m.Name == n.host.ID().String() {
			continue
		}
		id, err := peer.Decode(m.Name)
		if err != nil {
			continue
		}
		if m.Meta.Leader {
			ids = append([]peer.ID{id}, ids...)
		} else {
			ids = append(ids, id)
		}
	}
	return ids
}

// controlSite is what a seeder serves on the control protocol.
type controlSite struct{ n *Node }

func (c controlSite) State() control.State {
	st := c.n.fsm.State()
	out := control.State{Running: st.Running, Rollout: st.Rollout, Index: st.Index}
	if st.Target != nil {
		out.Target = st.Target.Release
	}
	out.Leader, out.Term, _ = c.n.raft.Leader()
	return out
}

// Control proposes an operator's command if this seeder leads, and
// forwards it to the leader otherwise.
func (c controlSite) Control(ctx context.Context, op deploy.CommandOp, reason string) error {
	leader, _, leading := c.n.raft.Leader()
	if leading {
		return c.n.leader.Control(ctx, op, reason)
	}
	if leader == "" {
		return fmt.Errorf("rollout %s: the site has no leader now (is a majority of its seeders up?)", op)
	}
	id, err := peer.Decode(leader)
	if err != nil {
		return fmt.Errorf("rollout %s: leader %q: %w", op, leader, err)
	}
	return control.Send(ctx, c.n.host, id, op, reason)
}

// Rollout carries an operator's command (pause, resume, abort) to the
// site's leader: a seeder proposes or forwards it, a node hands it to a
// seeder.
func (n *Node) Rollout(ctx context.Context, op deploy.CommandOp, reason string) error {
	if !n.started() {
		return errors.New("the node is not running")
	}
	if n.fsm != nil {
		return controlSite{n}.Control(ctx, op, reason)
	}
	var errs []error
	for _, id := range n.seederIDs() {
		err := control.Send(ctx, n.host, id, op, reason)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return errors.New("no seeder known to carry the command")
	}
	return errors.Join(errs...)
}

// Views is the leader's seeder.Views: what gossip says of every member.
func (m members) Views() map[string]deploy.MemberView {
	out := map[string]deploy.MemberView{}
	for _, mb := range m.n.gossip.Members() {
		if mb.MetaErr != nil {
			continue
		}
		out[mb.Name] = deploy.MemberView{Alive: mb.State == gossip.StateAlive, Platform: mb.Meta.Platform,
			Running: mb.Meta.Running.Version, Staged: mb.Meta.Staged, Phase: mb.Meta.Phase}
	}
	return out
}

// StagedPolicy is the leader's seeder.Policy: the policy of the release
// this seeder's follower staged and verified.
func (s staging) StagedPolicy() (content.Release, content.Rollout, []string, bool) {
	st, _ := s.f.State()
	if st.Phase != deploy.PhaseVerified || st.Artifact == nil {
		return content.Release{}, content.Rollout{}, nil, false
	}
	return st.Release, st.Policy, st.Platforms, true
}
