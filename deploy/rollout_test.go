package deploy_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/deploy"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// t0 is the first time of every scripted rollout.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// relID is a release id for tests: the sha256 of a made-up manifest.
func relID(s string) content.ReleaseID { return content.ReleaseID(sha256.Sum256([]byte(s))) }

func release(version string) content.Release {
	return content.Release{Name: "gw", Version: version, ID: relID("gw " + version)}
}

// pct is a policy of percentage waves, 5 minutes to get healthy, a minute
// of soak and threshold thr.
func pct(thr float64, waves ...int) content.Rollout {
	return content.Rollout{Waves: waves, HealthTimeout: content.Duration(5 * time.Minute),
		Soak: content.Duration(time.Minute), FailureThreshold: thr}
}

// counts is a policy of absolute waves.
func counts(thr float64, cs ...int) content.Rollout {
	p := pct(thr)
	p.Waves, p.Counts = nil, cs
	return p
}

// members returns n members "m00"… of platform.
func members(n int, platform string) []deploy.Member {
	ms := make([]deploy.Member, n)
	for i := range ms {
		ms[i] = deploy.Member{ID: fmt.Sprintf("m%02d", i), Platform: platform}
	}
	return ms
}

// sizes returns the cumulative sizes of waves.
func sizes(waves [][]string) []int {
	var out []int
	total := 0
	for _, w := range waves {
		total += len(w)
		out = append(out, total)
	}
	return out
}

func TestPlanWavesSizes(t *testing.T) {
	std := pct(0.1, 1, 10, 50, 100)
	for _, tc := range []struct {
		policy content.Rollout
		n      int
		want   []int
	}{
		{std, 13, []int{1, 2, 7, 13}},
		{std, 10, []int{1, 2, 5, 10}},
		{std, 2, []int{1, 2}},
		{std, 1, []int{1}},
		{std, 0, nil},
		{std, 100, []int{1, 10, 50, 100}},
		{std, 201, []int{3, 21, 101, 201}},
		{pct(0, 100), 7, []int{7}},
		{pct(0, 50, 100), 3, []int{2, 3}},
		{pct(0, 33, 34, 100), 3, []int{1, 2, 3}},
		{counts(0, 1, 5), 13, []int{1, 5, 13}},
		{counts(0, 1, 5), 5, []int{1, 5}},
		{counts(0, 1, 5), 3, []int{1, 3}},
		{counts(0, 1, 5), 1, []int{1}},
		{counts(0, 2, 3, 4), 2, []int{2}},
		{counts(0, 1, 2, 3), 10, []int{1, 2, 3, 10}},
	} {
		policy := tc.policy.Waves
		if policy == nil {
			policy = tc.policy.Counts
		}
		t.Run(fmt.Sprintf("%v/n=%d", policy, tc.n), func(t *testing.T) {
			waves, excluded, err := deploy.PlanWaves(tc.policy, relID("r"), []string{"linux/amd64"}, members(tc.n, "linux/amd64"))
			if err != nil {
				t.Fatal(err)
			}
			if got := sizes(waves); !slices.Equal(got, tc.want) || excluded != nil {
				t.Errorf("cumulative sizes %v, excluded %v; want %v, none", got, excluded, tc.want)
			}
			checkPartition(t, waves, tc.n)
		})
	}
}

// checkPartition checks that waves are sorted and hold each of the n
// members m00… exactly once.
func checkPartition(t *testing.T, waves [][]string, n int) {
	t.Helper()
	var all []string
	for i, w := range waves {
		if len(w) == 0 || !slices.IsSorted(w) {
			t.Errorf("wave %d is empty or not sorted: %v", i, w)
		}
		all = append(all, w...)
	}
	slices.Sort(all)
	var want []string
	for _, m := range members(n, "") {
		want = append(want, m.ID)
	}
	slices.Sort(want)
	if !slices.Equal(all, want) {
		t.Errorf("waves hold %v, want each of %v once", all, want)
	}
}

// TestPlanWavesKnownAnswer pins the order of a known release: a change
// here moves every site's canary, so it must fail loudly. The expected
// waves were worked out apart from this code (sha256 of the id's 32 bytes
// followed by the member id, in Python).
func TestPlanWavesKnownAnswer(t *testing.T) {
	waves, _, err := deploy.PlanWaves(pct(0.1, 1, 10, 50, 100), relID("gw 1.2.0"), []string{"linux/amd64"}, members(13, "linux/amd64"))
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"m05"},
		{"m03"},
		{"m04", "m06", "m07", "m09", "m10"},
		{"m00", "m01", "m02", "m08", "m11", "m12"},
	}
	if !reflect.DeepEqual(waves, want) {
		t.Errorf("waves of gw 1.2.0's release id:\ngot  %q\nwant %q", waves, want)
	}
}

func TestPlanWavesExcludes(t *testing.T) {
	ms := []deploy.Member{
		{ID: "c", Platform: "linux/riscv64"},
		{ID: "a", Platform: "linux/amd64"},
		{ID: "b", Platform: ""},
		{ID: "d", Platform: "linux/arm64"},
	}
	waves, excluded, err := deploy.PlanWaves(pct(0, 50, 100), relID("r"), []string{"linux/arm64", "linux/amd64", "linux/arm64"}, ms)
	if err != nil {
		t.Fatal(err)
	}
	want := []deploy.Excluded{
		{ID: "b", Platform: "", Reason: "no platform reported; the release has linux/amd64, linux/arm64"},
		{ID: "c", Platform: "linux/riscv64", Reason: "platform linux/riscv64 is not in the release (linux/amd64, linux/arm64)"},
	}
	if !reflect.DeepEqual(excluded, want) {
		t.Errorf("excluded %+v\nwant     %+v", excluded, want)
	}
	if got := sizes(waves); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("waves %v, want a wave of each of a and d", waves)
	}

	// A release with no platform excludes everyone.
	waves, excluded, err = deploy.PlanWaves(pct(0, 100), relID("r"), nil, ms[:1])
	if err != nil || waves != nil || len(excluded) != 1 || excluded[0].Reason != "platform linux/riscv64 is not in the release (none)" {
		t.Errorf("no platforms: %v, %+v, %v", waves, excluded, err)
	}
}

func TestPlanWavesRefuses(t *testing.T) {
	amd := []string{"linux/amd64"}
	for _, tc := range []struct {
		name    string
		policy  content.Rollout
		members []deploy.Member
		want    string
	}{
		{"empty id", pct(0, 100), []deploy.Member{{ID: "a"}, {ID: ""}}, "member 1 has an empty id"},
		{"duplicate id", pct(0, 100), []deploy.Member{{ID: "a"}, {ID: "b"}, {ID: "a"}}, `member "a" is listed twice`},
		{"no waves", pct(0), members(3, "linux/amd64"), "policy: no waves"},
		{"both", content.Rollout{Waves: []int{100}, Counts: []int{1}}, nil, "both as percentages and as counts"},
		{"last below 100", pct(0, 10, 50), nil, "the last wave is 50%, want 100"},
		{"decreasing counts", counts(0, 5, 2), nil, "wave 1 is 2 members"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := deploy.PlanWaves(tc.policy, relID("r"), amd, tc.members)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestPlanWavesDeterministic: the order of the members given does not
// matter, the release id does.
func TestPlanWavesDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	policy := pct(0.1, 1, 10, 50, 100)
	ms := members(40, "linux/amd64")
	want, _, err := deploy.PlanWaves(policy, relID("a"), []string{"linux/amd64"}, ms)
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		rng.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
		got, _, err := deploy.PlanWaves(policy, relID("a"), []string{"linux/amd64"}, ms)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("shuffled members give %v (%v), want %v", got, err, want)
		}
	}

	// The canary moves from release to release: over 64 releases of 40
	// members it is many members, and two releases differ already.
	canaries := map[string]bool{}
	for i := range 64 {
		waves, _, err := deploy.PlanWaves(policy, relID(fmt.Sprint("release ", i)), []string{"linux/amd64"}, ms)
		if err != nil {
			t.Fatal(err)
		}
		canaries[waves[0][0]] = true
	}
	if len(canaries) < 20 {
		t.Errorf("64 releases had %d distinct canaries among 40 members, want at least 20", len(canaries))
	}
	a, _, _ := deploy.PlanWaves(policy, relID("gw 1.2.0"), []string{"linux/amd64"}, members(13, "linux/amd64"))
	b, _, _ := deploy.PlanWaves(policy, relID("gw 1.3.0"), []string{"linux/amd64"}, members(13, "linux/amd64"))
	if a[0][0] != "m05" || b[0][0] != "m02" {
		t.Errorf("canaries of gw 1.2.0 and 1.3.0 are %s and %s, want m05 and m02", a[0][0], b[0][0])
	}
}

// rollout returns a staged rollout of gw 2.0.0 from previous 1.0.0, with
// policy, or fails the test.
func rollout(t testing.TB, policy content.Rollout, previous string) deploy.Rollout {
	t.Helper()
	r, err := deploy.NewRollout(release("2.0.0"), policy, previous)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// apply applies c to r, failing the test on an error or an invalid result.
func apply(t testing.TB, r deploy.Rollout, c deploy.Command) deploy.Rollout {
	t.Helper()
	n, err := r.Apply(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Validate(); err != nil {
		t.Fatalf("after %s: %v", c.Op, err)
	}
	return n
}

func start(at time.Time, ms ...deploy.Member) deploy.Command {
	return deploy.Command{Op: deploy.OpStart, At: at, Members: ms, Platforms: []string{"linux/amd64", "linux/arm64"}}
}

// gate returns the gate of wave w of r in which the members in failed
// failed and the others are healthy, Passed as the policy says.
func gate(r deploy.Rollout, w int, at time.Time, failed ...string) deploy.Command {
	g := &deploy.GateResult{Healthy: []string{}, Failed: []string{}, NotReady: []string{}, At: at}
	for _, id := range r.Waves[w].Members {
		if slices.Contains(failed, id) {
			g.Failed = append(g.Failed, id)
		} else {
			g.Healthy = append(g.Healthy, id)
		}
	}
	allowed := int(r.Policy.FailureThreshold*float64(len(r.Waves[w].Members)) + 1e-9)
	g.Passed = len(g.Failed) <= allowed
	g.Reason = fmt.Sprintf("%d failed", len(g.Failed))
	return deploy.Command{Op: deploy.OpGate, At: at, Wave: w, Gate: g}
}

func op(o deploy.CommandOp, at time.Time, reason string) deploy.Command {
	return deploy.Command{Op: o, At: at, Reason: reason}
}

// TestRolloutToDone walks a rollout through its waves, checking what
// each member is told at each step.
func TestRolloutToDone(t *testing.T) {
	r := rollout(t, pct(0.1, 1, 10, 50, 100), "1.0.0")
	ms := append(members(10, "linux/amd64"), deploy.Member{ID: "rv", Platform: "linux/riscv64"})
	for _, id := range []string{"m00", "rv", "late"} {
		if a := r.ActionFor(id); a != deploy.ActionWait {
			t.Errorf("staged: %s told to %s", id, a)
		}
	}
	r = apply(t, r, start(t0, ms...))
	if r.State != deploy.RolloutWaveOpen || r.Wave != 0 || !r.StartedAt.Equal(t0) || !r.Waves[0].OpenedAt.Equal(t0) {
		t.Fatalf("after start: %+v", r)
	}
	if got := sizes(waveMembers(r)); !slices.Equal(got, []int{1, 2, 5, 10}) || len(r.Excluded) != 1 || r.Excluded[0].ID != "rv" {
		t.Fatalf("waves %v, excluded %+v", waveMembers(r), r.Excluded)
	}
	for w := range r.Waves {
		checkActions(t, r, w)
		at := t0.Add(time.Duration(w+1) * time.Minute)
		r = apply(t, r, gate(r, w, at))
		if !r.Waves[w].Gate.At.Equal(at) || !r.Waves[w].Gate.Passed {
			t.Fatalf("wave %d's gate: %+v", w, r.Waves[w].Gate)
		}
		if w+1 < len(r.Waves) && (r.Wave != w+1 || !r.Waves[w+1].OpenedAt.Equal(at)) {
			t.Fatalf("after wave %d's gate: wave %d opened at %v", w, r.Wave, r.Waves[r.Wave].OpenedAt)
		}
	}
	if r.State != deploy.RolloutDone || r.Wave != 4 || !r.EndedAt.Equal(t0.Add(4*time.Minute)) {
		t.Fatalf("after the last gate: %s at wave %d, ended %v", r.State, r.Wave, r.EndedAt)
	}
	for id, want := range map[string]deploy.Action{"m00": deploy.ActionActivate, "late": deploy.ActionActivate, "rv": deploy.ActionWait} {
		if a := r.ActionFor(id); a != want {
			t.Errorf("done: %s told to %s, want %s", id, a, want)
		}
	}
	if _, err := r.Apply(op(deploy.OpAbort, t0.Add(time.Hour), "")); !errors.Is(err, deploy.ErrTransition) {
		t.Errorf("abort once done: %v", err)
	}
}

func waveMembers(r deploy.Rollout) [][]string {
	var out [][]string
	for _, w := range r.Waves {
		out = append(out, w.Members)
	}
	return out
}

// checkActions checks that, with wave open, the members of waves up to
// it activate and everyone else waits.
func checkActions(t *testing.T, r deploy.Rollout, open int) {
	t.Helper()
	for w, wave := range r.Waves {
		for _, id := range wave.Members {
			want := deploy.ActionWait
			if w <= open {
				want = deploy.ActionActivate
			}
			if a := r.ActionFor(id); a != want {
				t.Errorf("wave %d open: %s of wave %d told to %s, want %s", open, id, w, a, want)
			}
		}
	}
	for _, id := range []string{"rv", "late", ""} {
		if a := r.ActionFor(id); a != deploy.ActionWait {
			t.Errorf("wave %d open: %q told to %s", open, id, a)
		}
	}
}

// TestRolloutGateFails: a failed gate rolls back to Previous, unless it
// is missing or below the security floor.
func TestRolloutGateFails(t *testing.T) {
	for _, tc := range []struct {
		name, previous, floor string
		want                  deploy.RolloutState
		action                deploy.Action
	}{
		{"rolls back", "1.0.0", "", deploy.RolloutRolledBack, deploy.ActionRollback},
		{"rolls back to the floor", "1.0.0", "1.0.0", deploy.RolloutRolledBack, deploy.ActionRollback},
		{"previous below the floor", "1.0.0", "1.0.1", deploy.RolloutFailed, deploy.ActionWait},
		{"prerelease below the floor", "1.0.0-rc.1", "1.0.0", deploy.RolloutFailed, deploy.ActionWait},
		{"no previous", "", "", deploy.RolloutFailed, deploy.ActionWait},
	} {
		t.Run(tc.name, func(t *testing.T) {
			policy := counts(0, 1, 3)
			policy.SecurityFloor = tc.floor
			r := apply(t, rollout(t, policy, tc.previous), start(t0, members(5, "linux/arm64")...))
			r = apply(t, r, gate(r, 0, t0.Add(time.Minute)))
			bad := r.Waves[1].Members[1]
			r = apply(t, r, gate(r, 1, t0.Add(2*time.Minute), bad))
			if r.State != tc.want || r.Wave != 1 || r.Reason != "1 failed" || !r.EndedAt.Equal(t0.Add(2*time.Minute)) {
				t.Fatalf("after a failed gate: %s at wave %d (%q), ended %v", r.State, r.Wave, r.Reason, r.EndedAt)
			}
			for _, w := range r.Waves {
				for _, id := range w.Members {
					if a := r.ActionFor(id); a != tc.action {
						t.Errorf("%s told to %s, want %s", id, a, tc.action)
					}
				}
			}
			if _, err := r.Apply(gate(r, 1, t0.Add(3*time.Minute))); !errors.Is(err, deploy.ErrTransition) {
				t.Errorf("a second gate of the wave: %v", err)
			}
		})
	}
}

func TestRolloutPauseResumeAbort(t *testing.T) {
	r := apply(t, rollout(t, counts(0, 1), "1.0.0"), start(t0, members(3, "linux/amd64")...))
	p := apply(t, r, op(deploy.OpPause, t0.Add(time.Minute), "ops: looking at a dashboard"))
	if p.State != deploy.RolloutPaused || p.PausedFrom != deploy.RolloutWaveOpen || p.Reason != "ops: looking at a dashboard" {
		t.Fatalf("paused: %+v", p)
	}
	canary := r.Waves[0].Members[0]
	if a := p.ActionFor(canary); a != deploy.ActionWait {
		t.Errorf("paused: the canary told to %s", a)
	}
	if _, err := p.Apply(gate(r, 0, t0.Add(2*time.Minute))); !errors.Is(err, deploy.ErrTransition) {
		t.Errorf("gate while paused: %v", err)
	}
	back := t0.Add(10 * time.Minute)
	res := apply(t, p, op(deploy.OpResume, back, "ops"))
	if res.State != deploy.RolloutWaveOpen || res.PausedFrom != "" || res.Reason != "" || !res.Waves[0].OpenedAt.Equal(back) {
		t.Fatalf("resumed: %+v", res)
	}
	ab := apply(t, res, op(deploy.OpAbort, back.Add(time.Minute), ""))
	if ab.State != deploy.RolloutAborted || ab.Reason != "aborted by the operator" || ab.ActionFor(canary) != deploy.ActionRollback ||
		ab.ActionFor("m99") != deploy.ActionRollback {
		t.Fatalf("aborted: %+v, the canary told to %s", ab, ab.ActionFor(canary))
	}

	// Paused and resumed before the start, then aborted while paused.
	s := rollout(t, counts(0, 1), "")
	s = apply(t, s, op(deploy.OpPause, t0, ""))
	s = apply(t, s, op(deploy.OpResume, t0, ""))
	if s.State != deploy.RolloutStaged {
		t.Fatalf("resumed before the start: %s", s.State)
	}
	s = apply(t, apply(t, s, op(deploy.OpPause, t0, "")), op(deploy.OpAbort, t0, "ops: wrong release"))
	if s.State != deploy.RolloutAborted || s.PausedFrom != "" || s.Reason != "ops: wrong release" || s.ActionFor("m00") != deploy.ActionWait {
		t.Fatalf("aborted before the start, without a previous version: %+v", s)
	}
}

// TestRolloutStartsEmpty: a start with no eligible member is done at once.
func TestRolloutStartsEmpty(t *testing.T) {
	r := apply(t, rollout(t, pct(0, 100), "1.0.0"), start(t0, deploy.Member{ID: "rv", Platform: "linux/riscv64"}))
	if r.State != deploy.RolloutDone || r.Wave != 0 || r.Waves != nil || !r.EndedAt.Equal(t0) || len(r.Excluded) != 1 {
		t.Fatalf("%+v", r)
	}
	if r.ActionFor("late") != deploy.ActionActivate || r.ActionFor("rv") != deploy.ActionWait {
		t.Errorf("late joiner told to %s, excluded to %s", r.ActionFor("late"), r.ActionFor("rv"))
	}
}

// TestApplyRefuses lists every error of Apply: each names the op and the
// state, wraps ErrTransition or ErrBadCommand, and leaves the state as it
// was.
func TestApplyRefuses(t *testing.T) {
	staged := rollout(t, pct(0.2, 50, 100), "1.0.0")
	open := apply(t, staged, start(t0, members(4, "linux/amd64")...))
	paused := apply(t, open, op(deploy.OpPause, t0, ""))
	done := apply(t, apply(t, open, gate(open, 0, t0)), gate(open, 1, t0))
	rolledBack := apply(t, open, gate(open, 0, t0, open.Waves[0].Members[0]))
	w0 := open.Waves[0].Members // two members: 20 % of 2 allows none to fail
	long := strings.Repeat("x", 257)
	withGate := func(f func(g *deploy.GateResult)) deploy.Command {
		c := gate(open, 0, t0.Add(time.Minute))
		f(c.Gate)
		return c
	}
	bad, refused := deploy.ErrBadCommand, deploy.ErrTransition
	for _, tc := range []struct {
		name string
		r    deploy.Rollout
		c    deploy.Command
		is   error
		want string
	}{
		{"no time", staged, deploy.Command{Op: deploy.OpPause}, bad, "rollout pause in state staged: bad rollout command: no time (at)"},
		{"unknown op", staged, op("launch", t0, ""), bad, `rollout launch in state staged: bad rollout command: unknown op "launch"`},
		{"long reason", open, op(deploy.OpAbort, t0, long), bad, "reason of 257 bytes, more than 256"},
		{"reason not UTF-8", open, op(deploy.OpAbort, t0, "\xff"), bad, "reason is not UTF-8"},
		{"start with a gate", staged, deploy.Command{Op: deploy.OpStart, At: t0, Gate: &deploy.GateResult{}}, bad, "a start command carries no gate"},
		{"start with a reason", staged, deploy.Command{Op: deploy.OpStart, At: t0, Reason: "x"}, bad, "a start command carries no reason"},
		{"gate with members", open, deploy.Command{Op: deploy.OpGate, At: t0, Members: members(1, "")}, bad, "a gate command carries no members"},
		{"pause with a wave", open, deploy.Command{Op: deploy.OpPause, At: t0, Wave: 1}, bad, "a pause command carries no wave"},
		{"abort with platforms", open, deploy.Command{Op: deploy.OpAbort, At: t0, Platforms: []string{"linux/amd64"}}, bad, "an abort command carries no platforms"},
		{"start twice", open, start(t0), refused, "rollout start in state wave-open: rollout transition not allowed: start only in state staged"},
		{"start while paused", paused, start(t0), refused, "start only in state staged"},
		{"start, duplicate member", staged, start(t0, members(2, "linux/amd64")[1], members(2, "")[1]), bad, `member "m01" is listed twice`},
		{"start, empty id", staged, start(t0, deploy.Member{Platform: "linux/amd64"}), bad, "member 0 has an empty id"},
		{"start, long id", staged, start(t0, deploy.Member{ID: long}), bad, "member 0: id or platform not UTF-8 or longer than 256 bytes"},
		{"start, id not UTF-8", staged, start(t0, deploy.Member{ID: "\xff"}), bad, "member 0: id or platform not UTF-8"},
		{"start, bad platform", staged, deploy.Command{Op: deploy.OpStart, At: t0, Platforms: []string{"Linux"}}, bad, `platforms: bad manifest: platform "Linux" is not of the form os/arch[/variant]`},
		{"gate before the start", staged, gate(open, 0, t0), refused, "rollout gate in state staged: rollout transition not allowed: gate only in state wave-open"},
		{"gate while paused", paused, gate(open, 0, t0), refused, "gate only in state wave-open"},
		{"gate once done", done, gate(open, 1, t0), refused, "rollout gate in state done"},
		{"gate once rolled back", rolledBack, gate(open, 0, t0), refused, "rollout gate in state rolled-back"},
		{"gate of another wave", open, gate(open, 1, t0), refused, "gate of wave 1, but wave 0 is open"},
		{"gate without a result", open, deploy.Command{Op: deploy.OpGate, At: t0}, bad, "a gate command carries no result"},
		{"gate at another time", open, withGate(func(g *deploy.GateResult) { g.At = t0 }), bad,
			"the result's time 2026-03-01T12:00:00Z is not the command's 2026-03-01T12:01:00Z"},
		{"gate unsorted", open, withGate(func(g *deploy.GateResult) { slices.Reverse(g.Healthy) }), bad, "wave 0: the healthy list is not sorted"},
		{"gate of a stranger", open, withGate(func(g *deploy.GateResult) { g.NotReady = []string{"zz"} }), bad, `not ready member "zz" is not in the wave`},
		{"gate lists twice", open, withGate(func(g *deploy.GateResult) { g.Failed = w0[:1] }), bad, fmt.Sprintf("member %q is listed as healthy and as failed", w0[0])},
		{"gate misses one", open, withGate(func(g *deploy.GateResult) { g.Healthy = w0[1:] }), bad, fmt.Sprintf("member %q of the wave is in none of", w0[0])},
		{"gate passes too many", open, withGate(func(g *deploy.GateResult) { g.Healthy, g.NotReady = w0[1:], w0[:1] }), bad,
			"passed is true, but 1 of 2 members failed or are not ready, and 0 may"},
		{"gate fails too few", open, withGate(func(g *deploy.GateResult) { g.Passed = false }), bad, "passed is false, but 0 of 2 members"},
		{"gate reason too long", open, withGate(func(g *deploy.GateResult) { g.Reason = long }), bad, "reason of 257 bytes"},
		{"pause twice", paused, op(deploy.OpPause, t0, ""), refused, "rollout pause in state paused: rollout transition not allowed: pause only in state staged or wave-open"},
		{"pause once done", done, op(deploy.OpPause, t0, ""), refused, "pause only in state staged or wave-open"},
		{"resume unpaused", open, op(deploy.OpResume, t0, ""), refused, "rollout resume in state wave-open: rollout transition not allowed: resume only in state paused"},
		{"abort once rolled back", rolledBack, op(deploy.OpAbort, t0, ""), refused, "rollout abort in state rolled-back: rollout transition not allowed: abort only in state staged, wave-open or paused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.r.Clone()
			got, err := tc.r.Apply(tc.c)
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v\nwant an error wrapping %q containing %q", err, tc.is, tc.want)
			}
			if !reflect.DeepEqual(got, before) || !reflect.DeepEqual(tc.r, before) {
				t.Errorf("the state changed: %+v", got)
			}
		})
	}
}

func TestNewRolloutRefuses(t *testing.T) {
	good := pct(0.1, 1, 100)
	floor := func(f string) content.Rollout { p := good; p.SecurityFloor = f; return p }
	for _, tc := range []struct {
		name     string
		rel      content.Release
		policy   content.Rollout
		previous string
		want     string
	}{
		{"no id", content.Release{Name: "gw", Version: "2.0.0"}, good, "", "the release has no id"},
		{"no version", content.Release{Name: "gw", ID: relID("x")}, good, "", `version "" is not a semantic version`},
		{"bad name", content.Release{Name: "GW", Version: "2.0.0", ID: relID("x")}, good, "", `release name "GW"`},
		{"previous equal", release("2.0.0"), good, "2.0.0", "previous version 2.0.0 is not below the release's 2.0.0"},
		{"previous above", release("2.0.0"), good, "2.1.0", "previous version 2.1.0 is not below"},
		{"previous not semver", release("2.0.0"), good, "v1", `previous: bad manifest: version "v1"`},
		{"no waves", release("2.0.0"), content.Rollout{HealthTimeout: good.HealthTimeout}, "", "policy: no waves"},
		{"no health timeout", release("2.0.0"), content.Rollout{Waves: []int{100}}, "", "health timeout 0s is not positive"},
		{"negative soak", release("2.0.0"), content.Rollout{Waves: []int{100}, HealthTimeout: 1, Soak: -1}, "", "soak -1ns is negative"},
		{"threshold", release("2.0.0"), content.Rollout{Waves: []int{100}, HealthTimeout: 1, FailureThreshold: 1.5}, "", "failure threshold 1.5 out of range"},
		{"floor above", release("2.0.0"), floor("2.0.1"), "", "security floor 2.0.1 is above the release's version 2.0.0"},
		{"floor not semver", release("2.0.0"), floor("latest"), "", `security floor: bad manifest: version "latest"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := deploy.NewRollout(tc.rel, tc.policy, tc.previous)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "new rollout of ") {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	r, err := deploy.NewRollout(release("2.0.0"), content.Rollout{Waves: []int{100}, Counts: []int{}, HealthTimeout: 1}, "1.0.0-rc.1")
	if err != nil || r.State != deploy.RolloutStaged || r.Policy.Counts != nil {
		t.Errorf("got %+v, %v; want a staged rollout whose empty counts are nil, as they decode", r, err)
	}
}

// TestValidateRefuses breaks valid rollouts one field at a time.
func TestValidateRefuses(t *testing.T) {
	open := apply(t, rollout(t, pct(0, 50, 100), "1.0.0"), start(t0, append(members(4, "linux/amd64"), deploy.Member{ID: "rv"})...))
	passed := apply(t, open, gate(open, 0, t0.Add(time.Minute)))
	failed := apply(t, rollout(t, pct(0, 50, 100), ""), start(t0, members(4, "linux/amd64")...))
	failed = apply(t, failed, gate(failed, 0, t0, failed.Waves[0].Members[0]))
	for _, tc := range []struct {
		name   string
		r      deploy.Rollout
		mutate func(r *deploy.Rollout)
		want   string
	}{
		{"unknown state", open, func(r *deploy.Rollout) { r.State = "running" }, `unknown state "running"`},
		{"paused from nowhere", open, func(r *deploy.Rollout) { r.State = deploy.RolloutPaused }, `state paused paused from ""`},
		{"paused from done", open, func(r *deploy.Rollout) { r.State, r.PausedFrom = deploy.RolloutPaused, deploy.RolloutDone }, `paused from "done", which cannot pause`},
		{"stray paused from", open, func(r *deploy.Rollout) { r.PausedFrom = deploy.RolloutStaged }, "state wave-open paused from"},
		{"wave out of range", open, func(r *deploy.Rollout) { r.Wave = 2 }, "wave 2 out of range [0, 2)"},
		{"negative wave", open, func(r *deploy.Rollout) { r.Wave = -1 }, "wave -1 out of range"},
		{"staged with waves", open, func(r *deploy.Rollout) { r.State = deploy.RolloutStaged }, "not started, but it has waves"},
		{"no start time", open, func(r *deploy.Rollout) { r.StartedAt = time.Time{} }, "started, but with no start time"},
		{"next wave open", open, func(r *deploy.Rollout) { r.Waves[1].OpenedAt = t0 }, "wave 1: open time"},
		{"open wave gated", open, func(r *deploy.Rollout) { r.Waves[0].Gate = passed.Waves[0].Gate }, "wave 0: gate taken: true"},
		{"earlier gate missing", passed, func(r *deploy.Rollout) { r.Waves[0].Gate = nil }, "wave 0: gate taken: false"},
		{"earlier gate failed", passed, func(r *deploy.Rollout) { r.Waves[0].Gate.Passed = false }, "wave 0: gate passed: false"},
		{"gate without time", passed, func(r *deploy.Rollout) { r.Waves[0].Gate.At = time.Time{} }, "wave 0: gate without a time"},
		{"gate lists a stranger", passed, func(r *deploy.Rollout) { r.Waves[0].Gate.NotReady = []string{"zz"} }, `member "zz" is not in the wave`},
		{"done too early", passed, func(r *deploy.Rollout) { r.State, r.EndedAt = deploy.RolloutDone, t0 }, "done at wave 1 of 2"},
		{"ended while open", open, func(r *deploy.Rollout) { r.EndedAt = t0 }, "state wave-open with end time"},
		{"terminal without an end", failed, func(r *deploy.Rollout) { r.EndedAt = time.Time{} }, "state failed with end time"},
		{"rolled back with nowhere to go", failed, func(r *deploy.Rollout) { r.State = deploy.RolloutRolledBack }, "rolled-back, but CanRollBack is false"},
		{"empty wave", open, func(r *deploy.Rollout) { r.Waves[1].Members = nil }, "wave 1 has no members"},
		{"unsorted wave", open, func(r *deploy.Rollout) { slices.Reverse(r.Waves[1].Members) }, "wave 1: members not sorted"},
		{"member in two waves", open, func(r *deploy.Rollout) { r.Waves[1].Members[0] = r.Waves[0].Members[0] }, "is in two waves"},
		{"excluded and in a wave", open, func(r *deploy.Rollout) { r.Excluded[0].ID = r.Waves[0].Members[0] }, "both in a wave and excluded"},
		{"bad release", open, func(r *deploy.Rollout) { r.Release.ID = content.ReleaseID{} }, "the release has no id"},
		{"bad policy", open, func(r *deploy.Rollout) { r.Policy.FailureThreshold = -1 }, "failure threshold -1"},
		{"long reason", failed, func(r *deploy.Rollout) { r.Reason = strings.Repeat("x", 300) }, "reason of 300 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.r.Validate(); err != nil {
				t.Fatalf("before breaking it: %v", err)
			}
			r := tc.r.Clone()
			tc.mutate(&r)
			if err := r.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func staging(rel content.Release, p deploy.Phase, platform string) deploy.MemberView {
	return deploy.MemberView{Alive: true, Platform: platform, Running: "1.0.0", Staged: rel.WithoutID(), Phase: p}
}

func TestNextStart(t *testing.T) {
	r := rollout(t, pct(0, 50, 100), "1.0.0")
	rel, old := r.Release, release("1.0.0")
	now := t0.Add(time.Hour)
	views := map[string]deploy.MemberView{
		"a": staging(rel, deploy.PhaseVerified, "linux/amd64"),
		"b": {Alive: true, Platform: "linux/arm64", Running: "2.0.0", Staged: old, Phase: deploy.PhaseHealthy},
		"c": staging(rel, deploy.PhaseFetching, "linux/amd64"),
		"d": func() deploy.MemberView {
			v := staging(rel, deploy.PhaseFetching, "linux/amd64")
			v.Alive = false
			return v
		}(),
		"e": staging(old, deploy.PhaseHealthy, "linux/riscv64"),
		"f": staging(rel, deploy.PhaseActive, "Plan 9"),
		"g": staging(content.Release{}, deploy.PhaseIdle, "linux/amd64"),
	}
	if c, ok := r.Next(views, now); ok {
		t.Fatalf("c still fetches, yet Next proposes %+v", c)
	}
	views["c"] = staging(rel, deploy.PhaseFailed, "linux/amd64")
	if c, ok := r.Next(views, now); ok {
		t.Fatalf("g has not caught up with the target, yet Next proposes %+v", c)
	}
	// The caller leaves out e, whose platform the release lacks; g fails.
	delete(views, "e")
	views["g"] = staging(rel, deploy.PhaseFailed, "linux/amd64")
	c, ok := r.Next(views, now)
	want := deploy.Command{Op: deploy.OpStart, At: now,
		Members:   []deploy.Member{{ID: "a", Platform: "linux/amd64"}, {ID: "b", Platform: "linux/arm64"}, {ID: "f", Platform: "Plan 9"}},
		Platforms: []string{"linux/amd64", "linux/arm64"}}
	if !ok || !reflect.DeepEqual(c, want) {
		t.Fatalf("Next proposes %+v, %v\nwant %+v", c, ok, want)
	}
	r = apply(t, r, c)
	if len(r.Excluded) != 1 || r.Excluded[0].ID != "f" || sizes(waveMembers(r))[1] != 2 {
		t.Errorf("started with waves %v, excluded %+v", waveMembers(r), r.Excluded)
	}
	for _, id := range []string{"c", "d", "e", "g"} {
		if slices.ContainsFunc(waveMembers(r), func(w []string) bool { return slices.Contains(w, id) }) || r.ActionFor(id) != deploy.ActionWait {
			t.Errorf("%s, not listed at the start, is in a wave or told to %s", id, r.ActionFor(id))
		}
	}

	// Nothing without a ready member, or without a clock.
	s := rollout(t, pct(0, 100), "")
	for name, views := range map[string]map[string]deploy.MemberView{
		"no members":    nil,
		"none verified": {"a": staging(rel, deploy.PhaseIdle, "linux/amd64")},
		"none alive":    {"a": {Running: "2.0.0"}},
		"all elsewhere": {"a": staging(old, deploy.PhaseVerified, "linux/amd64")},
	} {
		if c, ok := s.Next(views, now); ok {
			t.Errorf("%s: Next proposes %+v", name, c)
		}
	}
	if c, ok := s.Next(map[string]deploy.MemberView{"a": staging(rel, deploy.PhaseVerified, "linux/amd64")}, time.Time{}); ok {
		t.Errorf("zero time: Next proposes %+v", c)
	}
}

// TestNextGate takes the gate of a wave of five, of which the policy
// allows none (10 %) or one (20 %) to fail.
func TestNextGate(t *testing.T) {
	opened := func(thr float64) deploy.Rollout {
		r := apply(t, rollout(t, counts(thr, 1, 6), "1.0.0"), start(t0, members(6, "linux/amd64")...))
		return apply(t, r, gate(r, 0, t0))
	}
	r := opened(0.1)
	rel := r.Release
	wave := r.Waves[1].Members
	healthy := deploy.MemberView{Alive: true, Platform: "linux/amd64", Running: "2.0.0", Staged: rel.WithoutID(), Phase: deploy.PhaseHealthy}
	views := func(others deploy.MemberView, first ...deploy.MemberView) map[string]deploy.MemberView {
		m := map[string]deploy.MemberView{}
		for i, id := range wave {
			m[id] = others
			if i < len(first) {
				m[id] = first[i]
			}
		}
		return m
	}
	failed := staging(rel, deploy.PhaseFailed, "linux/amd64")
	failed.Alive = false // the last word of a member that died counts
	rolledBack := staging(rel, deploy.PhaseRolledBack, "linux/amd64")
	active := staging(rel, deploy.PhaseActive, "linux/amd64")
	offline := healthy
	offline.Alive = false
	elsewhere := healthy
	elsewhere.Staged = release("2.1.0").WithoutID()
	deadline := t0.Add(6 * time.Minute) // health timeout and soak
	soon := t0.Add(time.Minute)
	for _, tc := range []struct {
		name   string
		r      deploy.Rollout
		views  map[string]deploy.MemberView
		now    time.Time
		passed bool
		reason string // "" no gate due
	}{
		{"all healthy", r, views(healthy), soon, true, "all 5 members of wave 1 healthy"},
		{"two failed", r, views(active, failed, rolledBack), soon, false, "2 of 5 members of wave 1 failed (threshold 10 %: 0 allowed)"},
		{"one failed, others active", opened(0.2), views(active, failed), soon, false, ""},
		{"one failed, others healthy", opened(0.2), views(healthy, failed), soon, true,
			"1 of 5 members of wave 1 failed, within the threshold (threshold 20 %: 1 allowed)"},
		{"two failed of 20 %", opened(0.2), views(healthy, failed, failed), soon, false, "2 of 5 members of wave 1 failed (threshold 20 %: 1 allowed)"},
		{"waiting", r, views(healthy, active), deadline.Add(-1), false, ""},
		{"offline is not healthy", r, views(healthy, offline), deadline.Add(-1), false, ""},
		{"unknown is not healthy", r, without(views(healthy), wave[0]), deadline.Add(-1), false, ""},
		{"timeout", r, views(healthy, active), deadline, false,
			"health timeout: 1 of 5 members of wave 1 not healthy 6m0s after it opened: 0 failed, 1 not ready (threshold 10 %: 0 allowed)"},
		{"timeout within the threshold", opened(0.2), views(healthy, offline), deadline, true,
			"health timeout: 1 of 5 members of wave 1 not healthy 6m0s after it opened: 0 failed, 1 not ready (threshold 20 %: 1 allowed)"},
		{"timeout, another release", opened(0.2), views(healthy, elsewhere, failed), deadline.Add(time.Hour), false,
			"health timeout: 2 of 5 members of wave 1 not healthy 6m0s after it opened: 1 failed, 1 not ready (threshold 20 %: 1 allowed)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := tc.r.Next(tc.views, tc.now)
			if tc.reason == "" {
				if ok {
					t.Fatalf("Next proposes %+v, want nothing yet", c)
				}
				return
			}
			if !ok || c.Op != deploy.OpGate || c.Wave != 1 || !c.At.Equal(tc.now) || c.Gate.Passed != tc.passed || c.Gate.Reason != tc.reason {
				t.Fatalf("Next proposes %+v (%v), gate %+v\nwant passed %v, %q", c, ok, c.Gate, tc.passed, tc.reason)
			}
			n := apply(t, tc.r, c)
			switch {
			case tc.passed && (n.State != deploy.RolloutDone):
				t.Errorf("passed, yet %s", n.State)
			case !tc.passed && (n.State != deploy.RolloutRolledBack || n.Reason != tc.reason):
				t.Errorf("failed, yet %s (%q)", n.State, n.Reason)
			}
		})
	}

	// The health clock restarts when a paused wave resumes.
	later := t0.Add(time.Hour)
	p := apply(t, apply(t, r, op(deploy.OpPause, soon, "")), op(deploy.OpResume, later, ""))
	if _, ok := p.Next(views(healthy, active), later.Add(6*time.Minute-1)); ok {
		t.Error("a gate before the resumed wave's deadline")
	}
	if _, ok := p.Next(views(healthy, active), later.Add(6*time.Minute)); !ok {
		t.Error("no gate at the resumed wave's deadline")
	}
	if _, ok := apply(t, r, op(deploy.OpPause, soon, "")).Next(views(healthy), later); ok {
		t.Error("a gate while paused")
	}
}

// without returns m without id.
func without(m map[string]deploy.MemberView, id string) map[string]deploy.MemberView {
	delete(m, id)
	return m
}

// goldenJSON checks that v encodes as testdata/name (rewritten with
// -update) and that the file decodes back to v: Raft logs and snapshots
// hold these encodings, and a node of the next version reads them.
func goldenJSON[T any](t *testing.T, name string, v T) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var ind bytes.Buffer
	if err := json.Indent(&ind, b, "", "\t"); err != nil {
		t.Fatal(err)
	}
	ind.WriteByte('\n')
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, ind.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(ind.Bytes(), want) {
		t.Errorf("%s changed: Raft logs and snapshots hold this encoding; a change needs a new format version\ngot:\n%s", p, ind.Bytes())
	}
	var got T
	if err := json.Unmarshal(want, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, v) {
		t.Errorf("%s decodes to\n%+v\nwant\n%+v", p, got, v)
	}
}

// goldenRollout is a rollout with every field set: its third wave open,
// paused by the operator, a member excluded.
func goldenRollout(t testing.TB) deploy.Rollout {
	policy := content.DefaultRollout()
	policy.SecurityFloor = "1.0.0"
	r, err := deploy.NewRollout(release("1.2.0"), policy, "1.1.0")
	if err != nil {
		t.Fatal(err)
	}
	ms := append(members(12, "linux/amd64"), deploy.Member{ID: "rv0", Platform: "linux/riscv64"})
	r = apply(t, r, deploy.Command{Op: deploy.OpStart, At: t0, Members: ms, Platforms: []string{"linux/amd64", "linux/arm64"}})
	r = apply(t, r, gate(r, 0, t0.Add(6*time.Minute)))
	c := gate(r, 1, t0.Add(13*time.Minute+123456789))
	c.Gate.Reason = "all 1 members of wave 1 healthy"
	r = apply(t, r, c)
	return apply(t, r, op(deploy.OpPause, t0.Add(14*time.Minute), "ops: alice: the canary's dashboards"))
}

func TestRolloutGolden(t *testing.T) {
	r := goldenRollout(t)
	if r.State != deploy.RolloutPaused || r.Wave != 2 || len(r.Excluded) != 1 {
		t.Fatalf("the golden rollout is %s at wave %d", r.State, r.Wave)
	}
	goldenJSON(t, "rollout.golden.json", r)
}

func TestCommandGolden(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 30, 15, 123456789, time.UTC)
	for _, c := range []deploy.Command{
		{Op: deploy.OpStart, At: at, Members: []deploy.Member{{ID: "gw-001", Platform: "linux/amd64"}, {ID: "gw-002", Platform: "linux/arm64"}},
			Platforms: []string{"linux/amd64", "linux/arm64"}},
		{Op: deploy.OpGate, At: at, Wave: 1, Gate: &deploy.GateResult{Passed: false, Healthy: []string{"gw-001"}, Failed: []string{"gw-002"},
			NotReady: []string{}, Reason: "1 of 2 members of wave 1 failed (threshold 0 %: 0 allowed)", At: at}},
		{Op: deploy.OpPause, At: at, Reason: "ops: alice: looking"},
		{Op: deploy.OpResume, At: at},
		{Op: deploy.OpAbort, At: at, Reason: "ops: bob: bad build"},
	} {
		t.Run(string(c.Op), func(t *testing.T) { goldenJSON(t, "command-"+string(c.Op)+".golden.json", c) })
	}
}
