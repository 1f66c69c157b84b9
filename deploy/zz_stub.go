package deploy

// TEMPORARY: the API of rollout.go and activate.go while they are written
// in their branches; deleted at their merge.

import (
	"context"
	"log/slog"
	"time"

	"github.com/meshcast/meshcast/content"
)

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
