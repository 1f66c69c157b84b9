package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"sync"
	"time"

	"github.com/meshcast/meshcast/content"
)

// ActivatorConfig configures an Activator. Zero durations and counts
// mean their defaults; OpenActivator validates it once.
type ActivatorConfig struct {
	Dir       string // <state>/releases/<name>: holds <version>/ dirs, the `current` symlink, the journal. Required.
	Name      string // release name. Required.
	Hooks     string // directory of hook executables (pre-activate, activate, health, rollback); "" none
	HealthURL string // HTTP probe: 2xx within 5 s is healthy; used when there is no health hook

	HookTimeout    time.Duration // per hook run, default 5 min (health hook runs: min(HookTimeout, 30 s))
	HealthInterval time.Duration // between health checks, default 2 s
	MaxOutput      int           // bytes of a hook's combined output kept and logged, default 64 KiB (head kept, "…N bytes dropped" noted)
	MaxBoots       int           // boot-commit: starts inside an uncommitted activation before it rolls back, default 3

	// CrashHook is a test seam: called after each journal record is
	// durable, with the step name (for kill -9 tests); nil in production.
	CrashHook func(step string)
}

// Defaults of ActivatorConfig.
const (
	DefaultHookTimeout    = 5 * time.Minute
	DefaultHealthInterval = 2 * time.Second
	DefaultMaxOutput      = 64 << 10
	DefaultMaxBoots       = 3
)

// withDefaults validates c and fills in its defaults; Dir becomes
// absolute, as hooks see it.
func (c ActivatorConfig) withDefaults() (ActivatorConfig, error) {
	if c.Dir == "" {
		return c, errors.New("activator: no releases directory (Dir)")
	}
	if err := content.ValidateName(c.Name); err != nil {
		return c, fmt.Errorf("activator: release name: %w", err)
	}
	if c.HealthURL != "" {
		if u, err := url.Parse(c.HealthURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return c, fmt.Errorf("activator: health URL %q is not an http or https URL", c.HealthURL)
		}
	}
	if c.HookTimeout < 0 || c.HealthInterval < 0 || c.MaxOutput < 0 || c.MaxBoots < 0 {
		return c, errors.New("activator: negative hook timeout, health interval, output size or boot count")
	}
	dir, err := filepath.Abs(c.Dir)
	if err != nil {
		return c, fmt.Errorf("activator: %w", err)
	}
	c.Dir = dir
	if c.HookTimeout == 0 {
		c.HookTimeout = DefaultHookTimeout
	}
	if c.HealthInterval == 0 {
		c.HealthInterval = DefaultHealthInterval
	}
	if c.MaxOutput == 0 {
		c.MaxOutput = DefaultMaxOutput
	}
	if c.MaxBoots == 0 {
		c.MaxBoots = DefaultMaxBoots
	}
	return c, nil
}

// Policy is what a release's rollout policy (content.Rollout) asks of its
// activation on a node.
type Policy struct {
	Soak          time.Duration // how long the release must stay healthy; 0: one healthy check
	HealthTimeout time.Duration // how long after the switch it has to turn healthy; 0: content.DefaultRollout's
	Floor         string        // security floor ("" none): nothing below it is ever activated again
}

// PolicyOf is the Policy of a release's rollout.
func PolicyOf(r content.Rollout) Policy {
	return Policy{Soak: time.Duration(r.Soak), HealthTimeout: time.Duration(r.HealthTimeout), Floor: r.SecurityFloor}
}

func (p Policy) withDefaults() Policy {
	if p.HealthTimeout <= 0 {
		p.HealthTimeout = time.Duration(content.DefaultRollout().HealthTimeout)
	}
	p.Soak = max(p.Soak, 0)
	return p
}

// ActivatorStatus is where a node's releases stand.
type ActivatorStatus struct {
	Running  string // version `current` points at ("" none)
	Previous string // version that ran before it ("" none)
	Pending  string // version of an activation (or a rollback) not yet ended ("" none)
	Step     string // the last journal step of the pending activation
	Phase    Phase  // PhaseIdle / PhaseActivating / PhaseActive (switched, health not yet passed) / PhaseHealthy (committed) / PhaseFailed / PhaseRolledBack
	Floor    string // highest security floor seen
	Err      string // why the last activation failed or rolled back
}

// ActivationError is an activation that began and failed. Step is the
// hook step that failed (pre-activate, activate, health), "boot" when the
// node restarted too often inside it, or "switch" when `current` could
// not be switched. RolledBack says whether `current` is back on the
// release that ran before; a failure before the switch leaves it there
// without a rollback.
type ActivationError struct {
	Version    string
	Step       string
	Reason     string
	RolledBack bool
	Err        error // the cause
}

func (e *ActivationError) Error() string {
	s := fmt.Sprintf("activate %s: %s", e.Version, e.Reason)
	if e.RolledBack {
		s += " (rolled back)"
	}
	return s
}

func (e *ActivationError) Unwrap() error { return e.Err }

// Refusals: Activate and Rollback return them, wrapped with the release,
// before they change anything.
var (
	// ErrNotInstalled: the version has no complete directory (Install).
	ErrNotInstalled = errors.New("release not installed")
	// ErrBelowRunning: Activate never goes below the running version;
	// only Rollback does.
	ErrBelowRunning = errors.New("version below the running one")
	// ErrBelowFloor: nothing below the highest security floor seen is
	// activated or rolled back to.
	ErrBelowFloor = errors.New("version below the security floor")
	// ErrPending: another version's activation is pending (a node
	// restarted inside it); Activate that version to resume it, or
	// Rollback.
	ErrPending = errors.New("another activation is pending")
)

// Activator switches a node between the releases of one name installed
// in its directory, runs their hooks and health checks, and rolls back;
// its journal makes every step survive a crash. Its methods are safe for
// concurrent use: Activate and Rollback run one at a time, Install one at
// a time beside them, Status and Installed never wait for either. One
// Activator, in one process, owns a directory.
type Activator struct {
	log     *slog.Logger
	cfg     ActivatorConfig
	journal journal
	hooks   hookRunner
	probe   *http.Client

	op      sync.Mutex // held by Activate and Rollback: one writer of the journal and of `current`
	install sync.Mutex // held by Install

	mu      sync.Mutex
	st      journalState                 // guarded by mu
	running string                       // guarded by mu: what `current` points at
	arts    map[string]*content.Artifact // guarded by mu: installed artifacts, by version, as far as known
}

// OpenActivator opens the releases directory cfg.Dir, creating it if
// needed, and recovers whatever a crash interrupted: it removes the
// leftovers of a switch, a compaction or an assembly; repoints a dangling
// or missing `current` where the journal says; finishes an interrupted
// rollback; abandons an activation interrupted before its switch (Status
// shows nothing pending, Activate may start it again); and counts a start
// inside an activation interrupted after its switch, rolling it back
// ("restarted N times inside its soak without reporting healthy") once
// the starts exceed MaxBoots, without which Activate resumes it. After it
// `current` points at a complete release, or does not exist when none
// ever ran.
func OpenActivator(cfg ActivatorConfig, log *slog.Logger) (*Activator, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("release", cfg.Name)
	a := &Activator{
		log:     log,
		cfg:     cfg,
		journal: journal{path: filepath.Join(cfg.Dir, journalName), crash: cfg.CrashHook},
		hooks:   hookRunner{dir: cfg.Hooks, maxOutput: cfg.MaxOutput, log: log},
		probe:   newProbeClient(),
		arts:    make(map[string]*content.Artifact),
	}
	if err := a.open(); err != nil {
		return nil, fmt.Errorf("open activator %s: %w", cfg.Dir, err)
	}
	return a, nil
}

// Status returns where the releases stand.
func (a *Activator) Status() ActivatorStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := ActivatorStatus{Running: a.running, Previous: a.st.Previous, Floor: a.st.Floor, Phase: a.st.Phase, Err: a.st.Err}
	p := a.st.Pending
	if p == nil {
		return s
	}
	s.Pending, s.Step, s.Phase = p.Version, p.Step, PhaseActivating
	if !p.Rollback && stepIndex(p.Step) >= stepIndex(stepSwitched) {
		s.Phase, s.Previous = PhaseActive, p.From
	}
	return s
}

// FailedBefore reports whether the last activation or rollback that ended
// on this node failed version or rolled it back, so that the caller does
// not retry it by itself: the site's rollout decides what comes next.
func (a *Activator) FailedBefore(version string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return version != "" && a.st.Pending == nil && a.st.Last == version &&
		(a.st.Phase == PhaseFailed || a.st.Phase == PhaseRolledBack)
}

// Installed says whether version has its complete directory.
func (a *Activator) Installed(version string) bool {
	if _, err := content.ParseVersion(version); err != nil {
		return false
	}
	return isDir(a.releaseDir(version))
}

// releaseDir is a version's directory, "" for none.
func (a *Activator) releaseDir(version string) string {
	if version == "" {
		return ""
	}
	return filepath.Join(a.cfg.Dir, version)
}

// env is the hook environment of a step that leaves version in `current`
// after previous.
func (a *Activator) env(version, previous string) hookEnv {
	return hookEnv{name: a.cfg.Name, version: version, dir: a.releaseDir(version), previous: previous, previousDir: a.releaseDir(previous)}
}

// record applies r to the state and makes it durable in the journal; a
// record that ends an activation or a rollback compacts the journal.
// Callers hold op (or are OpenActivator).
func (a *Activator) record(r record) error {
	r.Time = time.Now()
	a.mu.Lock()
	next := a.st.clone()
	a.mu.Unlock()
	if err := next.apply(r); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrJournal, r.Step, err) // a bug: the state machine refuses its own record
	}
	if err := a.journal.append(r); err != nil {
		return err
	}
	a.mu.Lock()
	a.st = next
	a.mu.Unlock()
	if terminal(r.Step) {
		// The journal as appended stays valid: a failed compaction only
		// leaves it longer until the next.
		if err := a.journal.compact(next.stateRecord(time.Now())); err != nil {
			a.log.Warn("cannot compact the activation journal", "err", err)
		}
	}
	return nil
}

// setCurrent switches `current` to version ("" removes it).
func (a *Activator) setCurrent(version string) error {
	if err := switchCurrent(a.cfg.Dir, version); err != nil {
		return err
	}
	a.mu.Lock()
	a.running = version
	a.mu.Unlock()
	return nil
}

// raiseFloor records floor if it is above the highest seen.
func (a *Activator) raiseFloor(floor string) error {
	a.mu.Lock()
	was := a.st.Floor
	a.mu.Unlock()
	higher, err := floorAbove(floor, was)
	if err != nil || !higher {
		return err
	}
	a.log.Info("security floor raised", "floor", floor, "was", was)
	return a.record(record{Step: stepFloor, Floor: floor})
}

// checkFloor refuses a version below the floor.
func (a *Activator) checkFloor(version string) error {
	a.mu.Lock()
	floor := a.st.Floor
	a.mu.Unlock()
	if below, err := versionBelow(version, floor); err != nil || below {
		if err != nil {
			return err
		}
		return fmt.Errorf("%w: %s is below %s", ErrBelowFloor, version, floor)
	}
	return nil
}

// versionBelow says whether v is below than ("" is below nothing).
func versionBelow(v, than string) (bool, error) {
	if than == "" {
		return false, nil
	}
	sv, err := content.ParseVersion(v)
	if err != nil {
		return false, err
	}
	st, err := content.ParseVersion(than)
	if err != nil {
		return false, err
	}
	return sv.LessThan(st), nil
}

func (s journalState) clone() journalState {
	if s.Pending != nil {
		p := *s.Pending
		s.Pending = &p
	}
	return s
}

// Activate switches to an installed version and proves it healthy:
// journal, pre-activate hook, switch `current`, activate hook, health
// checks for the soak, commit. The health checks are the health hook if
// there is one, else a GET of HealthURL if set, else none (healthy); one
// runs every HealthInterval, the first right after the activate hook: the
// release must pass one within p.HealthTimeout of the switch, and then
// every check for p.Soak.
//
// A failure after the switch rolls back by itself (switch back to the
// version that ran before, rollback hook) and returns an
// *ActivationError with RolledBack set; a failure of pre-activate
// returns one without, nothing switched. Activate refuses, before
// anything is switched, a version not installed (ErrNotInstalled), below
// the running one (ErrBelowRunning), below the highest security floor
// seen (ErrBelowFloor, after p.Floor raised it), or with a hook that is
// not executable (ErrHookNotExecutable). Activating the version that
// already runs does nothing.
//
// A pending activation of the same version (interrupted by a crash, or
// by ctx) resumes from its last durable step, its health window starting
// again; when ctx ends during the pre-activate hook the activation is
// abandoned, after the switch it stays pending, and Activate returns
// ctx's error.
func (a *Activator) Activate(ctx context.Context, version string, p Policy) error {
	a.op.Lock()
	defer a.op.Unlock()
	p = p.withDefaults()
	if err := a.raiseFloor(p.Floor); err != nil {
		return fmt.Errorf("activate %s %s: %w", a.cfg.Name, version, err)
	}
	act, err := a.admit(version)
	if err != nil || act == nil {
		return err
	}
	if act.last == "" {
		a.log.Info("activating", "version", version, "from", act.from)
		if err := a.record(record{Step: stepBegin, Version: version, From: act.from}); err != nil {
			return fmt.Errorf("activate %s %s: %w", a.cfg.Name, version, err)
		}
		act.last = stepBegin
	} else {
		a.log.Info("resuming activation", "version", version, "from", act.from, "step", act.last)
	}
	return a.runActivation(ctx, act, p)
}

// activation is an activation under way.
type activation struct {
	version, from string
	last          string // its last durable step; "" not begun
	switchedAt    time.Time
}

// admit checks that version may be activated and returns the activation
// to run: a new one, or the pending one to resume. It returns nil and no
// error when version already runs.
func (a *Activator) admit(version string) (*activation, error) {
	refuse := func(err error) (*activation, error) {
		return nil, fmt.Errorf("activate %s %s: %w", a.cfg.Name, version, err)
	}
	if _, err := content.ParseVersion(version); err != nil {
		return refuse(err)
	}
	if err := a.checkFloor(version); err != nil {
		return refuse(err)
	}
	if err := a.checkHooks(); err != nil {
		return refuse(err)
	}
	a.mu.Lock()
	p, running := a.st.clone().Pending, a.running
	a.mu.Unlock()
	if p != nil {
		if p.Rollback || p.Version != version {
			return refuse(fmt.Errorf("%w: %s", ErrPending, p.Version))
		}
		return &activation{version: version, from: p.From, last: p.Step, switchedAt: time.Now()}, nil
	}
	if !a.Installed(version) {
		return refuse(fmt.Errorf("%w: no directory %s", ErrNotInstalled, a.releaseDir(version)))
	}
	if running == version {
		return nil, nil
	}
	if below, err := versionBelow(version, running); err != nil || below {
		if err != nil {
			return refuse(err)
		}
		return refuse(fmt.Errorf("%w: %s runs", ErrBelowRunning, running))
	}
	return &activation{version: version, from: running}, nil
}

// checkHooks checks that every hook that exists is executable, so that an
// activation does not find out after its switch.
func (a *Activator) checkHooks() error {
	for _, h := range []string{hookPreActivate, hookActivate, hookHealth, hookRollback} {
		if _, err := a.hooks.find(h); err != nil && !errors.Is(err, errNoHook) {
			return err
		}
	}
	return nil
}

// runActivation runs an activation from the step after its last.
func (a *Activator) runActivation(ctx context.Context, act *activation, p Policy) error {
	env := a.env(act.version, act.from)
	if act.last == stepBegin {
		if err := a.hooks.run(ctx, hookPreActivate, env, a.cfg.HookTimeout, false); err != nil {
			return a.stopBeforeSwitch(ctx, act, hookPreActivate, err)
		}
		if err := a.step(act, stepPreActivated); err != nil {
			return err
		}
	}
	if act.last == stepPreActivated {
		if err := a.switchTo(ctx, act); err != nil {
			return err
		}
	}
	if act.last == stepSwitched {
		if err := a.hooks.run(ctx, hookActivate, env, a.cfg.HookTimeout, false); err != nil {
			return a.failAfterSwitch(ctx, act, hookActivate, err)
		}
		if err := a.step(act, stepActivated); err != nil {
			return err
		}
	}
	if err := soak(ctx, a.healthCheck(env), p, a.cfg.HealthInterval, act.switchedAt); err != nil {
		return a.failAfterSwitch(ctx, act, hookHealth, err)
	}
	if err := a.record(record{Step: stepCommitted, Version: act.version, From: act.from}); err != nil {
		return fmt.Errorf("activate %s %s: %w", a.cfg.Name, act.version, err)
	}
	a.log.Info("activated", "version", act.version, "from", act.from)
	return nil
}

// step records that the activation passed a step.
func (a *Activator) step(act *activation, step string) error {
	if err := a.record(record{Step: step, Version: act.version}); err != nil {
		return fmt.Errorf("activate %s %s: %w", a.cfg.Name, act.version, err)
	}
	act.last = step
	return nil
}

// switchTo switches `current` to the activation's version.
func (a *Activator) switchTo(ctx context.Context, act *activation) error {
	if err := a.setCurrent(act.version); err != nil {
		// The rename may have happened without its directory's sync:
		// point back where the journal says the node still is.
		if back := a.setCurrent(act.from); back != nil {
			a.log.Error("cannot switch back after a failed switch", "version", act.from, "err", back)
		}
		return a.stopBeforeSwitch(ctx, act, "switch", err)
	}
	act.switchedAt = time.Now()
	return a.step(act, stepSwitched)
}

// stopBeforeSwitch ends an activation that failed before its switch:
// failed, or abandoned when ctx ended.
func (a *Activator) stopBeforeSwitch(ctx context.Context, act *activation, step string, cause error) error {
	reason := fmt.Sprintf("%s failed: %v", step, cause)
	if ctx.Err() != nil {
		reason = fmt.Sprintf("stopped during %s: %v", step, context.Cause(ctx))
		if err := a.record(record{Step: stepAbandoned, Version: act.version, Reason: reason}); err != nil {
			a.log.Error("cannot record an abandoned activation", "version", act.version, "err", err)
		}
		return fmt.Errorf("activate %s %s: %s: %w", a.cfg.Name, act.version, reason, context.Cause(ctx))
	}
	a.log.Error("activation failed before its switch", "version", act.version, "step", step, "err", cause)
	if err := a.record(record{Step: stepFailed, Version: act.version, Reason: reason}); err != nil {
		a.log.Error("cannot record a failed activation", "version", act.version, "err", err)
	}
	return &ActivationError{Version: act.version, Step: step, Reason: reason, Err: cause}
}

// failAfterSwitch rolls back an activation whose activate hook or health
// checks failed; when ctx ended instead, the activation stays pending.
func (a *Activator) failAfterSwitch(ctx context.Context, act *activation, step string, cause error) error {
	if ctx.Err() != nil {
		a.log.Warn("activation interrupted; it stays pending", "version", act.version, "step", step)
		return fmt.Errorf("activate %s %s: interrupted during %s, pending: %w", a.cfg.Name, act.version, step, context.Cause(ctx))
	}
	reason := fmt.Sprintf("%s failed: %v", step, cause)
	a.log.Error("activation failed; rolling back", "version", act.version, "to", act.from, "step", step, "err", cause)
	done, err := a.rollBack(context.WithoutCancel(ctx), act.from, act.version, reason, false)
	e := &ActivationError{Version: act.version, Step: step, Reason: reason, RolledBack: done, Err: cause}
	if err != nil {
		e.Reason += "; rollback: " + err.Error()
	}
	return e
}

// healthCheck is the check of a release's health: its health hook, else
// the HTTP probe, else none.
func (a *Activator) healthCheck(env hookEnv) healthCheck {
	switch {
	case a.hooks.exists(hookHealth):
		timeout := min(a.cfg.HookTimeout, healthHookTimeout)
		return func(ctx context.Context) error { return a.hooks.run(ctx, hookHealth, env, timeout, true) }
	case a.cfg.HealthURL != "":
		return func(ctx context.Context) error { return probeHTTP(ctx, a.probe, a.cfg.HealthURL) }
	}
	return func(context.Context) error { return nil }
}

// Rollback returns to version to because the site decided: switch
// `current` to it, rollback hook; journaled like Activate, so that a
// crash in the middle finishes it when the Activator is opened again. It
// may go below the running version, never below the highest security
// floor seen (ErrBelowFloor), and only to an installed version
// (ErrNotInstalled). It ends a pending activation. Once begun it runs to
// its end whatever ctx says; a rollback hook that fails is returned as
// an error, but the rollback stands. Rolling back to the version that
// runs, with nothing pending, does nothing.
func (a *Activator) Rollback(ctx context.Context, to, reason string) error {
	a.op.Lock()
	defer a.op.Unlock()
	refuse := func(err error) error { return fmt.Errorf("roll back %s to %s: %w", a.cfg.Name, to, err) }
	if _, err := content.ParseVersion(to); err != nil {
		return refuse(err)
	}
	if err := a.checkFloor(to); err != nil {
		return refuse(err)
	}
	if !a.Installed(to) {
		return refuse(fmt.Errorf("%w: no directory %s", ErrNotInstalled, a.releaseDir(to)))
	}
	if err := context.Cause(ctx); err != nil {
		return refuse(err)
	}
	a.mu.Lock()
	left, pend := a.running, a.st.Pending
	a.mu.Unlock()
	if left == to && pend == nil {
		return nil
	}
	if reason == "" {
		reason = "rolled back by the site"
	}
	if _, err := a.rollBack(context.WithoutCancel(ctx), to, left, reason, false); err != nil {
		return refuse(err)
	}
	return nil
}

// rollBack switches `current` from left back to to ("" none) and runs the
// rollback hook; resume continues a rollback whose begin is recorded. done
// says whether the rollback is complete; the error is the hook's when it
// is, else why it is not (it stays pending in the journal).
func (a *Activator) rollBack(ctx context.Context, to, left, reason string, resume bool) (done bool, err error) {
	if !resume {
		if err := a.record(record{Step: stepRollbackBegin, Version: to, From: left, Reason: reason}); err != nil {
			return false, err
		}
	}
	if err := a.setCurrent(to); err != nil {
		return false, fmt.Errorf("switch back to %q: %w", to, err)
	}
	hookErr := a.hooks.run(ctx, hookRollback, a.env(to, left), a.cfg.HookTimeout, false)
	final := reason
	if hookErr != nil {
		final += "; the rollback hook failed too: " + hookErr.Error()
	}
	if err := a.record(record{Step: stepRolledBack, Version: to, From: left, Reason: final}); err != nil {
		return true, err
	}
	a.log.Warn("rolled back", "to", to, "from", left, "reason", final)
	return true, hookErr
}
