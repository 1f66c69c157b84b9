package control

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Seeders is a node's view of its site's decisions: it asks the seeders
// that List returns. Safe for concurrent use.
type Seeders struct {
	h    host.Host
	list func() []peer.ID

	mu   sync.Mutex
	last State // the freshest state any seeder answered
}

// NewSeeders returns a view that asks the seeders list returns (the
// leader first, when known).
func NewSeeders(h host.Host, list func() []peer.ID) *Seeders {
	return &Seeders{h: h, list: list}
}

// State asks every seeder at once and returns the freshest state among
// the answers and the one it had: a seeder that is partitioned away, slow
// or behind costs nothing but its own answer. It fails only when no
// seeder answered and it never had a state.
func (s *Seeders) State(ctx context.Context) (State, error) {
	ids := s.list()
	s.mu.Lock()
	since := s.last.Index
	s.mu.Unlock()
	type result struct {
		ans Answer
		err error
	}
	out := make(chan result, len(ids))
	for _, id := range ids {
		go func() {
			ans, err := ask(ctx, s.h, id, Request{Op: OpState, Since: since})
			out <- result{ans, err}
		}()
	}
	var errs []error
	answered := false
	for range ids {
		r := <-out
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		answered = true
		if r.ans.State != nil {
			s.mu.Lock()
			if r.ans.State.Index >= s.last.Index {
				s.last = *r.ans.State
			}
			s.mu.Unlock()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !answered && s.last.Index == 0 {
		if len(ids) == 0 {
			return State{}, errors.New("no seeder known to ask")
		}
		return State{}, fmt.Errorf("no seeder answered: %w", errors.Join(errs...))
	}
	st := s.last
	if st.Rollout != nil {
		r := st.Rollout.Clone()
		st.Rollout = &r
	}
	return st, nil
}
