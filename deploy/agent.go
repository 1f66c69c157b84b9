package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/meshcast/meshcast/content"
)

// SiteRollout is where an agent reads what its site decided.
type SiteRollout interface {
	// Rollout returns the rollout of the site's target as the site's Raft
	// state holds it (nil: not started, or no target).
	Rollout(ctx context.Context) (*Rollout, error)
}

// AgentConfig configures an Agent. Zero values mean the defaults.
type AgentConfig struct {
	// Self is the node's id, as the rollout's waves name it. Required.
	Self string
	// Name is the release the node follows. Required.
	Name string
	// Poll is how often the agent asks its site without being woken.
	// Default 5 s.
	Poll time.Duration
	// Assemble says how releases are installed (content.Assemble).
	Assemble content.AssembleOptions
}

// AgentState is where a node stands with activation.
type AgentState struct {
	// Running is the version that runs ("" none).
	Running string
	// Release is the version Phase is about ("" none): the one being
	// activated, or the last one activated, rolled back or refused.
	Release string
	// Phase is PhaseIdle, PhaseActivating, PhaseActive, PhaseHealthy,
	// PhaseFailed or PhaseRolledBack.
	Phase Phase
	// Rollout is the site's rollout as last read; nil before.
	Rollout *Rollout
	// Outcomes count activations and rollbacks by outcome: "activated",
	// "failed", "rolled-back" (by the node's own health check),
	// "site-rollback", "site-rollback-failed", "install-failed".
	Outcomes map[string]int64
	Err      error
	ErrAt    time.Time
}

// Agent is a node's rollout: it reads what its site decided (SiteRollout,
// from any seeder's Raft state), and when the node's wave is open it
// installs and activates, through the Activator, the release its Follower
// staged and verified, and when the site rolls the release back it
// returns to the release before. It activates nothing unverified, nothing
// the site did not open for it, and never retries by itself a release it
// failed (its failure is the site's gate's business).
//
// Activation runs on the goroutine of Run, which owns the agent's state;
// State returns a copy.
type Agent struct {
	cfg   AgentConfig
	act   *Activator
	f     *Follower
	store content.Store
	site  SiteRollout
	log   *slog.Logger
	wake  chan struct{}

	mu       sync.Mutex
	busy     string      // version being activated or rolled back
	rec      lastOutcome // the last outcome
	rollout  *Rollout
	outcomes map[string]int64
	err      error
	errAt    time.Time
}

// lastOutcome is the outcome of the agent's last activation or rollback.
type lastOutcome struct {
	version string
	phase   Phase
}

// NewAgent returns an agent; Run starts it. A nil log discards.
func NewAgent(cfg AgentConfig, act *Activator, f *Follower, store content.Store, site SiteRollout, log *slog.Logger) (*Agent, error) {
	if cfg.Self == "" || cfg.Name == "" || act == nil || f == nil || store == nil || site == nil {
		return nil, errors.New("deploy: agent: Self, Name, the activator, the follower, the store and the site are required")
	}
	if cfg.Poll == 0 {
		cfg.Poll = 5 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Agent{cfg: cfg, act: act, f: f, store: store, site: site, log: log, wake: make(chan struct{}, 1), outcomes: map[string]int64{}}, nil
}

// Wake makes the agent ask its site now (a broadcast said the rollout
// changed, or a leader changed).
func (a *Agent) Wake() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// State returns where the node stands.
func (a *Agent) State() AgentState {
	st := a.act.Status()
	a.mu.Lock()
	defer a.mu.Unlock()
	s := AgentState{Running: st.Running, Rollout: a.rollout, Err: a.err, ErrAt: a.errAt, Outcomes: make(map[string]int64, len(a.outcomes))}
	for k, v := range a.outcomes {
		s.Outcomes[k] = v
	}
	switch {
	case a.busy != "":
		s.Release, s.Phase = a.busy, PhaseActivating
		if st.Phase == PhaseActive {
			s.Phase = PhaseActive
		}
	case a.rec.version != "":
		s.Release, s.Phase = a.rec.version, a.rec.phase
	case st.Pending != "":
		s.Release, s.Phase = st.Pending, st.Phase
	case st.Running != "":
		s.Release, s.Phase = st.Running, PhaseHealthy
	}
	return s
}

// Run follows the site's rollout until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	t := time.NewTicker(a.cfg.Poll)
	defer t.Stop()
	for {
		_, staged := a.f.State()
		a.step(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-a.wake:
		case <-staged:
		case <-t.C:
		}
	}
}

// step reads the site's rollout and does what it says of this node.
func (a *Agent) step(ctx context.Context) {
	a.prepare(ctx)
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	r, err := a.site.Rollout(rctx)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			a.fail(fmt.Errorf("%w: %w", errReadRollout, err))
		}
		return
	}
	a.mu.Lock()
	a.rollout = r
	if errors.Is(a.err, errReadRollout) {
		a.err = nil // read again since: the failure is over
	}
	a.mu.Unlock()
	if r == nil || r.Release.Name != a.cfg.Name {
		return
	}
	if p := a.act.Status().Pending; p != "" && p != r.Release.Version {
		a.finishPending(ctx, p)
	}
	switch r.ActionFor(a.cfg.Self) {
	case ActionActivate:
		a.activate(ctx, r)
	case ActionRollback:
		a.rollback(ctx, r)
	}
}

// errReadRollout wraps a failure to read the site's rollout.
var errReadRollout = errors.New("read the site's rollout")

// prepare installs the release the follower verified, before the node's
// wave opens: the wave then takes only the switch, the hooks and the
// health checks, and a release that does not fit on disk is refused, and
// reported failed, before any wave opens. It also prunes releases the
// node no longer needs.
func (a *Agent) prepare(ctx context.Context) {
	fs, _ := a.f.State()
	v := fs.Release.Version
	st := a.act.Status()
	if fs.Phase != PhaseVerified || fs.Artifact == nil || fs.Release.Name != a.cfg.Name ||
		(st.Running != "" && !versionAbove(v, st.Running)) || a.act.Installed(v) || a.act.FailedBefore(v) {
		return
	}
	a.mu.Lock()
	tried := a.rec.version == v && a.rec.phase == PhaseFailed
	a.mu.Unlock()
	if tried {
		return
	}
	if removed, err := a.act.Prune(v); err != nil {
		a.log.Warn("prune old releases", "err", err)
	} else if len(removed) > 0 {
		a.log.Info("removed old releases", "versions", removed)
	}
	if err := a.act.Install(ctx, v, fs.Artifact, a.store, a.cfg.Assemble); err != nil && ctx.Err() == nil {
		a.end(lastOutcome{v, PhaseFailed}, "install-failed", err)
	}
}

// activate installs and activates the rollout's release if the node
// staged and verified it and does not run it yet.
func (a *Agent) activate(ctx context.Context, r *Rollout) {
	v := r.Release.Version
	st := a.act.Status()
	a.mu.Lock()
	tried := a.rec.version == v && (a.rec.phase == PhaseFailed || a.rec.phase == PhaseRolledBack)
	a.mu.Unlock()
	if (st.Running == v && st.Pending == "") || tried || a.act.FailedBefore(v) {
		return
	}
	fs, _ := a.f.State()
	if fs.Release.ID != r.Release.ID || fs.Phase != PhaseVerified || fs.Artifact == nil {
		return // never a release this node has not verified
	}
	a.begin(v)
	a.log.Info("activating", "release", r.Release, "wave", r.Wave)
	actx, cancel := context.WithCancelCause(ctx)
	stopWatch := a.watchSite(actx, cancel, r.Release)
	err := a.act.Install(actx, v, fs.Artifact, a.store, a.cfg.Assemble)
	if err == nil {
		err = a.act.Activate(actx, v, PolicyOf(r.Policy))
	}
	stopWatch()
	turned := errors.Is(context.Cause(actx), errSiteTurned)
	cancel(nil)
	switch {
	case ctx.Err() != nil:
		a.end(lastOutcome{}, "", nil) // stopped, not failed: resumed at the next start
		return
	case turned:
		// Pending or abandoned: the next step rolls it back as the site says.
		a.log.Warn("the site rolled the release back during its activation here", "release", r.Release)
		a.end(lastOutcome{}, "", nil)
		a.Wake()
		return
	}
	switch ae := (*ActivationError)(nil); {
	case err == nil:
		a.log.Info("activated and healthy", "release", r.Release)
		a.end(lastOutcome{v, PhaseHealthy}, "activated", nil)
	case errors.As(err, &ae) && ae.RolledBack:
		a.end(lastOutcome{v, PhaseRolledBack}, "rolled-back", err)
	default:
		a.end(lastOutcome{v, PhaseFailed}, "failed", err)
	}
}

// errSiteTurned ends an activation whose release the site rolls back
// (a failed gate elsewhere, the operator's abort) before it ended here.
var errSiteTurned = errors.New("the site rolls the release back")

// watchSite keeps reading the site's rollout while an activation of rel
// runs (its hooks and its soak take minutes), and cancels it with
// errSiteTurned as soon as the site tells this member to roll rel back,
// rather than after the soak. stop ends the watch and waits for it.
func (a *Agent) watchSite(ctx context.Context, cancel context.CancelCauseFunc, rel content.Release) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(a.cfg.Poll)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-ctx.Done():
				return
			case <-a.wake:
			case <-t.C:
			}
			rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
			r, err := a.site.Rollout(rctx)
			rcancel()
			if err != nil || r == nil || r.Release.ID != rel.ID {
				continue
			}
			a.mu.Lock()
			a.rollout = r
			a.mu.Unlock()
			if r.ActionFor(a.cfg.Self) == ActionRollback {
				cancel(errSiteTurned)
				return
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}

// finishPending ends an activation a crash left pending that is not the
// rollout's release any more (a newer one superseded it): the activator
// takes nothing else until it ended, so it runs it to its end, healthy or
// rolled back, with the default policy.
func (a *Agent) finishPending(ctx context.Context, v string) {
	a.begin(v)
	a.log.Info("finishing an activation a restart interrupted", "version", v)
	err := a.act.Activate(ctx, v, Policy{})
	switch {
	case ctx.Err() != nil:
		a.end(lastOutcome{}, "", nil)
	case err == nil:
		a.end(lastOutcome{v, PhaseHealthy}, "activated", nil)
	default:
		a.end(lastOutcome{v, PhaseFailed}, "failed", err)
	}
}

// rollback returns to the rollout's Previous if the node runs a release
// above it: the rollout's, or one that an earlier rollout, superseded by
// this one, had it activate.
func (a *Agent) rollback(ctx context.Context, r *Rollout) {
	st := a.act.Status()
	v := st.Running
	if st.Pending != "" {
		v = st.Pending
	}
	if v == "" || v == r.Previous || !versionAbove(v, r.Previous) {
		return
	}
	a.begin(v)
	a.log.Warn("the site rolls back", "release", r.Release, "running", v, "to", r.Previous, "reason", r.Reason)
	err := a.act.Rollback(ctx, r.Previous, fmt.Sprintf("the site's rollout is %s: %s", r.State, r.Reason))
	if ctx.Err() != nil {
		a.end(lastOutcome{}, "", nil)
		return
	}
	if err != nil {
		a.end(lastOutcome{v, PhaseFailed}, "site-rollback-failed", fmt.Errorf("roll back %s to %s: %w", v, r.Previous, err))
		return
	}
	a.end(lastOutcome{v, PhaseRolledBack}, "site-rollback", nil)
}

func (a *Agent) begin(v string) {
	a.mu.Lock()
	a.busy = v
	a.mu.Unlock()
}

// end records an outcome (rec zero: none) and counts it.
func (a *Agent) end(rec lastOutcome, outcome string, err error) {
	a.mu.Lock()
	a.busy = ""
	if rec.version != "" {
		a.rec = rec
	}
	if outcome != "" {
		a.outcomes[outcome]++
	}
	a.mu.Unlock()
	if err != nil {
		a.fail(err)
	}
}

func (a *Agent) fail(err error) {
	a.log.Warn("rollout", "err", err)
	a.mu.Lock()
	a.err, a.errAt = err, time.Now()
	a.mu.Unlock()
}

// versionAbove reports whether version a is above b; false when either
// does not parse.
func versionAbove(a, b string) bool {
	va, err1 := content.ParseVersion(a)
	vb, err2 := content.ParseVersion(b)
	return err1 == nil && err2 == nil && va.GreaterThan(vb)
}
