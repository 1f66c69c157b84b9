package seeder

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/Masterminds/semver/v3"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/deploy"
)

// The wire form of a command, as it is stored in the Raft log:
//
//	byte 0   format version, 1
//	byte 1   kind (CommandKind)
//	byte 2…  the body: one JSON object, the kind's struct, no other data
//
// The whole command is at most MaxCommandSize bytes. JSON keeps the body
// readable in a log dump and lets later issues add kinds without a new
// format; decoding is strict (unknown fields, trailing data and invalid
// values are refused), so two seeders never read one entry two ways. A
// field added to an existing kind is therefore a new kind (or a new format
// version), rolled out once every seeder reads it.
const (
	commandFormat = 1
	// MaxCommandSize bounds a whole encoded command, header included: a
	// rollout's start lists the site's members (about 100 bytes each), so
	// this admits a site of several thousand.
	MaxCommandSize = 1 << 20
	commandHeader  = 2
)

// ErrBadCommand is wrapped by every error about command bytes that do not
// decode: an unknown format version or kind, a body that is not the kind's
// JSON object, a value out of range, or a command over MaxCommandSize.
var ErrBadCommand = errors.New("bad raft command")

// CommandKind says what a command decides; it is the second byte of the
// encoding.
type CommandKind uint8

const (
	// CmdStageRelease stages a release as the site's target; its body is a
	// StageRelease. Later issues add the admission kinds.
	CmdStageRelease CommandKind = 1
	// CmdRollout advances the rollout of the target (deploy.Rollout): its
	// start, a wave's gate, or an operator's pause, resume or abort; its
	// body is a RolloutCommand.
	CmdRollout CommandKind = 2
)

func (k CommandKind) String() string {
	switch k {
	case CmdStageRelease:
		return "stage-release"
	case CmdRollout:
		return "rollout"
	}
	return fmt.Sprintf("kind-%d", uint8(k))
}

// StageRelease makes a release the site's target (see FSM for the rules).
// Its body is the release's name, version (semantic, canonical form) and
// id (the sha256 of its manifest), and the term.
type StageRelease struct {
	content.Release
	// Term is the Raft term in which the proposing leader decided this,
	// for fencing: the FSM refuses the command unless it was appended to
	// the log in that same term (FSM explains why).
	Term uint64 `json:"term"`
}

// validate checks the values of the body, naming the first bad field.
func (s *StageRelease) validate() error {
	if content.ValidateName(s.Name) != nil {
		return fmt.Errorf("release name %q: want lower-case letters, digits, '.', '_' and '-', at most 128 bytes", truncate(s.Name, 140))
	}
	if _, err := semver.StrictNewVersion(s.Version); err != nil {
		return fmt.Errorf("version %q is not a semantic version: %w", truncate(s.Version, 80), err)
	}
	if s.ID == (content.ReleaseID{}) {
		return errors.New("release id is all zeroes")
	}
	if s.Term == 0 {
		return errors.New("term is 0: a proposal carries the term of the leader that made it")
	}
	return nil
}

// RolloutCommand is a step of the target's rollout, decided by the leader
// of Term (fenced like StageRelease) for the release Release.
type RolloutCommand struct {
	// Release is the id of the release the step is for: the FSM refuses
	// it unless that is the target's.
	Release content.ReleaseID `json:"release"`
	Term    uint64            `json:"term"`
	// Policy is the release's signed rollout policy, which the leader read
	// from its manifest; only with a start, which creates the rollout.
	Policy *content.Rollout `json:"policy,omitempty"`
	deploy.Command
}

const maxReason = 256

func (c *RolloutCommand) validate() error {
	switch {
	case c.Release == (content.ReleaseID{}):
		return errors.New("release id is all zeroes")
	case c.Term == 0:
		return errors.New("term is 0: a proposal carries the term of the leader that made it")
	case (c.Op == deploy.OpStart) != (c.Policy != nil):
		return fmt.Errorf("%s: a policy goes with a start and only with it", c.Op)
	case c.At.IsZero():
		return fmt.Errorf("%s: no time", c.Op)
	case len(c.Reason) > maxReason:
		return fmt.Errorf("%s: reason of %d bytes exceeds %d", c.Op, len(c.Reason), maxReason)
	}
	switch c.Op {
	case deploy.OpStart, deploy.OpGate, deploy.OpPause, deploy.OpResume, deploy.OpAbort:
	default:
		return fmt.Errorf("unknown rollout op %q", truncate(string(c.Op), 40))
	}
	return nil
}

// EncodeCommand returns the wire form of a command of the given kind. body
// is the kind's struct (a StageRelease for CmdStageRelease) or a pointer to
// one; it is validated as DecodeCommand would, so a proposer learns about a
// bad command before it reaches the log.
func EncodeCommand(kind CommandKind, body any) ([]byte, error) {
	var v interface{ validate() error }
	switch kind {
	case CmdStageRelease:
		switch b := body.(type) {
		case StageRelease:
			v = &b
		case *StageRelease:
			if b == nil {
				return nil, fmt.Errorf("encode %s command: nil body", kind)
			}
			v = b
		default:
			return nil, fmt.Errorf("encode %s command: body is a %T, want a seeder.StageRelease", kind, body)
		}
	case CmdRollout:
		switch b := body.(type) {
		case RolloutCommand:
			v = &b
		case *RolloutCommand:
			if b == nil {
				return nil, fmt.Errorf("encode %s command: nil body", kind)
			}
			v = b
		default:
			return nil, fmt.Errorf("encode %s command: body is a %T, want a seeder.RolloutCommand", kind, body)
		}
	default:
		return nil, fmt.Errorf("encode command: unknown kind %d", uint8(kind))
	}
	if err := v.validate(); err != nil {
		return nil, fmt.Errorf("encode %s command: %w", kind, err)
	}
	js, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %s command: %w", kind, err)
	}
	if n := commandHeader + len(js); n > MaxCommandSize {
		return nil, fmt.Errorf("encode %s command: %d bytes exceed the limit of %d", kind, n, MaxCommandSize)
	}
	out := make([]byte, 0, commandHeader+len(js))
	out = append(out, commandFormat, byte(kind))
	return append(out, js...), nil
}

// DecodeCommand parses a command's wire form and returns its kind and body
// (a StageRelease value for CmdStageRelease, a RolloutCommand for
// CmdRollout). Every error wraps
// ErrBadCommand and says what was wrong.
func DecodeCommand(b []byte) (CommandKind, any, error) {
	switch {
	case len(b) == 0:
		return 0, nil, fmt.Errorf("decode command: empty: %w", ErrBadCommand)
	case len(b) > MaxCommandSize:
		return 0, nil, fmt.Errorf("decode command: %d bytes exceed the limit of %d: %w", len(b), MaxCommandSize, ErrBadCommand)
	case b[0] != commandFormat:
		return 0, nil, fmt.Errorf("decode command: format version %d, this seeder reads version %d: %w", b[0], commandFormat, ErrBadCommand)
	case len(b) < commandHeader:
		return 0, nil, fmt.Errorf("decode command: no kind byte after the format version: %w", ErrBadCommand)
	}
	kind := CommandKind(b[1])
	switch kind {
	case CmdStageRelease:
		var s StageRelease
		if err := decodeBody(b[commandHeader:], &s); err != nil {
			return kind, nil, fmt.Errorf("decode %s command: %w: %w", kind, err, ErrBadCommand)
		}
		if err := s.validate(); err != nil {
			return kind, nil, fmt.Errorf("decode %s command: %w: %w", kind, err, ErrBadCommand)
		}
		return kind, s, nil
	case CmdRollout:
		var c RolloutCommand
		if err := decodeBody(b[commandHeader:], &c); err != nil {
			return kind, nil, fmt.Errorf("decode %s command: %w: %w", kind, err, ErrBadCommand)
		}
		if err := c.validate(); err != nil {
			return kind, nil, fmt.Errorf("decode %s command: %w: %w", kind, err, ErrBadCommand)
		}
		return kind, c, nil
	}
	return kind, nil, fmt.Errorf("decode command: unknown kind %d: %w", uint8(kind), ErrBadCommand)
}

// decodeBody decodes exactly one JSON object into v, refusing unknown
// fields and anything after the object.
func decodeBody(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 || bytes.TrimSpace(body)[0] != '{' {
		return errors.New("body is not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("body: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the body")
	}
	return nil
}

// truncate shortens s for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
