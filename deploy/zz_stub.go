package deploy

// TEMPORARY: the API of rollout.go and activate.go while they are written
// in their branches; deleted at their merge.

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/meshcast/meshcast/content"
)

type RolloutState string

const (
	RolloutStaged     RolloutState = "staged"
	RolloutWaveOpen   RolloutState = "wave-open"
	RolloutDone       RolloutState = "done"
	RolloutRolledBack RolloutState = "rolled-back"
	RolloutFailed     RolloutState = "failed"
	RolloutPaused     RolloutState = "paused"
	RolloutAborted    RolloutState = "aborted"
)

func (s RolloutState) Terminal() bool { panic("stub") }

type Member struct {
	ID       string `json:"id"`
	Platform string `json:"platform"`
}
type Excluded struct {
	ID       string `json:"id"`
	Platform string `json:"platform"`
	Reason   string `json:"reason"`
}
type GateResult struct {
	Passed   bool      `json:"passed"`
	Healthy  []string  `json:"healthy"`
	Failed   []string  `json:"failed"`
	NotReady []string  `json:"not_ready"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
}
type Wave struct {
	Members  []string    `json:"members"`
	OpenedAt time.Time   `json:"opened_at,omitzero"`
	Gate     *GateResult `json:"gate,omitempty"`
}
type Rollout struct {
	Release    content.Release `json:"release"`
	Policy     content.Rollout `json:"policy"`
	Previous   string          `json:"previous,omitempty"`
	State      RolloutState    `json:"state"`
	Wave       int             `json:"wave"`
	Waves      []Wave          `json:"waves,omitempty"`
	Excluded   []Excluded      `json:"excluded,omitempty"`
	PausedFrom RolloutState    `json:"paused_from,omitempty"`
	Reason     string          `json:"reason,omitempty"`
	StartedAt  time.Time       `json:"started_at,omitzero"`
	EndedAt    time.Time       `json:"ended_at,omitzero"`
}
type CommandOp string

const (
	OpStart  CommandOp = "start"
	OpGate   CommandOp = "gate"
	OpPause  CommandOp = "pause"
	OpResume CommandOp = "resume"
	OpAbort  CommandOp = "abort"
)

type Command struct {
	Op        CommandOp   `json:"op"`
	At        time.Time   `json:"at"`
	Members   []Member    `json:"members,omitempty"`
	Platforms []string    `json:"platforms,omitempty"`
	Wave      int         `json:"wave,omitempty"`
	Gate      *GateResult `json:"gate,omitempty"`
	Reason    string      `json:"reason,omitempty"`
}

var ErrTransition = errors.New("rollout transition not allowed")

func NewRollout(rel content.Release, policy content.Rollout, previous string) (Rollout, error) {
	panic("stub")
}
func (r Rollout) Apply(c Command) (Rollout, error) { panic("stub") }
func (r Rollout) Clone() Rollout                   { panic("stub") }
func (r Rollout) Validate() error                  { panic("stub") }

type Action int

const (
	ActionWait Action = iota
	ActionActivate
	ActionRollback
)

func (a Action) String() string              { panic("stub") }
func (r Rollout) ActionFor(id string) Action { panic("stub") }
func (r Rollout) CanRollBack() bool          { panic("stub") }

type MemberView struct {
	Alive    bool
	Platform string
	Running  string
	Staged   content.Release
	Phase    Phase
}

func (r Rollout) Next(members map[string]MemberView, now time.Time) (Command, bool) { panic("stub") }

type ActivatorConfig struct {
	Dir            string
	Name           string
	Hooks          string
	HealthURL      string
	HookTimeout    time.Duration
	HealthInterval time.Duration
	MaxOutput      int
	MaxBoots       int
	CrashHook      func(step string)
}
type Policy struct {
	Soak, HealthTimeout time.Duration
	Floor               string
}
type ActivatorStatus struct {
	Running  string
	Previous string
	Pending  string
	Step     string
	Phase    Phase
	Floor    string
	Err      string
}
type Activator struct{}
type ActivationError struct {
	Version, Step, Reason string
	RolledBack            bool
}

func (e *ActivationError) Error() string { panic("stub") }

func OpenActivator(cfg ActivatorConfig, log *slog.Logger) (*Activator, error) { panic("stub") }
func (a *Activator) Status() ActivatorStatus                                  { panic("stub") }
func (a *Activator) Installed(version string) bool                            { panic("stub") }
func (a *Activator) Install(ctx context.Context, version string, art *content.Artifact, store content.Store, opt content.AssembleOptions) error {
	panic("stub")
}
func (a *Activator) Activate(ctx context.Context, version string, p Policy) error { panic("stub") }
func (a *Activator) Rollback(ctx context.Context, to, reason string) error        { panic("stub") }

// FailedBefore reports whether the journal records that version failed
// or was rolled back on this node (so that it is not retried by itself).
func (a *Activator) FailedBefore(version string) bool { panic("stub") }
