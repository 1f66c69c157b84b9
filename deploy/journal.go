package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/meshcast/meshcast/content"
)

// The activation journal, Dir/journal, is what lets a node that lost
// power or was killed at any point find itself on the old release or on
// the new one, complete, and finish or undo what it was doing. Every
// step of an activation or a rollback appends a record and makes it
// durable (fsync) before the next step starts.
//
// Format, version 1: one JSON object per line, each with "v": 1 and a
// "step"; "time" is when it was written (RFC 3339, UTC). The other fields
// depend on the step:
//
//	begin          version, from      an activation of version starts; from runs ("" nothing)
//	pre-activated  version            its pre-activate hook succeeded
//	switched       version            `current` points at version
//	activated      version            its activate hook succeeded
//	committed      version, from      version proved healthy; it runs, from before it
//	failed         version, reason    the activation failed before the switch; from still runs
//	abandoned      version, reason    it stopped before the switch without failing (a restart,
//	                                  a cancelled context); from still runs
//	rollback-begin version, from,     a rollback to version starts, leaving from (what `current`
//	               reason             points at); it ends the pending activation, if any
//	rolled-back    version, from,     `current` points at version again and the rollback hook ran
//	               reason
//	boot           version, boots     the node started boots times inside version's uncommitted
//	                                  activation (after its switch)
//	floor          floor              the highest security floor seen is now floor
//	state          version, from,     a compacted journal's first record: version runs, from ran
//	               floor, phase,      before it, the phase and the reason of the last activation
//	               reason
//
// Any record may carry "floor". A record counts once its line, newline
// included, is on disk: a torn last line (a crash in the middle of a
// write, which the step after it never followed) is dropped, and cut off
// before the next append. Any other line that does not decode is an error naming it.
// After a committed, failed, abandoned or rolled-back record the journal
// is compacted: a state record alone is written to a temporary file,
// synced, renamed over the journal and the directory synced.
//
// Only version 1 exists. A later version adds fields or steps under a new
// "v"; this reader refuses records of a version it does not know, and a
// newer reader keeps reading version 1 (testdata/journal-v1.golden pins
// it).
const journalVersion = 1

// Journal steps; CrashHook receives them.
const (
	stepBegin         = "begin"
	stepPreActivated  = "pre-activated"
	stepSwitched      = "switched"
	stepActivated     = "activated"
	stepCommitted     = "committed"
	stepFailed        = "failed"
	stepAbandoned     = "abandoned"
	stepRollbackBegin = "rollback-begin"
	stepRolledBack    = "rolled-back"
	stepBoot          = "boot"
	stepFloor         = "floor"
	stepState         = "state"
)

// activationSteps are the steps of an activation before its commit, in
// order.
var activationSteps = []string{stepBegin, stepPreActivated, stepSwitched, stepActivated}

// stepIndex is a step's position in activationSteps, -1 for others.
func stepIndex(step string) int {
	for i, s := range activationSteps {
		if s == step {
			return i
		}
	}
	return -1
}

// record is one line of the journal.
type record struct {
	V       int       `json:"v"`
	Step    string    `json:"step"`
	Time    time.Time `json:"time"`
	Version string    `json:"version,omitempty"`
	From    string    `json:"from,omitempty"`
	Floor   string    `json:"floor,omitempty"`
	Boots   int       `json:"boots,omitempty"`
	Phase   Phase     `json:"phase,omitzero"`
	Reason  string    `json:"reason,omitempty"`
	// Last, in a state record, is the version Phase and Reason are about.
	Last string `json:"last,omitempty"`
}

// encode returns the record's line, newline included.
func (r record) encode() ([]byte, error) {
	r.V = journalVersion
	r.Time = r.Time.UTC()
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// decodeRecord decodes one line and checks its version and step.
func decodeRecord(line []byte) (record, error) {
	var r record
	if err := json.Unmarshal(line, &r); err != nil {
		return r, err
	}
	if r.V != journalVersion {
		return r, fmt.Errorf("record version %d; this meshcast reads version %d", r.V, journalVersion)
	}
	if !knownStep(r.Step) {
		return r, fmt.Errorf("unknown step %q", r.Step)
	}
	return r, nil
}

func knownStep(s string) bool {
	switch s {
	case stepBegin, stepPreActivated, stepSwitched, stepActivated, stepCommitted, stepFailed, stepAbandoned,
		stepRollbackBegin, stepRolledBack, stepBoot, stepFloor, stepState:
		return true
	}
	return false
}

// terminal says whether a step ends an activation or a rollback, after
// which the journal is compacted.
func terminal(step string) bool {
	switch step {
	case stepCommitted, stepFailed, stepAbandoned, stepRolledBack:
		return true
	}
	return false
}

// ErrJournal means the activation journal cannot be read: a line other
// than the last does not decode, or the records do not follow each other
// as an activation writes them. The error names the file and the line.
var ErrJournal = errors.New("bad activation journal")

// decodeJournal decodes a journal's bytes. It returns the records and the
// length of the part that holds them: a torn last line is not part of
// it.
func decodeJournal(b []byte) ([]record, int, error) {
	var recs []record
	good, lineNo := 0, 0
	for off := 0; off < len(b); {
		lineNo++
		end := bytes.IndexByte(b[off:], '\n')
		if end < 0 {
			break // torn by a crash in the middle of a write: the record never counted
		}
		line := b[off : off+end]
		off += end + 1
		r, err := decodeRecord(line)
		if err != nil {
			if off == len(b) {
				break // torn too: the file grew, its bytes did not all reach the disk
			}
			return nil, 0, fmt.Errorf("%w: line %d: %v", ErrJournal, lineNo, err)
		}
		recs = append(recs, r)
		good = off
	}
	return recs, good, nil
}

// journal is the activation journal on disk. It holds no descriptor
// between appends: activations are rare, and an Activator needs no Close.
type journal struct {
	path  string
	crash func(step string) // ActivatorConfig.CrashHook
}

// read returns the journal's records, cutting a torn last line off the
// file.
func (j *journal) read() ([]record, error) {
	b, err := os.ReadFile(j.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	recs, good, err := decodeJournal(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", j.path, err)
	}
	if good < len(b) {
		if err := truncateSync(j.path, int64(good)); err != nil {
			return nil, fmt.Errorf("cut the torn end of %s: %w", j.path, err)
		}
	}
	return recs, nil
}

func truncateSync(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	return f.Sync()
}

// append writes r at the end of the journal and makes it durable.
func (j *journal) append(r record) error {
	line, err := r.encode()
	if err != nil {
		return fmt.Errorf("journal %s: %w", r.Step, err)
	}
	_, statErr := os.Lstat(j.path)
	f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("journal %s: %w", r.Step, err)
	}
	_, err = f.Write(line)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && statErr != nil {
		err = content.SyncDir(filepath.Dir(j.path)) // the journal's own name
	}
	if err != nil {
		return fmt.Errorf("journal %s: %w", r.Step, err)
	}
	j.crashPoint(r.Step)
	return nil
}

// compact replaces the journal with r, a state record.
func (j *journal) compact(r record) error {
	line, err := r.encode()
	if err != nil {
		return fmt.Errorf("compact journal: %w", err)
	}
	if err := writeFileAtomic(j.path, line, 0o644, true); err != nil {
		return fmt.Errorf("compact journal: %w", err)
	}
	j.crashPoint(r.Step)
	return nil
}

func (j *journal) crashPoint(step string) {
	if j.crash != nil {
		j.crash(step)
	}
}

// writeFileAtomic writes b to a temporary sibling of path and renames it
// over path; durable makes both the file and the rename durable.
func writeFileAtomic(path string, b []byte, perm os.FileMode, durable bool) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+tmpInfix+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the rename, nothing
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if durable {
		return content.SyncDir(dir)
	}
	return nil
}

// tmpInfix marks the temporary files of the releases directory
// (current.tmp-…, journal.tmp-…), which OpenActivator removes.
const tmpInfix = ".tmp-"

// journalState is what the journal says, replayed record by record.
type journalState struct {
	Running  string // settled: what runs when nothing is pending
	Previous string // what ran before Running
	Floor    string // highest security floor seen
	Phase    Phase  // of the last activation or rollback that ended
	Err      string // why it failed or rolled back
	Last     string // the version Phase and Err are about: activated, failed, or rolled back from
	Pending  *pending
}

// pending is an activation or a rollback that has begun and not ended.
type pending struct {
	Version  string // being activated, or rolled back to
	From     string // what ran when it began
	Step     string // its last step
	Boots    int    // starts since its switch
	Rollback bool
	Reason   string // a rollback's
}

// replay applies recs to a zero state.
func replay(recs []record) (journalState, error) {
	var s journalState
	for i, r := range recs {
		if err := s.apply(r); err != nil {
			return s, fmt.Errorf("%w: record %d (%s): %v", ErrJournal, i+1, r.Step, err)
		}
	}
	return s, nil
}

// apply changes the state as r says.
func (s *journalState) apply(r record) error {
	if err := s.raiseFloor(r.Floor); err != nil {
		return err
	}
	p := s.Pending
	switch r.Step {
	case stepFloor:
	case stepState:
		*s = journalState{Running: r.Version, Previous: r.From, Floor: s.Floor, Phase: r.Phase, Err: r.Reason, Last: r.Last}
	case stepBegin:
		if p != nil {
			return fmt.Errorf("begins %s while %s is pending", r.Version, p.Version)
		}
		s.Pending = &pending{Version: r.Version, From: r.From, Step: r.Step}
	case stepPreActivated, stepSwitched, stepActivated, stepBoot:
		if err := p.check(r); err != nil {
			return err
		}
		p.Step, p.Boots = stepIfActivation(r.Step, p.Step), max(p.Boots, r.Boots)
	case stepCommitted, stepFailed, stepAbandoned:
		if err := p.check(r); err != nil {
			return err
		}
		s.settle(r, p)
	case stepRollbackBegin:
		s.Pending = &pending{Version: r.Version, From: r.From, Step: r.Step, Rollback: true, Reason: r.Reason}
	case stepRolledBack:
		s.Pending = nil
		s.Running, s.Previous, s.Phase, s.Err, s.Last = r.Version, r.From, PhaseRolledBack, r.Reason, r.From
	}
	return nil
}

// stepIfActivation is the last step of an activation after step: a boot
// record leaves it as it was.
func stepIfActivation(step, was string) string {
	if step == stepBoot {
		return was
	}
	return step
}

// check checks that r continues the pending activation p.
func (p *pending) check(r record) error {
	switch {
	case p == nil:
		return fmt.Errorf("no activation of %s is pending", r.Version)
	case p.Rollback:
		return fmt.Errorf("a rollback to %s is pending, not an activation", p.Version)
	case p.Version != r.Version:
		return fmt.Errorf("the pending activation is of %s, not %s", p.Version, r.Version)
	}
	return nil
}

// settle ends the pending activation p as r says.
func (s *journalState) settle(r record, p *pending) {
	s.Pending = nil
	switch r.Step {
	case stepCommitted:
		s.Running, s.Previous, s.Phase, s.Err, s.Last = p.Version, p.From, PhaseHealthy, "", p.Version
	case stepFailed:
		s.Phase, s.Err, s.Last = PhaseFailed, r.Reason, p.Version
	}
}

// raiseFloor makes floor the floor if it is higher.
func (s *journalState) raiseFloor(floor string) error {
	higher, err := floorAbove(floor, s.Floor)
	if err != nil {
		return err
	}
	if higher {
		s.Floor = floor
	}
	return nil
}

// floorAbove says whether floor is set and above was.
func floorAbove(floor, was string) (bool, error) {
	if floor == "" {
		return false, nil
	}
	f, err := content.ParseVersion(floor)
	if err != nil {
		return false, fmt.Errorf("security floor: %w", err)
	}
	if was == "" {
		return true, nil
	}
	w, err := content.ParseVersion(was)
	if err != nil {
		return false, fmt.Errorf("security floor: %w", err)
	}
	return f.GreaterThan(w), nil
}

// stateRecord is the record a compacted journal holds for s.
func (s *journalState) stateRecord(now time.Time) record {
	return record{Step: stepState, Time: now, Version: s.Running, From: s.Previous, Floor: s.Floor, Phase: s.Phase, Reason: s.Err, Last: s.Last}
}
