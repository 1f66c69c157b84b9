package control

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/deploy"
)

// Protocol is the libp2p protocol id.
const Protocol = "/meshcast/control/1"

// Bounds and timeouts.
const (
	// MaxRequest bounds a request: an op and a reason.
	MaxRequest = 4 << 10
	// MaxAnswer bounds an answer: a rollout lists every member of the
	// site once (about 60 bytes each).
	MaxAnswer = 8 << 20
	// Timeout bounds one exchange; an operator's command waits for Raft.
	Timeout = 15 * time.Second
)

// The ops of a request.
const (
	OpState = "state" // answer the site's state
)

// Request is what a peer asks. Op is OpState or a deploy.CommandOp
// (pause, resume, abort); Reason goes with an operator's command. Since
// is the Raft index of the state the asker holds: a seeder whose state is
// no newer answers Unchanged instead of the whole state.
type Request struct {
	V      int    `json:"v"`
	Op     string `json:"op"`
	Reason string `json:"reason,omitempty"`
	Since  uint64 `json:"since,omitempty"`
}

// Answer is what a seeder answers.
type Answer struct {
	V         int    `json:"v"`
	State     *State `json:"state,omitempty"`
	Unchanged bool   `json:"unchanged,omitempty"`
	Err       string `json:"error,omitempty"`
}

// wireVersion is the version of Request and Answer this code writes and
// reads.
const wireVersion = 1

// State is a seeder's view of the site's decisions.
type State struct {
	Target  content.Release `json:"target,omitzero"`
	Running content.Release `json:"running,omitzero"`
	Rollout *deploy.Rollout `json:"rollout,omitempty"`
	Index   uint64          `json:"index"` // the Raft index of the last command applied
	Term    uint64          `json:"term"`
	Leader  string          `json:"leader,omitempty"` // peer id of the leader, if known
}

// Site is what a seeder serves.
type Site interface {
	// State returns the site's state from the seeder's FSM.
	State() State
	// Control carries an operator's command to the leader's rollout: the
	// leader proposes it, another seeder forwards it.
	Control(ctx context.Context, op deploy.CommandOp, reason string) error
}

// Serve answers control requests on h from site until the host closes.
func Serve(h host.Host, site Site, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h.SetStreamHandler(Protocol, func(s network.Stream) {
		defer s.Close()
		s.SetDeadline(time.Now().Add(Timeout))
		if err := serve(s, site); err != nil {
			log.Debug("control: request failed", "peer", s.Conn().RemotePeer(), "err", err)
			s.Reset()
		}
	})
}

func serve(s io.ReadWriter, site Site) error {
	var req Request
	if err := readJSON(s, MaxRequest, &req); err != nil {
		return fmt.Errorf("request: %w", err)
	}
	var ans Answer
	switch {
	case req.V != wireVersion:
		ans.Err = fmt.Sprintf("request version %d, this seeder reads version %d", req.V, wireVersion)
	case req.Op == OpState:
		st := site.State()
		if req.Since != 0 && st.Index <= req.Since {
			ans.Unchanged = true
		} else {
			ans.State = &st
		}
	default:
		ctx, cancel := context.WithTimeout(context.Background(), Timeout-time.Second)
		defer cancel()
		if err := site.Control(ctx, deploy.CommandOp(req.Op), req.Reason); err != nil {
			ans.Err = err.Error()
		}
	}
	ans.V = wireVersion
	return json.NewEncoder(s).Encode(ans)
}

// ErrProtocol is wrapped by errors about messages that do not decode.
var ErrProtocol = errors.New("bad control message")

// readJSON decodes one JSON object of at most max bytes from r.
func readJSON(r io.Reader, max int64, v any) error {
	dec := json.NewDecoder(io.LimitReader(r, max))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w (at most %d bytes)", ErrProtocol, err, max)
	}
	return nil
}

// ask sends one request to a seeder and returns its answer.
func ask(ctx context.Context, h host.Host, id peer.ID, req Request) (Answer, error) {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	s, err := h.NewStream(network.WithAllowLimitedConn(ctx, Protocol), id, Protocol)
	if err != nil {
		return Answer{}, fmt.Errorf("control %s: %w", id.ShortString(), err)
	}
	defer s.Close()
	if d, ok := ctx.Deadline(); ok {
		s.SetDeadline(d)
	}
	req.V = wireVersion
	if err := json.NewEncoder(s).Encode(req); err != nil {
		s.Reset()
		return Answer{}, fmt.Errorf("control %s: %w", id.ShortString(), err)
	}
	s.CloseWrite()
	var ans Answer
	if err := readJSON(s, MaxAnswer, &ans); err != nil {
		s.Reset()
		return Answer{}, fmt.Errorf("control %s: %w", id.ShortString(), err)
	}
	if ans.V != wireVersion {
		return Answer{}, fmt.Errorf("control %s: answer version %d, want %d: %w", id.ShortString(), ans.V, wireVersion, ErrProtocol)
	}
	if ans.Err != "" {
		return ans, fmt.Errorf("seeder %s: %s", id.ShortString(), ans.Err)
	}
	return ans, nil
}

// Send carries an operator's command to a seeder, which proposes it if it
// leads and forwards it to the leader otherwise.
func Send(ctx context.Context, h host.Host, to peer.ID, op deploy.CommandOp, reason string) error {
	_, err := ask(ctx, h, to, Request{Op: string(op), Reason: reason})
	return err
}

// noticeKind is the first byte of a notice, the gossip broadcast by which
// the leader tells the site that its rollout changed: kind 1, then the
// Raft index of the change as a uvarint.
const noticeKind = 1

// Notice returns the broadcast that says the site's state changed at a
// Raft index.
func Notice(index uint64) []byte {
	return binary.AppendUvarint([]byte{noticeKind}, index)
}

// ParseNotice returns the index of a notice, or false for any other
// payload.
func ParseNotice(b []byte) (uint64, bool) {
	if len(b) < 2 || b[0] != noticeKind {
		return 0, false
	}
	v, n := binary.Uvarint(b[1:])
	if n <= 0 || n != len(b)-1 {
		return 0, false
	}
	return v, true
}
