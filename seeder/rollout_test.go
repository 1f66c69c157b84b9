package seeder_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/deploy"
	"github.com/meshcast/meshcast/seeder"
)

var at0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func testPolicy() content.Rollout {
	return content.Rollout{Waves: []int{34, 100}, HealthTimeout: content.Duration(time.Minute), FailureThreshold: 0}
}

func members(ids ...string) []deploy.Member {
	var out []deploy.Member
	for _, id := range ids {
		out = append(out, deploy.Member{ID: id, Platform: "linux/amd64"})
	}
	return out
}

func startCmd(rel content.Release, term uint64, ids ...string) seeder.RolloutCommand {
	p := testPolicy()
	return seeder.RolloutCommand{Release: rel.ID, Term: term, Policy: &p,
		Command: deploy.Command{Op: deploy.OpStart, At: at0, Members: members(ids...), Platforms: []string{"linux/amd64"}}}
}

// gateCmd gates wave w of the FSM's rollout with every member healthy, or
// every member failed.
func gateCmd(t *testing.T, f *seeder.FSM, term uint64, pass bool) seeder.RolloutCommand {
	t.Helper()
	st := f.State()
	r := st.Rollout
	if r == nil {
		t.Fatal("no rollout")
	}
	g := &deploy.GateResult{Passed: pass, Healthy: []string{}, Failed: []string{}, NotReady: []string{}, Reason: "test", At: at0.Add(time.Minute)}
	if pass {
		g.Healthy = r.Waves[r.Wave].Members
	} else {
		g.Failed = r.Waves[r.Wave].Members
	}
	return seeder.RolloutCommand{Release: st.Target.ID, Term: term, Command: deploy.Command{Op: deploy.OpGate, At: g.At, Wave: r.Wave, Gate: g}}
}

func apply(t *testing.T, f *seeder.FSM, term uint64, kind seeder.CommandKind, body any) any {
	t.Helper()
	return f.Apply(entry(f.State().Index+1, term, mustEncode(t, kind, body)))
}

func mustApply(t *testing.T, f *seeder.FSM, term uint64, kind seeder.CommandKind, body any) {
	t.Helper()
	if err, ok := apply(t, f, term, kind, body).(error); ok {
		t.Fatal(err)
	}
}

// TestRolloutCommandGolden pins the wire form of the rollout commands.
func TestRolloutCommandGolden(t *testing.T) {
	rel := stage("gateway-fw", "1.2.0", 7).Release
	for name, c := range map[string]seeder.RolloutCommand{
		"rollout_start.cmd": startCmd(rel, 7, "12D3KooWa", "12D3KooWb"),
		"rollout_gate.cmd": {Release: rel.ID, Term: 8, Command: deploy.Command{Op: deploy.OpGate, At: at0, Wave: 1,
			Gate: &deploy.GateResult{Passed: false, Healthy: []string{"a"}, Failed: []string{"b"}, NotReady: []string{}, Reason: "1 of 2 failed", At: at0}}},
		"rollout_pause.cmd": {Release: rel.ID, Term: 8, Command: deploy.Command{Op: deploy.OpPause, At: at0, Reason: "change freeze"}},
	} {
		b := mustEncode(t, seeder.CmdRollout, c)
		golden(t, name, b)
		kind, body, err := seeder.DecodeCommand(b)
		if err != nil || kind != seeder.CmdRollout || !reflect.DeepEqual(body, c) {
			t.Errorf("%s decodes to %v %#v, %v", name, kind, body, err)
		}
	}
}

func TestRolloutCommandRefused(t *testing.T) {
	rel := stage("gw", "1.0.0", 1).Release
	p := testPolicy()
	for _, tc := range []struct {
		name string
		c    seeder.RolloutCommand
		want string
	}{
		{"zero release", seeder.RolloutCommand{Term: 1, Command: deploy.Command{Op: deploy.OpPause, At: at0}}, "release id is all zeroes"},
		{"zero term", seeder.RolloutCommand{Release: rel.ID, Command: deploy.Command{Op: deploy.OpPause, At: at0}}, "term is 0"},
		{"start without policy", seeder.RolloutCommand{Release: rel.ID, Term: 1, Command: deploy.Command{Op: deploy.OpStart, At: at0}}, "a policy goes with a start"},
		{"pause with policy", seeder.RolloutCommand{Release: rel.ID, Term: 1, Policy: &p, Command: deploy.Command{Op: deploy.OpPause, At: at0}}, "a policy goes with a start"},
		{"no time", seeder.RolloutCommand{Release: rel.ID, Term: 1, Command: deploy.Command{Op: deploy.OpPause}}, "no time"},
		{"unknown op", seeder.RolloutCommand{Release: rel.ID, Term: 1, Command: deploy.Command{Op: "explode", At: at0}}, `unknown rollout op "explode"`},
		{"long reason", seeder.RolloutCommand{Release: rel.ID, Term: 1, Command: deploy.Command{Op: deploy.OpAbort, At: at0, Reason: strings.Repeat("x", 300)}}, "reason of 300 bytes"},
	} {
		if _, err := seeder.EncodeCommand(seeder.CmdRollout, tc.c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestFSMRollout runs two releases' rollouts through the FSM: the first
// completes and becomes the site's running release, the second fails its
// canary and is rolled back to the first; stale, misdirected and
// out-of-order commands are refused and change nothing.
func TestFSMRollout(t *testing.T) {
	f := seeder.NewFSM()
	s1 := stage("gw", "1.0.0", 2)
	mustApply(t, f, 2, seeder.CmdStageRelease, s1)
	refused := func(term uint64, c seeder.RolloutCommand, want string) {
		t.Helper()
		before := f.State()
		err, _ := apply(t, f, term, seeder.CmdRollout, c).(error)
		if !errors.Is(err, seeder.ErrRefused) || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v, want a refusal saying %q", err, want)
		}
		after := f.State()
		after.Index = before.Index
		if !reflect.DeepEqual(after, before) {
			t.Fatalf("a refused command changed the state: %+v", after)
		}
	}
	pause := seeder.RolloutCommand{Release: s1.ID, Term: 2, Command: deploy.Command{Op: deploy.OpPause, At: at0}}
	refused(2, pause, "has not started")
	refused(3, startCmd(s1.Release, 2, "a", "b", "c"), "stale decision")
	refused(2, startCmd(stage("gw", "9.0.0", 2).Release, 2, "a"), "is not the target")
	mustApply(t, f, 2, seeder.CmdRollout, startCmd(s1.Release, 2, "a", "b", "c"))
	refused(2, startCmd(s1.Release, 2, "a", "b", "c"), "started already")
	if r := f.State().Rollout; r == nil || r.State != deploy.RolloutWaveOpen || r.Wave != 0 || r.Previous != "" {
		t.Fatalf("after the start: %+v", r)
	}
	// A new leader (term 3) continues the same rollout.
	mustApply(t, f, 3, seeder.CmdRollout, gateCmd(t, f, 3, true))
	mustApply(t, f, 3, seeder.CmdRollout, gateCmd(t, f, 3, true))
	st := f.State()
	if st.Rollout.State != deploy.RolloutDone || st.Running != s1.Release {
		t.Fatalf("after both gates: %+v, running %v", st.Rollout, st.Running)
	}

	s2 := stage("gw", "2.0.0", 3)
	mustApply(t, f, 3, seeder.CmdStageRelease, s2)
	if st := f.State(); st.Rollout != nil || st.Running != s1.Release {
		t.Fatalf("staging 2.0.0 left rollout %+v, running %v", st.Rollout, st.Running)
	}
	mustApply(t, f, 3, seeder.CmdRollout, startCmd(s2.Release, 3, "a", "b", "c"))
	mustApply(t, f, 3, seeder.CmdRollout, gateCmd(t, f, 3, false))
	st = f.State()
	if r := st.Rollout; r.State != deploy.RolloutRolledBack || r.Previous != "1.0.0" || st.Running != s1.Release {
		t.Fatalf("after a failed canary: %+v, running %v", r, st.Running)
	}
	// Every member is told to return to 1.0.0; those that never left it
	// have nothing to do.
	for _, id := range []string{"a", "b", "c"} {
		if got := st.Rollout.ActionFor(id); got != deploy.ActionRollback {
			t.Errorf("member %s: %v, want %v", id, got, deploy.ActionRollback)
		}
	}
	refused(3, gateCmd(t, f, 3, true), "")
}

// rolloutLog is a log with a completed rollout and one in flight.
func rolloutLog(t *testing.T) *seeder.FSM {
	f := seeder.NewFSM()
	s1 := stage("gw", "1.0.0", 2)
	mustApply(t, f, 2, seeder.CmdStageRelease, s1)
	mustApply(t, f, 2, seeder.CmdRollout, startCmd(s1.Release, 2, "a", "b", "c"))
	mustApply(t, f, 2, seeder.CmdRollout, gateCmd(t, f, 2, true))
	mustApply(t, f, 2, seeder.CmdRollout, gateCmd(t, f, 2, true))
	s2 := stage("gw", "2.0.0", 2)
	mustApply(t, f, 2, seeder.CmdStageRelease, s2)
	mustApply(t, f, 2, seeder.CmdRollout, startCmd(s2.Release, 2, "a", "b", "c"))
	return f
}

// TestFSMSnapshotRollout pins snapshot format 2 with a rollout in it, and
// checks that format 1 snapshots (no rollout) are still restored.
func TestFSMSnapshotRollout(t *testing.T) {
	f := rolloutLog(t)
	b := persist(t, f)
	golden(t, "snapshot_v2_rollout.json", b)
	g := seeder.NewFSM()
	if err := g.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g.State(), f.State()) {
		t.Fatalf("restored %+v, want %+v", g.State(), f.State())
	}
	v1, err := os.ReadFile(filepath.Join("testdata", "snapshot_v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	h := seeder.NewFSM()
	if err := h.Restore(io.NopCloser(bytes.NewReader(v1))); err != nil {
		t.Fatalf("a format 1 snapshot: %v", err)
	}
	if st := h.State(); st.Target == nil || st.Rollout != nil || !st.Running.IsZero() {
		t.Fatalf("format 1 restored as %+v", st)
	}
	// A snapshot whose rollout is not the target's is refused.
	bad := bytes.Replace(b, []byte(`"version":"2.0.0"`), []byte(`"version":"2.0.1"`), 1)
	if err := seeder.NewFSM().Restore(io.NopCloser(bytes.NewReader(bad))); err == nil {
		t.Fatal("restored a snapshot whose rollout is not the target's")
	}
}

// TestLeaderDrivesRollout runs the leader loop over fake members that
// verify, activate and turn healthy as their waves open: the rollout
// starts once every member verified, opens each wave only after the one
// before passed its gate, and ends done; then a release whose canary fails
// stops there and is rolled back.
func TestLeaderDrivesRollout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newLeaderRig(t, seeder.NewFSM(), 0)
		ids := []string{"m1", "m2", "m3", "m4"}
		sim := func(fail bool) {
			r.views.set(func(v *fakeViews) {
				v.rel, v.policy, v.platforms = targetOf(r.fsm), testPolicy(), []string{"linux/amd64"}
				// A member of a platform the release lacks: excluded.
				v.views = map[string]deploy.MemberView{"r1": {Alive: true, Platform: "linux/riscv64"}}
				ro := r.fsm.State().Rollout
				for _, id := range ids {
					mv := deploy.MemberView{Alive: true, Platform: "linux/amd64", Staged: v.rel.WithoutID(), Phase: deploy.PhaseVerified}
					if ro != nil && ro.ActionFor(id) == deploy.ActionActivate {
						mv.Running, mv.Phase = v.rel.Version, deploy.PhaseHealthy
						if fail {
							mv.Running, mv.Phase = "", deploy.PhaseRolledBack
						}
					}
					v.views[id] = mv
				}
			})
		}
		r.raft.lead(true, 1)
		r.run(t)
		synctest.Wait()
		var opened []int
		for range 20 {
			sim(false)
			time.Sleep(time.Second)
			synctest.Wait()
			if ro := r.fsm.State().Rollout; ro != nil && (len(opened) == 0 || opened[len(opened)-1] != ro.Wave) {
				opened = append(opened, ro.Wave)
			}
		}
		ro := r.fsm.State().Rollout
		if ro == nil || ro.State != deploy.RolloutDone || !reflect.DeepEqual(opened, []int{0, 1, 2}) || len(ro.Waves) != 2 {
			t.Fatalf("rollout %+v, waves seen %v", ro, opened)
		}
		if st := r.fsm.State(); st.Running != r.rel {
			t.Fatalf("the site runs %v after the rollout, want %v", st.Running, r.rel)
		}
		if len(ro.Excluded) != 1 || ro.Excluded[0].ID != "r1" || !strings.Contains(ro.Excluded[0].Reason, "linux/riscv64") {
			t.Fatalf("excluded %+v, want r1 for its platform", ro.Excluded)
		}

		// 1.1.0's canary fails: no second wave, the rollout is rolled back.
		next := content.Release{Name: "gw", Version: "1.1.0", ID: relID("gw", "1.1.0")}
		r.origin.setNewest(next)
		time.Sleep(refresh)
		synctest.Wait()
		for range 20 {
			sim(true)
			time.Sleep(time.Second)
			synctest.Wait()
		}
		ro = r.fsm.State().Rollout
		if ro == nil || ro.Release != next || ro.State != deploy.RolloutRolledBack || ro.Wave != 0 || ro.Previous != "1.0.0" {
			t.Fatalf("rollout of the bad release: %+v", ro)
		}
		if ro.Waves[1].Gate != nil || !ro.Waves[1].OpenedAt.IsZero() {
			t.Fatalf("a wave after the failed canary opened: %+v", ro.Waves[1])
		}
	})
}
