package deploy

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/meshcast/meshcast/content"
)

// MemberView is what gossip says of a member, as the leader's Next reads
// it.
type MemberView struct {
	Alive    bool
	Platform string
	Running  string          // version it runs ("" none)
	Staged   content.Release // name and version it stages (no id needed)
	Phase    Phase           // where it stands with Staged
}

// stages reports whether m stages rel (by name and version).
func (m MemberView) stages(rel content.Release) bool {
	return m.Staged.Name == rel.Name && m.Staged.Version == rel.Version
}

// Next returns the command the leader should propose now, given what
// gossip says of each member (by id) and the leader's clock, or false when
// nothing is due. Proposed as it is, Apply accepts it.
//
// Staged: a member is ready when it is alive and runs the release's
// version or stages the release with a phase from verified to healthy.
// Start is due once at least one member is ready and every other alive
// member either failed to stage the release or is ready: one still
// fetching it, or that stages another release or none (it has not caught
// up with the target yet), holds the start. The caller leaves out of
// members those whose platform the release lacks, which never stage it
// (seeder.Leader lists them as excluded). The start lists the ready
// members (sorted by id; those with an id or platform Apply would refuse
// left out) and the valid platforms they report. A member that failed,
// or is not alive, is absent from the start's list: a late joiner, it
// takes part in no wave, and activates once the rollout is done.
//
// Wave-open: the open wave's members are healthy when alive, staging the
// release, running its version and in phase healthy; failed when they
// stage it and report failed or rolled back (alive or not); not ready
// otherwise (offline among them). The gate is due, with Passed set by the
// policy's threshold, as soon as more members failed than it allows
// (failed), or none is not ready (all healthy, or failed within the
// threshold: passed), or at the health deadline, OpenedAt + HealthTimeout
// + Soak, counting those not ready against the threshold. A member
// reports healthy once its checks held for the policy's Soak (the local
// activator's job), so the gate itself does not wait for the soak.
//
// Paused and terminal rollouts need nothing; nor does a zero now.
func (r Rollout) Next(members map[string]MemberView, now time.Time) (Command, bool) {
	if now.IsZero() {
		return Command{}, false
	}
	switch r.State {
	case RolloutStaged:
		return r.nextStart(members, now)
	case RolloutWaveOpen:
		return r.nextGate(members, now)
	}
	return Command{}, false
}

func (r Rollout) nextStart(members map[string]MemberView, now time.Time) (Command, bool) {
	c := Command{Op: OpStart, At: now}
	platforms := map[string]bool{}
	for _, id := range slices.Sorted(maps.Keys(members)) {
		m := members[id]
		if !m.Alive {
			continue
		}
		staging := m.stages(r.Release)
		switch {
		case m.Running == r.Release.Version || staging && m.Phase >= PhaseVerified && m.Phase <= PhaseHealthy:
			if id == "" || len(id) > MaxReason || len(m.Platform) > MaxReason || !utf8.ValidString(id) || !utf8.ValidString(m.Platform) {
				continue
			}
			c.Members = append(c.Members, Member{ID: id, Platform: m.Platform})
			if content.ValidatePlatform(m.Platform) == nil {
				platforms[m.Platform] = true
			}
		case staging && (m.Phase == PhaseFailed || m.Phase == PhaseRolledBack):
			// It failed to stage the release: it does not hold the start.
		default:
			// Still fetching, or not caught up with the target yet: it
			// holds the start.
			return Command{}, false
		}
	}
	if len(c.Members) == 0 {
		return Command{}, false
	}
	c.Platforms = slices.Sorted(maps.Keys(platforms))
	return c, true
}

func (r Rollout) nextGate(members map[string]MemberView, now time.Time) (Command, bool) {
	if r.Wave < 0 || r.Wave >= len(r.Waves) {
		return Command{}, false
	}
	w := r.Waves[r.Wave]
	g := GateResult{Healthy: []string{}, Failed: []string{}, NotReady: []string{}, At: now}
	for _, id := range w.Members {
		m, ok := members[id]
		switch {
		case ok && m.Alive && m.stages(r.Release) && m.Running == r.Release.Version && m.Phase == PhaseHealthy:
			g.Healthy = append(g.Healthy, id)
		case ok && m.stages(r.Release) && (m.Phase == PhaseFailed || m.Phase == PhaseRolledBack):
			g.Failed = append(g.Failed, id)
		default:
			g.NotReady = append(g.NotReady, id)
		}
	}
	n, allowed := len(w.Members), r.allowed(len(w.Members))
	bad := len(g.Failed) + len(g.NotReady)
	g.Passed = bad <= allowed
	threshold := fmt.Sprintf("threshold %s %%: %d allowed", percent(r.Policy.FailureThreshold), allowed)
	wait := time.Duration(r.Policy.HealthTimeout) + time.Duration(r.Policy.Soak)
	switch {
	case len(g.Failed) > allowed:
		g.Reason = fmt.Sprintf("%d of %d members of wave %d failed (%s)", len(g.Failed), n, r.Wave, threshold)
	case len(g.NotReady) == 0 && len(g.Failed) == 0:
		g.Reason = fmt.Sprintf("all %d members of wave %d healthy", n, r.Wave)
	case len(g.NotReady) == 0:
		g.Reason = fmt.Sprintf("%d of %d members of wave %d failed, within the threshold (%s)", len(g.Failed), n, r.Wave, threshold)
	case !now.Before(w.OpenedAt.Add(wait)):
		g.Reason = fmt.Sprintf("health timeout: %d of %d members of wave %d not healthy %s after it opened: %d failed, %d not ready (%s)",
			bad, n, r.Wave, wait, len(g.Failed), len(g.NotReady), threshold)
	default:
		return Command{}, false
	}
	return Command{Op: OpGate, At: now, Wave: r.Wave, Gate: &g}, true
}

// percent formats a fraction as a percentage: 0.1 is "10", 0.125 "12.5".
func percent(f float64) string {
	return strconv.FormatFloat(math.Round(f*1e4)/100, 'f', -1, 64)
}
