package deploy_test

import (
	"encoding/json"
	"fmt"
	"math"
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

// The properties of the rollout state machine, over random sites: random
// policies, members and fates, the leader proposing what Next says from
// gossip views that evolve with what ActionFor tells each member, an
// operator pausing, resuming and aborting at random, and bogus commands
// mixed in. Fixed seeds: a failure names its seed and replays.

// propRuns and propSteps size the search; the whole test takes well
// under a second.
const (
	propRuns  = 1000
	propSteps = 60
)

// Member fates in a simulated site.
const (
	fateGood = iota // verifies, activates, gets healthy
	fateBad         // fails, sometimes while fetching, mostly once active
	fateSlow        // never gets healthy
	fateOff         // is never alive
)

type simMember struct {
	id, platform string
	fate         int
}

// sim is one simulated site: two replicas of the rollout (a applies
// commands as they are; b applies each command and starts from each state
// through a JSON round trip), the command log, and gossip's view of each
// member.
type sim struct {
	t       *testing.T
	rng     *rand.Rand
	seed    uint64
	initial deploy.Rollout
	a, b    deploy.Rollout
	log     []deploy.Command
	errs    []string
	members []simMember
	views   map[string]deploy.MemberView
	now     time.Time
	prev    content.Release // what the members ran before
	stats   *propStats
}

type propStats struct {
	ends        map[deploy.RolloutState]int
	nextApplied int
	gates       map[bool]int
	bogus       int
	refused     int
}

func TestRolloutProperties(t *testing.T) {
	stats := &propStats{ends: map[deploy.RolloutState]int{}, gates: map[bool]int{}}
	for seed := range uint64(propRuns) {
		s := newSim(t, seed, stats)
		for step := range propSteps {
			s.step(step)
			if t.Failed() {
				t.Fatalf("seed %d, step %d: stopped at the first failure", seed, step)
			}
		}
		s.replay()
		stats.ends[s.a.State]++
	}
	t.Logf("end states %v; %d commands from Next applied; gates passed/failed %d/%d; %d bogus commands, %d refusals",
		stats.ends, stats.nextApplied, stats.gates[true], stats.gates[false], stats.bogus, stats.refused)
	// The search must reach every outcome, or it proves little.
	for _, st := range []deploy.RolloutState{deploy.RolloutDone, deploy.RolloutRolledBack, deploy.RolloutFailed,
		deploy.RolloutAborted, deploy.RolloutPaused} {
		if stats.ends[st] < propRuns/100 {
			t.Errorf("only %d of %d runs ended %s", stats.ends[st], propRuns, st)
		}
	}
	if stats.gates[true] < propRuns/2 || stats.gates[false] < propRuns/4 {
		t.Errorf("gates passed/failed %d/%d: too few", stats.gates[true], stats.gates[false])
	}
}

var simPlatforms = []string{"linux/amd64", "linux/amd64", "linux/arm64", "linux/riscv64", ""}

// newSim draws a site: policy, previous version, members and their fates.
func newSim(t *testing.T, seed uint64, stats *propStats) *sim {
	rng := rand.New(rand.NewPCG(seed, 0x726f6c6c6f7574))
	var id content.ReleaseID
	for i := range id {
		id[i] = byte(rng.IntN(256))
	}
	rel := content.Release{Name: "gw", Version: "2.0.0", ID: id}
	r, err := deploy.NewRollout(rel, randomPolicy(rng), pick(rng, "", "0.9.0", "1.0.0", "1.5.0", "1.9.9", "2.0.0-rc.1"))
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	s := &sim{t: t, rng: rng, seed: seed, initial: r, a: r, b: r, stats: stats,
		views: map[string]deploy.MemberView{}, now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.FixedZone("CET", 3600)),
		prev: content.Release{Name: "gw", Version: "1.9.9"}}
	badRate := []int{0, 0, 5, 20, 50}[rng.IntN(5)]
	for i := range rng.IntN(30) {
		m := simMember{id: fmt.Sprintf("gw-%03d", i), platform: pick(rng, simPlatforms...)}
		switch n := rng.IntN(100); {
		case n < badRate:
			m.fate = fateBad
		case n < badRate+4:
			m.fate = fateSlow
		case n < badRate+8:
			m.fate = fateOff
		}
		s.members = append(s.members, m)
		s.views[m.id] = deploy.MemberView{Alive: m.fate != fateOff, Platform: m.platform, Running: s.prev.Version,
			Staged: s.prev, Phase: deploy.PhaseHealthy}
	}
	return s
}

func pick[T any](rng *rand.Rand, vs ...T) T { return vs[rng.IntN(len(vs))] }

func randomPolicy(rng *rand.Rand) content.Rollout {
	p := content.Rollout{
		HealthTimeout:    content.Duration(time.Duration(1+rng.IntN(10)) * time.Minute),
		Soak:             content.Duration(time.Duration(rng.IntN(3)) * time.Minute),
		FailureThreshold: pick(rng, 0, 0, 0.1, 0.2, 0.25, 0.5, 1),
		SecurityFloor:    pick(rng, "", "", "1.0.0", "1.5.0", "2.0.0"),
	}
	if rng.IntN(3) == 0 {
		c := 0
		for range 1 + rng.IntN(4) {
			c += 1 + rng.IntN(5)
			p.Counts = append(p.Counts, c)
		}
		return p
	}
	w := 0
	for w < 100 && len(p.Waves) < 5 {
		w = min(100, w+1+rng.IntN(60))
		p.Waves = append(p.Waves, w)
	}
	if w < 100 {
		p.Waves = append(p.Waves, 100)
	}
	return p
}

// step moves the simulation on: time passes, members act on what they are
// told, and a command is proposed: the leader's, the operator's or a
// bogus one.
func (s *sim) step(step int) {
	s.now = s.now.Add(time.Duration(s.rng.IntN(150)) * time.Second)
	s.evolve()
	switch n := s.rng.IntN(100); {
	case n < 80:
		c, ok := s.a.Next(s.eligible(), s.now)
		if !ok {
			return
		}
		if err := s.apply(c); err != nil {
			s.t.Errorf("seed %d, step %d: Next proposed %+v, refused: %v", s.seed, step, c, err)
		}
		s.stats.nextApplied++
	case n < 84:
		o := pick(s.rng, deploy.OpPause, deploy.OpPause, deploy.OpPause, deploy.OpResume, deploy.OpResume, deploy.OpResume, deploy.OpResume, deploy.OpAbort)
		s.apply(deploy.Command{Op: o, At: s.now, Reason: pick(s.rng, "", "ops: <alice> & \"bob\"")})
	case n < 94:
		c, mustFail := s.bogus()
		s.stats.bogus++
		if err := s.apply(c); mustFail && err == nil {
			s.t.Errorf("seed %d, step %d: bogus command %+v accepted", s.seed, step, c)
		}
	}
}

// evolve changes each member's view as a real member would, given what
// the rollout tells it and its fate; now and then a view goes random.
func (s *sim) evolve() {
	rel := s.a.Release.WithoutID()
	for _, m := range s.members {
		v := s.views[m.id]
		if m.fate != fateOff && s.rng.IntN(80) == 0 {
			v.Alive = !v.Alive
		}
		if s.rng.IntN(200) == 0 {
			v = s.randomView(m)
		}
		advance := s.rng.IntN(3) > 0
		switch s.a.ActionFor(m.id) {
		case deploy.ActionActivate:
			v = s.activate(m, v, advance)
		case deploy.ActionRollback:
			if v.Running == rel.Version && advance {
				v.Running, v.Phase = s.a.Previous, deploy.PhaseRolledBack
			}
		default:
			v = s.fetch(m, v, advance)
		}
		s.views[m.id] = v
	}
}

// eligible are the views the leader gives Next: without the members of a
// platform the release lacks (seeder.Leader lists them as excluded).
func (s *sim) eligible() map[string]deploy.MemberView {
	out := make(map[string]deploy.MemberView, len(s.views))
	for id, v := range s.views {
		if v.Platform == "linux/amd64" || v.Platform == "linux/arm64" || v.Platform == "Plan 9" {
			out[id] = v
		}
	}
	return out
}

// fetch stages the rollout's release, when the member's platform allows.
func (s *sim) fetch(m simMember, v deploy.MemberView, advance bool) deploy.MemberView {
	rel := s.a.Release.WithoutID()
	switch {
	case !advance || m.platform == "linux/riscv64" || m.platform == "":
	case v.Staged != rel:
		v.Staged, v.Phase = rel, deploy.PhaseFetching
	case v.Phase == deploy.PhaseFetching && m.fate == fateBad && s.rng.IntN(4) == 0:
		v.Phase = deploy.PhaseFailed
	case v.Phase == deploy.PhaseFetching:
		v.Phase = deploy.PhaseVerified
	}
	return v
}

// activate moves a member told to activate through the activation phases.
func (s *sim) activate(m simMember, v deploy.MemberView, advance bool) deploy.MemberView {
	rel := s.a.Release.WithoutID()
	if !advance || v.Staged != rel {
		return s.fetch(m, v, advance)
	}
	switch v.Phase {
	case deploy.PhaseVerified:
		v.Phase = deploy.PhaseActivating
	case deploy.PhaseActivating:
		v.Phase, v.Running = deploy.PhaseActive, rel.Version
	case deploy.PhaseActive:
		switch m.fate {
		case fateGood:
			v.Phase = deploy.PhaseHealthy
		case fateBad:
			v.Phase = deploy.PhaseFailed
		}
	}
	return v
}

func (s *sim) randomView(m simMember) deploy.MemberView {
	rel := s.a.Release.WithoutID()
	return deploy.MemberView{
		Alive:    s.rng.IntN(4) > 0,
		Platform: pick(s.rng, append(slices.Clone(simPlatforms), m.platform, "Plan 9")...),
		Running:  pick(s.rng, "", s.prev.Version, rel.Version, "3.0.0"),
		Staged:   pick(s.rng, content.Release{}, s.prev, rel, content.Release{Name: "gw", Version: "2.1.0"}),
		Phase:    deploy.Phase(s.rng.IntN(9)),
	}
}

// apply applies c to both replicas and checks the properties:
// (3) the replicas agree, value and error; (5) Apply changes neither its
// receiver nor, on an error, anything; terminal states refuse everything;
// and after a success, the invariants of check.
func (s *sim) apply(c deploy.Command) error {
	s.t.Helper()
	before := s.a.Clone()
	n, err := s.a.Apply(c)
	if !reflect.DeepEqual(s.a, before) {
		s.t.Errorf("seed %d: Apply(%+v) changed its receiver", s.seed, c)
	}
	nb, errB := roundTrip(s.t, s.b).Apply(roundTrip(s.t, c))
	if errString(err) != errString(errB) || !reflect.DeepEqual(n, nb) {
		s.t.Errorf("seed %d: the replicas disagree on %+v:\n%v: %+v\n%v: %+v", s.seed, c, err, n, errB, nb)
	}
	s.log, s.errs = append(s.log, c), append(s.errs, errString(err))
	if err != nil {
		s.stats.refused++
		if !reflect.DeepEqual(n, before) {
			s.t.Errorf("seed %d: %v, yet the state changed", s.seed, err)
		}
		return err
	}
	if before.State.Terminal() {
		s.t.Errorf("seed %d: %s accepted %+v", s.seed, before.State, c)
	}
	if c.Op == deploy.OpGate {
		s.stats.gates[c.Gate.Passed]++
	}
	s.check(before, c, n)
	s.a, s.b = n, nb
	return nil
}

// check checks the invariants of a state n reached from old by c.
func (s *sim) check(old deploy.Rollout, c deploy.Command, n deploy.Rollout) {
	s.t.Helper()
	if err := n.Validate(); err != nil {
		s.t.Errorf("seed %d: after %s: %v", s.seed, c.Op, err)
	}
	// (1) A wave opens only after the gate of the one before it passed,
	// one at a time, by a start or a passed gate.
	for i := 1; i < len(n.Waves); i++ {
		if g := n.Waves[i-1].Gate; !n.Waves[i].OpenedAt.IsZero() && (g == nil || !g.Passed) {
			s.t.Errorf("seed %d: wave %d opened, but wave %d's gate is %+v", s.seed, i, i-1, g)
		}
	}
	if o, p := opened(old), opened(n); p > o && !(p == o+1 && (c.Op == deploy.OpStart || c.Op == deploy.OpGate && c.Gate.Passed)) {
		s.t.Errorf("seed %d: %s opened waves %d to %d", s.seed, c.Op, o, p)
	}
	// (4) The security floor holds, whatever the state.
	canRollBack := n.Previous != "" && (n.Policy.SecurityFloor == "" ||
		compareVersions(s.t, n.Previous, n.Policy.SecurityFloor) >= 0)
	if n.CanRollBack() != canRollBack {
		s.t.Errorf("seed %d: CanRollBack is %v with previous %q and floor %q", s.seed, n.CanRollBack(), n.Previous, n.Policy.SecurityFloor)
	}
	ids := []string{"", "late-joiner"}
	for _, m := range s.members {
		ids = append(ids, m.id)
	}
	for _, id := range ids {
		s.checkAction(n, id, canRollBack)
	}
}

// checkAction checks what ActionFor tells id in n: (2) after a failed
// gate, every member of every opened wave rolls back if it may; (4) no
// one rolls back below the floor; an excluded member always waits; while
// a wave is open, exactly the members of opened waves activate.
func (s *sim) checkAction(n deploy.Rollout, id string, canRollBack bool) {
	s.t.Helper()
	a := n.ActionFor(id)
	wave := -1
	for i, w := range n.Waves {
		if slices.Contains(w.Members, id) {
			wave = i
		}
	}
	excluded := slices.ContainsFunc(n.Excluded, func(e deploy.Excluded) bool { return e.ID == id })
	var want deploy.Action
	switch {
	case id == "" || excluded:
		want = deploy.ActionWait
	case a == deploy.ActionRollback && !canRollBack:
		s.t.Errorf("seed %d: %s told to roll back to %q below the floor %q", s.seed, id, n.Previous, n.Policy.SecurityFloor)
		return
	case gateFailed(n) && wave >= 0 && wave <= n.Wave:
		if n.State != deploy.RolloutRolledBack && n.State != deploy.RolloutFailed {
			s.t.Errorf("seed %d: a gate failed, yet %s", s.seed, n.State)
		}
		want = deploy.ActionWait
		if canRollBack {
			want = deploy.ActionRollback
		}
	case n.State == deploy.RolloutWaveOpen && wave >= 0 && wave <= n.Wave:
		want = deploy.ActionActivate
	case n.State == deploy.RolloutWaveOpen:
		want = deploy.ActionWait
	default:
		return
	}
	if a != want {
		s.t.Errorf("seed %d: %s (wave %d) told to %s in %s at wave %d, want %s", s.seed, id, wave, a, n.State, n.Wave, want)
	}
}

func gateFailed(r deploy.Rollout) bool {
	return slices.ContainsFunc(r.Waves, func(w deploy.Wave) bool { return w.Gate != nil && !w.Gate.Passed })
}

// opened counts the waves that opened.
func opened(r deploy.Rollout) int {
	n := 0
	for _, w := range r.Waves {
		if !w.OpenedAt.IsZero() {
			n++
		}
	}
	return n
}

// compareVersions compares two semantic versions, failing the test if
// either is not one.
func compareVersions(t *testing.T, a, b string) int {
	t.Helper()
	va, err := content.ParseVersion(a)
	if err != nil {
		t.Fatal(err)
	}
	vb, err := content.ParseVersion(b)
	if err != nil {
		t.Fatal(err)
	}
	return va.Compare(vb)
}

// replay applies the whole log, refused commands included, to the initial
// rollout on a third replica: (3) the same log, the same errors, the same
// state.
func (s *sim) replay() {
	s.t.Helper()
	r := s.initial
	for i, c := range s.log {
		n, err := r.Apply(c)
		if errString(err) != s.errs[i] {
			s.t.Errorf("seed %d: replaying command %d: %v, first time %s", s.seed, i, err, s.errs[i])
		}
		r = n
	}
	if !reflect.DeepEqual(r, s.a) {
		s.t.Errorf("seed %d: the replayed state differs:\n%+v\n%+v", s.seed, r, s.a)
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// roundTrip returns v through its JSON encoding.
func roundTrip[T any](t *testing.T, v T) T {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// bogus returns a command that is wrong in some way, and whether Apply
// must refuse it whatever the state (some are only wrong in some states).
func (s *sim) bogus() (deploy.Command, bool) {
	at := s.now
	switch s.rng.IntN(9) {
	case 0:
		return deploy.Command{Op: pick(s.rng, deploy.OpStart, deploy.OpPause, deploy.OpAbort)}, true
	case 1:
		return deploy.Command{Op: pick[deploy.CommandOp](s.rng, "", "launch", "GATE"), At: at}, true
	case 2:
		return deploy.Command{Op: deploy.OpAbort, At: at, Reason: strings.Repeat("ü", 129)}, true
	case 3:
		c := s.randomGate(at, 0)
		c.Gate.Passed = !c.Gate.Passed
		return c, true
	case 4:
		return s.randomGate(at, pick(s.rng, 0, 0, 0, -1, 1)), false
	case 5:
		return s.randomStart(at), false
	case 6:
		return deploy.Command{Op: deploy.OpPause, At: at, Members: []deploy.Member{{ID: "x"}}}, true
	case 7:
		c := s.randomGate(at, 0)
		c.Gate.NotReady = append(c.Gate.NotReady, "gw-999")
		return c, true
	default:
		c := s.randomGate(at, 0)
		c.Gate.At = at.Add(time.Second)
		return c, true
	}
}

// randomGate returns a consistent gate of the open wave plus offset (or
// of made-up members if none is open), the members partitioned at random.
func (s *sim) randomGate(at time.Time, offset int) deploy.Command {
	ids := []string{"gw-000", "gw-001"}
	w := s.a.Wave + offset
	if w >= 0 && w < len(s.a.Waves) {
		ids = s.a.Waves[w].Members
	}
	g := &deploy.GateResult{Healthy: []string{}, Failed: []string{}, NotReady: []string{}, At: at, Reason: "random"}
	for _, id := range ids {
		switch s.rng.IntN(20) {
		case 0:
			g.Failed = append(g.Failed, id)
		case 1:
			g.NotReady = append(g.NotReady, id)
		default:
			g.Healthy = append(g.Healthy, id)
		}
	}
	allowed := int(s.a.Policy.FailureThreshold*float64(len(ids)) + 1e-9)
	g.Passed = len(g.Failed)+len(g.NotReady) <= allowed
	return deploy.Command{Op: deploy.OpGate, At: at, Wave: w, Gate: g}
}

// randomStart lists random members, sometimes one twice.
func (s *sim) randomStart(at time.Time) deploy.Command {
	c := deploy.Command{Op: deploy.OpStart, At: at, Platforms: []string{"linux/amd64"}}
	for _, m := range s.members {
		if s.rng.IntN(2) == 0 {
			c.Members = append(c.Members, deploy.Member{ID: m.id, Platform: m.platform})
		}
	}
	if len(c.Members) > 0 && s.rng.IntN(3) == 0 {
		c.Members = append(c.Members, c.Members[0])
	}
	return c
}

// TestRolloutNeverPanics corrupts the states the simulation reaches (as a
// bad snapshot or a bug might) and calls everything on them: nothing
// panics, and Apply still leaves its receiver alone. Validate refuses
// most of them; what it accepts, Apply keeps valid.
func TestRolloutNeverPanics(t *testing.T) {
	stats := &propStats{ends: map[deploy.RolloutState]int{}, gates: map[bool]int{}}
	refused := 0
	for seed := range uint64(300) {
		s := newSim(t, seed, stats)
		for step := range 40 {
			s.step(step)
		}
		for range 10 {
			r := s.a.Clone()
			for range 1 + s.rng.IntN(3) {
				corrupt(s.rng, &r)
			}
			if r.Validate() != nil {
				refused++
			}
			before := r.Clone()
			for _, id := range []string{"", "gw-000", "gw-001", "late"} {
				r.ActionFor(id)
			}
			r.CanRollBack()
			cmds := []deploy.Command{s.randomGate(s.now, 0), s.randomStart(s.now), {Op: deploy.OpResume, At: s.now}, {Op: deploy.OpPause, At: s.now}}
			if c, ok := r.Next(s.views, s.now); ok {
				cmds = append(cmds, c)
			}
			for _, c := range cmds {
				n, err := r.Apply(c)
				if err == nil && r.Validate() == nil && n.Validate() != nil {
					t.Errorf("seed %d: %s took a valid state to an invalid one: %v", seed, c.Op, n.Validate())
				}
			}
			if !reflect.DeepEqual(nanFree(r), nanFree(before)) {
				t.Fatalf("seed %d: a corrupt state changed", seed)
			}
		}
	}
	if refused < 1000 {
		t.Errorf("Validate refused only %d of 3000 corrupt states", refused)
	}
}

// nanFree returns a copy of r that reflect.DeepEqual can compare: a
// NaN threshold is equal to nothing, not even itself.
func nanFree(r deploy.Rollout) deploy.Rollout {
	r = r.Clone()
	if math.IsNaN(r.Policy.FailureThreshold) {
		r.Policy.FailureThreshold = -42
	}
	return r
}

// corrupt breaks one thing in r.
func corrupt(rng *rand.Rand, r *deploy.Rollout) {
	states := []deploy.RolloutState{deploy.RolloutStaged, deploy.RolloutWaveOpen, deploy.RolloutDone, deploy.RolloutRolledBack,
		deploy.RolloutFailed, deploy.RolloutPaused, deploy.RolloutAborted, "", "bogus"}
	switch rng.IntN(10) {
	case 0:
		r.Wave = rng.IntN(len(r.Waves)+6) - 3
	case 1:
		r.State = pick(rng, states...)
	case 2:
		r.PausedFrom = pick(rng, states...)
	case 3:
		r.Waves = r.Waves[:rng.IntN(len(r.Waves)+1)]
	case 4:
		if len(r.Waves) > 0 {
			r.Waves[rng.IntN(len(r.Waves))].Members = nil
		}
	case 5:
		if len(r.Waves) > 0 {
			r.Waves[rng.IntN(len(r.Waves))].Gate = pick(rng, nil, &deploy.GateResult{Passed: true}, &deploy.GateResult{Healthy: []string{"x"}})
		}
	case 6:
		r.Policy.FailureThreshold = pick(rng, -1, 2, math.NaN(), math.Inf(1))
	case 7:
		r.Policy.Waves, r.Policy.Counts = pick(rng, nil, []int{0}, []int{50}), pick(rng, nil, []int{-1}, []int{3, 2})
	case 8:
		r.Previous, r.Policy.SecurityFloor = pick(rng, "", "junk", "9.9.9"), pick(rng, "", "x", "3.0.0")
	default:
		r.Excluded = append(r.Excluded, deploy.Excluded{ID: pick(rng, "", "gw-000", "gw-001")})
	}
}

// FuzzRolloutApply decodes a rollout and a command (seeded from the golden
// files) and applies one to the other: a state that Validate accepts goes,
// by a command that Apply accepts, to a state that Validate accepts and
// that survives its JSON encoding; nothing panics.
func FuzzRolloutApply(f *testing.F) {
	paths, err := filepath.Glob(filepath.Join("testdata", "command-*.golden.json"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no golden commands: %v", err)
	}
	rollout, err := os.ReadFile(filepath.Join("testdata", "rollout.golden.json"))
	if err != nil {
		f.Fatal(err)
	}
	// The golden rollout is paused; resumed, it takes gates too.
	var open deploy.Rollout
	if err := json.Unmarshal(rollout, &open); err != nil {
		f.Fatal(err)
	}
	open.State, open.PausedFrom, open.Reason = open.PausedFrom, "", ""
	resumed, err := json.Marshal(open)
	if err != nil {
		f.Fatal(err)
	}
	// Empty lists where the encoding omits them.
	staged := []byte(`{"release":{"name":"gw","version":"1.2.0","id":"9547a3feb4e1ba13dfe191ae817195e4f40a46ea11b95dfd4a8242be2e3eade0"},` +
		`"policy":{"waves":[],"counts":[1],"health_timeout":"5m0s","failure_threshold":0.1},"state":"staged","wave":0,"waves":[],"excluded":[]}`)
	for _, p := range paths {
		c, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(rollout, c)
		f.Add(resumed, c)
		f.Add(staged, c)
	}
	f.Fuzz(func(t *testing.T, rb, cb []byte) {
		var r deploy.Rollout
		var c deploy.Command
		if json.Unmarshal(rb, &r) != nil || json.Unmarshal(cb, &c) != nil || r.Validate() != nil {
			return
		}
		before := r.Clone()
		n, err := r.Apply(c)
		if !reflect.DeepEqual(nanFree(r), nanFree(before)) {
			t.Fatal("Apply changed its receiver")
		}
		if err != nil {
			return
		}
		if err := n.Validate(); err != nil {
			t.Fatalf("%s led to an invalid state: %v", c.Op, err)
		}
		if rt := roundTrip(t, n); !reflect.DeepEqual(rt, n) {
			t.Fatalf("the state after %s changes through JSON:\n%+v\n%+v", c.Op, rt, n)
		}
	})
}
