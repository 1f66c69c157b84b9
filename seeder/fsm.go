package seeder

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/Masterminds/semver/v3"
	"github.com/hashicorp/raft"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/deploy"
)

// ErrRefused is wrapped by the Apply response of a command that decoded but
// that the site state refuses (a lower version, a stale term, …). The entry
// is in the log and applied everywhere alike: it changed nothing.
var ErrRefused = errors.New("refused by the site state")

// SiteState is what the site has decided. It is a value: State returns a
// copy.
type SiteState struct {
	// Target is the release the site moves to; nil until one is staged.
	Target *Target `json:"target"`
	// Rollout is the target's rollout once it started (a leader's
	// CmdRollout start); nil before, and when the target changed since.
	Rollout *deploy.Rollout `json:"rollout,omitempty"`
	// Running is the release whose rollout last completed: what the site
	// runs, and what a rollback returns to. Zero until one completed.
	Running content.Release `json:"running,omitzero"`
	// Index is the Raft index of the last command the FSM applied
	// (refused and undecodable commands included; configuration entries,
	// which the FSM does not see, excluded).
	Index uint64 `json:"index"`
}

// Target is the staged release.
type Target struct {
	content.Release
	// StagedAt is the Raft index of the command that staged it.
	StagedAt uint64 `json:"staged_at"`
	// Term is the term of the leader that staged it: an action taken for
	// this target by a leader of an older term is stale.
	Term uint64 `json:"term"`
}

// ApplyResult is the Apply response of a command the FSM accepted.
type ApplyResult struct {
	Index   uint64 // the command's Raft index
	Changed bool   // false when the command was a no-op (the same release staged again)
}

// FSM is the Raft state machine of a site's decisions: the target release
// and its rollout; the admitted set in a later issue. It never
// holds per-node chatter (progress, health), which travels by gossip.
//
// The contract with hashicorp/raft (STYLE.md 5):
//   - Apply is deterministic: its result depends only on the state and the
//     log entry (its data, index and term), never on the clock, randomness,
//     the node or I/O. Every replica that applies the same log reaches the
//     same state and returns the same responses.
//   - Apply never panics on bad input. A command that does not decode gets
//     an error wrapping ErrBadCommand as its response, one the state refuses
//     an error wrapping ErrRefused; neither changes the target.
//   - Snapshot copies the state (it is small) and Persist writes it; Apply
//     may run while Persist does.
//   - Restore replaces the whole state with a snapshot's, or fails and
//     leaves it as it was.
//
// The rules for CmdStageRelease, in order:
//   - Fencing: the command's Term must equal the term of the log entry,
//     that is, the term of the leader that appended it. Raft already drops
//     a deposed leader's proposals that did not reach a quorum, and lets
//     those that did commit as that leader's (whose decisions they were).
//     What Raft cannot see is a decision made from a stale view: a leader
//     reads the state in term T, loses leadership, wins again in term T+2
//     and proposes; Raft appends it in T+2 while it was decided in T. The
//     carried Term lets the FSM refuse it. The target also records its term
//     so that what a leader does for a target (fetches, waves) can be fenced
//     against it.
//   - Staging the release that is the target already (same ID) is a no-op;
//     the same ID with another name or version is refused as inconsistent.
//   - A site has one release name: staging another name is refused.
//   - A version below the target's is refused, and so is the target's
//     version under another ID. A higher version becomes the target, and
//     supersedes the rollout of the one before: its own rollout starts
//     from the release the site runs (Running), so members that activated
//     the superseded release move on to the new one in their wave, or
//     back to Running if the new one is rolled back.
//
// The rules for CmdRollout:
//   - Fencing as for CmdStageRelease: the command's term must be its log
//     entry's, so a new leader continues the same rollout with its own
//     decisions and a deposed one's stale decision is refused.
//   - The command names the target's release id, or it is refused.
//   - A start creates the rollout (deploy.NewRollout) from the policy it
//     carries, with the running release as what a rollback returns to, and
//     applies it; every other op applies to the started rollout. What
//     deploy.Rollout.Apply refuses is refused, so the FSM inherits its
//     guarantees: no wave before the previous passed its gate, and so on.
//   - A rollout that ends done makes its release the site's running one.
//
// State and Changes are safe for concurrent use with everything else.
type FSM struct {
	changes chan struct{}

	mu    sync.Mutex
	state SiteState // Target is never shared: copied in and out
}

var _ raft.FSM = (*FSM)(nil)

// NewFSM returns an FSM with no target.
func NewFSM() *FSM {
	return &FSM{changes: make(chan struct{}, 1)}
}

// State returns a copy of the current site state.
func (f *FSM) State() SiteState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state.clone()
}

// Changes returns a channel that receives a value after the state changes
// (a command applied, accepted or not, or a snapshot restored). Signals
// collapse: one value may stand for many changes, so a receiver re-reads
// State. There is one channel per FSM: give it one consumer.
func (f *FSM) Changes() <-chan struct{} { return f.changes }

func (f *FSM) notify() {
	select {
	case f.changes <- struct{}{}:
	default:
	}
}

// Apply applies a committed log entry (raft.FSM). Its response is an
// ApplyResult, or an error wrapping ErrBadCommand or ErrRefused.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil // raft hands the FSM only commands; be safe anyway
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.notify()
	f.state.Index = l.Index
	kind, body, err := DecodeCommand(l.Data)
	if err != nil {
		return fmt.Errorf("raft index %d: %w", l.Index, err)
	}
	switch kind {
	case CmdStageRelease:
		s := body.(StageRelease) // DecodeCommand's contract
		changed, err := f.stageLocked(s, l)
		if err != nil {
			return fmt.Errorf("raft index %d: stage %s %s (%s): %w", l.Index, s.Name, s.Version, s.ID.Short(), err)
		}
		return ApplyResult{Index: l.Index, Changed: changed}
	case CmdRollout:
		c := body.(RolloutCommand) // DecodeCommand's contract
		if err := f.rolloutLocked(c, l); err != nil {
			return fmt.Errorf("raft index %d: rollout %s: %w", l.Index, c.Op, err)
		}
		return ApplyResult{Index: l.Index, Changed: true}
	}
	// DecodeCommand returns only kinds handled above.
	return fmt.Errorf("raft index %d: %s command: not applicable: %w", l.Index, kind, ErrBadCommand)
}

// stageLocked applies the CmdStageRelease rules (see FSM).
func (f *FSM) stageLocked(s StageRelease, l *raft.Log) (changed bool, err error) {
	if s.Term != l.Term {
		return false, fmt.Errorf("decided in term %d but appended in term %d, a stale decision: %w", s.Term, l.Term, ErrRefused)
	}
	t := f.state.Target
	if t != nil {
		if s.ID == t.ID {
			if s.Name != t.Name || s.Version != t.Version {
				return false, fmt.Errorf("release id is the target's, staged as %s %s: %w", t.Name, t.Version, ErrRefused)
			}
			return false, nil
		}
		if s.Name != t.Name {
			return false, fmt.Errorf("the site's release is %s: %w", t.Name, ErrRefused)
		}
		// Both versions were validated on their way in.
		cur, err1 := semver.StrictNewVersion(t.Version)
		v, err2 := semver.StrictNewVersion(s.Version)
		if err1 != nil || err2 != nil {
			return false, fmt.Errorf("version: %w", errors.Join(err1, err2, ErrBadCommand))
		}
		switch c := v.Compare(cur); {
		case c < 0:
			return false, fmt.Errorf("version is below the target %s: %w", t.Version, ErrRefused)
		case c == 0:
			return false, fmt.Errorf("version %s is staged already as release %s: %w", t.Version, t.ID.Short(), ErrRefused)
		}
	}
	f.state.Target = &Target{Release: s.Release, StagedAt: l.Index, Term: s.Term}
	f.state.Rollout = nil
	return true, nil
}

// rolloutLocked applies the CmdRollout rules (see FSM).
func (f *FSM) rolloutLocked(c RolloutCommand, l *raft.Log) error {
	if c.Term != l.Term {
		return fmt.Errorf("decided in term %d but appended in term %d, a stale decision: %w", c.Term, l.Term, ErrRefused)
	}
	t := f.state.Target
	if t == nil || t.ID != c.Release {
		return fmt.Errorf("release %s is not the target: %w", c.Release.Short(), ErrRefused)
	}
	r := f.state.Rollout
	if c.Op == deploy.OpStart {
		if r != nil {
			return fmt.Errorf("the rollout of %s started already: %w", t.Release, ErrRefused)
		}
		nr, err := deploy.NewRollout(t.Release, *c.Policy, previousOf(f.state))
		if err != nil {
			return fmt.Errorf("%w: %w", err, ErrRefused)
		}
		r = &nr
	} else if r == nil {
		return fmt.Errorf("the rollout of %s has not started: %w", t.Release, ErrRefused)
	}
	next, err := r.Apply(c.Command)
	if err != nil {
		return fmt.Errorf("%w: %w", err, ErrRefused)
	}
	f.state.Rollout = &next
	if next.State == deploy.RolloutDone {
		f.state.Running = t.Release
	}
	return nil
}

// The snapshot format: one JSON object, snapshotFile, of at most
// maxSnapshotSize bytes. Format 2 adds the rollout and the running
// release; format 1, which has neither, is still read.
const (
	snapshotFormat   = 2
	snapshotFormatV1 = 1
	maxSnapshotSize  = 64 << 20
)

type snapshotFile struct {
	Format int `json:"format"`
	SiteState
}

// Snapshot returns a copy of the state for raft to persist (raft.FSM).
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return fsmSnapshot{f.State()}, nil
}

// Restore replaces the state with the snapshot's (raft.FSM). raft closes
// rc. A snapshot that does not decode leaves the state as it was.
func (f *FSM) Restore(rc io.ReadCloser) error {
	st, err := readSnapshot(rc)
	if err != nil {
		return fmt.Errorf("restore site state: %w", err)
	}
	f.mu.Lock()
	f.state = st
	f.mu.Unlock()
	f.notify()
	return nil
}

func readSnapshot(r io.Reader) (SiteState, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxSnapshotSize+1))
	if err != nil {
		return SiteState{}, fmt.Errorf("read snapshot: %w", err)
	}
	if len(b) > maxSnapshotSize {
		return SiteState{}, fmt.Errorf("snapshot exceeds %d bytes", maxSnapshotSize)
	}
	var s snapshotFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return SiteState{}, fmt.Errorf("decode snapshot: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return SiteState{}, errors.New("decode snapshot: trailing data")
	}
	if s.Format != snapshotFormat && s.Format != snapshotFormatV1 {
		return SiteState{}, fmt.Errorf("snapshot format %d, this seeder reads formats %d and %d", s.Format, snapshotFormatV1, snapshotFormat)
	}
	if s.Format == snapshotFormatV1 && (s.Rollout != nil || !s.Running.IsZero()) {
		return SiteState{}, errors.New("a format 1 snapshot has no rollout or running release")
	}
	if err := checkSnapshotRollout(s.SiteState); err != nil {
		return SiteState{}, err
	}
	if t := s.Target; t != nil {
		sr := StageRelease{Release: t.Release, Term: t.Term}
		if err := sr.validate(); err != nil {
			return SiteState{}, fmt.Errorf("snapshot target: %w", err)
		}
		if t.StagedAt == 0 || t.StagedAt > s.Index {
			return SiteState{}, fmt.Errorf("snapshot target staged at index %d, the snapshot is at index %d", t.StagedAt, s.Index)
		}
	}
	return s.SiteState, nil
}

// checkSnapshotRollout checks that a snapshot's rollout is consistent and
// is the target's.
func checkSnapshotRollout(s SiteState) error {
	if s.Rollout == nil {
		return nil
	}
	if s.Target == nil || s.Rollout.Release != s.Target.Release {
		return errors.New("snapshot rollout is not the target's")
	}
	if err := s.Rollout.Validate(); err != nil {
		return fmt.Errorf("snapshot rollout: %w", err)
	}
	return nil
}

type fsmSnapshot struct{ state SiteState }

// Persist writes the snapshot to sink and closes it, or cancels it on error.
func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	b, err := json.Marshal(snapshotFile{Format: snapshotFormat, SiteState: s.state})
	if err == nil {
		_, err = sink.Write(b)
	}
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist site state: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("persist site state: %w", err)
	}
	return nil
}

func (fsmSnapshot) Release() {}

func (s SiteState) clone() SiteState {
	if s.Target != nil {
		t := *s.Target
		s.Target = &t
	}
	if s.Rollout != nil {
		r := s.Rollout.Clone()
		s.Rollout = &r
	}
	return s
}
