package deploy

import (
	"fmt"
	"strings"
)

// Phase is where a member stands with the release it stages, as its rollout
// follower reports it. Gossip carries it in NodeMeta (gossip.Meta), so the
// values are part of that encoding: a new phase needs a new gossip encoding
// version.
type Phase uint8

const (
	PhaseIdle       Phase = 0 // nothing staged
	PhaseFetching   Phase = 1 // fetching the staged release's chunks
	PhaseVerified   Phase = 2 // the staged release is complete and verified
	PhaseActivating Phase = 3 // switching to the staged release
	PhaseActive     Phase = 4 // the staged release runs; health not yet known
	PhaseHealthy    Phase = 5 // the staged release runs and passed its checks
	PhaseFailed     Phase = 6 // fetching, verifying or activating failed
	PhaseRolledBack Phase = 7 // the previous release runs again
)

var phaseNames = [...]string{
	PhaseIdle:       "idle",
	PhaseFetching:   "fetching",
	PhaseVerified:   "verified",
	PhaseActivating: "activating",
	PhaseActive:     "active",
	PhaseHealthy:    "healthy",
	PhaseFailed:     "failed",
	PhaseRolledBack: "rolled-back",
}

// String returns the phase's name ("rolled-back", say; "phase(N)" for an
// unknown value).
func (p Phase) String() string {
	if int(p) < len(phaseNames) {
		return phaseNames[p]
	}
	return fmt.Sprintf("phase(%d)", uint8(p))
}

// Known reports whether p is one of the phases above.
func (p Phase) Known() bool { return int(p) < len(phaseNames) }

// ParsePhase parses the String form of a phase.
func ParsePhase(s string) (Phase, error) {
	for i, n := range phaseNames {
		if n == s {
			return Phase(i), nil
		}
	}
	return 0, fmt.Errorf("unknown phase %q (want one of %s)", s, strings.Join(phaseNames[:], ", "))
}

// MarshalText implements encoding.TextMarshaler.
func (p Phase) MarshalText() ([]byte, error) {
	if int(p) >= len(phaseNames) {
		return nil, fmt.Errorf("unknown phase %d", uint8(p))
	}
	return []byte(p.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (p *Phase) UnmarshalText(b []byte) error {
	v, err := ParsePhase(string(b))
	if err == nil {
		*p = v
	}
	return err
}
