package gossip

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/deploy"
)

// converge bounds waits for things the test profile does in well under a
// second (joins, convergence, delivery): generous for a loaded machine
// running the suite under -race.
const converge = 10 * time.Second

// testKey is the gossip key of the test sites unless a test says otherwise.
var testKey = bytes.Repeat([]byte{0x42}, 32)

// logSink writes a member's log records to t.Log, prefixed with its name,
// and keeps their text for assertions. It drops records once the test has
// ended (t.Log would panic).
type logSink struct {
	t    testing.TB
	name string

	mu    sync.Mutex
	ended bool
	lines []string
}

func (s *logSink) Write(p []byte) (int, error) {
	line := strings.TrimSuffix(string(p), "\n")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, line)
	if !s.ended {
		s.t.Log(s.name + ": " + line)
	}
	return len(p), nil
}

// contains reports whether a logged line contains sub.
func (s *logSink) contains(sub string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.ContainsFunc(s.lines, func(l string) bool { return strings.Contains(l, sub) })
}

// testLogger returns a logger to t.Log at GOSSIP_TEST_LOG's level (default
// info: memberlist's debug lines are many).
func testLogger(t testing.TB, name string) (*slog.Logger, *logSink) {
	s := &logSink{t: t, name: name}
	t.Cleanup(func() { s.mu.Lock(); s.ended = true; s.mu.Unlock() })
	lvl := slog.LevelInfo
	if v := os.Getenv("GOSSIP_TEST_LOG"); v != "" {
		if err := lvl.UnmarshalText([]byte(v)); err != nil {
			t.Fatalf("GOSSIP_TEST_LOG=%q: %v", v, err)
		}
	}
	return slog.New(slog.NewTextHandler(s, &slog.HandlerOptions{Level: lvl})), s
}

// stamped is something received, with when.
type stamped[T any] struct {
	at time.Time
	v  T
}

// recorder reads a member's Events and Messages until Close closes them,
// and keeps what it read for the test to wait on.
type recorder struct {
	mu      sync.Mutex
	events  []stamped[Event]
	msgs    []stamped[[]byte]
	changed chan struct{} // closed and replaced whenever something arrives
	wg      sync.WaitGroup
}

func newRecorder(g *Gossip) *recorder {
	r := &recorder{changed: make(chan struct{})}
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		for e := range g.Events() {
			r.add(func() { r.events = append(r.events, stamped[Event]{time.Now(), e}) })
		}
	}()
	go func() {
		defer r.wg.Done()
		for m := range g.Messages() {
			r.add(func() { r.msgs = append(r.msgs, stamped[[]byte]{time.Now(), m}) })
		}
	}()
	return r
}

func (r *recorder) add(f func()) {
	r.mu.Lock()
	f()
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// waitFor waits until cond, called under the recorder's lock, holds, or
// within has passed; it reports whether cond held.
func (r *recorder) waitFor(within time.Duration, cond func(r *recorder) bool) bool {
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		r.mu.Lock()
		ok := cond(r)
		ch := r.changed
		r.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-timer.C:
			return false
		}
	}
}

// event returns the first recorded event that matches.
func (r *recorder) event(match func(Event) bool) (stamped[Event], bool) {
	for _, e := range r.events {
		if match(e.v) {
			return e, true
		}
	}
	return stamped[Event]{}, false
}

// waitEvent waits up to within for an event that matches.
func (r *recorder) waitEvent(within time.Duration, match func(Event) bool) (stamped[Event], bool) {
	var got stamped[Event]
	ok := r.waitFor(within, func(r *recorder) bool {
		var found bool
		got, found = r.event(match)
		return found
	})
	return got, ok
}

// alive returns the members alive according to the events read so far.
func (r *recorder) alive() []string {
	set := map[string]bool{}
	for _, e := range r.events {
		switch e.v.Kind {
		case EventJoin:
			set[e.v.Member.Name] = true
		case EventLeave, EventFail:
			delete(set, e.v.Member.Name)
		}
	}
	var out []string
	for n := range set {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// count returns how many received messages equal m.
func (r *recorder) count(m []byte) int {
	n := 0
	for _, x := range r.msgs {
		if bytes.Equal(x.v, m) {
			n++
		}
	}
	return n
}

// tnode is a member under test: a Gossip on 127.0.0.1 with a recorder.
type tnode struct {
	*Gossip
	name   string
	rec    *recorder
	logs   *logSink
	stalls *stallWatch // of its test
}

// stallWatch measures how long the test process stopped running: a
// goroutine that wakes every 10 ms notes each delay beyond that. A
// process-wide stall (a loaded or descheduled machine) longer than a probe
// timeout makes every member miss acks, and memberlist may then declare a
// live member dead, or a deadline pass: no fault of the code under test.
type stallWatch struct {
	mu     sync.Mutex
	stalls []stall // longer than 20 ms, oldest first
	stop   chan struct{}
	done   chan struct{}
}

type stall struct {
	end time.Time
	d   time.Duration
}

// stallWatchFor returns the test's stall watch, started on first use and
// stopped when the test ends.
func stallWatchFor(t testing.TB) *stallWatch {
	stallWatches.Lock()
	defer stallWatches.Unlock()
	if w := stallWatches.m[t]; w != nil {
		return w
	}
	w := &stallWatch{stop: make(chan struct{}), done: make(chan struct{})}
	stallWatches.m[t] = w
	go func() {
		defer close(w.done)
		const tick = 10 * time.Millisecond
		tk := time.NewTicker(tick)
		defer tk.Stop()
		last := time.Now()
		for {
			select {
			case <-w.stop:
				return
			case now := <-tk.C:
				if d := now.Sub(last) - tick; d > 20*time.Millisecond {
					w.mu.Lock()
					w.stalls = append(w.stalls, stall{now, d})
					w.mu.Unlock()
				}
				last = now
			}
		}
	}()
	t.Cleanup(func() {
		close(w.stop)
		<-w.done
		stallWatches.Lock()
		delete(stallWatches.m, t)
		stallWatches.Unlock()
	})
	return w
}

var stallWatches = struct {
	sync.Mutex
	m map[testing.TB]*stallWatch
}{m: map[testing.TB]*stallWatch{}}

// since returns the longest stall that ended after from (zero time: the
// whole test) and the total of all of them.
func (w *stallWatch) since(from time.Time) (longest, total time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.stalls {
		if s.end.After(from) {
			longest = max(longest, s.d)
			total += s.d
		}
	}
	return longest, total
}

// seedAddr returns the member's gossip address as host:port.
func (n *tnode) seedAddr() string {
	ip, port := n.LocalAddr()
	return net.JoinHostPort(ip.String(), fmt.Sprint(port))
}

// testMeta is the status a test member starts with.
func testMeta(name string) Meta {
	return Meta{ID: name, Role: RoleNode, Platform: "linux/amd64", P2PPort: 4001,
		Running: content.Release{Name: "gateway", Version: "1.0.0"}, Phase: deploy.PhaseHealthy, Health: HealthHealthy}
}

// newNode starts a member with the test profile and testKey, as changed by
// mod, closed when the test ends.
func newNode(t testing.TB, name string, mod func(*Config)) *tnode {
	t.Helper()
	cfg := Config{Name: name, BindAddr: "127.0.0.1", Profile: ProfileTest, Keys: [][]byte{testKey}}
	if mod != nil {
		mod(&cfg)
	}
	log, sink := testLogger(t, name)
	g, err := New(cfg, testMeta(name), log)
	if err != nil {
		t.Fatalf("New %s: %v", name, err)
	}
	n := &tnode{Gossip: g, name: name, rec: newRecorder(g), logs: sink, stalls: stallWatchFor(t)}
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Errorf("Close %s: %v", name, err)
		}
		n.rec.wg.Wait()
	})
	return n
}

// join joins n through seed, failing the test if it cannot.
func (n *tnode) join(t testing.TB, seed *tnode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), converge)
	defer cancel()
	if _, err := n.Join(ctx, []string{seed.seedAddr()}); err != nil {
		t.Fatalf("%s joins through %s: %v", n.name, seed.name, err)
	}
}

// names returns the names of nodes, sorted.
func names(nodes []*tnode) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.name)
	}
	slices.Sort(out)
	return out
}

// newCluster starts n members, joins them all through the first, and
// waits until every member's events show all of them alive.
func newCluster(t testing.TB, prefix string, n int, mod func(*Config)) []*tnode {
	t.Helper()
	nodes := make([]*tnode, n)
	for i := range nodes {
		nodes[i] = newNode(t, fmt.Sprintf("%s-%02d", prefix, i), mod)
		if i > 0 {
			nodes[i].join(t, nodes[0])
		}
	}
	waitConverged(t, nodes, names(nodes))
	return nodes
}

// waitConverged waits until each of nodes sees exactly want alive, by its
// events and by Members.
func waitConverged(t testing.TB, nodes []*tnode, want []string) {
	t.Helper()
	start := time.Now()
	for _, n := range nodes {
		if !n.rec.waitFor(converge, func(r *recorder) bool { return slices.Equal(r.alive(), want) }) {
			n.rec.mu.Lock()
			got := n.rec.alive()
			n.rec.mu.Unlock()
			t.Fatalf("%s sees %v alive after %v; want %v", n.name, got, converge, want)
		}
		var got []string
		for _, m := range n.Members() {
			got = append(got, m.Name)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: Members() = %v; want %v", n.name, got, want)
		}
	}
	t.Logf("%d members converged on %d alive in %v", len(nodes), len(want), time.Since(start).Round(time.Millisecond))
}

// noneFailed fails the test if a member reported another's failure: the
// test's site was meant to stay healthy. If the whole test process stalled
// for longer than a probe timeout meanwhile, failures are only logged: the
// machine, not the code, made members miss their deadlines.
func noneFailed(t testing.TB, nodes []*tnode) {
	t.Helper()
	stall, _ := nodes[0].stalls.since(time.Time{})
	excused := stall > profiles[ProfileTest].probeTimeout
	for _, n := range nodes {
		n.rec.mu.Lock()
		for _, e := range n.rec.events {
			if e.v.Kind != EventFail {
				continue
			}
			if excused {
				t.Logf("NOTE: %s reported %s failed, but the test process stalled for %v: excused",
					n.name, e.v.Member.Name, stall.Round(time.Millisecond))
			} else {
				t.Errorf("%s reported %s failed (longest process stall %v)", n.name, e.v.Member.Name, stall.Round(time.Millisecond))
			}
		}
		n.rec.mu.Unlock()
	}
}

// quiesce waits until no member has a broadcast left to gossip: after
// that, no more copies of earlier broadcasts are on their way (beyond
// packets in flight).
func quiesce(t testing.TB, nodes []*tnode) {
	t.Helper()
	deadline := time.Now().Add(converge)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		queued := 0
		for _, n := range nodes {
			queued += n.bq.len()
		}
		if queued == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d broadcasts still queued after %v", queued, converge)
		}
		<-tick.C
	}
}

// logFailures logs the failures members reported, for tests whose claim
// is not about failure detection: under -race on a loaded machine, the
// test profile's 100 ms probe timeout is sometimes missed by a live member
// of a site of 10, which then refutes.
func logFailures(t testing.TB, nodes []*tnode) {
	t.Helper()
	for _, n := range nodes {
		n.rec.mu.Lock()
		for _, e := range n.rec.events {
			if e.v.Kind == EventFail {
				t.Logf("NOTE: %s reported %s failed (a false suspicion: the site was not meant to lose anyone)", n.name, e.v.Member.Name)
			}
		}
		n.rec.mu.Unlock()
	}
}

// checkBound fails the test if took exceeds bound, unless the test process
// stalled since start for long enough to explain the excess; either way it
// logs the stalls.
func checkBound(t testing.TB, w *stallWatch, start time.Time, what string, took, bound time.Duration) {
	t.Helper()
	longest, total := w.since(start)
	if total > 0 {
		t.Logf("the test process stalled for %v in all (longest %v) while %s", total.Round(time.Millisecond), longest.Round(time.Millisecond), what)
	}
	switch {
	case took < bound:
	case took-total < bound:
		t.Logf("NOTE: %s took %v, over %v, but stalls of the test process explain the excess", what, took.Round(time.Millisecond), bound)
	default:
		t.Errorf("%s took %v; want under %v", what, took.Round(time.Millisecond), bound)
	}
}
