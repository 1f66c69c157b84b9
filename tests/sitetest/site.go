package sitetest

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/content/origin"
	"github.com/meshcast/meshcast/deploy"
	"github.com/meshcast/meshcast/gossip"
	"github.com/meshcast/meshcast/gossip/gossiptest"
	"github.com/meshcast/meshcast/mesh"
	"github.com/meshcast/meshcast/mesh/api"
	"github.com/meshcast/meshcast/mesh/exchange"
	"github.com/meshcast/meshcast/mesh/p2p"
	"github.com/meshcast/meshcast/seeder"
	"github.com/meshcast/meshcast/seeder/cdn"
	"github.com/meshcast/meshcast/seeder/cdn/devserver"
)

// TB is what a site needs of its test or benchmark; *testing.T and
// *testing.B have it, and so can a command.
type TB interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
	Logf(format string, args ...any)
	Cleanup(func())
	TempDir() string
}

// Release is the name of the release every test site follows.
const Release = "rootfs"

// Platform is the platform every test site runs.
const Platform = "linux/amd64"

type options struct {
	seeders, nodes int
	wan, lan       int64
	exchange       exchange.Config
	refresh        time.Duration
	verbose        bool
	lanRaft        bool
	lanGossip      bool
	dir            string
	hooks          string
}

// Option configures a site.
type Option func(*options)

// Seeders sets the number of seeders (default 1).
func Seeders(n int) Option { return func(o *options) { o.seeders = n } }

// Nodes sets the number of nodes (default 3).
func Nodes(n int) Option { return func(o *options) { o.nodes = n } }

// WAN caps the CDN's total bandwidth in bytes per second.
func WAN(bytesPerSec int64) Option { return func(o *options) { o.wan = bytesPerSec } }

// LAN caps every member's upload and download in bytes per second.
func LAN(bytesPerSec int64) Option { return func(o *options) { o.lan = bytesPerSec } }

// Exchange tunes every member's exchange.
func Exchange(c exchange.Config) Option { return func(o *options) { o.exchange = c } }

// Refresh sets how often members check the signed metadata (default 100 ms).
func Refresh(d time.Duration) Option { return func(o *options) { o.refresh = d } }

// Verbose sends the members' logs to the test log.
func Verbose() Option { return func(o *options) { o.verbose = true } }

// Hooks gives every member the activation hooks in dir (docs/HOOKS.md):
// a test's hooks decide by the environment they get (the version, say).
func Hooks(dir string) Option { return func(o *options) { o.hooks = dir } }

// Dir puts the site's files in dir instead of a test temp dir.
func Dir(dir string) Option { return func(o *options) { o.dir = dir } }

// Site is a running site.
type Site struct {
	t    TB
	o    options
	ctx  context.Context
	stop context.CancelFunc
	dir  string

	keys      origin.Keys
	gossipKey []byte
	Origin    string // origin directory
	root      []byte
	CDN       *devserver.Server
	URL       string
	cdnWG     sync.WaitGroup

	mu      sync.Mutex
	members []*Member
	seq     int

	links *gossiptest.Links // the gossip links a Partition cuts
	cutMu sync.Mutex
	cut   map[*Member]bool // the side a Partition cut off
}

// Member is one seeder or node of the site.
type Member struct {
	Name  string
	Role  gossip.Role
	State string
	site  *Site

	bootstrapped bool // first seeder of the site

	mu     sync.Mutex
	node   *mesh.Node
	cancel context.CancelFunc
	done   chan error
}

// Node returns the member's current mesh.Node (a new one after Restart).
func (m *Member) Node() *mesh.Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.node
}

// Alive reports whether the member runs.
func (m *Member) Alive() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cancel != nil
}

// Status returns the member's status.
func (m *Member) Status() api.Status { return m.Node().Status() }

// New starts a site: the origin (keys and TUF metadata), the CDN on
// loopback and the members, all connected to each other. Everything stops
// when the test ends.
func New(t TB, opts ...Option) *Site {
	t.Helper()
	o := options{seeders: 1, nodes: 3, refresh: 100 * time.Millisecond}
	for _, f := range opts {
		f(&o)
	}
	dir := o.dir
	if dir == "" {
		dir = t.TempDir()
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &Site{t: t, o: o, ctx: ctx, stop: stop, dir: dir, Origin: filepath.Join(dir, "origin"), links: gossiptest.NewLinks()}
	t.Cleanup(s.shutdown)
	var err error
	s.gossipKey = make([]byte, 32)
	rand.Read(s.gossipKey)
	if s.keys, err = origin.GenerateKeys(filepath.Join(dir, "keys")); err != nil {
		t.Fatal(err)
	}
	if err := origin.Init(s.Origin, s.keys, origin.DefaultExpiries(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if s.root, err = os.ReadFile(filepath.Join(s.Origin, "metadata", "1.root.json")); err != nil {
		t.Fatal(err)
	}
	if s.CDN, err = devserver.New(devserver.Config{Dir: s.Origin, Rate: o.wan, Gzip: true}, cdnLog(), nil); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.URL = "http://" + ln.Addr().String()
	s.cdnWG.Add(1)
	go func() { defer s.cdnWG.Done(); s.CDN.Serve(ctx, ln) }()
	for i := 0; i < o.seeders; i++ {
		s.Add(gossip.RoleSeeder)
	}
	for i := 0; i < o.nodes; i++ {
		s.Add(gossip.RoleNode)
	}
	return s
}

func (s *Site) shutdown() {
	for _, m := range s.Members() {
		s.Kill(m)
	}
	s.stop()
	s.cdnWG.Wait()
}

// Members returns every member, alive or not.
func (s *Site) Members() []*Member {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Member(nil), s.members...)
}

// Seeders returns the seeders.
func (s *Site) Seeders() []*Member { return s.byRole(gossip.RoleSeeder) }

// Nodes returns the nodes that are not seeders.
func (s *Site) Nodes() []*Member { return s.byRole(gossip.RoleNode) }

func (s *Site) byRole(r gossip.Role) []*Member {
	var out []*Member
	for _, m := range s.Members() {
		if m.Role == r {
			out = append(out, m)
		}
	}
	return out
}

// Add starts a new member and connects it to every live member.
func (s *Site) Add(role gossip.Role) *Member {
	s.t.Helper()
	s.mu.Lock()
	s.seq++
	name := fmt.Sprintf("%s-%02d", role, s.seq)
	m := &Member{Name: name, Role: role, State: filepath.Join(s.dir, name), site: s}
	s.members = append(s.members, m)
	s.mu.Unlock()
	s.start(m)
	return m
}

func (s *Site) config(m *Member) mesh.Config {
	var seeds []string
	bootstrap := true
	for _, o := range s.Members() {
		if o != m && o.Alive() {
			seeds = append(seeds, o.Node().GossipAddr())
			if o.Role == gossip.RoleSeeder {
				bootstrap = false
			}
		}
	}
	if m.bootstrapped {
		bootstrap = true // its Raft state says so anyway
	}
	return mesh.Config{
		Site: "test", Role: m.Role, StateDir: m.State, Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"},
		Open: true, Release: Release, Platform: Platform, TrustedRoot: s.root,
		CDN:     cdn.ClientConfig{URL: s.URL, BackoffMin: 10 * time.Millisecond, BackoffMax: 200 * time.Millisecond, IdleTimeout: 5 * time.Second},
		Refresh: s.o.refresh, UploadRate: s.o.lan, DownloadRate: s.o.lan, Exchange: s.o.exchange,
		Gossip: gossip.Config{BindAddr: "127.0.0.1", BindPort: gossip.AnyPort, Profile: s.gossipProfile(),
			Keys: [][]byte{s.gossipKey}, Seeds: seeds},
		Bootstrap: m.Role == gossip.RoleSeeder && bootstrap,
		Raft:      raftConfig(s.o.lanRaft),
		Hooks:     s.o.hooks, RolloutPoll: 250 * time.Millisecond,
	}
}

func (s *Site) start(m *Member) {
	s.t.Helper()
	var log *slog.Logger
	if s.o.verbose {
		log = slog.New(slog.NewTextHandler(testWriter{s.t, m.Name}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cfg := s.config(m)
	m.bootstrapped = m.bootstrapped || cfg.Bootstrap
	n, err := mesh.New(cfg, log, mesh.GossipTransport(s.links.Wrap(m.Name)))
	if err != nil {
		s.t.Fatalf("start %s: %v", m.Name, err)
	}
	ctx, cancel := context.WithCancel(s.ctx)
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	select {
	case <-n.Ready():
	case err := <-done:
		cancel()
		s.t.Fatalf("start %s: %v", m.Name, err)
	}
	m.mu.Lock()
	m.node, m.cancel, m.done = n, cancel, done
	m.mu.Unlock()
	s.links.At(m.Name, n.GossipAddr())
	for _, other := range s.Members() {
		if other == m || !other.Alive() {
			continue
		}
		ai := peer.AddrInfo{ID: other.Node().ID(), Addrs: other.Node().Addrs()}
		cctx, ccancel := context.WithTimeout(s.ctx, 10*time.Second)
		err := n.Connect(cctx, ai)
		ccancel()
		if err != nil {
			s.t.Fatalf("connect %s to %s: %v", m.Name, other.Name, err)
		}
	}
}

// Kill stops a member gracefully, as SIGTERM stops a daemon: it says
// goodbye to the site (a leading seeder hands off leadership, the member
// leaves gossip), then stops; its state dir stays. It waits for the
// member.
func (s *Site) Kill(m *Member) { s.stopMember(m, true) }

// Crash stops a member without a goodbye, as kill -9 would: no leadership
// hand-off, no gossip leave; its connections just end.
func (s *Site) Crash(m *Member) { s.stopMember(m, false) }

func (s *Site) stopMember(m *Member, goodbye bool) {
	m.mu.Lock()
	n, cancel, done := m.node, m.cancel, m.done
	m.cancel = nil
	m.mu.Unlock()
	if cancel == nil {
		return
	}
	if goodbye {
		ctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
		n.Leave(ctx)
		stop()
	}
	cancel()
	if err := <-done; err != nil {
		s.t.Errorf("%s stopped with %v", m.Name, err)
	}
}

// Restart starts a killed member again on its state dir.
func (s *Site) Restart(m *Member) {
	s.t.Helper()
	s.Kill(m)
	s.start(m)
}

// Publish publishes path (a directory or file) as the site's release at
// version, for the site's platform.
func (s *Site) Publish(version, path string) *origin.PublishResult {
	s.t.Helper()
	return s.PublishWith(version, path, content.Rollout{})
}

// PublishWith publishes like Publish, with a rollout policy (the zero
// policy: content.DefaultRollout).
func (s *Site) PublishWith(version, path string, policy content.Rollout) *origin.PublishResult {
	s.t.Helper()
	r, err := origin.Open(s.Origin)
	if err != nil {
		s.t.Fatal(err)
	}
	defer r.Close()
	res, err := r.Publish(s.ctx, s.keys, origin.PublishOptions{Name: Release, Version: version, Artifacts: map[string]string{Platform: path}, Rollout: policy}, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	return res
}

// Manifest returns the published manifest of a version.
func (s *Site) Manifest(version string) *content.Manifest {
	s.t.Helper()
	matches, _ := filepath.Glob(filepath.Join(s.Origin, "targets", "releases", Release, "*."+version+".json"))
	if len(matches) != 1 {
		s.t.Fatalf("manifest of %s: %d files", version, len(matches))
	}
	b, err := os.ReadFile(matches[0])
	if err != nil {
		s.t.Fatal(err)
	}
	m, err := origin.LoadManifest(context.Background(), filepath.Join(s.Origin, "packs"), b, content.DefaultLimits())
	if err != nil {
		s.t.Fatal(err)
	}
	return m
}

// WaitVerified waits until every live member has verified the version,
// failing the test after d. It waits on each member's changes
// (mesh.Node.Changes), one member at a time.
func (s *Site) WaitVerified(version string, d time.Duration) {
	s.t.Helper()
	want := Release + "@" + version
	deadline := time.After(d)
	for _, m := range s.Members() {
		for m.Alive() {
			n := m.Node()
			changed := n.Changes() // before the check: a change after it closes this
			st := n.Status()
			// Past verified, a member may be activating it already.
			if st.Release.String() == want && st.Phase >= deploy.PhaseVerified && st.Have == st.Total && st.Total > 0 {
				break
			}
			select {
			case <-changed:
			case <-deadline:
				s.t.Fatalf("after %s, %s has not verified %s: %s %s %d/%d %s", d, m.Name, want, st.Release, st.Phase, st.Have, st.Total, st.Err)
			}
		}
	}
}

// WaitRunning waits until every live member runs the version and the
// site's rollout of it reached want (done, rolled-back, …; "" any), failing
// the test after d.
func (s *Site) WaitRunning(version string, d time.Duration) {
	s.t.Helper()
	s.WaitFor(d, "every live member runs "+version, func(m *Member, st api.Status) bool {
		return st.Running.Version == version
	})
}

// WaitFor waits until cond holds for every live member's status, failing
// the test after d with what, and the statuses that fail it.
func (s *Site) WaitFor(d time.Duration, what string, cond func(m *Member, st api.Status) bool) {
	s.t.Helper()
	deadline := time.After(d)
	for _, m := range s.Members() {
		for m.Alive() {
			n := m.Node()
			changed := n.Changes()
			st := n.Status()
			if cond(m, st) {
				break
			}
			select {
			case <-changed:
			case <-deadline:
				s.t.Fatalf("after %s, not yet %s: %s runs %s, stages %s (%s), %s", d, what, m.Name, st.Running, st.Release, st.Phase, st.Err)
			}
		}
	}
}

// Rollout returns the site's rollout of its target as the first live
// seeder's Raft state holds it (nil: none started).
func (s *Site) Rollout() *deploy.Rollout {
	for _, m := range s.Seeders() {
		if m.Alive() {
			if v := m.Status().SiteView; v != nil {
				return v.Rollout
			}
		}
	}
	return nil
}

// Check verifies the invariants of a finished scenario: every live member
// holds every chunk of the version's artifact, and every chunk any live
// member stored verifies against its id.
func (s *Site) Check(version string) {
	s.t.Helper()
	art := s.Manifest(version).Platforms[Platform]
	for _, m := range s.Members() {
		if !m.Alive() {
			continue
		}
		st := m.Node().Store()
		if err := st.Flush(); err != nil {
			s.t.Errorf("%s: flush store: %v", m.Name, err)
		}
		for _, c := range art.Chunks() {
			if !st.Has(c.ID) {
				s.t.Errorf("%s lacks chunk %s", m.Name, c.ID)
			}
		}
		err := st.Walk(func(id content.ChunkID) error {
			c, err := st.Get(id)
			if err == nil {
				err = c.Verify()
			}
			if err != nil {
				s.t.Errorf("%s: stored chunk %s: %v", m.Name, id, err)
			}
			return nil
		})
		if err != nil {
			s.t.Errorf("%s: walk store: %v", m.Name, err)
		}
	}
}

type testWriter struct {
	t    TB
	name string
}

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s: %s", w.name, p)
	return len(p), nil
}

// Rogue is a peer that claims to hold every chunk of a release and serves
// each with a flipped byte.
type Rogue struct {
	Host interface{ Close() error }
	e    *exchange.Engine
}

// AddRogue starts a rogue peer in the swarm of version and connects it to
// every live member. It stops when the site does.
func (s *Site) AddRogue(version string, id content.ReleaseID) *Rogue {
	s.t.Helper()
	art := s.Manifest(version).Platforms[Platform]
	key, err := p2p.LoadIdentity(filepath.Join(s.dir, "rogue", "identity.key"))
	if err != nil {
		s.t.Fatal(err)
	}
	g := p2p.NewGater()
	g.SetOpen(true)
	h, err := p2p.New(p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}}, key, g, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	e := exchange.New(corrupting{art}, nil, exchange.Config{}, nil)
	ctx, cancel := context.WithCancel(s.ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); e.Run(ctx) }()
	go func() { defer wg.Done(); e.Attach(ctx, h, exchange.Wrap{}) }()
	s.t.Cleanup(func() { cancel(); wg.Wait(); h.Close() })
	if _, err := e.Join(ctx, exchange.SwarmIDFor(id, Platform), art.Chunks(), exchange.JoinOptions{}); err != nil {
		s.t.Fatal(err)
	}
	for _, m := range s.Members() {
		if !m.Alive() {
			continue
		}
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		err := h.Connect(cctx, peer.AddrInfo{ID: m.Node().ID(), Addrs: m.Node().Addrs()})
		ccancel()
		if err != nil {
			s.t.Fatalf("rogue: connect to %s: %v", m.Name, err)
		}
	}
	return &Rogue{Host: h, e: e}
}

// Served returns the bytes the rogue sent.
func (r *Rogue) Served() int64 { return r.e.Stats().Served }

// corrupting is a store that holds every chunk of an artifact and returns
// each with a flipped byte.
type corrupting struct{ art *content.Artifact }

func (c corrupting) Has(content.ChunkID) bool { return true }
func (c corrupting) Put(content.Chunk) error  { return nil }
func (c corrupting) Get(id content.ChunkID) (content.Chunk, error) {
	for _, r := range c.art.Chunks() {
		if r.ID == id {
			body := make([]byte, r.Stored)
			body[0] = 0xff
			return content.Chunk{ID: id, Size: r.Size, Enc: r.Enc, Body: body}, nil
		}
	}
	return content.Chunk{}, content.ErrNotFound
}

// StoredBytes returns the chunk body bytes in a stopped member's store.
func StoredBytes(t TB, state string) int64 {
	t.Helper()
	st, err := content.OpenDiskStore(filepath.Join(state, "chunks"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var n int64
	err = st.Walk(func(id content.ChunkID) error {
		c, err := st.Get(id)
		if err != nil {
			return err
		}
		n += int64(len(c.Body))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Close stops every member and the CDN now, before the test ends.
func (s *Site) Close() { s.shutdown() }

// Root returns the origin's initial root metadata.
func (s *Site) Root() []byte { return s.root }

// ReleaseChunks returns the bodies of a version's chunks, read from the
// origin's packs.
func (s *Site) ReleaseChunks(version string) [][]byte {
	s.t.Helper()
	var out [][]byte
	files := map[content.Digest]*os.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, c := range s.Manifest(version).Platforms[Platform].Chunks() {
		f := files[c.Pack]
		if f == nil {
			var err error
			if f, err = os.Open(filepath.Join(s.Origin, "packs", c.Pack.String()+".pack")); err != nil {
				s.t.Fatal(err)
			}
			files[c.Pack] = f
		}
		b := make([]byte, c.Stored)
		if _, err := f.ReadAt(b, c.Offset); err != nil {
			s.t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// Leader returns the seeder that leads the site's Raft, or nil.
func (s *Site) Leader() *Member {
	for _, m := range s.Seeders() {
		if m.Alive() {
			if v := m.Status().SiteView; v != nil && v.Raft == "leader" {
				return m
			}
		}
	}
	return nil
}

// WaitLeader waits for a leader other than not (nil: any) and returns it.
func (s *Site) WaitLeader(not *Member, d time.Duration) *Member {
	s.t.Helper()
	var l *Member
	if !Poll(d, 5*time.Millisecond, func() bool {
		l = s.Leader()
		return l != nil && l != not
	}) {
		s.t.Fatalf("no leader after %s", d)
	}
	return l
}

// WaitVoters waits until the leader counts n voters.
func (s *Site) WaitVoters(n int, d time.Duration) {
	s.t.Helper()
	if !Poll(d, 20*time.Millisecond, func() bool {
		l := s.Leader()
		return l != nil && l.Node().Voters() == n
	}) {
		s.t.Fatalf("the site's Raft did not reach %d voters in %s", n, d)
	}
}

// Poll looks at cond every interval until it holds, and reports whether
// it did within d. It is for state that announces no change (Raft's view,
// byte counters, another process's status): wait on events where there
// are some (WaitVerified waits on mesh.Node.Changes).
func Poll(d, every time.Duration, cond func() bool) bool {
	deadline := time.After(d)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			return cond()
		}
	}
	return true
}

// LANRaft gives the seeders the LAN Raft timers (the documented defaults)
// instead of the test ones.
func LANRaft() Option { return func(o *options) { o.lanRaft = true } }

// LANGossip gives every member gossip's LAN profile (the production
// timers) instead of the test one, whose probes, gossip rounds and state
// syncs run 4 to 15 times as often: what a benchmark of the site's cost
// should measure. Failures are then detected in seconds, not in 1.5 s.
func LANGossip() Option { return func(o *options) { o.lanGossip = true } }

func (s *Site) gossipProfile() string {
	if s.o.lanGossip {
		return gossip.ProfileLAN
	}
	return gossip.ProfileTest
}

// Partition cuts every link between side and the rest of the site, both
// ways: libp2p (Raft and the chunk exchange: each side bans the other at
// its gater, which closes the connections) and gossip (the members'
// gossiptest.Links lose every packet and refuse every stream across). The
// CDN stays reachable from both sides. Heal undoes it.
func (s *Site) Partition(side ...*Member) {
	s.t.Helper()
	s.cutMu.Lock()
	s.cut = map[*Member]bool{}
	var names []string
	for _, m := range side {
		s.cut[m] = true
		names = append(names, m.Name)
	}
	s.cutMu.Unlock()
	s.links.Cut(names...)
	s.eachCrossPair(func(a, b *mesh.Node) {
		a.Ban(b.ID())
		b.Ban(a.ID())
	})
}

// Heal restores the links Partition cut. Nothing is redialled for the
// members: gossip's reconnect finds the other side again, and the nodes
// connect to the members gossip reports, as after any failure.
func (s *Site) Heal() {
	s.t.Helper()
	s.eachCrossPair(func(a, b *mesh.Node) {
		a.Allow(b.ID())
		b.Allow(a.ID())
	})
	s.links.Heal()
	s.cutMu.Lock()
	s.cut = nil
	s.cutMu.Unlock()
}

// eachCrossPair calls f for every pair of live members on either side of
// the partition.
func (s *Site) eachCrossPair(f func(a, b *mesh.Node)) {
	s.cutMu.Lock()
	cut := maps.Clone(s.cut)
	s.cutMu.Unlock()
	for _, a := range s.Members() {
		if !cut[a] || !a.Alive() {
			continue
		}
		for _, b := range s.Members() {
			if !cut[b] && b.Alive() {
				f(a.Node(), b.Node())
			}
		}
	}
}

func raftConfig(lan bool) seeder.RaftConfig {
	if lan {
		return seeder.LANRaftConfig()
	}
	return seeder.TestRaftConfig()
}

func cdnLog() *slog.Logger {
	p := os.Getenv("SITETEST_CDN_LOG")
	if p == "" {
		return nil
	}
	f, err := os.Create(p)
	if err != nil {
		return nil
	}
	return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
