// Package deploy will own the rollout: a pure, deterministic state machine
// (plan waves, apply commands, gate on health; no I/O inside it) and the local
// activator (releases directory, atomic switch, hooks, health checks,
// rollback, crash recovery).
//
// Not built yet: see issues [2/6]–[6/6] and docs/DESIGN.md.
package deploy
