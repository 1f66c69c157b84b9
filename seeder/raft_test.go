package seeder_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshcast/meshcast/seeder"
)

func TestRaftClusterApplies(t *testing.T) {
	c := newCluster(t, seeder.TestRaftConfig())
	nodes, elected := c.form(3)
	t.Logf("TestRaftConfig: a bootstrapped single voter elected itself in %v", elected)
	leader, _ := c.waitLeader(wait, 0)
	if got, want := servers(t, leader), "s1:voter s2:voter s3:voter"; got != want {
		t.Errorf("servers %q, want %q", got, want)
	}
	var follower *seeder.Raft
	for _, n := range nodes {
		if n != leader {
			follower = n.r
		}
	}

	// A command on the leader reaches every FSM.
	start := time.Now()
	leader.mustPropose("1.0.0")
	t.Logf("stage committed and applied on the leader in %v", time.Since(start))
	c.waitTarget("1.0.0")
	for _, n := range nodes {
		st := n.fsm.State()
		if want := leader.fsm.State(); *st.Target != *want.Target {
			t.Errorf("%s: target %+v, the leader's %+v", n.id, *st.Target, *want.Target)
		}
	}

	// The same release again: a no-op.
	if resp, err := leader.propose("1.0.0"); err != nil || resp.(seeder.ApplyResult).Changed {
		t.Errorf("staging the target again: %v, %v", resp, err)
	}

	// On a follower: ErrNotLeader, naming the leader, nothing proposed.
	lastIndex := leader.stat("last_log_index")
	_, err := follower.Apply(ctx(t), mustEncode(t, seeder.CmdStageRelease, stage("gw", "2.0.0", leader.r.Term())))
	if !errors.Is(err, seeder.ErrNotLeader) || !strings.Contains(err.Error(), leader.id) {
		t.Errorf("apply on a follower: %v, want ErrNotLeader naming %s", err, leader.id)
	}
	if err := follower.AddVoter(ctx(t), "s9"); !errors.Is(err, seeder.ErrNotLeader) {
		t.Errorf("add voter on a follower: %v, want ErrNotLeader", err)
	}
	if got := leader.stat("last_log_index"); got != lastIndex {
		t.Errorf("the leader's log grew from %d to %d", lastIndex, got)
	}

	// A lower version is refused, everywhere alike.
	if _, err := leader.propose("0.9.0"); !errors.Is(err, seeder.ErrRefused) {
		t.Errorf("stage a lower version: %v, want ErrRefused", err)
	}

	// A stale term is refused.
	_, err = leader.r.Apply(ctx(t), mustEncode(t, seeder.CmdStageRelease, stage("gw", "3.0.0", leader.r.Term()-1)))
	if !errors.Is(err, seeder.ErrRefused) || !strings.Contains(err.Error(), "stale") {
		t.Errorf("stage with an old term: %v, want a stale refusal", err)
	}

	// Garbage committed through raft: an error response on every node,
	// nothing crashes, the target stays.
	garbage := [][]byte{[]byte("garbage"), {}, {1, 1, '{'}, {1, 77, '{', '}'}}
	for _, g := range garbage {
		if _, err := leader.r.Apply(ctx(t), g); !errors.Is(err, seeder.ErrBadCommand) {
			t.Errorf("apply %q: %v, want ErrBadCommand", g, err)
		} else {
			t.Logf("apply %q: %v", g, err)
		}
	}
	index := leader.fsm.State().Index
	for _, n := range nodes {
		st := n.waitState("garbage applied", func(st seeder.SiteState) bool { return st.Index >= index })
		if st.Target.Version != "1.0.0" {
			t.Errorf("%s: target %s after garbage", n.id, st.Target.Version)
		}
	}

	// Too big: refused before it is proposed.
	lastIndex = leader.stat("last_log_index")
	if _, err := leader.r.Apply(ctx(t), make([]byte, seeder.MaxCommandSize+1)); !errors.Is(err, seeder.ErrBadCommand) {
		t.Errorf("apply of an oversized command: %v, want ErrBadCommand", err)
	}
	if got := leader.stat("last_log_index"); got != lastIndex {
		t.Errorf("an oversized command reached the log (%d → %d)", lastIndex, got)
	}

	// And the cluster goes on.
	leader.mustPropose("1.1.0")
	c.waitTarget("1.1.0")
}

// TestRaftFailover kills the leader, measures how long the others take to
// elect a new one, restarts the old leader from its directory (it catches
// up from its own WAL and then from the leader), and measures a cold start
// of the whole cluster. With TestRaftConfig, and with LANRaftConfig, whose
// documented bound is a new leader within 2 s.
func TestRaftFailover(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  seeder.RaftConfig
	}{
		{"TestRaftConfig", seeder.TestRaftConfig()},
		{"LANRaftConfig", seeder.LANRaftConfig()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, tc.cfg)
			_, elected := c.form(3)
			old, _ := c.waitLeader(wait, 0)
			old.mustPropose("1.0.0")
			c.waitTarget("1.0.0")
			oldTerm := old.r.Term()
			oldLast := old.stat("last_log_index")

			start := time.Now()
			old.kill()
			killed := time.Since(start)
			leader, waited := c.waitLeader(5*time.Second, oldTerm)
			t.Logf("%s: single-voter bootstrap election %v; failover: new leader %s %v after the leader's Close returned (Close took %v)",
				tc.name, elected, leader.id, waited, killed)
			if waited > 2*time.Second {
				t.Logf("%s: failover took over 2 s (a loaded machine?)", tc.name)
			}
			leader.mustPropose("1.1.0") // two of three commit
			c.waitTarget("1.1.0")

			// The old leader restarts from its directory: its log is on disk.
			old.up(false)
			if got := old.stat("last_log_index"); got < oldLast {
				t.Errorf("restarted %s holds log up to %d, had %d", old.id, got, oldLast)
			}
			old.waitState("caught up", func(st seeder.SiteState) bool {
				return st.Target != nil && st.Target.Version == "1.1.0"
			})
			if _, _, isLeader := old.r.Leader(); isLeader {
				t.Errorf("restarted %s leads", old.id)
			}
			if id, _, _ := old.r.Leader(); id != leader.id {
				t.Logf("restarted %s sees leader %q, want %s", old.id, id, leader.id)
			}
			leader.mustPropose("1.2.0")
			c.waitTarget("1.2.0")

			// Cold start: every seeder down, then up again from disk.
			for _, n := range c.nodes {
				n.kill()
			}
			start = time.Now()
			for _, n := range c.nodes {
				n.up(false)
			}
			leader, waited = c.waitLeader(5*time.Second, 0)
			t.Logf("%s: cold start of 3 voters from disk: %s elected in %v", tc.name, leader.id, time.Since(start))
			_ = waited
			c.waitTarget("1.2.0")
			leader.mustPropose("1.3.0")
			c.waitTarget("1.3.0")
		})
	}
}

// TestRaftRemoveDeadVoter: the operator removes a dead voter and adds a
// new one; the cluster then tolerates another failure.
func TestRaftRemoveDeadVoter(t *testing.T) {
	c := newCluster(t, seeder.TestRaftConfig())
	nodes, _ := c.form(3)
	leader, _ := c.waitLeader(wait, 0)
	var followers []*node
	for _, n := range nodes {
		if n != leader {
			followers = append(followers, n)
		}
	}
	dead, other := followers[0], followers[1]
	dead.kill()
	leader.mustPropose("1.0.0") // two of three still commit

	if err := leader.r.RemoveServer(ctx(t), dead.id); err != nil {
		t.Fatal(err)
	}
	s4 := c.start("s4", false)
	if err := leader.r.AddVoter(ctx(t), s4.id); err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{leader.id + ":voter", other.id + ":voter", "s4:voter"}, " ")
	if got := servers(t, leader); !sameSet(got, want) {
		t.Errorf("servers %q, want %q", got, want)
	}
	s4.waitState("caught up", func(st seeder.SiteState) bool { return st.Target != nil && st.Target.Version == "1.0.0" })

	// Another voter fails: the leader and s4 are a quorum of three.
	other.kill()
	leader.mustPropose("1.1.0")
	s4.waitState("1.1.0", func(st seeder.SiteState) bool { return st.Target != nil && st.Target.Version == "1.1.0" })
}

func sameSet(a, b string) bool {
	fa, fb := strings.Fields(a), strings.Fields(b)
	if len(fa) != len(fb) {
		return false
	}
	m := map[string]int{}
	for _, f := range fa {
		m[f]++
	}
	for _, f := range fb {
		if m[f]--; m[f] < 0 {
			return false
		}
	}
	return true
}

// TestRaftLeaderCh: LeaderCh reports gaining and losing leadership.
func TestRaftLeaderCh(t *testing.T) {
	c := newCluster(t, seeder.TestRaftConfig())
	s1 := c.start("s1", true)
	expect := func(n *node, want bool) {
		t.Helper()
		select {
		case got := <-n.r.LeaderCh():
			if got != want {
				t.Fatalf("%s: LeaderCh %v, want %v", n.id, got, want)
			}
		case <-time.After(wait):
			t.Fatalf("%s: LeaderCh: nothing within %v", n.id, wait)
		}
	}
	expect(s1, true)
	s2 := c.start("s2", false)
	if err := s1.r.AddVoter(ctx(t), s2.id); err != nil {
		t.Fatal(err)
	}
	s1.mustPropose("1.0.0")
	s2.waitState("1.0.0", func(st seeder.SiteState) bool { return st.Target != nil })

	if err := s1.r.TransferLeadership(); err != nil {
		t.Fatal(err)
	}
	expect(s1, false)
	expect(s2, true)
	if id, _, isLeader := s1.r.Leader(); isLeader || id != "" && id != s2.id {
		t.Errorf("s1 after the transfer: leader %q, isLeader %v", id, isLeader)
	}
	s2.mustPropose("1.1.0")

	// A non-voter gets the log and does not vote.
	s3 := c.start("s3", false)
	if err := s2.r.AddNonVoter(ctx(t), s3.id); err != nil {
		t.Fatal(err)
	}
	if got, want := servers(t, s2), "s1:voter s2:voter s3:nonvoter"; !sameSet(got, want) {
		t.Errorf("servers %q, want %q", got, want)
	}
	s3.waitState("1.1.0", func(st seeder.SiteState) bool { return st.Target != nil && st.Target.Version == "1.1.0" })
}

// TestRaftSnapshots: the leader snapshots after SnapshotThreshold entries
// and compacts its log; a server added later gets the snapshot
// (FSM.Restore through raft), and a restart restores from the snapshot
// plus the WAL.
func TestRaftSnapshots(t *testing.T) {
	cfg := seeder.TestRaftConfig()
	// raft-wal serves entries of its open segment even after a snapshot
	// truncated them, so a small segment makes the snapshot necessary.
	cfg.WALSegmentSize = 8 << 10
	c := newCluster(t, cfg)
	nodes, _ := c.form(1)
	s1 := nodes[0]
	const n = 100
	for i := range n {
		s1.mustPropose("1.0." + strconv.Itoa(i))
	}
	s1.waitStat("last_snapshot_index", func(v uint64) bool { return v > 0 })
	snapAt := s1.stat("last_snapshot_index")
	t.Logf("s1 snapshot at index %d", snapAt)
	want := "1.0." + strconv.Itoa(n-1)

	s2 := c.start("s2", false)
	if err := s1.r.AddNonVoter(ctx(t), s2.id); err != nil {
		t.Fatal(err)
	}
	s2.waitState(want, func(st seeder.SiteState) bool { return st.Target != nil && st.Target.Version == want })
	// Raft records the installed snapshot just after FSM.Restore returned.
	s2.waitStat("last_snapshot_index", func(v uint64) bool { return v >= snapAt })
	if err := s1.r.AddVoter(ctx(t), s2.id); err != nil { // promote
		t.Fatal(err)
	}
	if got, want := servers(t, s1), "s1:voter s2:voter"; !sameSet(got, want) {
		t.Errorf("servers %q, want %q", got, want)
	}

	// Restart both: the FSMs come back from snapshot + log.
	before := s1.fsm.State()
	for _, n := range c.nodes {
		n.kill()
	}
	for _, n := range c.nodes {
		n.up(false)
	}
	leader, _ := c.waitLeader(wait, 0)
	leader.mustPropose("2.0.0")
	for _, n := range c.nodes {
		st := n.waitState("2.0.0", func(st seeder.SiteState) bool { return st.Target != nil && st.Target.Version == "2.0.0" })
		if st.Index <= before.Index {
			t.Errorf("%s: index %d after restart, was %d", n.id, st.Index, before.Index)
		}
	}
}

func TestNewRaftRefuses(t *testing.T) {
	net := newMemNet()
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		cfg  seeder.RaftConfig
		addr string
		want string
	}{
		{"no dir", seeder.RaftConfig{ID: "s1"}, "s1", "Dir is empty"},
		{"no id", seeder.RaftConfig{Dir: dir}, "s1", "ID is empty"},
		{"negative", seeder.RaftConfig{Dir: dir, ID: "s1", CommitTimeout: -1}, "s1", "CommitTimeout is -1ns"},
		{"lease above heartbeat", seeder.RaftConfig{Dir: dir, ID: "s1", HeartbeatTimeout: 100 * time.Millisecond, LeaderLeaseTimeout: time.Second}, "s1", "LeaderLeaseTimeout"},
		{"streams of another id", seeder.RaftConfig{Dir: dir, ID: "s1"}, "s2", `listen as "s2"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := net.listen(tc.addr)
			_, err := seeder.NewRaft(tc.cfg, s, seeder.NewFSM(), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			}
			// NewRaft closed the Streams: the id is free again.
			net.listen(tc.addr).Close()
		})
	}
	if err := seeder.TestRaftConfig().Validate(); err == nil || !strings.Contains(err.Error(), "Dir") {
		t.Errorf("a profile without Dir validates: %v", err)
	}
	for _, cfg := range []seeder.RaftConfig{seeder.LANRaftConfig(), seeder.TestRaftConfig(), {}} {
		cfg.Dir, cfg.ID = dir, "s1"
		if err := cfg.Validate(); err != nil {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
}

func TestRaftClose(t *testing.T) {
	c := newCluster(t, seeder.TestRaftConfig())
	nodes, _ := c.form(1)
	s1 := nodes[0]
	s1.mustPropose("1.0.0")
	r := s1.r
	// One node per directory.
	cfg := seeder.TestRaftConfig()
	cfg.Dir, cfg.ID = s1.dir, "other"
	if _, err := seeder.NewRaft(cfg, c.net.listen("other"), seeder.NewFSM(), nil); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("a second node on %s: %v, want an error saying it is in use", s1.dir, err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	s1.r = nil
	if _, err := r.Apply(context.Background(), mustEncode(t, seeder.CmdStageRelease, stage("gw", "2.0.0", 2))); !errors.Is(err, seeder.ErrClosed) {
		t.Errorf("Apply after Close: %v, want ErrClosed", err)
	}
	if err := r.AddVoter(context.Background(), "s2"); !errors.Is(err, seeder.ErrClosed) {
		t.Errorf("AddVoter after Close: %v, want ErrClosed", err)
	}
	if _, err := r.Servers(); !errors.Is(err, seeder.ErrClosed) {
		t.Errorf("Servers after Close: %v, want ErrClosed", err)
	}
}
