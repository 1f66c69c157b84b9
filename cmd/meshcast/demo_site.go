package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/content/origin"
	"github.com/meshcast/meshcast/deploy"
	"github.com/meshcast/meshcast/gossip"
	"github.com/meshcast/meshcast/mesh"
	"github.com/meshcast/meshcast/mesh/api"
	"github.com/meshcast/meshcast/seeder"
	"github.com/meshcast/meshcast/seeder/cdn"
)

const (
	demoName     = "demo-gateway" // the release the demo's site follows
	demoPlatform = "linux/amd64"  // every member's platform
	demoSeeders  = 3
	demoBroken   = "1.2.0" // the version whose health hook fails
	// demoTimeout bounds each release's distribution and rollout: a few
	// seconds each, but minutes on a loaded machine under the race
	// detector.
	demoTimeout = 5 * time.Minute
)

// demoPolicy is the rollout policy of every release of the demo: a canary
// of 10 %, then half the site, then everyone; each member healthy for 1 s
// (health checks run every 2 s), a failure fails the wave. The health
// timeout leaves room for installing the release, which it includes (a
// wave's gate is due at its opening + health timeout + soak): five members
// installing 40 MiB each at once take several seconds on a small machine
// under the race detector. The broken release fails at its second check,
// so it does not wait for the timeout.
func demoPolicy() content.Rollout {
	return content.Rollout{Waves: []int{10, 50, 100}, Soak: content.Duration(time.Second),
		HealthTimeout: content.Duration(30 * time.Second), FailureThreshold: 0}
}

// demoSite is the demo's site: seeders and nodes, each a mesh.Node of this
// process, on loopback.
type demoSite struct {
	d         *demo
	url       string
	root      []byte
	gossipKey []byte
	hooks     string
	members   []*demoMember
	names     map[string]string // peer id → member name
	stopOnce  sync.Once
}

// demoMember is one running member of the site.
type demoMember struct {
	name   string
	role   gossip.Role
	node   *mesh.Node
	cancel context.CancelFunc
	done   chan error // Run's result
}

// startSite writes the members' hooks and starts the site's seeders (the
// first bootstraps its Raft) and nodes, each joining the gossip of those
// before it and connected to them, and waits until the seeders' Raft
// counts every seeder as a voter.
func (d *demo) startSite(ctx context.Context, url string) (*demoSite, error) {
	s := &demoSite{d: d, url: url, gossipKey: make([]byte, 32), names: map[string]string{}}
	rand.Read(s.gossipKey)
	var err error
	if s.root, err = os.ReadFile(d.rootFile()); err != nil {
		return nil, err
	}
	if s.hooks, err = d.writeHooks(); err != nil {
		return nil, err
	}
	if d.level != nil {
		// Members joining the site warn of what they do not know yet (no
		// seeder to ask, no Raft peer); only errors show until it is up.
		d.level.Set(slog.LevelError)
		defer d.level.Set(slog.LevelWarn)
	}
	t0 := time.Now()
	for i := range demoSeeders + d.nodes {
		name, role := fmt.Sprintf("seeder-%d", i+1), gossip.RoleSeeder
		if i >= demoSeeders {
			name, role = fmt.Sprintf("node-%d", i-demoSeeders+1), gossip.RoleNode
		}
		if err := s.add(ctx, name, role, i == 0); err != nil {
			s.stop()
			return nil, err
		}
	}
	if err := s.waitVoters(ctx, 20*time.Second); err != nil {
		s.stop()
		return nil, err
	}
	d.say("site of %d seeders and %d nodes up in %.1f s: Raft among the seeders, encrypted gossip, QUIC between all; state under %s, hooks in %s",
		demoSeeders, d.nodes, time.Since(t0).Seconds(), filepath.Join(d.dir, "site"), s.hooks)
	return s, nil
}

// writeHooks writes the members' hooks directory: a health hook that
// passes for every version but demoBroken, whose gatewayd comes up (its
// first check passes and leaves a mark in the release's state directory)
// and then fails.
func (d *demo) writeHooks() (string, error) {
	dir := filepath.Join(d.dir, "hooks")
	health := `#!/bin/sh
# The demo's health check: gatewayd ` + demoBroken + ` comes up, then fails; every other
# version is healthy.
[ -x "$MESHCAST_RELEASE_DIR/bin/gatewayd" ] || exit 1
if [ "$MESHCAST_RELEASE_VERSION" = "` + demoBroken + `" ]; then
	up="$MESHCAST_RELEASE_DIR/var/lib/gateway/up"
	if [ -e "$up" ]; then
		echo "gatewayd $MESHCAST_RELEASE_VERSION: /healthz answers 503 (upstream pool empty)"
		exit 1
	fi
	: >"$up"
fi
`
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return dir, os.WriteFile(filepath.Join(dir, "health"), []byte(health), 0o755)
}

// config is a member's configuration: loopback, gossip's test profile
// (short timers), the demo's Raft, quick metadata refreshes and rollout
// polls.
func (s *demoSite) config(name string, role gossip.Role, bootstrap bool) mesh.Config {
	var seeds []string
	for _, m := range s.members {
		seeds = append(seeds, m.node.GossipAddr())
	}
	return mesh.Config{
		Site: "demo", Role: role, StateDir: filepath.Join(s.d.dir, "site", name), Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"},
		Open: true, Release: demoName, Platform: demoPlatform, TrustedRoot: s.root,
		CDN:     cdn.ClientConfig{URL: s.url, BackoffMin: 10 * time.Millisecond, BackoffMax: 200 * time.Millisecond},
		Refresh: 250 * time.Millisecond,
		Gossip: gossip.Config{BindAddr: "127.0.0.1", BindPort: gossip.AnyPort, Profile: gossip.ProfileTest,
			Keys: [][]byte{s.gossipKey}, Seeds: seeds},
		Bootstrap: bootstrap, Raft: demoRaft(),
		Hooks: s.hooks, RolloutPoll: 250 * time.Millisecond,
	}
}

// demoRaft is the seeders' Raft: the test configuration's small log and
// frequent snapshots, with the LAN's election timers, which ride out the
// load of ten members sharing a release on one machine without a needless
// election.
func demoRaft() seeder.RaftConfig {
	c, lan := seeder.TestRaftConfig(), seeder.LANRaftConfig()
	c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = lan.HeartbeatTimeout, lan.ElectionTimeout, lan.LeaderLeaseTimeout
	return c
}

// add starts a member, waits until it is ready and connects it to the
// members started before it.
func (s *demoSite) add(ctx context.Context, name string, role gossip.Role, bootstrap bool) error {
	n, err := mesh.New(s.config(name, role, bootstrap), s.d.log.With("member", name))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	rctx, cancel := context.WithCancel(ctx)
	m := &demoMember{name: name, role: role, node: n, cancel: cancel, done: make(chan error, 1)}
	go func() { m.done <- n.Run(rctx) }()
	select {
	case <-n.Ready():
	case err := <-m.done:
		cancel()
		return fmt.Errorf("start %s: %w", name, err)
	}
	others := s.members
	s.members = append(s.members, m)
	s.names[n.ID().String()] = name
	for _, o := range others {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		err := n.Connect(cctx, peer.AddrInfo{ID: o.node.ID(), Addrs: o.node.Addrs()})
		ccancel()
		if err != nil {
			return fmt.Errorf("connect %s to %s: %w", name, o.name, err)
		}
	}
	return nil
}

// waitVoters waits until the leading seeder counts every seeder as a
// Raft voter.
func (s *demoSite) waitVoters(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		if l := s.leader(); l != nil && l.node.Voters() == demoSeeders {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the seeders' Raft has not %d voters after %s", demoSeeders, d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// leader returns the seeder that leads the site's Raft, or nil.
func (s *demoSite) leader() *demoMember {
	for _, m := range s.members {
		if m.role != gossip.RoleSeeder {
			continue
		}
		if v := m.node.Status().SiteView; v != nil && v.Raft == "leader" {
			return m
		}
	}
	return nil
}

// stop stops the site as SIGTERM stops daemons: each member in turn, the
// nodes first, says goodbye to the site (a leading seeder hands its
// leadership off, the member leaves gossip); then every member stops, and
// stop waits for each. (Goodbyes said all at once would go unheard: gossip
// spreads a leave through members that are leaving too.) Further calls do
// nothing.
func (s *demoSite) stop() {
	s.stopOnce.Do(func() {
		if s.d.level != nil {
			// Connections that close as members leave are no news.
			s.d.level.Set(slog.LevelError)
		}
		for _, role := range []gossip.Role{gossip.RoleNode, gossip.RoleSeeder} {
			for _, m := range slices.Backward(s.members) {
				if m.role == role {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					m.node.Leave(ctx)
					cancel()
				}
			}
		}
		for _, m := range slices.Backward(s.members) {
			m.cancel()
			if err := <-m.done; err != nil {
				s.d.log.Error("demo member stopped", "member", m.name, "err", err)
			}
		}
	})
}

// demoRelease is a release the demo publishes, and what became of it.
type demoRelease struct {
	version, input string
	what           string              // what it is, for the story
	want           deploy.RolloutState // the outcome the demo expects

	published   time.Time
	pub         *origin.PublishResult
	size        int64         // the platform's chunk bytes: what a direct fetch costs
	fromCDN     int64         // what the CDN sent meanwhile (metadata included)
	chunksCDN   cdnChunks     // what the seeders fetched from the CDN
	distributed time.Duration // from the publish until every member verified it
	settled     time.Duration // from the publish until the rollout ended and every member runs what it should
	rollout     *deploy.Rollout
	runs        string // the version every member runs at the end
}

// releaseAll publishes the demo's three releases one after the other,
// each once the site is done with the one before.
func (s *demoSite) releaseAll(ctx context.Context, repo *origin.Repo) ([]*demoRelease, error) {
	rs := []*demoRelease{
		{version: "1.0.0", input: s.d.input("v1"), what: "the first release", want: deploy.RolloutDone},
		{version: "1.1.0", input: s.d.input("v2"), what: "an update: a patched binary, an edited config, a longer changelog", want: deploy.RolloutDone},
		{version: demoBroken, input: s.d.input("v3"), what: "a small change with a bug: gatewayd comes up, then fails its health checks", want: deploy.RolloutRolledBack},
	}
	for _, r := range rs {
		if err := s.release(ctx, repo, r); err != nil {
			return nil, fmt.Errorf("release %s: %w", r.version, err)
		}
	}
	return rs, nil
}

// release publishes r, shows the site distributing and activating it until
// its rollout ended and every member settled, and tells what it cost.
func (s *demoSite) release(ctx context.Context, repo *origin.Repo, r *demoRelease) error {
	fmt.Fprintln(s.d.stdout)
	sent0, chunks0 := s.d.cdn.BytesSent(), s.chunksFromCDN()
	pub, err := repo.Publish(ctx, s.d.keys, origin.PublishOptions{Name: demoName, Version: r.version,
		Artifacts: map[string]string{"linux/amd64": r.input, "linux/arm64": r.input}, Rollout: demoPolicy()}, s.d.log)
	if err != nil {
		return err
	}
	r.published, r.pub = time.Now(), pub
	if r.size, err = releaseSize(ctx, repo, r.version); err != nil {
		return err
	}
	p := demoPolicy()
	s.d.say("published %s@%s, %s: %s in, %d chunks, %d new (%s written to the origin), in %.2f s; waves %s %%, soak %s, health timeout %s, failure threshold %g %%",
		demoName, r.version, r.what, humanBytes(pub.InputBytes/2), pub.Chunks, pub.NewChunks, humanBytes(pub.NewBytes), pub.Seconds,
		joinInts(p.Waves), time.Duration(p.Soak), time.Duration(p.HealthTimeout), 100*p.FailureThreshold)
	if err := s.watch(ctx, r); err != nil {
		return err
	}
	chunks1 := s.chunksFromCDN()
	r.fromCDN, r.chunksCDN = s.d.cdn.BytesSent()-sent0, cdnChunks{chunks1.n - chunks0.n, chunks1.bytes - chunks0.bytes}
	s.tell(r)
	if r.rollout.State != r.want {
		return fmt.Errorf("the rollout ended %s (%s); the demo expected %s", r.rollout.State, r.rollout.Reason, r.want)
	}
	return nil
}

// releaseSize returns the bytes of the chunks of a version's artifact for
// the demo's platform, as the origin stores them: what one member fetching
// it directly from the CDN would download.
func releaseSize(ctx context.Context, repo *origin.Repo, version string) (int64, error) {
	files, _ := filepath.Glob(filepath.Join(repo.TargetsDir(), "releases", demoName, "*."+version+".json"))
	if len(files) != 1 {
		return 0, fmt.Errorf("the origin has %d manifests of %s", len(files), version)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		return 0, err
	}
	m, err := origin.LoadManifest(ctx, repo.PacksDir(), b, content.DefaultLimits())
	if err != nil {
		return 0, err
	}
	var n int64
	for _, c := range m.Platforms[demoPlatform].Chunks() {
		n += int64(c.Stored)
	}
	return n, nil
}

// cdnChunks counts chunks fetched from the CDN, and their bytes.
type cdnChunks struct{ n, bytes int64 }

// chunksFromCDN sums the chunks the seeders fetched from the CDN.
func (s *demoSite) chunksFromCDN() cdnChunks {
	var c cdnChunks
	for _, m := range s.members {
		st := m.node.Status()
		c.n += st.ChunksFromCDN
		c.bytes += st.ChunkBytesFromCDN
	}
	return c
}

// watch shows the site's members and the rollout of r every 300 ms until
// the rollout ended and every member settled on what it should run.
func (s *demoSite) watch(ctx context.Context, r *demoRelease) error {
	v := &demoView{w: s.d.stdout, tty: isTerminal(s.d.stdout)}
	if v.tty && s.d.logs != nil {
		s.d.logs.hold() // until the table is done
		defer s.d.logs.release()
	}
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(demoTimeout)
	for {
		snap := s.snapshot(r)
		if r.distributed == 0 && snap.verified() {
			r.distributed = snap.lastDone().Sub(r.published)
		}
		v.draw(snap)
		if snap.settled() {
			v.end(snap)
			r.settled, r.rollout, r.runs = snap.at, snap.rollout, snap.rows[0].st.Running.Version
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			v.end(snap)
			return fmt.Errorf("not settled after %s", demoTimeout)
		case <-tick.C:
		}
	}
}

// demoSnap is the site at one moment of a release's distribution.
type demoSnap struct {
	version string
	at      time.Duration // since the publish
	rows    []demoRow
	target  content.Release     // the site's target, as the leader has it
	state   deploy.RolloutState // the target's rollout state
	rollout *deploy.Rollout     // the rollout of version, once it started
}

// demoRow is one member's status.
type demoRow struct {
	name   string
	role   gossip.Role
	leader bool
	st     api.Status
}

func (s *demoSite) snapshot(r *demoRelease) *demoSnap {
	snap := &demoSnap{version: r.version, at: time.Since(r.published)}
	var view *api.SiteStatus
	for _, m := range s.members {
		st := m.node.Status()
		row := demoRow{name: m.name, role: m.role, st: st}
		if v := st.SiteView; v != nil && m.role == gossip.RoleSeeder && (view == nil || v.Raft == "leader") {
			view, row.leader = v, v.Raft == "leader"
		}
		snap.rows = append(snap.rows, row)
	}
	if view != nil {
		snap.target, snap.state = view.Target, view.RolloutState
		if ro := view.Rollout; ro != nil && ro.Release.Version == r.version {
			snap.rollout = ro
		}
	}
	return snap
}

// verified reports whether every member verified the version.
func (s *demoSnap) verified() bool {
	for _, r := range s.rows {
		st := r.st
		if st.Release.Version != s.version || st.Phase < deploy.PhaseVerified || st.Phase == deploy.PhaseFailed || st.DoneAt.IsZero() {
			return false
		}
	}
	return true
}

// lastDone is when the last member verified the version.
func (s *demoSnap) lastDone() time.Time {
	var t time.Time
	for _, r := range s.rows {
		if r.st.DoneAt.After(t) {
			t = r.st.DoneAt
		}
	}
	return t
}

// settled reports whether the rollout of the version ended and every
// member runs what it should: the version when it is done, the previous
// one otherwise, with no activation under way.
func (s *demoSnap) settled() bool {
	ro := s.rollout
	if ro == nil || !ro.State.Terminal() {
		return false
	}
	want := ro.Previous
	if ro.State == deploy.RolloutDone {
		want = ro.Release.Version
	}
	for _, r := range s.rows {
		if r.st.Running.Version != want || r.st.Phase == deploy.PhaseActivating || r.st.Phase == deploy.PhaseActive {
			return false
		}
	}
	return true
}

// rolloutLine says where the rollout of the version stands.
func (s *demoSnap) rolloutLine() string {
	ro := s.rollout
	switch {
	case ro == nil && s.target.Version != s.version:
		return fmt.Sprintf("rollout of %s: not yet seen by the leader", s.version)
	case ro == nil:
		return fmt.Sprintf("rollout of %s: %s, until every member verified it", s.version, s.state)
	case ro.State == deploy.RolloutWaveOpen || ro.State == deploy.RolloutPaused:
		return fmt.Sprintf("rollout of %s: %s, wave %d of 0 to %d (%d %%)", s.version, ro.State, ro.Wave, len(ro.Waves)-1, waveShare(ro, ro.Wave))
	}
	return fmt.Sprintf("rollout of %s: %s, %d/%d waves passed", s.version, ro.State, passedWaves(ro), len(ro.Waves))
}

// line sums the site up on one line: the rollout, what the members run,
// and their phases with the version (while they fetch it, the share of its
// chunks they hold, by tens of percent).
func (s *demoSnap) line() string {
	running := map[string]int{}
	phases := map[deploy.Phase]int{}
	var have, total int
	for _, r := range s.rows {
		running[orNone(r.st.Running)]++
		if r.st.Release.Version == s.version {
			phases[r.st.Phase]++
			have, total = have+r.st.Have, total+r.st.Total
		}
	}
	var run, ph []string
	for _, v := range slices.Sorted(maps.Keys(running)) {
		run = append(run, fmt.Sprintf("%s×%d", strings.TrimPrefix(v, demoName+"@"), running[v]))
	}
	for p := deploy.PhaseIdle; p.Known(); p++ {
		if phases[p] > 0 {
			ph = append(ph, fmt.Sprintf("%s×%d", p, phases[p]))
		}
	}
	if len(ph) == 0 {
		ph = []string{"-"}
	}
	if phases[deploy.PhaseFetching] > 0 && total > 0 {
		ph = append(ph, fmt.Sprintf("(%d %% of the chunks)", 100*have/total/10*10))
	}
	return fmt.Sprintf("%s · running %s · %s: %s", s.rolloutLine(), strings.Join(run, " "), s.version, strings.Join(ph, " "))
}

// table writes one row per member and the rollout's line.
func (s *demoSnap) table(w io.Writer) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  MEMBER\tROLE\tRUNNING\tSTAGED\tPHASE\tPROGRESS\t")
	for _, r := range s.rows {
		name := r.name
		if r.leader {
			name += "*"
		}
		staged, progress := "-", ""
		if !r.st.Release.IsZero() {
			staged = r.st.Release.Version
			progress = "100%"
			if r.st.Phase == deploy.PhaseFetching && r.st.Total > 0 {
				progress = fmt.Sprintf("%d%%", 100*r.st.Have/r.st.Total)
			}
		}
		running := "-"
		if !r.st.Running.IsZero() {
			running = r.st.Running.Version
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t\n", name, r.role, running, staged, r.st.Phase, progress)
	}
	tw.Flush()
	fmt.Fprintf(w, "  %s  (+%.1f s; * leads the seeders' Raft)\n", s.rolloutLine(), s.at.Seconds())
}

// demoView draws a release's progress: on a terminal, the members' table
// redrawn in place; elsewhere a line each time the site's summary changes,
// and the table once at the end.
type demoView struct {
	w     io.Writer
	tty   bool
	lines int    // lines the last table took (tty)
	last  string // the last summary line (not tty)
}

func (v *demoView) draw(s *demoSnap) {
	if !v.tty {
		if l := s.line(); l != v.last {
			v.last = l
			fmt.Fprintf(v.w, "  %5.1f s  %s\n", s.at.Seconds(), l)
		}
		return
	}
	var b bytes.Buffer
	s.table(&b)
	if v.lines > 0 {
		fmt.Fprintf(v.w, "\x1b[%dA", v.lines) // back to the table's first line
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	for _, l := range lines {
		fmt.Fprintf(v.w, "\r\x1b[K%s\n", l)
	}
	v.lines = len(lines)
}

// end shows the site as it ended: the table, unless it is on the terminal
// already.
func (v *demoView) end(s *demoSnap) {
	if !v.tty {
		s.table(v.w)
	}
}

// waveShare is the share of the site that runs the release once wave i
// passed, as the policy says.
func waveShare(ro *deploy.Rollout, i int) int {
	if i < len(ro.Policy.Waves) {
		return ro.Policy.Waves[i]
	}
	return 0
}

func passedWaves(ro *deploy.Rollout) int {
	n := 0
	for _, w := range ro.Waves {
		if w.Gate != nil && w.Gate.Passed {
			n++
		}
	}
	return n
}

// tell says what a release cost and how its waves went.
func (s *demoSite) tell(r *demoRelease) {
	d, ro := s.d, r.rollout
	members := int64(len(s.members))
	d.say("the CDN sent %s for the whole site of %d: %d chunks, %s (the publish added %d, %s), and the signed metadata; a direct fetch by each member would be %d × %s = %s",
		humanBytes(r.fromCDN), members, r.chunksCDN.n, humanBytes(r.chunksCDN.bytes), r.pub.NewChunks, humanBytes(r.pub.NewBytes),
		members, humanBytes(r.size), humanBytes(members*r.size))
	d.say("every member verified %s %.1f s after the publish; the rollout took %.1f s from its start to %s",
		r.version, r.distributed.Seconds(), ro.EndedAt.Sub(ro.StartedAt).Seconds(), ro.State)
	for i, w := range ro.Waves {
		names := make([]string, len(w.Members))
		for j, id := range w.Members {
			names[j] = s.nameOf(id)
		}
		d.say("  wave %d (%d %%): %s; %s", i, waveShare(ro, i), strings.Join(names, " "), gateText(w))
		if w.Gate != nil {
			for _, id := range w.Gate.Failed {
				s.tellFailure(s.nameOf(id))
			}
		}
	}
	if ro.State != deploy.RolloutDone {
		d.say("rollout %s at wave %d (waves 0 to %d): no further wave opened; every member runs %s", ro.State, ro.Wave, len(ro.Waves)-1, r.runs)
	}
}

// gateText says how a wave's gate went. (The gate's own reason counts
// waves from 0.)
func gateText(w deploy.Wave) string {
	g := w.Gate
	switch {
	case g == nil && w.OpenedAt.IsZero():
		return "not opened"
	case g == nil:
		return "open"
	}
	after := g.At.Sub(w.OpenedAt).Seconds()
	if g.Passed {
		text := fmt.Sprintf("gate passed after %.1f s: %d healthy", after, len(g.Healthy))
		if len(g.Failed)+len(g.NotReady) > 0 {
			text += fmt.Sprintf(", %d failed and %d not ready, within the threshold", len(g.Failed), len(g.NotReady))
		}
		return text
	}
	return fmt.Sprintf("gate FAILED after %.1f s: %d failed, %d not ready, %d healthy", after, len(g.Failed), len(g.NotReady), len(g.Healthy))
}

// tellFailure says why a member failed its wave, and what became of it.
func (s *demoSite) tellFailure(name string) {
	for _, m := range s.members {
		if m.name != name {
			continue
		}
		st := m.node.Status()
		s.d.say("    %s: %s", name, st.Err)
		var counts []string
		for _, k := range slices.Sorted(maps.Keys(st.Activations)) {
			counts = append(counts, fmt.Sprintf("%s %d", k, st.Activations[k]))
		}
		s.d.say("    %s runs %s again (%s); its activations so far: %s", name, orNone(st.Running), st.Phase, strings.Join(counts, ", "))
	}
}

// nameOf returns a member's name by its peer id.
func (s *demoSite) nameOf(id string) string {
	if n, ok := s.names[id]; ok {
		return n
	}
	return shortID(id)
}

// summary writes a table of the releases: what each cost and how it
// ended.
func (d *demo) summary(rs []*demoRelease) {
	fmt.Fprintln(d.stdout)
	d.say("summary")
	tw := tabwriter.NewWriter(d.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  RELEASE\tFROM CDN\tDIRECT ×%d\tVERIFIED BY ALL\tROLLOUT\tPUBLISH TO DONE\tWAVES\tOUTCOME\t\n", demoSeeders+d.nodes)
	for _, r := range rs {
		ro := r.rollout
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%.1f s\t%.1f s\t%.1f s\t%d/%d passed\t%s, all run %s\t\n",
			r.version, humanBytes(r.fromCDN), humanBytes(int64(demoSeeders+d.nodes)*r.size), r.distributed.Seconds(),
			ro.EndedAt.Sub(ro.StartedAt).Seconds(), r.settled.Seconds(), passedWaves(ro), len(ro.Waves), ro.State, r.runs)
	}
	tw.Flush()
}
