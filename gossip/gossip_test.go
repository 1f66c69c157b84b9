package gossip

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/deploy"
)

// Five members that know only the first one all end up knowing each
// other, with each other's addresses and status.
func TestJoinThroughOneSeed(t *testing.T) {
	nodes := newCluster(t, "join", 5, nil)
	for _, n := range nodes {
		members := n.Members()
		for _, other := range nodes {
			i := slices.IndexFunc(members, func(m Member) bool { return m.Name == other.name })
			if i < 0 {
				t.Fatalf("%s does not list %s", n.name, other.name)
			}
			m := members[i]
			ip, port := other.LocalAddr()
			if !m.Addr.Equal(ip) || int(m.Port) != port {
				t.Errorf("%s lists %s at %s:%d; it is at %s:%d", n.name, other.name, m.Addr, m.Port, ip, port)
			}
			if want := testMeta(other.name); m.Meta != want || m.MetaErr != nil || m.State != StateAlive {
				t.Errorf("%s lists %s with %+v (%v, %s); want %+v alive", n.name, other.name, m.Meta, m.MetaErr, m.State, want)
			}
		}
		// The first event is the member's own join.
		n.rec.mu.Lock()
		first := n.rec.events[0].v
		n.rec.mu.Unlock()
		if first.Kind != EventJoin || first.Member.Name != n.name {
			t.Errorf("%s: first event %v %s; want its own join", n.name, first.Kind, first.Member.Name)
		}
	}
	logFailures(t, nodes)
}

// A status change (SetMeta) reaches every other member within a second,
// and a burst of changes ends with the last one everywhere.
func TestStatusChangeSeenByAllWithinASecond(t *testing.T) {
	nodes := newCluster(t, "status", 5, nil)
	src := nodes[2]
	m := testMeta(src.name)
	m.Staged, m.Phase, m.Progress = content.Release{Name: "gateway", Version: "1.1.0"}, deploy.PhaseFetching, 123
	start := time.Now()
	if err := src.SetMeta(m); err != nil {
		t.Fatal(err)
	}
	if got := src.Meta(); got != m {
		t.Fatalf("Meta() = %+v after SetMeta(%+v)", got, m)
	}
	isUpdate := func(want Meta) func(Event) bool {
		return func(e Event) bool {
			return e.Kind == EventUpdate && e.Member.Name == src.name && e.Member.Meta == want
		}
	}
	var slowest time.Duration
	for _, n := range nodes {
		e, ok := n.rec.waitEvent(converge, isUpdate(m))
		if !ok {
			t.Fatalf("%s did not see %s's status change within %v", n.name, src.name, converge)
		}
		took := e.at.Sub(start)
		t.Logf("%s saw the change after %v", n.name, took.Round(time.Millisecond))
		slowest = max(slowest, took)
	}
	t.Logf("status change seen by all %d members after %v (documented for the test profile: %v)", len(nodes), slowest.Round(time.Millisecond), profiles[ProfileTest].spread)
	checkBound(t, src.stalls, start, "a status change reached every member", slowest, time.Second)

	// A burst of progress updates: pushes collapse, the last one wins.
	start = time.Now()
	for p := uint16(0); p <= MaxProgress; p += 10 {
		m.Progress = p
		if err := src.SetMeta(m); err != nil {
			t.Fatal(err)
		}
	}
	slowest = 0
	for _, n := range nodes {
		e, ok := n.rec.waitEvent(converge, isUpdate(m))
		if !ok {
			t.Fatalf("%s did not see the last of a burst of status changes", n.name)
		}
		slowest = max(slowest, e.at.Sub(start))
	}
	t.Logf("last of 101 status changes seen by all after %v", slowest.Round(time.Millisecond))
	checkBound(t, src.stalls, start, "the last of a burst of status changes reached every member", slowest, time.Second)
	for _, n := range nodes {
		i := slices.IndexFunc(n.Members(), func(x Member) bool { return x.Name == src.name })
		if got := n.Members()[i].Meta; got != m {
			t.Errorf("%s: Members() shows %s with %+v; want %+v", n.name, src.name, got, m)
		}
	}
	logFailures(t, nodes)
}

// A member that stops without leaving (Close: memberlist's Shutdown) is
// reported failed by every other member within the documented time.
func TestFailureSeenByAll(t *testing.T) {
	nodes := newCluster(t, "fail", 5, nil)
	victim := nodes[3]
	documented := profiles[ProfileTest].detect
	start := time.Now()
	if err := victim.Close(); err != nil {
		t.Fatal(err)
	}
	var slowest time.Duration
	for _, n := range nodes {
		if n == victim {
			continue
		}
		e, ok := n.rec.waitEvent(converge, func(e Event) bool {
			return (e.Kind == EventFail || e.Kind == EventLeave) && e.Member.Name == victim.name
		})
		if !ok {
			t.Fatalf("%s did not report %s failed within %v", n.name, victim.name, converge)
		}
		if e.v.Kind != EventFail || e.v.Member.State != StateDead {
			t.Errorf("%s reported %s's crash as %v (%s); want fail (dead)", n.name, victim.name, e.v.Kind, e.v.Member.State)
		}
		took := e.at.Sub(start)
		t.Logf("%s reported %s failed after %v", n.name, victim.name, took.Round(time.Millisecond))
		slowest = max(slowest, took)
	}
	t.Logf("failure seen by all after %v (documented for the test profile: %v)", slowest.Round(time.Millisecond), documented)
	checkBound(t, victim.stalls, start, "a crash was reported by every member", slowest, 2*documented)
	for _, n := range nodes {
		if n == victim {
			continue
		}
		if slices.ContainsFunc(n.Members(), func(m Member) bool { return m.Name == victim.name }) {
			t.Errorf("%s still lists %s", n.name, victim.name)
		}
	}
}

// Leave is reported as a leave, not a failure, and quickly.
func TestLeaveGivesEventLeave(t *testing.T) {
	nodes := newCluster(t, "leave", 4, nil)
	leaver := nodes[1]
	start := time.Now()
	if err := leaver.Leave(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("Leave returned after %v", time.Since(start).Round(time.Millisecond))
	for _, n := range nodes {
		e, ok := n.rec.waitEvent(converge, func(e Event) bool {
			return (e.Kind == EventFail || e.Kind == EventLeave) && e.Member.Name == leaver.name
		})
		if !ok {
			t.Fatalf("%s did not see %s leave", n.name, leaver.name)
		}
		if e.v.Kind != EventLeave || e.v.Member.State != StateLeft {
			t.Errorf("%s reported %s's leave as %v (%s); want leave (left)", n.name, leaver.name, e.v.Kind, e.v.Member.State)
		}
		t.Logf("%s saw %s leave after %v", n.name, leaver.name, e.at.Sub(start).Round(time.Millisecond))
	}
	// The leaving flag does not show as a status change.
	for _, n := range nodes {
		n.rec.mu.Lock()
		for _, e := range n.rec.events {
			if e.v.Kind == EventUpdate && e.v.Member.Name == leaver.name {
				t.Errorf("%s got an update event from the leaving %s", n.name, leaver.name)
			}
		}
		n.rec.mu.Unlock()
	}
	if err := leaver.SetMeta(testMeta(leaver.name)); !errors.Is(err, ErrLeft) {
		t.Errorf("SetMeta after Leave: %v; want ErrLeft", err)
	}
	if err := leaver.Broadcast([]byte("x")); !errors.Is(err, ErrLeft) {
		t.Errorf("Broadcast after Leave: %v; want ErrLeft", err)
	}
	if err := leaver.Leave(time.Second); err != nil {
		t.Errorf("second Leave: %v", err)
	}
	if err := leaver.Close(); err != nil {
		t.Fatal(err)
	}
	// Later, the others still list only themselves.
	rest := slices.DeleteFunc(slices.Clone(nodes), func(n *tnode) bool { return n == leaver })
	waitConverged(t, rest, names(rest))
	logFailures(t, rest)
}

// The API refuses what it cannot do, with errors a caller can test.
func TestAPIErrors(t *testing.T) {
	n := newNode(t, "api-00", nil)
	if ip, port := n.LocalAddr(); !ip.Equal(net.IPv4(127, 0, 0, 1)) || port == 0 {
		t.Errorf("LocalAddr = %s:%d; want 127.0.0.1 and the port picked", ip, port)
	}
	if n.Name() != "api-00" {
		t.Errorf("Name = %q", n.Name())
	}
	if err := n.SetMeta(Meta{ID: "someone-else"}); !errors.Is(err, ErrBadMeta) {
		t.Errorf("SetMeta with another ID: %v; want ErrBadMeta", err)
	}
	if err := n.SetMeta(Meta{Progress: 1001}); !errors.Is(err, ErrBadMeta) {
		t.Errorf("SetMeta with progress 1001: %v; want ErrBadMeta", err)
	}
	if err := n.SetMeta(Meta{Phase: deploy.PhaseVerified}); err != nil || n.Meta().ID != "api-00" {
		t.Errorf("SetMeta without ID: %v, ID %q; want nil and the member's name", err, n.Meta().ID)
	}
	if err := n.Broadcast(make([]byte, MaxBroadcastSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Broadcast of %d bytes: %v; want ErrTooLarge", MaxBroadcastSize+1, err)
	}
	if err := n.Broadcast(make([]byte, MaxBroadcastSize)); err != nil {
		t.Errorf("Broadcast of %d bytes: %v", MaxBroadcastSize, err)
	}
	if _, err := n.Join(context.Background(), nil); !errors.Is(err, ErrNoSeeds) {
		t.Errorf("Join without seeds: %v; want ErrNoSeeds", err)
	}
	if _, err := n.Join(context.Background(), []string{"no-port"}); !errors.Is(err, ErrConfig) {
		t.Errorf("Join with a bad seed: %v; want ErrConfig", err)
	}
	// A seed that never answers: Join retries until ctx ends.
	ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.LocalAddr().String() // a port with no TCP listener
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := n.Join(ctx, []string{dead}); !errors.Is(err, ErrJoin) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Join of a dead seed: %v; want ErrJoin and DeadlineExceeded", err)
	} else {
		t.Logf("Join of a dead seed: %v", err)
	}
	if h := n.Health(); h < 0 {
		t.Errorf("Health = %d", h)
	}
	if _, err := New(Config{Name: "x", Profile: ProfileTest, Insecure: true, BindAddr: "127.0.0.1"}, Meta{ID: "y"}, nil); !errors.Is(err, ErrBadMeta) {
		t.Errorf("New with Meta.ID differing from Name: %v; want ErrBadMeta", err)
	}
	if _, err := New(Config{Name: "x"}, Meta{}, nil); !errors.Is(err, ErrConfig) {
		t.Errorf("New with an invalid Config: %v; want ErrConfig", err)
	}

	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := n.SetMeta(testMeta(n.name)); !errors.Is(err, ErrClosed) {
		t.Errorf("SetMeta after Close: %v; want ErrClosed", err)
	}
	if err := n.Broadcast(nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Broadcast after Close: %v; want ErrClosed", err)
	}
	if err := n.Leave(time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("Leave after Close: %v; want ErrClosed", err)
	}
	if _, err := n.Join(context.Background(), []string{dead}); !errors.Is(err, ErrClosed) {
		t.Errorf("Join after Close: %v; want ErrClosed", err)
	}
	if _, ok := <-n.Events(); ok {
		// The recorder drains Events; a value here would be a bug.
		t.Error("Events delivered after Close")
	}
}

// The status pusher sleeps until something is due. A change of Progress
// waiting for its turn when the repeat of a status change fell due used
// to make it wake at once, again and again, until that turn came: a core
// spun for up to members × 400 ms with the lan profile, on every member.
func TestPusherDoesNotSpinWhileProgressWaits(t *testing.T) {
	nodes := newCluster(t, "spin", 2, nil)
	src := nodes[0]
	m := testMeta(src.name)
	calls := 0
	set := func() {
		t.Helper()
		if err := src.SetMeta(m); err != nil {
			t.Fatal(err)
		}
		calls++
	}
	before := src.pushWakes.Load()
	// Status changes, each with a repeat 250 ms later, and between them
	// changes of Progress every 10 ms (each waits up to 100 ms, the test
	// profile's rate for a site of 2): a repeat falls due while one waits.
	for round := range 5 {
		m.Phase = []deploy.Phase{deploy.PhaseFetching, deploy.PhaseVerified}[round%2]
		set()
		for range 40 {
			time.Sleep(10 * time.Millisecond)
			m.Progress = (m.Progress + 1) % MaxProgress
			set()
		}
	}
	time.Sleep(500 * time.Millisecond) // the last repeat and push
	wakes := src.pushWakes.Load() - before
	// One wake-up per SetMeta at most, and one per timer: a push of
	// Progress or a repeat, each at most one per SetMeta.
	t.Logf("%d SetMeta calls woke the pusher %d times", calls, wakes)
	if limit := uint64(3*calls + 10); wakes > limit {
		t.Fatalf("%d SetMeta calls woke the status pusher %d times; at most %d are due", calls, wakes, limit)
	}
	if got := nodes[1].Members(); !slices.ContainsFunc(got, func(x Member) bool { return x.Name == src.name && x.Meta == m }) {
		t.Errorf("%s does not show %s's last status %+v: %+v", nodes[1].name, src.name, m, got)
	}
}
