package seeder_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshcast/meshcast/seeder"
)

// wait bounds every wait for an event in these tests.
const wait = 10 * time.Second

// testLog is a slog.Logger writing to t.Log, prefixed with name, until the
// test's cleanups are done (raft goroutines that outlive a test by a moment
// must not log to a finished test). Raft's own records are at DEBUG and
// left out; warnings and errors show.
func testLog(t testing.TB, name string, done *stopFlag) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t, name, done}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type stopFlag struct {
	mu      sync.Mutex
	stopped bool
}

type tWriter struct {
	t    testing.TB
	name string
	done *stopFlag
}

func (w tWriter) Write(p []byte) (int, error) {
	w.done.mu.Lock()
	defer w.done.mu.Unlock()
	if !w.done.stopped {
		w.t.Log(w.name + ": " + strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// cluster is a set of Raft nodes on one memNet, each with its own state
// directory, closed when the test ends.
type cluster struct {
	t     testing.TB
	net   *memNet
	cfg   seeder.RaftConfig
	dir   string
	logs  *stopFlag
	nodes []*node
}

// node is one seeder's Raft node; r is nil while it is down.
type node struct {
	c    *cluster
	id   string
	dir  string
	fsm  *seeder.FSM
	r    *seeder.Raft
	logs *slog.Logger
}

func newCluster(t testing.TB, cfg seeder.RaftConfig) *cluster {
	c := &cluster{t: t, net: newMemNet(), cfg: cfg, dir: t.TempDir(), logs: &stopFlag{}}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			n.kill()
		}
		c.logs.mu.Lock()
		c.logs.stopped = true
		c.logs.mu.Unlock()
	})
	return c
}

// start starts a new node with id (bootstrapping a cluster if asked).
func (c *cluster) start(id string, bootstrap bool) *node {
	c.t.Helper()
	n := &node{c: c, id: id, dir: filepath.Join(c.dir, id), logs: testLog(c.t, id, c.logs)}
	c.nodes = append(c.nodes, n)
	n.up(bootstrap)
	return n
}

// up starts n's Raft over its directory, with a fresh FSM.
func (n *node) up(bootstrap bool) {
	n.c.t.Helper()
	cfg := n.c.cfg
	cfg.Dir, cfg.ID, cfg.Bootstrap = n.dir, n.id, bootstrap
	n.fsm = seeder.NewFSM()
	r, err := seeder.NewRaft(cfg, n.c.net.listen(n.id), n.fsm, n.logs)
	if err != nil {
		n.c.t.Fatal(err)
	}
	n.r = r
}

// kill closes n's Raft: to the others it is a crashed server.
func (n *node) kill() {
	if n.r == nil {
		return
	}
	if err := n.r.Close(); err != nil {
		n.c.t.Errorf("close %s: %v", n.id, err)
	}
	n.r = nil
}

func (c *cluster) live() []*node {
	var out []*node
	for _, n := range c.nodes {
		if n.r != nil {
			out = append(out, n)
		}
	}
	return out
}

// form starts a cluster of k voters s1…sk: s1 bootstraps, the others are
// added by it. It returns the nodes and how long s1 took to elect itself.
func (c *cluster) form(k int) ([]*node, time.Duration) {
	c.t.Helper()
	start := time.Now()
	first := c.start("s1", true)
	if l, _ := c.waitLeader(wait, 0); l != first {
		c.t.Fatalf("leader %s, want s1", l.id)
	}
	elected := time.Since(start)
	nodes := []*node{first}
	for i := 2; i <= k; i++ {
		n := c.start("s"+strconv.Itoa(i), false)
		if err := first.r.AddVoter(ctx(c.t), n.id); err != nil {
			c.t.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	return nodes, elected
}

// waitLeader waits up to timeout until a live node is the leader in a term
// above minTerm, and returns it and the time waited. It wakes on the nodes'
// LeaderCh (it consumes their values) and asks Leader on each wake-up.
func (c *cluster) waitLeader(timeout time.Duration, minTerm uint64) (*node, time.Duration) {
	c.t.Helper()
	start := time.Now()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	live := c.live()
	cases := []reflect.SelectCase{{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(deadline.C)}}
	for _, n := range live {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(n.r.LeaderCh())})
	}
	for {
		for _, n := range live {
			if _, term, ok := n.r.Leader(); ok && term > minTerm {
				return n, time.Since(start)
			}
		}
		if i, _, _ := reflect.Select(cases); i == 0 {
			c.t.Fatalf("no leader in a term above %d within %v", minTerm, timeout)
		}
	}
}

// waitState waits until n's FSM state satisfies ok.
func (n *node) waitState(what string, ok func(seeder.SiteState) bool) seeder.SiteState {
	n.c.t.Helper()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		st := n.fsm.State()
		if ok(st) {
			return st
		}
		select {
		case <-n.fsm.Changes():
		case <-deadline.C:
			n.c.t.Fatalf("%s: %s: not within %v; state %+v target %+v", n.id, what, wait, st, st.Target)
		}
	}
}

// waitTarget waits until every live node's target is version.
func (c *cluster) waitTarget(version string) {
	c.t.Helper()
	for _, n := range c.live() {
		n.waitState("target "+version, func(st seeder.SiteState) bool {
			return st.Target != nil && st.Target.Version == version
		})
	}
}

// propose stages gw version through leader, in its current term.
func (n *node) propose(version string) (any, error) {
	n.c.t.Helper()
	_, term, _ := n.r.Leader()
	return n.r.Apply(ctx(n.c.t), mustEncode(n.c.t, seeder.CmdStageRelease, stage("gw", version, term)))
}

// mustPropose stages gw version and checks the FSM took it.
func (n *node) mustPropose(version string) {
	n.c.t.Helper()
	resp, err := n.propose(version)
	if err != nil {
		n.c.t.Fatalf("stage %s on %s: %v", version, n.id, err)
	}
	if r, ok := resp.(seeder.ApplyResult); !ok || !r.Changed {
		n.c.t.Fatalf("stage %s on %s: response %v", version, n.id, resp)
	}
}

func (n *node) stat(key string) uint64 {
	n.c.t.Helper()
	v, err := strconv.ParseUint(n.r.Stats()[key], 10, 64)
	if err != nil {
		n.c.t.Fatalf("%s: stat %s: %v", n.id, key, err)
	}
	return v
}

// waitStat waits until n's raft statistic key satisfies ok. hashicorp/raft
// signals nothing when, say, it took a snapshot, so this polls (every
// 10 ms, bounded by wait).
func (n *node) waitStat(key string, ok func(uint64) bool) {
	n.c.t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for !ok(n.stat(key)) {
		select {
		case <-tick.C:
		case <-deadline.C:
			n.c.t.Fatalf("%s: stat %s is %d after %v", n.id, key, n.stat(key), wait)
		}
	}
}

func ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

func servers(t testing.TB, n *node) string {
	t.Helper()
	ss, err := n.r.Servers()
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, s := range ss {
		parts = append(parts, fmt.Sprintf("%s:%s", s.ID, s.Suffrage))
	}
	return strings.Join(parts, " ")
}
