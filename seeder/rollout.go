package seeder

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/deploy"
)

// Views is what the leader needs to gate a rollout: what gossip says of
// every member of the site, by id, this seeder included.
type Views interface {
	Views() map[string]deploy.MemberView
}

// Policy gives the leader the signed rollout policy of the release its
// follower staged, read from the verified manifest.
type Policy interface {
	// StagedPolicy returns the staged release (with its id), its policy
	// and the platforms it has, or false while nothing is staged and
	// verified.
	StagedPolicy() (rel content.Release, policy content.Rollout, platforms []string, ok bool)
}

// WakeRollout makes the leader look at the rollout now rather than at its
// next tick: a member's status changed in gossip, or the site's state did.
func (l *Leader) WakeRollout() {
	select {
	case l.rolloutWake <- struct{}{}:
	default:
	}
}

// driveRollout advances the target's rollout while this seeder leads in
// term: when woken (WakeRollout) and every RolloutTick, it asks the rollout (deploy.Rollout.Next) what
// is due given what gossip says of the members, and proposes it. The
// decisions carry the term, so a deposed leader's are refused, and the
// rollout lives in the FSM, so the next leader continues it.
func (l *Leader) driveRollout(ctx context.Context, term uint64) {
	t := time.NewTicker(l.cfg.RolloutTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-l.rolloutWake:
		}
		c, ok, err := l.nextRollout(time.Now())
		if err != nil {
			l.note(err)
			continue
		}
		if !ok {
			continue
		}
		if err := l.proposeRollout(ctx, term, c); err != nil && ctx.Err() == nil {
			l.note(err)
		}
	}
}

// nextRollout returns the step of the target's rollout that is due now.
func (l *Leader) nextRollout(now time.Time) (RolloutCommand, bool, error) {
	st := l.d.FSM.State()
	if st.Target == nil {
		return RolloutCommand{}, false, nil
	}
	r := st.Rollout
	var policy *content.Rollout
	var platforms []string
	if r == nil {
		rel, p, pls, ok := l.d.Policy.StagedPolicy()
		if !ok || rel.ID != st.Target.ID {
			return RolloutCommand{}, false, nil // the policy is not verified here yet
		}
		nr, err := deploy.NewRollout(st.Target.Release, p, previousOf(st))
		if err != nil {
			return RolloutCommand{}, false, fmt.Errorf("rollout of %s: %w", st.Target.Release, err)
		}
		r, policy, platforms = &nr, &p, pls
	}
	views := l.d.Views.Views()
	eligible := views
	if len(platforms) > 0 {
		// Members of a platform the release lacks never stage it: they
		// must not hold the start (withExcluded lists them).
		eligible = maps.Clone(views)
		maps.DeleteFunc(eligible, func(_ string, v deploy.MemberView) bool { return !slices.Contains(platforms, v.Platform) })
	}
	c, ok := r.Next(eligible, now)
	if !ok {
		return RolloutCommand{}, false, nil
	}
	if c.Op == deploy.OpStart {
		withExcluded(&c, views, platforms)
	}
	return RolloutCommand{Release: st.Target.ID, Policy: policy, Command: c}, true, nil
}

// withExcluded completes a start with the release's platforms and the
// alive members whose platform it lacks, which never verify it, so that
// the plan lists them as excluded, with the reason, rather than leave
// them out unseen.
func withExcluded(c *deploy.Command, views map[string]deploy.MemberView, platforms []string) {
	if len(platforms) == 0 {
		return
	}
	c.Platforms = platforms
	for id, v := range views {
		if v.Alive && v.Platform != "" && !slices.Contains(platforms, v.Platform) &&
			!slices.ContainsFunc(c.Members, func(m deploy.Member) bool { return m.ID == id }) {
			c.Members = append(c.Members, deploy.Member{ID: id, Platform: v.Platform})
		}
	}
	slices.SortFunc(c.Members, func(a, b deploy.Member) int { return strings.Compare(a.ID, b.ID) })
}

// previousOf is what a rollback of the target returns to: the release the
// site runs, when it is the same release's.
func previousOf(st SiteState) string {
	if st.Target != nil && st.Running.Name == st.Target.Name {
		return st.Running.Version
	}
	return ""
}

// proposeRollout proposes a rollout step in term and logs what it did.
func (l *Leader) proposeRollout(ctx context.Context, term uint64, c RolloutCommand) error {
	c.Term = term
	cmd, err := EncodeCommand(CmdRollout, c)
	if err != nil {
		return err
	}
	resp, err := l.d.Raft.Apply(ctx, cmd)
	if err != nil {
		return fmt.Errorf("rollout %s: %w", c.Op, err)
	}
	if err, ok := resp.(error); ok {
		return err
	}
	r := l.d.FSM.State().Rollout
	if r == nil {
		return nil
	}
	attrs := []any{"release", r.Release, "op", c.Op, "state", r.State, "wave", r.Wave, "term", term}
	if c.Gate != nil {
		attrs = append(attrs, "gate", c.Gate.Reason)
	}
	l.log.Info("rollout", attrs...)
	return nil
}

// Control proposes an operator's command for the target's rollout: pause,
// resume or abort (with a reason kept in the rollout). Only the leader
// can; others get ErrNotLeader. A command the rollout's state refuses
// returns an error wrapping ErrRefused that says why.
func (l *Leader) Control(ctx context.Context, op deploy.CommandOp, reason string) error {
	switch op {
	case deploy.OpPause, deploy.OpResume, deploy.OpAbort:
	default:
		return fmt.Errorf("rollout %q: want pause, resume or abort", op)
	}
	_, term, leading := l.d.Raft.Leader()
	if !leading {
		return ErrNotLeader
	}
	t := l.d.FSM.State().Target
	if t == nil {
		return fmt.Errorf("rollout %s: the site stages no release: %w", op, ErrRefused)
	}
	return l.proposeRollout(ctx, term, RolloutCommand{Release: t.ID, Command: deploy.Command{Op: op, At: time.Now(), Reason: reason}})
}
