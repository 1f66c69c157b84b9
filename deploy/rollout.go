package deploy

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/meshcast/meshcast/content"
)

// RolloutState names where a site's rollout of its target stands.
type RolloutState string

const (
	RolloutStaged     RolloutState = "staged"      // waiting until every eligible member verified the release
	RolloutWaveOpen   RolloutState = "wave-open"   // wave Rollout.Wave is open: its members (and earlier waves') activate
	RolloutDone       RolloutState = "done"        // every wave passed its gate
	RolloutRolledBack RolloutState = "rolled-back" // a gate failed: every member that activated returns to Previous
	RolloutFailed     RolloutState = "failed"      // a gate failed, but there is nothing to roll back to at or above the security floor: members stay where they are
	RolloutPaused     RolloutState = "paused"      // by the operator: no wave opens, no gate is taken
	RolloutAborted    RolloutState = "aborted"     // by the operator: no wave opens; members that activated return to Previous (unless the floor forbids)
)

// Terminal reports whether s is final: done, rolled-back, failed or
// aborted. A terminal rollout refuses every command.
func (s RolloutState) Terminal() bool {
	switch s {
	case RolloutDone, RolloutRolledBack, RolloutFailed, RolloutAborted:
		return true
	}
	return false
}

// known reports whether s is one of the states above.
func (s RolloutState) known() bool {
	return s.Terminal() || s == RolloutStaged || s == RolloutWaveOpen || s == RolloutPaused
}

// Member is a site member as a start command lists it.
type Member struct {
	ID       string `json:"id"`
	Platform string `json:"platform"`
}

// Excluded is a member listed at the start that takes no part in the
// rollout, and why.
type Excluded struct {
	ID       string `json:"id"`
	Platform string `json:"platform"`
	Reason   string `json:"reason"`
}

// GateResult is a wave's health gate as the leader took it: every member
// of the wave in exactly one of Healthy, Failed and NotReady.
type GateResult struct {
	Passed   bool      `json:"passed"`
	Healthy  []string  `json:"healthy"`   // sorted
	Failed   []string  `json:"failed"`    // sorted: reported failed or rolled back
	NotReady []string  `json:"not_ready"` // sorted: neither, when the gate was taken (offline counts here, never as healthy)
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
}

// Wave is one wave of a rollout.
type Wave struct {
	Members  []string    `json:"members"`            // this wave's new members (not cumulative), sorted
	OpenedAt time.Time   `json:"opened_at,omitzero"` // from the command that opened it (the leader's clock)
	Gate     *GateResult `json:"gate,omitempty"`
}

// Rollout is a site's rollout of its target release: the Raft state that
// says which members activate it and when, wave by wave. The zero value
// is not a rollout; NewRollout makes one, Apply moves it on, Next says
// what the leader should propose, ActionFor what a member should do. Raft
// logs and snapshots hold its JSON encoding and Command's
// (testdata/*.golden.json).
//
// The contract with the Raft FSM that holds it (STYLE.md 5):
//   - Everything here is pure and deterministic: no function reads a
//     clock, draws a random number or does I/O. Times come in commands
//     (the proposer's clock, stored in UTC, never compared with a local
//     one) and as Next's argument.
//   - A Rollout is a value: Apply returns a new one and neither changes
//     its receiver nor shares memory with it or with the command.
//   - Every replica that applies the same commands to the same Rollout
//     reaches the same value and the same errors, whether the commands and
//     states went through their JSON encoding in between or not (for
//     strings in UTF-8, which JSON carries unchanged; Apply refuses
//     others).
//   - Nothing panics on bad input: a command the state does not allow gets
//     an error wrapping ErrTransition, a malformed one an error wrapping
//     ErrBadCommand, and either leaves the state as it was. Validate
//     checks a decoded snapshot.
type Rollout struct {
	Release    content.Release `json:"release"`            // the target, with id
	Policy     content.Rollout `json:"policy"`             // the signed manifest's rollout policy
	Previous   string          `json:"previous,omitempty"` // version the site ran before ("" none): what a rollback returns to
	State      RolloutState    `json:"state"`
	Wave       int             `json:"wave"` // the open (or paused, or aborted) wave, or the one whose gate failed; len(Waves) once done
	Waves      []Wave          `json:"waves,omitempty"`
	Excluded   []Excluded      `json:"excluded,omitempty"`
	PausedFrom RolloutState    `json:"paused_from,omitempty"`
	Reason     string          `json:"reason,omitempty"` // why it stopped (gate failure, operator pause or abort, …)
	StartedAt  time.Time       `json:"started_at,omitzero"`
	EndedAt    time.Time       `json:"ended_at,omitzero"`
}

// CommandOp names what a command does.
type CommandOp string

const (
	OpStart  CommandOp = "start"  // staged → wave-open (wave 0), or done when no member is eligible
	OpGate   CommandOp = "gate"   // wave-open: the open wave's gate, passed or not
	OpPause  CommandOp = "pause"  // staged, wave-open → paused (the operator)
	OpResume CommandOp = "resume" // paused → where it paused (the operator)
	OpAbort  CommandOp = "abort"  // staged, wave-open, paused → aborted (the operator)
)

// Command is one decision about a rollout, proposed through Raft. Each op
// carries only its own fields: start Members and Platforms; gate Wave and
// Gate; pause, resume and abort a Reason. Apply refuses a command with
// fields of another op.
type Command struct {
	Op        CommandOp   `json:"op"`
	At        time.Time   `json:"at"`                  // the proposer's clock; stored, never compared with a local clock
	Members   []Member    `json:"members,omitempty"`   // start: the members alive and verified
	Platforms []string    `json:"platforms,omitempty"` // start: the platforms the release has
	Wave      int         `json:"wave,omitempty"`      // gate: the wave it gates
	Gate      *GateResult `json:"gate,omitempty"`      // gate
	Reason    string      `json:"reason,omitempty"`    // pause, resume, abort: who asked and why (at most MaxReason bytes)
}

// MaxReason bounds the reasons a command carries (Command.Reason,
// GateResult.Reason), and the member ids and platforms it lists.
const MaxReason = 256

var (
	// ErrTransition is wrapped by Apply's error for a command the state
	// does not allow (the state is unchanged): a gate while paused, a gate
	// of a wave that is not the open one, anything once terminal.
	ErrTransition = errors.New("rollout transition not allowed")
	// ErrBadCommand is wrapped by Apply's error for a command that is
	// malformed or inconsistent in itself (the state is unchanged): an
	// unknown op, no time, fields of another op, a reason too long, a
	// start that lists a member twice, a gate result that does not list
	// exactly the wave's members or whose Passed disagrees with its lists.
	ErrBadCommand = errors.New("bad rollout command")
)

// NewRollout returns the rollout of rel, in state staged, from previous,
// the version the site runs now ("" none). It checks that rel has a name,
// a semantic version and an id, that the policy is usable (waves or
// counts, a positive health timeout, a threshold in [0, 1], a security
// floor not above rel's version) and that previous is "" or a semantic
// version below rel's.
func NewRollout(rel content.Release, policy content.Rollout, previous string) (Rollout, error) {
	r := Rollout{Release: rel, Policy: clonePolicy(policy), Previous: previous, State: RolloutStaged}
	r.normalize()
	if err := r.validateHeader(); err != nil {
		return Rollout{}, fmt.Errorf("new rollout of %s: %w", rel, err)
	}
	return r, nil
}

// Clone returns a deep copy of r: it shares no slice or pointer with r.
func (r Rollout) Clone() Rollout {
	r.Policy = clonePolicy(r.Policy)
	if r.Waves != nil {
		ws := make([]Wave, len(r.Waves))
		for i, w := range r.Waves {
			ws[i] = w.clone()
		}
		r.Waves = ws
	}
	r.Excluded = slices.Clone(r.Excluded)
	return r
}

func (w Wave) clone() Wave {
	w.Members = slices.Clone(w.Members)
	if w.Gate != nil {
		g := w.Gate.clone()
		w.Gate = &g
	}
	return w
}

func (g GateResult) clone() GateResult {
	g.Healthy, g.Failed, g.NotReady = slices.Clone(g.Healthy), slices.Clone(g.Failed), slices.Clone(g.NotReady)
	return g
}

func clonePolicy(p content.Rollout) content.Rollout {
	p.Waves, p.Counts = slices.Clone(p.Waves), slices.Clone(p.Counts)
	return p
}

// normalize makes r's empty slices nil, as they decode (the encoding omits
// them), so that a replica that decodes the state reaches a value equal to
// one that does not.
func (r *Rollout) normalize() {
	r.Policy.Waves, r.Policy.Counts = nilIfEmpty(r.Policy.Waves), nilIfEmpty(r.Policy.Counts)
	r.Waves, r.Excluded = nilIfEmpty(r.Waves), nilIfEmpty(r.Excluded)
}

func nilIfEmpty[S ~[]E, E any](s S) S {
	if len(s) == 0 {
		return nil
	}
	return s
}

// CanRollBack reports whether Previous is set and not below the policy's
// security floor: whether a failed gate or an abort sends members back to
// Previous. A node never runs a version below the floor, even by rollback.
func (r Rollout) CanRollBack() bool {
	if r.Previous == "" {
		return false
	}
	if _, err := content.ParseVersion(r.Previous); err != nil {
		return false
	}
	if r.Policy.SecurityFloor == "" {
		return true
	}
	c, err := compareVersions(r.Previous, r.Policy.SecurityFloor)
	return err == nil && c >= 0
}

// compareVersions compares two semantic versions as semver orders them.
func compareVersions(a, b string) (int, error) {
	va, err := content.ParseVersion(a)
	if err != nil {
		return 0, err
	}
	vb, err := content.ParseVersion(b)
	if err != nil {
		return 0, err
	}
	return va.Compare(vb), nil
}

// allowed is how many members of a wave of n may fail (or not be ready)
// and its gate still pass: floor(FailureThreshold × n), with a little
// slack so that 0.1 × 30 is 3.
func (r Rollout) allowed(n int) int {
	return int(math.Floor(r.Policy.FailureThreshold*float64(n) + 1e-9))
}

// Action is what a member does with a rollout's release.
type Action int

const (
	ActionWait     Action = iota // nothing: keep running what it runs
	ActionActivate               // activate the release (it staged and verified it)
	ActionRollback               // return to the rollout's Previous version
)

var actionNames = [...]string{ActionWait: "wait", ActionActivate: "activate", ActionRollback: "rollback"}

// String returns the action's name ("rollback", say; "action(N)" for an
// unknown value).
func (a Action) String() string {
	if a >= 0 && int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// ActionFor says what member id should do now with r.Release:
//   - wave-open: activate if it is a member of an opened wave (0..Wave);
//   - done: activate, whether it was in a wave or not (a member that was
//     not alive and verified at the start, a late joiner, activates once
//     the rollout is done);
//   - rolled-back, aborted: roll back to Previous if CanRollBack, else
//     wait (a member that never activated runs Previous already);
//   - staged, paused, failed: wait.
//
// An excluded member always waits.
func (r Rollout) ActionFor(id string) Action {
	if id == "" || slices.ContainsFunc(r.Excluded, func(e Excluded) bool { return e.ID == id }) {
		return ActionWait
	}
	switch r.State {
	case RolloutWaveOpen:
		if w := r.waveOf(id); w >= 0 && w <= r.Wave {
			return ActionActivate
		}
	case RolloutDone:
		return ActionActivate
	case RolloutRolledBack, RolloutAborted:
		if r.CanRollBack() {
			return ActionRollback
		}
	}
	return ActionWait
}

// waveOf returns the index of id's wave, or -1.
func (r Rollout) waveOf(id string) int {
	for i, w := range r.Waves {
		if _, ok := slices.BinarySearch(w.Members, id); ok {
			return i
		}
	}
	return -1
}

// PlanWaves splits the members listed at a rollout's start into waves,
// each a sorted list of the ids it adds.
//
// A member whose platform is not in platforms (those the release has) is
// excluded, with a reason such as "platform linux/riscv64 is not in the
// release (linux/amd64, linux/arm64)"; the others, n of them, are eligible.
// An empty or duplicate id is an error.
//
// The eligible members are ordered by sha256(release id ‖ member id), so
// the canary changes from release to release while every replica computes
// the same. The policy gives cumulative counts: a percentage p is
// ceil(p·n/100) members; absolute Counts c are min(c, n), followed by a
// final wave of n. Each wave adds at least one member (its cumulative
// count is raised to the previous one's plus one) and at most up to n; a
// wave left with no new member is dropped; the last count is n. So 13
// members with waves 1, 10, 50, 100 % make waves of 1, 2, 7 and 13
// members cumulated; 10 members 1, 2, 5, 10; 2 members 1, 2. No eligible
// member, no wave.
func PlanWaves(policy content.Rollout, release content.ReleaseID, platforms []string, members []Member) (waves [][]string, excluded []Excluded, err error) {
	if err := validateWaves(policy); err != nil {
		return nil, nil, err
	}
	have := slices.Clone(platforms)
	slices.Sort(have)
	have = slices.Compact(have)
	seen := make(map[string]bool, len(members))
	type keyed struct {
		key [sha256.Size]byte
		id  string
	}
	var eligible []keyed
	for i, m := range members {
		switch {
		case m.ID == "":
			return nil, nil, fmt.Errorf("member %d has an empty id", i)
		case seen[m.ID]:
			return nil, nil, fmt.Errorf("member %q is listed twice", m.ID)
		}
		seen[m.ID] = true
		if _, ok := slices.BinarySearch(have, m.Platform); !ok {
			excluded = append(excluded, Excluded{ID: m.ID, Platform: m.Platform, Reason: notInRelease(m.Platform, have)})
			continue
		}
		eligible = append(eligible, keyed{waveKey(release, m.ID), m.ID})
	}
	slices.SortFunc(eligible, func(a, b keyed) int {
		if c := bytes.Compare(a.key[:], b.key[:]); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	slices.SortFunc(excluded, func(a, b Excluded) int { return strings.Compare(a.ID, b.ID) })
	prev := 0
	for _, c := range cumulativeCounts(policy, len(eligible)) {
		w := make([]string, 0, c-prev)
		for _, e := range eligible[prev:c] {
			w = append(w, e.id)
		}
		slices.Sort(w)
		waves = append(waves, w)
		prev = c
	}
	return waves, excluded, nil
}

// waveKey orders a release's eligible members: sha256(release id ‖ id).
func waveKey(release content.ReleaseID, id string) [sha256.Size]byte {
	h := sha256.New()
	h.Write(release[:])
	h.Write([]byte(id))
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// notInRelease says why a member of platform p is excluded from a release
// of the platforms have (sorted).
func notInRelease(p string, have []string) string {
	list := "none"
	if len(have) > 0 {
		list = strings.Join(have, ", ")
	}
	if p == "" {
		return "no platform reported; the release has " + list
	}
	return fmt.Sprintf("platform %s is not in the release (%s)", p, list)
}

// cumulativeCounts turns the policy's waves into strictly increasing
// cumulative member counts ending at n (see PlanWaves); none for n = 0.
func cumulativeCounts(policy content.Rollout, n int) []int {
	if n == 0 {
		return nil
	}
	var raw []int
	if len(policy.Counts) > 0 {
		for _, c := range policy.Counts {
			raw = append(raw, min(c, n))
		}
		raw = append(raw, n)
	} else {
		for _, p := range policy.Waves {
			raw = append(raw, (p*n+99)/100)
		}
	}
	raw[len(raw)-1] = n
	var out []int
	prev := 0
	for _, c := range raw {
		c = min(max(c, prev+1), n)
		if c <= prev {
			continue
		}
		out = append(out, c)
		prev = c
	}
	return out
}

// Apply applies a command to r and returns the new rollout, which shares
// no memory with r or c. A command the state does not allow gets an
// error wrapping ErrTransition, a malformed one an error wrapping
// ErrBadCommand; either names the op, the state and what was wrong, and
// comes with r unchanged. The rules:
//   - start, only in staged: PlanWaves over the command's members and
//     platforms; wave 0 opens at the command's time (StartedAt too), or,
//     with no eligible member, the rollout is done.
//   - gate, only in wave-open, of the open wave (c.Wave == r.Wave): the
//     result lists each of the wave's members exactly once, each list
//     sorted, and Passed is len(Failed)+len(NotReady) <= allowed, with
//     allowed = floor(FailureThreshold × the wave's size). Passed: the
//     next wave opens at the command's time, or the rollout is done after
//     the last. Not passed: rolled-back if CanRollBack, else failed, with
//     the result's reason.
//   - pause, in staged or wave-open: paused (PausedFrom remembers where).
//   - resume, only in paused: back where it paused; an open wave's
//     OpenedAt becomes the command's time, so its health clock restarts.
//   - abort, in staged, wave-open or paused: aborted.
//
// Every command needs a time (At), an op above and reasons of at most
// MaxReason bytes. Times are stored in UTC.
func (r Rollout) Apply(c Command) (Rollout, error) {
	fail := func(err error) (Rollout, error) {
		return r, fmt.Errorf("rollout %s in state %s: %w", truncate(string(c.Op), 32), truncate(string(r.State), 32), err)
	}
	if err := c.check(); err != nil {
		return fail(err)
	}
	n := r.Clone()
	var err error
	switch c.Op {
	case OpStart:
		err = n.start(c)
	case OpGate:
		err = n.gate(c)
	case OpPause:
		err = n.pause(c)
	case OpResume:
		err = n.resume(c)
	case OpAbort:
		err = n.abort(c)
	}
	if err != nil {
		return fail(err)
	}
	n.normalize()
	return n, nil
}

// check refuses what no state allows: an unknown op, no time, a reason
// too long, fields of another op.
func (c Command) check() error {
	switch {
	case c.At.IsZero():
		return fmt.Errorf("%w: no time (at)", ErrBadCommand)
	case len(c.Reason) > MaxReason:
		return fmt.Errorf("%w: reason of %d bytes, more than %d", ErrBadCommand, len(c.Reason), MaxReason)
	case !utf8.ValidString(c.Reason):
		return fmt.Errorf("%w: reason is not UTF-8", ErrBadCommand)
	}
	var extra string
	switch c.Op {
	case OpStart:
		extra = c.fieldsBut("members", "platforms")
	case OpGate:
		extra = c.fieldsBut("wave", "gate")
	case OpPause, OpResume, OpAbort:
		extra = c.fieldsBut("reason")
	default:
		return fmt.Errorf("%w: unknown op %q (want start, gate, pause, resume or abort)", ErrBadCommand, truncate(string(c.Op), 32))
	}
	if extra != "" {
		article := "a"
		if c.Op == OpAbort {
			article = "an"
		}
		return fmt.Errorf("%w: %s %s command carries no %s", ErrBadCommand, article, c.Op, extra)
	}
	return nil
}

// fieldsBut returns the first of c's op-specific fields, other than
// those allowed, that is set ("" none).
func (c Command) fieldsBut(allowed ...string) string {
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"members", len(c.Members) > 0},
		{"platforms", len(c.Platforms) > 0},
		{"wave", c.Wave != 0},
		{"gate", c.Gate != nil},
		{"reason", c.Reason != ""},
	} {
		if f.set && !slices.Contains(allowed, f.name) {
			return f.name
		}
	}
	return ""
}

// transitionf returns an error wrapping ErrTransition.
func transitionf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrTransition}, args...)...)
}

// badf returns an error wrapping ErrBadCommand.
func badf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadCommand}, args...)...)
}

func (r *Rollout) start(c Command) error {
	if r.State != RolloutStaged {
		return transitionf("start only in state staged")
	}
	for _, p := range c.Platforms {
		if err := content.ValidatePlatform(p); err != nil {
			return badf("platforms: %v", err)
		}
	}
	for i, m := range c.Members {
		if len(m.ID) > MaxReason || len(m.Platform) > MaxReason || !utf8.ValidString(m.ID) || !utf8.ValidString(m.Platform) {
			return badf("member %d: id or platform not UTF-8 or longer than %d bytes", i, MaxReason)
		}
	}
	waves, excluded, err := PlanWaves(r.Policy, r.Release.ID, c.Platforms, c.Members)
	if err != nil {
		return badf("%v", err)
	}
	at := c.At.UTC()
	r.Waves, r.Excluded, r.Wave, r.StartedAt = nil, excluded, 0, at
	for _, w := range waves {
		r.Waves = append(r.Waves, Wave{Members: w})
	}
	if len(r.Waves) == 0 {
		r.State, r.EndedAt = RolloutDone, at
		return nil
	}
	r.State, r.Waves[0].OpenedAt = RolloutWaveOpen, at
	return nil
}

func (r *Rollout) gate(c Command) error {
	switch {
	case r.State != RolloutWaveOpen:
		return transitionf("gate only in state wave-open")
	case r.Wave < 0 || r.Wave >= len(r.Waves):
		return transitionf("no wave %d (the rollout has %d)", r.Wave, len(r.Waves))
	case c.Wave != r.Wave:
		return transitionf("gate of wave %d, but wave %d is open", c.Wave, r.Wave)
	case c.Gate == nil:
		return badf("a gate command carries no result (gate)")
	case !c.Gate.At.IsZero() && !c.Gate.At.Equal(c.At):
		return badf("the result's time %s is not the command's %s", c.Gate.At.UTC().Format(time.RFC3339Nano), c.At.UTC().Format(time.RFC3339Nano))
	}
	members := r.Waves[r.Wave].Members
	if err := checkGateResult(*c.Gate, members, r.allowed(len(members))); err != nil {
		return badf("wave %d: %v", r.Wave, err)
	}
	at := c.At.UTC()
	g := c.Gate.clone()
	g.At = at
	g.Healthy, g.Failed, g.NotReady = nonNil(g.Healthy), nonNil(g.Failed), nonNil(g.NotReady)
	r.Waves[r.Wave].Gate = &g
	switch {
	case !g.Passed && r.CanRollBack():
		r.State, r.Reason, r.EndedAt = RolloutRolledBack, failedReason(g, r.Wave), at
	case !g.Passed:
		r.State, r.Reason, r.EndedAt = RolloutFailed, failedReason(g, r.Wave), at
	case r.Wave+1 == len(r.Waves):
		r.State, r.Wave, r.EndedAt = RolloutDone, r.Wave+1, at
	default:
		r.Wave++
		r.Waves[r.Wave].OpenedAt = at
	}
	return nil
}

// nonNil returns s, or an empty slice for nil: gate lists always encode
// as arrays, so that a decoded result equals the applied one.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func failedReason(g GateResult, wave int) string {
	if g.Reason != "" {
		return g.Reason
	}
	return fmt.Sprintf("the gate of wave %d failed", wave)
}

// checkGateResult checks that g lists each of members (sorted) exactly
// once, each list sorted, that Passed agrees with the lists and allowed,
// and that its reason is not too long.
func checkGateResult(g GateResult, members []string, allowed int) error {
	where := make(map[string]string, len(members))
	for _, l := range []struct {
		name string
		ids  []string
	}{{"healthy", g.Healthy}, {"failed", g.Failed}, {"not ready", g.NotReady}} {
		if !slices.IsSorted(l.ids) {
			return fmt.Errorf("the %s list is not sorted", l.name)
		}
		for _, id := range l.ids {
			if _, ok := slices.BinarySearch(members, id); !ok {
				return fmt.Errorf("%s member %q is not in the wave", l.name, truncate(id, 64))
			}
			if prev, dup := where[id]; dup {
				return fmt.Errorf("member %q is listed as %s and as %s", id, prev, l.name)
			}
			where[id] = l.name
		}
	}
	for _, id := range members {
		if where[id] == "" {
			return fmt.Errorf("member %q of the wave is in none of healthy, failed and not ready", id)
		}
	}
	if bad := len(g.Failed) + len(g.NotReady); g.Passed != (bad <= allowed) {
		return fmt.Errorf("passed is %v, but %d of %d members failed or are not ready, and %d may", g.Passed, bad, len(members), allowed)
	}
	if len(g.Reason) > MaxReason || !utf8.ValidString(g.Reason) {
		return fmt.Errorf("reason of %d bytes, not UTF-8 or more than %d", len(g.Reason), MaxReason)
	}
	return nil
}

func (r *Rollout) pause(c Command) error {
	if r.State != RolloutStaged && r.State != RolloutWaveOpen {
		return transitionf("pause only in state staged or wave-open")
	}
	r.PausedFrom, r.State, r.Reason = r.State, RolloutPaused, c.Reason
	return nil
}

func (r *Rollout) resume(c Command) error {
	switch {
	case r.State != RolloutPaused:
		return transitionf("resume only in state paused")
	case r.PausedFrom == RolloutWaveOpen && (r.Wave < 0 || r.Wave >= len(r.Waves)):
		return transitionf("no wave %d to resume (the rollout has %d)", r.Wave, len(r.Waves))
	case r.PausedFrom != RolloutStaged && r.PausedFrom != RolloutWaveOpen:
		return transitionf("paused from %q, which cannot be resumed", truncate(string(r.PausedFrom), 32))
	}
	if r.PausedFrom == RolloutWaveOpen {
		r.Waves[r.Wave].OpenedAt = c.At.UTC()
	}
	r.State, r.PausedFrom, r.Reason = r.PausedFrom, "", ""
	return nil
}

func (r *Rollout) abort(c Command) error {
	switch r.State {
	case RolloutStaged, RolloutWaveOpen, RolloutPaused:
	default:
		return transitionf("abort only in state staged, wave-open or paused")
	}
	reason := c.Reason
	if reason == "" {
		reason = "aborted by the operator"
	}
	r.State, r.PausedFrom, r.Reason, r.EndedAt = RolloutAborted, "", reason, c.At.UTC()
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Validate checks that r, decoded from a snapshot say, is a rollout that
// Apply could have reached: the release, policy and previous version that
// NewRollout checks; a known state; a wave index in range; the gates
// taken so far consistent with the state (every wave before the open one
// passed, none after it taken); wave members sorted and unique across
// waves and exclusions; times set where the state needs them.
func (r Rollout) Validate() error {
	if err := r.validateHeader(); err != nil {
		return fmt.Errorf("rollout of %s: %w", r.Release, err)
	}
	if err := r.validateProgress(); err != nil {
		return fmt.Errorf("rollout of %s in state %s: %w", r.Release, r.State, err)
	}
	if err := r.validateMembers(); err != nil {
		return fmt.Errorf("rollout of %s: %w", r.Release, err)
	}
	return nil
}

// validateHeader checks what NewRollout sets and the state's name.
func (r Rollout) validateHeader() error {
	var zero content.ReleaseID
	if err := content.ValidateName(r.Release.Name); err != nil {
		return err
	}
	if _, err := content.ParseVersion(r.Release.Version); err != nil {
		return err
	}
	if r.Release.ID == zero {
		return errors.New("the release has no id")
	}
	if err := validatePolicy(r.Policy, r.Release.Version); err != nil {
		return err
	}
	if r.Previous != "" {
		c, err := compareVersions(r.Previous, r.Release.Version)
		if err != nil {
			return fmt.Errorf("previous: %w", err)
		}
		if c >= 0 {
			return fmt.Errorf("previous version %s is not below the release's %s", r.Previous, r.Release.Version)
		}
	}
	switch {
	case !r.State.known():
		return fmt.Errorf("unknown state %q", truncate(string(r.State), 32))
	case (r.State == RolloutPaused) != (r.PausedFrom != ""):
		return fmt.Errorf("state %s paused from %q", r.State, truncate(string(r.PausedFrom), 32))
	case r.State == RolloutPaused && r.PausedFrom != RolloutStaged && r.PausedFrom != RolloutWaveOpen:
		return fmt.Errorf("paused from %q, which cannot pause", truncate(string(r.PausedFrom), 32))
	case len(r.Reason) > MaxReason:
		return fmt.Errorf("reason of %d bytes, more than %d", len(r.Reason), MaxReason)
	case r.State.Terminal() == r.EndedAt.IsZero():
		return fmt.Errorf("state %s with end time %q", r.State, r.EndedAt.Format(time.RFC3339Nano))
	}
	return nil
}

// validatePolicy checks the parts of a rollout policy that the state
// machine relies on (the signed manifest's validation checks them all).
func validatePolicy(p content.Rollout, version string) error {
	if err := validateWaves(p); err != nil {
		return err
	}
	switch {
	case p.HealthTimeout <= 0:
		return fmt.Errorf("policy: health timeout %s is not positive", time.Duration(p.HealthTimeout))
	case p.Soak < 0:
		return fmt.Errorf("policy: soak %s is negative", time.Duration(p.Soak))
	case !(p.FailureThreshold >= 0 && p.FailureThreshold <= 1):
		return fmt.Errorf("policy: failure threshold %v out of range [0, 1]", p.FailureThreshold)
	case p.SecurityFloor == "":
		return nil
	}
	c, err := compareVersions(p.SecurityFloor, version)
	if err != nil {
		return fmt.Errorf("policy: security floor: %w", err)
	}
	if c > 0 {
		return fmt.Errorf("policy: security floor %s is above the release's version %s", p.SecurityFloor, version)
	}
	return nil
}

// validateWaves checks that the policy gives its waves one way:
// increasing percentages ending at 100, or increasing positive counts.
func validateWaves(p content.Rollout) error {
	ws, limit, what := p.Waves, 100, "%"
	switch {
	case len(p.Waves) > 0 && len(p.Counts) > 0:
		return errors.New("policy: waves given both as percentages and as counts")
	case len(p.Counts) > 0:
		ws, limit, what = p.Counts, 1<<20, " members"
	case len(p.Waves) == 0:
		return errors.New("policy: no waves")
	}
	prev := 0
	for i, w := range ws {
		if w <= prev || w > limit {
			return fmt.Errorf("policy: wave %d is %d%s; waves must increase within 1..%d", i, w, what, limit)
		}
		prev = w
	}
	if len(p.Counts) == 0 && prev != 100 {
		return fmt.Errorf("policy: the last wave is %d%%, want 100", prev)
	}
	return nil
}

// validateProgress checks the wave index, gates and times against the
// state (where it paused, for a paused rollout).
func (r Rollout) validateProgress() error {
	st := r.State
	if st == RolloutPaused {
		st = r.PausedFrom
	}
	started := len(r.Waves) > 0 || !r.StartedAt.IsZero()
	switch {
	case st == RolloutStaged || st == RolloutAborted && !started:
		if started || r.Wave != 0 || len(r.Excluded) > 0 {
			return errors.New("not started, but it has waves, exclusions, a start time or a wave index")
		}
		return nil
	case r.StartedAt.IsZero():
		return errors.New("started, but with no start time")
	case st == RolloutDone && r.Wave != len(r.Waves):
		return fmt.Errorf("done at wave %d of %d", r.Wave, len(r.Waves))
	case st != RolloutDone && (r.Wave < 0 || r.Wave >= len(r.Waves)):
		return fmt.Errorf("wave %d out of range [0, %d)", r.Wave, len(r.Waves))
	}
	for i, w := range r.Waves {
		if err := r.validateWave(st, i, w); err != nil {
			return fmt.Errorf("wave %d: %w", i, err)
		}
	}
	if st == RolloutRolledBack && !r.CanRollBack() || st == RolloutFailed && r.CanRollBack() {
		return fmt.Errorf("%s, but CanRollBack is %v", st, r.CanRollBack())
	}
	return nil
}

// validateWave checks wave i's open time and gate in (effective) state st.
func (r Rollout) validateWave(st RolloutState, i int, w Wave) error {
	opened, gated := i <= r.Wave, i < r.Wave
	if st == RolloutRolledBack || st == RolloutFailed {
		gated = i <= r.Wave
	}
	switch {
	case opened == w.OpenedAt.IsZero():
		return fmt.Errorf("open time %q, but the rollout is at wave %d", w.OpenedAt.Format(time.RFC3339Nano), r.Wave)
	case gated != (w.Gate != nil):
		return fmt.Errorf("gate taken: %v, but the rollout is at wave %d", w.Gate != nil, r.Wave)
	case w.Gate == nil:
		return nil
	case w.Gate.At.IsZero():
		return errors.New("gate without a time")
	case w.Gate.Passed != (i < r.Wave):
		return fmt.Errorf("gate passed: %v, but the rollout is %s at wave %d", w.Gate.Passed, st, r.Wave)
	}
	return checkGateResult(*w.Gate, w.Members, r.allowed(len(w.Members)))
}

// validateMembers checks that every wave has members, sorted, and that no
// member is in two waves or both in a wave and excluded.
func (r Rollout) validateMembers() error {
	seen := map[string]bool{}
	for i, w := range r.Waves {
		if len(w.Members) == 0 {
			return fmt.Errorf("wave %d has no members", i)
		}
		for j, id := range w.Members {
			switch {
			case id == "":
				return fmt.Errorf("wave %d: member %d has an empty id", i, j)
			case j > 0 && id <= w.Members[j-1]:
				return fmt.Errorf("wave %d: members not sorted at %q", i, id)
			case seen[id]:
				return fmt.Errorf("member %q is in two waves", id)
			}
			seen[id] = true
		}
	}
	for i, e := range r.Excluded {
		switch {
		case e.ID == "":
			return fmt.Errorf("excluded member %d has an empty id", i)
		case i > 0 && e.ID <= r.Excluded[i-1].ID:
			return fmt.Errorf("excluded members not sorted at %q", e.ID)
		case seen[e.ID]:
			return fmt.Errorf("member %q is both in a wave and excluded", e.ID)
		}
	}
	return nil
}
