package tests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshcast/meshcast/deploy"
	"github.com/meshcast/meshcast/mesh/api"
	"github.com/meshcast/meshcast/mesh/p2p"
	"github.com/meshcast/meshcast/tests/scenario"
	"github.com/meshcast/meshcast/tests/sitetest"
)

// The staged activation of releases, run by sites of real meshcast
// processes (the binary built with -tags crashpoints, so that a node can
// be told to SIGKILL itself right after an activation step is durable):
// waves and their gates, a bad release stopped at its canary, the
// operator's pause and resume, the leader killed in the middle of a
// rollout, and kill -9 of a node after each step of its activation.

// mpRelease is the name of the release the sites of these tests follow.
const mpRelease = "app"

// rolloutSite is a site of meshcast processes on 127.0.0.1: a CDN, seeders
// and nodes, the first seeder bootstrapping it and the others joining
// through its gossip.
type rolloutSite struct {
	t                                      *testing.T
	mc                                     *meshcast
	keys, origin, root, cdn, gossip, hooks string

	mu      sync.Mutex // guards the members' d, api, gossipAddr and alive: pollers read them
	members []*rolloutMember
	byID    map[string]*rolloutMember
	// onExit, when set, is told of a member that exited by itself (and
	// returns true if it expected that); otherwise the test fails.
	onExit func(m *rolloutMember, err error) bool
}

type rolloutMember struct {
	name, role, state, id string
	bootstrap             bool
	d                     *daemon
	api, gossipAddr       string
	alive                 bool
}

// newRolloutSite starts a site of seeders and nodes whose daemons use the
// hooks in hooks ("" none); env(m) is added to the environment of m's
// process (nil: nothing).
func newRolloutSite(t *testing.T, seeders, nodes int, hooks string, env func(m *rolloutMember) []string) *rolloutSite {
	mc := buildMeshcast(t, "crashpoints")
	// A binary built with -race sleeps 1 s before it exits 0, for the
	// reports of other threads (GORACE atexit_sleep_ms): every meshcast
	// status, publish and rollout would take a second more.
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	dir := t.TempDir()
	s := &rolloutSite{t: t, mc: mc, keys: filepath.Join(dir, "keys"), origin: filepath.Join(dir, "origin"),
		gossip: filepath.Join(dir, "gossip.key"), hooks: hooks, byID: map[string]*rolloutMember{}}
	mc.ok(t, "keys", "init", "--dir", s.keys)
	mc.ok(t, "repo", "init", "--repo", s.origin, "--keys", s.keys)
	s.root = filepath.Join(s.origin, "metadata", "1.root.json")
	s.cdn = mc.serveCDN(t, s.origin)
	mc.ok(t, "keys", "gossip", "--file", s.gossip)
	// Every daemon, including those started later, is stopped by this
	// cleanup, before the CDN's.
	t.Cleanup(s.stopAll)
	for i := range seeders + nodes {
		role := "seeder"
		if i >= seeders {
			role = "node"
		}
		m := &rolloutMember{name: fmt.Sprintf("%s-%d", role, i), role: role, state: filepath.Join(dir, fmt.Sprintf("m%d", i)), bootstrap: i == 0}
		key, err := p2p.LoadIdentity(filepath.Join(m.state, "identity.key"))
		if err != nil {
			t.Fatal(err)
		}
		id, err := peer.IDFromPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		m.id = id.String()
		s.members = append(s.members, m)
		s.byID[m.id] = m
	}
	envOf := func(m *rolloutMember) []string {
		if env == nil {
			return nil
		}
		return env(m)
	}
	// The first seeder, then everyone else at once, joining through it.
	first := s.members[0]
	s.launch(first, envOf(first), nil)
	s.await(first)
	for _, m := range s.members[1:] {
		s.launch(m, envOf(m), []string{first.gossipAddr})
	}
	for _, m := range s.members[1:] {
		s.await(m)
	}
	s.waitFormed(90 * time.Second)
	return s
}

// args are a member's command line, joining through join.
func (s *rolloutSite) args(m *rolloutMember, join []string) []string {
	args := []string{m.role, "--site", "mp", "--state", m.state, "--listen", "/ip4/127.0.0.1/udp/0/quic-v1", "--api", "127.0.0.1:0",
		"--release", mpRelease, "--platform", "linux/amd64", "--trust", s.root, "--refresh", "200ms", "--rollout-poll", "500ms",
		"--gossip-listen", "127.0.0.1:0", "--gossip-key-file", s.gossip, "--profile", "test", "--mdns=false"}
	if s.hooks != "" {
		args = append(args, "--hooks", s.hooks)
	}
	if m.role == "seeder" {
		args = append(args, "--cdn", s.cdn)
	}
	if m.bootstrap {
		args = append(args, "--bootstrap")
	}
	for _, j := range join {
		args = append(args, "--join", j)
	}
	return args
}

// launch starts m's process; await waits until it says where it listens.
func (s *rolloutSite) launch(m *rolloutMember, env, join []string) {
	s.t.Helper()
	d := startDaemonEnv(s.t, s.mc, m.name, env, s.args(m, join)...)
	s.mu.Lock()
	m.d, m.api, m.gossipAddr, m.alive = d, "", "", true
	s.mu.Unlock()
}

func (s *rolloutSite) await(m *rolloutMember) {
	s.t.Helper()
	api, gossip := m.d.addrs(s.t)
	s.mu.Lock()
	m.api, m.gossipAddr = api, gossip
	s.mu.Unlock()
}

// startDaemonEnv is mc.startDaemon with env added to the environment,
// without a cleanup of its own: rolloutSite.stopAll stops it.
func startDaemonEnv(t *testing.T, mc *meshcast, name string, env []string, args ...string) *daemon {
	t.Helper()
	cmd := exec.Command(mc.path, args...)
	cmd.Env = append(os.Environ(), env...)
	d := &daemon{name: name, cmd: cmd, exited: make(chan error, 1), stdout: &lockedBuffer{}, stderr: &lockedBuffer{}}
	cmd.Stdout, cmd.Stderr = d.stdout, d.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exited <- cmd.Wait() }()
	mc.daemons = append(mc.daemons, d)
	return d
}

// stopAll stops every live daemon with SIGTERM at once (one by one, a
// site of 13 takes a while to say goodbye), and fails the test unless
// each shuts down cleanly and without a data race.
func (s *rolloutSite) stopAll() {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []string
	for _, d := range s.mc.daemons {
		if d.killed {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			fail := func(format string, args ...any) {
				mu.Lock()
				errs = append(errs, fmt.Sprintf(format, args...))
				mu.Unlock()
			}
			select {
			case err := <-d.exited:
				fail("%s exited on its own: %v\nstderr:\n%s", d.name, err, tail(d.stderr.String()))
				d.killed = true
				return
			default:
			}
			d.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-d.exited:
				if err != nil {
					fail("%s did not shut down cleanly on SIGTERM: %v\nstderr:\n%s", d.name, err, tail(d.stderr.String()))
				}
			case <-time.After(30 * time.Second):
				d.cmd.Process.Kill()
				<-d.exited
				fail("%s still running 30s after SIGTERM; killed it", d.name)
			}
			d.killed = true // stopped: mc.stop has nothing left to do
		}()
	}
	wg.Wait()
	for _, e := range errs {
		s.t.Error(e)
	}
	// Every process's, the killed ones' too.
	for _, d := range s.mc.daemons {
		if strings.Contains(d.stderr.String(), "DATA RACE") {
			s.t.Errorf("%s: data race:\n%s", d.name, d.stderr.String())
		}
	}
}

// kill SIGKILLs m, as a crash would.
func (s *rolloutSite) kill(m *rolloutMember) {
	s.t.Helper()
	s.mc.kill(s.t, m.d)
	s.mu.Lock()
	m.alive = false
	s.mu.Unlock()
}

// reap notices the members whose process ended without being asked: each
// is handed to onExit, or fails the test.
func (s *rolloutSite) reap() {
	s.t.Helper()
	for _, m := range s.members {
		if !m.alive {
			continue
		}
		select {
		case err := <-m.d.exited:
			m.d.killed = true // it is gone: mc.stop has nothing to stop
			s.mu.Lock()
			m.alive = false
			s.mu.Unlock()
			if s.onExit == nil || !s.onExit(m, err) {
				s.t.Fatalf("%s exited: %v\nstderr:\n%s", m.name, err, tail(m.d.stderr.String()))
			}
		default:
		}
	}
}

// live returns the live members of role ("" any) with their API
// addresses, as of now.
func (s *rolloutSite) live(role string) map[*rolloutMember]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[*rolloutMember]string{}
	for _, m := range s.members {
		if m.alive && m.api != "" && (role == "" || m.role == role) {
			out[m] = m.api
		}
	}
	return out
}

// memberStatus is one member's answer to /v1/status.
type memberStatus struct {
	m   *rolloutMember
	st  api.Status
	err error
}

// statuses asks every live member of role ("" any) for its status, all at
// once, in the members' order.
func (s *rolloutSite) statuses(role string) []memberStatus {
	live := s.live(role)
	out := make([]memberStatus, 0, len(live))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for m, addr := range live {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := apiStatus(addr)
			mu.Lock()
			out = append(out, memberStatus{m, st, err})
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.SortFunc(out, func(a, b memberStatus) int {
		return slices.Index(s.members, a.m) - slices.Index(s.members, b.m)
	})
	return out
}

// waitAll waits until cond holds of every live member's status. It fails
// the test with each member's state, and the end of the stderr of those
// that do not hold, after d.
func (s *rolloutSite) waitAll(d time.Duration, what string, cond func(m *rolloutMember, st api.Status) bool) []memberStatus {
	s.t.Helper()
	var last []memberStatus
	if sitetest.Poll(d, 100*time.Millisecond, func() bool {
		s.reap()
		last = s.statuses("")
		for _, x := range last {
			if x.err != nil || !cond(x.m, x.st) {
				return false
			}
		}
		return true
	}) {
		return last
	}
	var b strings.Builder
	shown := 0
	for _, x := range last {
		fmt.Fprintf(&b, "%s\n", describeMember(x))
		if (x.err != nil || !cond(x.m, x.st)) && shown < 2 {
			shown++
			fmt.Fprintf(&b, "  stderr of %s:\n%s\n", x.m.name, tail(x.m.d.stderr.String()))
		}
	}
	s.t.Fatalf("waited %s for %s:\n%s", d, what, b.String())
	return nil
}

// describeMember is one line on a member's status.
func describeMember(x memberStatus) string {
	if x.err != nil {
		return fmt.Sprintf("%s: %v", x.m.name, x.err)
	}
	st := x.st
	line := fmt.Sprintf("%s (%s): running %q, staging %s %s, activations %v", x.m.name, x.m.id[len(x.m.id)-12:], st.Running.String(), st.Release, st.Phase, st.Activations)
	if v := st.SiteView; v != nil {
		line += fmt.Sprintf(", raft %q, rollout %s", v.Raft, v.RolloutState)
		if r := v.Rollout; r != nil {
			line += fmt.Sprintf(" (%s wave %d of %d: %s)", r.Release.Version, r.Wave, len(r.Waves), r.Reason)
		}
	}
	if st.Err != "" {
		line += ", error: " + st.Err
	}
	return line
}

// waitFormed waits until the site has a leader that every seeder follows
// and every member sees every other in its gossip.
func (s *rolloutSite) waitFormed(d time.Duration) {
	s.t.Helper()
	s.waitAll(d, "the site to form", func(m *rolloutMember, st api.Status) bool {
		v := st.SiteView
		if v == nil || len(v.Members) != len(s.members) || v.Leader == "" {
			return false
		}
		return m.role != "seeder" || v.Raft == "leader" || v.Raft == "follower"
	})
}

// waitRolledOut waits until every live member runs version and sees the
// site's rollout of it in state.
func (s *rolloutSite) waitRolledOut(d time.Duration, version, running string, state deploy.RolloutState) {
	s.t.Helper()
	s.waitAll(d, fmt.Sprintf("every member to run %s and see the rollout of %s %s", running, version, state), func(_ *rolloutMember, st api.Status) bool {
		v := st.SiteView
		return st.Running.Version == running && v != nil && v.Rollout != nil && v.Rollout.Release.Version == version && v.RolloutState == state
	})
}

// tree writes a new small release tree.
func (s *rolloutSite) tree() string {
	dir := s.t.TempDir()
	writeRandomTree(s.t, dir, 8, 64<<10)
	return dir
}

// publish publishes tree as version with the rollout policy's flags.
func (s *rolloutSite) publish(version, tree string, policy ...string) {
	s.t.Helper()
	s.mc.ok(s.t, append([]string{"publish", "--repo", s.origin, "--keys", s.keys, "--name", mpRelease, "--version", version,
		"--artifact", "linux/amd64=" + tree}, policy...)...)
}

// rolloutProgress orders the views of one rollout: each command applied
// adds to it (pause and resume aside).
func rolloutProgress(r *deploy.Rollout) int {
	p := 0
	for _, w := range r.Waves {
		if !w.OpenedAt.IsZero() {
			p++
		}
		if w.Gate != nil {
			p++
		}
	}
	if r.State.Terminal() {
		p++
	}
	return p
}

// seederRollout returns the freshest view of version's rollout among the
// live seeders (nil: none has it), and the seeder it came from.
func (s *rolloutSite) seederRollout(version string) (*deploy.Rollout, *rolloutMember) {
	var best *deploy.Rollout
	var from *rolloutMember
	for _, x := range s.statuses("seeder") {
		if x.err != nil || x.st.SiteView == nil || x.st.SiteView.Rollout == nil {
			continue
		}
		r := x.st.SiteView.Rollout
		if r.Release.Version == version && (best == nil || rolloutProgress(r) > rolloutProgress(best)) {
			best, from = r, x.m
		}
	}
	return best, from
}

// leader returns the live seeder that says it leads, other than except.
func (s *rolloutSite) leader(except *rolloutMember) *rolloutMember {
	for _, x := range s.statuses("seeder") {
		if x.m != except && x.err == nil && x.st.SiteView != nil && x.st.SiteView.Raft == "leader" {
			return x.m
		}
	}
	return nil
}

func (s *rolloutSite) nodes() []*rolloutMember {
	var out []*rolloutMember
	for _, m := range s.members {
		if m.role == "node" {
			out = append(out, m)
		}
	}
	return out
}

// releasePath is where m installs version ("current": the link).
func releasePath(m *rolloutMember, version string) string {
	return filepath.Join(m.state, "releases", mpRelease, version)
}

// writeRolloutHooks writes a hooks dir whose health hook fails, saying
// why, for version bad, and passes for any other.
func writeRolloutHooks(t *testing.T, bad string) string {
	t.Helper()
	dir := t.TempDir()
	health := "#!/bin/sh\nif [ \"$MESHCAST_RELEASE_VERSION\" = \"" + bad + "\" ]; then\n" +
		"  echo \"$MESHCAST_RELEASE_NAME $MESHCAST_RELEASE_VERSION is broken: the test says so\"\n  exit 1\nfi\nexit 0\n"
	if err := os.WriteFile(filepath.Join(dir, "health"), []byte(health), 0o755); err != nil {
		t.Fatal(err)
	}
	writeActivationLog(t, dir)
	return dir
}

// checkWaves checks that a finished rollout has waves of sizes (each
// wave's new members), that each passed its gate and opened after the
// gate before it, and that together they list each member once. It logs
// the control plane's times.
func (s *rolloutSite) checkWaves(r *deploy.Rollout, sizes []int) {
	s.t.Helper()
	if r.State != deploy.RolloutDone || len(r.Waves) != len(sizes) {
		s.t.Fatalf("rollout of %s: %s with %d waves, want done with %d: %+v", r.Release, r.State, len(r.Waves), len(sizes), r)
	}
	seen := map[string]bool{}
	for i, w := range r.Waves {
		if len(w.Members) != sizes[i] {
			s.t.Errorf("wave %d has %d new members, want %d", i+1, len(w.Members), sizes[i])
		}
		for _, id := range w.Members {
			if seen[id] || s.byID[id] == nil {
				s.t.Errorf("wave %d lists %s, which is another wave's or no member", i+1, id)
			}
			seen[id] = true
		}
		switch {
		case w.OpenedAt.IsZero() || w.Gate == nil || !w.Gate.Passed:
			s.t.Fatalf("wave %d did not open and pass: %+v", i+1, w)
		case i > 0 && w.OpenedAt.Before(r.Waves[i-1].Gate.At):
			s.t.Errorf("wave %d opened at %s, before wave %d's gate at %s", i+1, w.OpenedAt, i, r.Waves[i-1].Gate.At)
		}
		s.t.Logf("  wave %d: %d member(s), opened %v after the start, gate passed %v after it opened (%s)",
			i+1, len(w.Members), w.OpenedAt.Sub(r.StartedAt).Round(time.Millisecond), w.Gate.At.Sub(w.OpenedAt).Round(time.Millisecond), w.Gate.Reason)
	}
	if len(seen) != len(s.members) {
		s.t.Errorf("the waves list %d members; the site has %d", len(seen), len(s.members))
	}
	s.t.Logf("rollout of %s: %d waves, %v from the start to done (control plane)", r.Release.WithoutID(), len(r.Waves), r.EndedAt.Sub(r.StartedAt).Round(time.Millisecond))
}

// statusWatch runs `meshcast status` (text) against a member every 200 ms
// and keeps an output that shows an open wave.
type statusWatch struct {
	cancel context.CancelFunc
	done   chan struct{}
	polls  int
	open   string // an output with "wave-open" and a "wave 2" line
	errs   []string
}

func watchStatusText(mc *meshcast, addr string) *statusWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &statusWatch{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
			cmd := exec.CommandContext(cctx, mc.path, "status", "--api", addr)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			ccancel()
			if ctx.Err() != nil {
				return
			}
			w.polls++
			switch {
			case err != nil || strings.Contains(stderr.String(), "DATA RACE"):
				w.errs = append(w.errs, fmt.Sprintf("meshcast status: %v\n%s", err, stderr.String()))
			case w.open == "" && strings.Contains(string(out), "wave-open") && strings.Contains(string(out), "\n  wave 2: "):
				w.open = string(out)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// stop stops the watch and waits for it; its fields may be read after.
func (w *statusWatch) stop() {
	w.cancel()
	<-w.done
}

// TestMultiProcessRollout rolls releases out to a site of 13 meshcast
// processes (3 seeders, 10 nodes) whose health hook fails for 2.0.0: a
// good release in four waves (1, 10, 50, 100 %), which `meshcast status`
// shows while it runs; the bad one, stopped at its canary, which rolls
// back while nobody else installs it; and a good one paused and resumed
// by the operator.
func TestMultiProcessRollout(t *testing.T) {
	s := newRolloutSite(t, 3, 10, writeRolloutHooks(t, "2.0.0"), nil)
	policy := []string{"--waves", "1,10,50,100", "--soak", "0s", "--health-timeout", "20s"}

	// (a) A good release, in four waves, shown by meshcast status.
	tree1 := s.tree()
	watch := watchStatusText(s.mc, s.nodes()[0].api)
	t.Cleanup(watch.stop) // if the test ends early
	s.publish("1.0.0", tree1, policy...)
	s.waitRolledOut(2*time.Minute, "1.0.0", "1.0.0", deploy.RolloutDone)
	watch.stop()
	for _, e := range watch.errs {
		t.Errorf("%s", e)
	}
	if watch.open == "" {
		t.Errorf("in %d runs of meshcast status while 1.0.0 rolled out, none showed an open wave and the waves", watch.polls)
	} else {
		t.Logf("meshcast status while 1.0.0 rolled out (one of %d runs):\n%s", watch.polls, watch.open)
	}
	r, _ := s.seederRollout("1.0.0")
	if r == nil {
		t.Fatal("no seeder has the rollout of 1.0.0")
	}
	// 13 members at 1, 10, 50, 100 %: 1, 2, 7, 13 cumulative.
	s.checkWaves(r, []int{1, 1, 5, 6})
	for _, m := range s.members {
		if cur, err := os.Readlink(releasePath(m, "current")); err != nil || cur != "1.0.0" {
			t.Errorf("%s: current → %q, %v", m.name, cur, err)
		} else if err := scenario.SameTree(tree1, releasePath(m, "1.0.0")); err != nil {
			t.Errorf("%s: 1.0.0 installed is not what was published: %v", m.name, err)
		}
	}

	testRolloutBadRelease(t, s, policy)
	testRolloutPauseResume(t, s)
}

// testRolloutBadRelease publishes 2.0.0, whose health hook fails: the
// canary rolls back to 1.0.0, no other member installs 2.0.0, wave 2
// never opens.
func testRolloutBadRelease(t *testing.T, s *rolloutSite, policy []string) {
	s.publish("2.0.0", s.tree(), policy...)
	s.waitRolledOut(2*time.Minute, "2.0.0", "1.0.0", deploy.RolloutRolledBack)
	r, _ := s.seederRollout("2.0.0")
	if r == nil || r.State != deploy.RolloutRolledBack || len(r.Waves) != 4 {
		t.Fatalf("rollout of 2.0.0: %+v", r)
	}
	if g := r.Waves[0].Gate; r.Wave != 0 || g == nil || g.Passed || len(r.Waves[0].Members) != 1 {
		t.Fatalf("the rollout of 2.0.0 did not stop at its canary's gate: wave %d, %+v", r.Wave, r.Waves[0])
	}
	for i, w := range r.Waves[1:] {
		if !w.OpenedAt.IsZero() || w.Gate != nil {
			t.Errorf("wave %d of 2.0.0 opened: %+v", i+2, w)
		}
	}
	canary := s.byID[r.Waves[0].Members[0]]
	if canary == nil {
		t.Fatalf("the canary %s is no member", r.Waves[0].Members[0])
	}
	// `current` is back on 1.0.0 a moment before the canary's agent counts
	// the rollback: wait for the count.
	waitUntil(t, 30*time.Second, "the canary to count its rollback", func() bool {
		st, err := apiStatus(canary.api)
		return err == nil && st.Activations["rolled-back"]+st.Activations["site-rollback"] >= 1
	})
	for _, x := range s.statuses("") {
		began := activated(t, x.m.state, mpRelease, "2.0.0")
		switch {
		case x.err != nil:
			t.Errorf("%s: %v", x.m.name, x.err)
		case x.m == canary && x.st.Activations["rolled-back"]+x.st.Activations["site-rollback"] < 1: // by itself, or told by the site first
			t.Errorf("the canary %s did not roll back: %s", x.m.name, describeMember(x))
		case x.m != canary && began:
			t.Errorf("%s, not the canary, began to activate 2.0.0", x.m.name)
		case x.m == canary && !began:
			t.Errorf("the canary %s logged no activation of 2.0.0", x.m.name)
		}
		if cur, err := os.Readlink(releasePath(x.m, "current")); err != nil || cur != "1.0.0" {
			t.Errorf("%s: current → %q, %v; want 1.0.0", x.m.name, cur, err)
		}
	}
	t.Logf("2.0.0 stopped at its canary %s (%v after the start): %s", canary.name, r.EndedAt.Sub(r.StartedAt).Round(time.Millisecond), r.Reason)
}

// testRolloutPauseResume pauses the rollout of 3.0.0 through a node's API:
// no wave opens and no gate is taken while it is paused; resumed, it
// completes. An unknown rollout command is an error.
func testRolloutPauseResume(t *testing.T, s *rolloutSite) {
	if r := s.mc.run(t, "rollout", "explode"); r.code == 0 || !strings.Contains(r.stderr, `unknown command "explode"`) {
		t.Errorf("meshcast rollout explode: exit %d, stderr %q; want an error naming the unknown command\nstdout:\n%s", r.code, r.stderr, r.stdout)
	}
	tree3 := s.tree()
	s.publish("3.0.0", tree3, "--waves", "1,10,50,100", "--soak", "3s", "--health-timeout", "20s")
	waitUntil(t, 2*time.Minute, "the rollout of 3.0.0 to open a wave", func() bool {
		r, _ := s.seederRollout("3.0.0")
		return r != nil && r.State == deploy.RolloutWaveOpen
	})
	node := s.nodes()[1]
	t.Logf("rollout pause: %s", strings.TrimSpace(s.mc.ok(t, "rollout", "pause", "--api", node.api, "--reason", "test")))
	s.waitAll(30*time.Second, "every member to see the rollout of 3.0.0 paused", func(_ *rolloutMember, st api.Status) bool {
		v := st.SiteView
		return v != nil && v.Rollout != nil && v.Rollout.Release.Version == "3.0.0" && v.RolloutState == deploy.RolloutPaused
	})
	paused, _ := s.seederRollout("3.0.0")
	if !strings.Contains(paused.Reason, "test") {
		t.Errorf("the paused rollout's reason is %q; want the operator's", paused.Reason)
	}
	// For 2 s (more than a soak of 3 s would leave of a wave opened just
	// before the pause, with the gate's 500 ms polls), every seeder says
	// paused with the same waves opened and gated.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		for _, x := range s.statuses("seeder") {
			if x.err != nil || x.st.SiteView == nil || x.st.SiteView.Rollout == nil {
				t.Fatalf("%s while paused: %s", x.m.name, describeMember(x))
			}
			r := x.st.SiteView.Rollout
			if r.State != deploy.RolloutPaused || r.Wave != paused.Wave || wavesDiffer(r, paused) {
				t.Fatalf("%s: the rollout moved while paused:\npaused %+v\nnow    %+v", x.m.name, paused, r)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("rollout resume: %s", strings.TrimSpace(s.mc.ok(t, "rollout", "resume", "--api", node.api, "--reason", "test")))
	s.waitRolledOut(2*time.Minute, "3.0.0", "3.0.0", deploy.RolloutDone)
	r, _ := s.seederRollout("3.0.0")
	t.Logf("3.0.0, paused in wave %d for 2 s:", paused.Wave+1)
	s.checkWaves(r, []int{1, 1, 5, 6})
}

// wavesDiffer reports whether a and b differ in which waves opened when
// or took their gate.
func wavesDiffer(a, b *deploy.Rollout) bool {
	if len(a.Waves) != len(b.Waves) {
		return true
	}
	for i := range a.Waves {
		if !a.Waves[i].OpenedAt.Equal(b.Waves[i].OpenedAt) || (a.Waves[i].Gate == nil) != (b.Waves[i].Gate == nil) {
			return true
		}
	}
	return false
}

// rolloutPoller polls every live seeder for one release's rollout and
// keeps what it saw: the wave of the freshest view at each round, and
// each wave's opening and gate times as any view showed them.
type rolloutPoller struct {
	cancel context.CancelFunc
	done   chan struct{}
	waves  []string // "wave-open 1", … as the freshest view changed
	back   []string // rounds whose freshest view was behind an earlier one
	opened map[int][]time.Time
	gated  map[int][]time.Time
}

func pollRollout(s *rolloutSite, version string) *rolloutPoller {
	ctx, cancel := context.WithCancel(context.Background())
	p := &rolloutPoller{cancel: cancel, done: make(chan struct{}), opened: map[int][]time.Time{}, gated: map[int][]time.Time{}}
	go func() {
		defer close(p.done)
		last, lastWave := "", -1
		for ctx.Err() == nil {
			var best *deploy.Rollout
			for _, x := range s.statuses("seeder") {
				if x.err != nil || x.st.SiteView == nil || x.st.SiteView.Rollout == nil || x.st.SiteView.Rollout.Release.Version != version {
					continue
				}
				r := x.st.SiteView.Rollout
				p.see(r)
				if best == nil || rolloutProgress(r) > rolloutProgress(best) {
					best = r
				}
			}
			if best != nil {
				now := fmt.Sprintf("%s %d", best.State, best.Wave)
				if best.Wave < lastWave {
					p.back = append(p.back, fmt.Sprintf("%s after %s", now, last))
				}
				if now != last {
					p.waves = append(p.waves, now)
				}
				last, lastWave = now, max(lastWave, best.Wave)
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return p
}

// see records the times a view shows.
func (p *rolloutPoller) see(r *deploy.Rollout) {
	add := func(m map[int][]time.Time, i int, at time.Time) {
		if !at.IsZero() && !slices.ContainsFunc(m[i], at.Equal) {
			m[i] = append(m[i], at)
		}
	}
	for i, w := range r.Waves {
		add(p.opened, i, w.OpenedAt)
		if w.Gate != nil {
			add(p.gated, i, w.Gate.At)
		}
	}
}

func (p *rolloutPoller) stop() {
	p.cancel()
	<-p.done
}

// TestMultiProcessRolloutLeaderKilled kills the leader with SIGKILL while
// the second of three waves is open (soak 2 s), and restarts it on its
// state: the new leader carries the rollout on, each wave opened once and
// gated once, and every member runs the release.
func TestMultiProcessRolloutLeaderKilled(t *testing.T) {
	s := newRolloutSite(t, 3, 4, "", nil)
	poll := pollRollout(s, "1.0.0")
	t.Cleanup(poll.stop)
	s.publish("1.0.0", s.tree(), "--wave-nodes", "1,3", "--soak", "2s", "--health-timeout", "30s")
	waitUntil(t, 2*time.Minute, "the second wave of 1.0.0 to open", func() bool {
		r, _ := s.seederRollout("1.0.0")
		return r != nil && r.State == deploy.RolloutWaveOpen && r.Wave == 1
	})
	var old *rolloutMember
	waitUntil(t, 30*time.Second, "a leader", func() bool { old = s.leader(nil); return old != nil })
	inWave := "no wave"
	if r, _ := s.seederRollout("1.0.0"); r != nil {
		for i, w := range r.Waves {
			if slices.Contains(w.Members, old.id) {
				inWave = fmt.Sprintf("wave %d", i+1)
			}
		}
	}
	s.kill(old)
	killed := time.Now()
	var leader *rolloutMember
	waitUntil(t, 60*time.Second, "a new leader", func() bool { leader = s.leader(old); return leader != nil })
	t.Logf("%s (leader, in %s) killed with SIGKILL while wave 2 was open; %s leads %v later", old.name, inWave, leader.name, time.Since(killed).Round(time.Millisecond))
	// Back on its state, joining through the survivors' gossip.
	var join []string
	for m := range s.live("seeder") {
		join = append(join, m.gossipAddr)
	}
	old.bootstrap = false
	s.launch(old, nil, join)
	s.await(old)
	s.waitRolledOut(2*time.Minute, "1.0.0", "1.0.0", deploy.RolloutDone)
	poll.stop()

	r, _ := s.seederRollout("1.0.0")
	poll.see(r) // the poller may have stopped before it saw the last gate
	s.checkWaves(r, []int{1, 2, 4})
	t.Logf("the freshest seeder's view as it changed: %s", strings.Join(poll.waves, ", "))
	for _, b := range poll.back {
		t.Errorf("the rollout went back: %s", b)
	}
	for i := range r.Waves {
		if len(poll.opened[i]) != 1 || len(poll.gated[i]) != 1 {
			t.Errorf("wave %d: the seeders showed it opened at %v and gated at %v; want once each", i+1, poll.opened[i], poll.gated[i])
		}
	}
	// The restarted seeder's replica says the same.
	waitUntil(t, 30*time.Second, "the restarted seeder to follow the leader and hold the rollout", func() bool {
		st, err := apiStatus(old.api)
		v := st.SiteView
		return err == nil && v != nil && (v.Raft == "follower" || v.Raft == "leader") && v.Rollout != nil &&
			v.Rollout.Release.Version == "1.0.0" && v.Rollout.State == deploy.RolloutDone && !wavesDiffer(v.Rollout, r)
	})
}

// crashSteps are the steps of an activation that the journal makes
// durable (deploy/journal.go: activationSteps, then committed).
var crashSteps = []string{"begin", "pre-activated", "switched", "activated", "committed"}

// crashRun is a site whose nodes crashpoints kill after an activation
// step.
type crashRun struct {
	t       *testing.T
	s       *rolloutSite
	dir     string            // the MESHCAST_CRASH_ONCE files
	trees   map[string]string // version → the tree published
	step    string            // armed: the nodes die after it
	old     string            // the version that ran before
	version string            // being rolled out
	crashes map[*rolloutMember]int
	next    string // the step the restarted nodes are started for ("" none)
}

// crashEnv is the environment of a node started for step: the crash is
// disarmed (its once file exists) until arm removes the file.
func (c *crashRun) crashEnv(m *rolloutMember, step string) []string {
	if step == "" {
		return nil
	}
	once := filepath.Join(c.dir, m.name+"-"+step)
	if err := os.WriteFile(once, nil, 0o600); err != nil {
		c.t.Fatal(err)
	}
	return []string{"MESHCAST_CRASH_AT=" + step, "MESHCAST_CRASH_ONCE=" + once}
}

func (c *crashRun) arm(step string) {
	for _, m := range c.s.nodes() {
		if err := os.Remove(filepath.Join(c.dir, m.name+"-"+step)); err != nil {
			c.s.t.Fatal(err)
		}
	}
	c.step = step
}

// onExit handles a node that the armed crash point killed: it checks the
// exit and what the crash left on disk, and starts the node again with
// the same arguments, for the next step (disarmed).
func (c *crashRun) onExit(m *rolloutMember, err error) bool {
	t := c.t
	t.Helper()
	var exit *exec.ExitError
	var ws syscall.WaitStatus
	if errors.As(err, &exit) {
		ws, _ = exit.Sys().(syscall.WaitStatus)
	}
	stderr := m.d.stderr.String()
	if m.role != "node" || !ws.Signaled() || ws.Signal() != syscall.SIGKILL || !strings.Contains(stderr, "crashpoints: SIGKILL at "+c.step+"\n") {
		t.Fatalf("%s exited (%v) while the nodes were to die after %s; stderr:\n%s", m.name, err, c.step, tail(stderr))
	}
	c.crashes[m]++
	// Before the switch `current` is the old release, after it the new:
	// complete either way.
	want := c.old
	if slices.Index(crashSteps, c.step) >= slices.Index(crashSteps, "switched") {
		want = c.version
	}
	got := c.checkCurrent(m, c.old, c.version)
	if got != want {
		t.Errorf("%s killed after %s: current → %s, want %s", m.name, c.step, got, want)
	}
	c.s.launch(m, c.crashEnv(m, c.next), []string{c.s.members[0].gossipAddr})
	c.s.await(m)
	// Running again: whatever it did since, `current` is one of the two.
	again := c.checkCurrent(m, c.old, c.version)
	t.Logf("%s killed after %s of %s: current → %s, complete; restarted, current → %s", m.name, c.step, c.version, got, again)
	return true
}

// checkCurrent checks that m's `current` links to one of versions, whose
// directory holds exactly the tree published, and returns it.
func (c *crashRun) checkCurrent(m *rolloutMember, versions ...string) string {
	t := c.t
	t.Helper()
	cur, err := os.Readlink(releasePath(m, "current"))
	if err != nil || !slices.Contains(versions, cur) {
		t.Fatalf("%s after a crash at %s: current → %q (%v); want one of %v", m.name, c.step, cur, err, versions)
	}
	if err := scenario.SameTree(c.trees[cur], releasePath(m, cur)); err != nil {
		t.Fatalf("%s after a crash at %s: current → %s, which is not the tree published: %v", m.name, c.step, cur, err)
	}
	return cur
}

// TestMultiProcessRolloutCrashPoints rolls a release out to a seeder and
// two nodes once per step of an activation, each node killed with SIGKILL
// right after that step is durable and started again: each time `current`
// is the old release or the new one, complete, and the rollout completes
// with every member on the new one.
func TestMultiProcessRolloutCrashPoints(t *testing.T) {
	c := &crashRun{t: t, dir: t.TempDir(), trees: map[string]string{}}
	c.s = newRolloutSite(t, 1, 2, "", func(m *rolloutMember) []string {
		if m.role != "node" {
			return nil
		}
		return c.crashEnv(m, crashSteps[0])
	})
	s := c.s
	s.onExit = c.onExit
	policy := []string{"--wave-nodes", "1", "--soak", "0s", "--health-timeout", "20s"}
	c.old = "1.0.0"
	c.trees[c.old] = s.tree()
	s.publish(c.old, c.trees[c.old], policy...)
	s.waitRolledOut(2*time.Minute, c.old, c.old, deploy.RolloutDone)
	for i, step := range crashSteps {
		c.version, c.next, c.crashes = fmt.Sprintf("1.%d.0", i+1), "", map[*rolloutMember]int{}
		if i+1 < len(crashSteps) {
			c.next = crashSteps[i+1]
		}
		c.arm(step)
		c.trees[c.version] = s.tree()
		start := time.Now()
		s.publish(c.version, c.trees[c.version], policy...)
		s.waitRolledOut(2*time.Minute, c.version, c.version, deploy.RolloutDone)
		r, _ := s.seederRollout(c.version)
		t.Logf("%s, each node killed after %s: done %v after the publish (control plane %v)", c.version, step,
			time.Since(start).Round(time.Millisecond), r.EndedAt.Sub(r.StartedAt).Round(time.Millisecond))
		for _, m := range s.nodes() {
			if c.crashes[m] != 1 {
				t.Errorf("%s was killed %d times after %s, want once", m.name, c.crashes[m], step)
			}
		}
		for _, m := range s.members {
			if cur := c.checkCurrent(m, c.version); cur != c.version {
				t.Errorf("%s runs %s", m.name, cur)
			}
		}
		c.old = c.version
	}
}
