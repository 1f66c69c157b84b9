package deploy

import (
	"context"
	"fmt"
	"os"
)

// open recovers the releases directory; see OpenActivator.
func (a *Activator) open() error {
	if err := os.MkdirAll(a.cfg.Dir, 0o755); err != nil {
		return err
	}
	removeLeftovers(a.cfg.Dir, a.log)
	recs, err := a.journal.read()
	if err != nil {
		return err
	}
	if a.st, err = replay(recs); err != nil {
		return fmt.Errorf("%s: %w", a.journal.path, err)
	}
	if err := a.reconcileCurrent(); err != nil {
		return err
	}
	return a.recover()
}

// expected is the version the journal says `current` points at.
func (s *journalState) expected() string {
	p := s.Pending
	switch {
	case p == nil:
		return s.Running
	case p.Rollback, stepIndex(p.Step) >= stepIndex(stepSwitched):
		return p.Version
	}
	return p.From
}

// reconcileCurrent makes `current` valid. A symlink to a complete
// release stays (the switch is atomic: it is the old release or the new
// one); a dangling, foreign or missing one is pointed where the journal
// says, or removed when that release is not there.
func (a *Activator) reconcileCurrent() error {
	cur, state := readCurrent(a.cfg.Dir)
	want := a.st.expected()
	switch {
	case state == linkValid:
		if a.st.Pending == nil && cur != want {
			a.log.Warn("current points at a version the journal does not name; keeping it", "current", cur, "journal", want)
		}
		a.running = cur
		return nil
	case state == linkMissing && want == "":
		return nil
	case want != "" && a.Installed(want):
		a.log.Warn("current repointed from the journal", "version", want)
	default:
		a.log.Error("current is invalid and the journal names no installed release: removed", "journal", want)
		want = ""
	}
	if err := a.setCurrent(want); err != nil {
		return fmt.Errorf("repoint current: %w", err)
	}
	return nil
}

// recover finishes what the journal says was under way.
func (a *Activator) recover() error {
	if a.st.Pending == nil {
		return nil
	}
	p := *a.st.Pending
	switch {
	case p.Rollback:
		a.log.Warn("finishing an interrupted rollback", "to", p.Version, "from", p.From)
		if done, err := a.rollBack(context.Background(), p.Version, p.From, p.Reason, true); !done {
			return err
		}
		return nil
	case a.running == p.Version:
		return a.countBoot(p)
	}
	a.log.Warn("abandoning an activation interrupted before its switch", "version", p.Version, "step", p.Step)
	return a.record(record{Step: stepAbandoned, Version: p.Version, Reason: "the node restarted before the switch"})
}

// countBoot counts a start inside the activation p, which had switched,
// and rolls it back once the starts exceed MaxBoots.
func (a *Activator) countBoot(p pending) error {
	if stepIndex(p.Step) < stepIndex(stepSwitched) {
		// The crash came between the switch and its record.
		if err := a.record(record{Step: stepSwitched, Version: p.Version}); err != nil {
			return err
		}
	}
	boots := p.Boots + 1
	if err := a.record(record{Step: stepBoot, Version: p.Version, Boots: boots}); err != nil {
		return err
	}
	if boots <= a.cfg.MaxBoots {
		a.log.Warn("started inside an uncommitted activation; Activate resumes it",
			"version", p.Version, "step", p.Step, "boots", boots, "max", a.cfg.MaxBoots)
		return nil
	}
	reason := fmt.Sprintf("restarted %d times inside its soak without reporting healthy", boots)
	a.log.Error("rolling back an activation", "version", p.Version, "to", p.From, "reason", reason)
	if done, err := a.rollBack(context.Background(), p.From, p.Version, reason, false); !done {
		return err
	}
	return nil
}
