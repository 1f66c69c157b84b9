package mesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/content/tuf"
	"github.com/meshcast/meshcast/deploy"
	"github.com/meshcast/meshcast/gossip"
	"github.com/meshcast/meshcast/mesh/control"
	"github.com/meshcast/meshcast/mesh/exchange"
	"github.com/meshcast/meshcast/mesh/meta"
	"github.com/meshcast/meshcast/mesh/p2p"
	"github.com/meshcast/meshcast/seeder"
	"github.com/meshcast/meshcast/seeder/cdn"
)

// Config configures a Node. Zero values mean the documented defaults;
// New validates it and never changes it afterwards.
type Config struct {
	// Site names the site the node belongs to.
	Site string
	// Role is gossip.RoleNode (the default) or gossip.RoleSeeder.
	Role gossip.Role
	// StateDir holds the identity, the chunk store and the trusted
	// metadata. Required.
	StateDir string
	// Listen are QUIC multiaddrs; default p2p.DefaultListenAddrs().
	Listen []string
	// Peers are multiaddrs with /p2p/ ids of site members to connect to
	// and keep connected to.
	Peers []string
	// Open lets every peer connect (development; admission is a later
	// issue). When false only Allow-ed peers (and Peers) may connect.
	Open bool
	// Release is the name of the release the site follows; the node
	// stages the highest signed version. Required.
	Release string
	// Platform picks the artifact; default the running GOOS/GOARCH.
	Platform string
	// TrustedRoot is the TUF root.json the node trusts initially. Required.
	TrustedRoot []byte
	// CDN configures the seeder's CDN client; URL is required for seeders
	// and unused by nodes, which ask their peers.
	CDN cdn.ClientConfig
	// Refresh is how often the signed metadata is checked: against the CDN
	// by a seeder, against the peers by a node. Default 30 s.
	Refresh time.Duration
	// UploadRate and DownloadRate cap the node's peer traffic in bytes per
	// second (0: no cap).
	UploadRate, DownloadRate int64
	// Exchange tunes the chunk exchange.
	Exchange exchange.Config
	// Limits bound what a manifest may ask of the node.
	Limits content.Limits
	// Host configures the libp2p host (ListenAddrs is taken from Listen).
	Host p2p.Config
	// Gossip configures the site's membership; Name is set to the peer id.
	// Gossip.Seeds are the members to join at start.
	Gossip gossip.Config
	// MDNS announces this member's gossip address on the LAN by mDNS and
	// joins the site through the members of the same site found there, so
	// a simple site needs no --join list.
	MDNS bool
	// Bootstrap makes a seeder start a new site Raft with itself as its
	// only voter; other seeders are added by the leader when they join
	// the site's gossip. Ignored once the seeder has Raft state.
	Bootstrap bool
	// Raft tunes the seeders' Raft (Dir and ID are set by the node).
	Raft seeder.RaftConfig
	// Hooks is the directory of the node's activation hooks
	// (pre-activate, activate, health, rollback; see docs/HOOKS.md); ""
	// none.
	Hooks string
	// HealthURL is probed over HTTP for the node's health when there is no
	// health hook; "" none.
	HealthURL string
	// DropPrivileges installs releases without the privileges their trees
	// grant (content.AssembleOptions.DropPrivileges).
	DropPrivileges bool
	// RolloutPoll is how often a node asks the seeders for the site's
	// rollout without being woken. Default 5 s.
	RolloutPoll time.Duration
}

// Option gives New what it wires in besides Config: the seams through
// which tests inject faults.
type Option func(*options)

type options struct {
	gossip    []gossip.Option
	crashHook func(step string)
}

// ActivatorCrashHook has the activator call hook after each durable step
// of an activation (deploy.ActivatorConfig.CrashHook): a test kills the
// process there.
func ActivatorCrashHook(hook func(step string)) Option {
	return func(o *options) { o.crashHook = hook }
}

// GossipTransport has the node's gossip send and receive through wrap
// (gossip.WrapTransport): a test harness cuts links with it.
func GossipTransport(wrap func(gossip.Transport) gossip.Transport) Option {
	return func(o *options) { o.gossip = append(o.gossip, gossip.WrapTransport(wrap)) }
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.StateDir == "":
		return errors.New("mesh: state dir is required")
	case c.Release == "":
		return errors.New("mesh: release name is required")
	case len(c.TrustedRoot) == 0:
		return errors.New("mesh: trusted root is required")
	case c.Role != gossip.RoleNode && c.Role != gossip.RoleSeeder:
		return fmt.Errorf("mesh: role %s is not node or seeder", c.Role)
	case c.Role == gossip.RoleSeeder && c.CDN.URL == "":
		return errors.New("mesh: a seeder needs the CDN URL")
	case c.Refresh < 0 || c.UploadRate < 0 || c.DownloadRate < 0 || c.RolloutPoll < 0:
		return errors.New("mesh: refresh, poll and rates must not be negative")
	}
	if err := content.ValidateName(c.Release); err != nil {
		return fmt.Errorf("mesh: %w", err)
	}
	if err := content.ValidatePlatform(c.Platform); err != nil {
		return fmt.Errorf("mesh: %w", err)
	}
	for _, a := range c.Peers {
		if _, err := peer.AddrInfoFromString(a); err != nil {
			return fmt.Errorf("mesh: peer %q: %w", a, err)
		}
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Platform == "" {
		c.Platform = runtime.GOOS + "/" + runtime.GOARCH
	}
	if c.Refresh == 0 {
		c.Refresh = 30 * time.Second
	}
	if c.RolloutPoll == 0 {
		c.RolloutPoll = 5 * time.Second
	}
	if c.Limits == (content.Limits{}) {
		c.Limits = content.DefaultLimits()
	}
	if len(c.Listen) > 0 {
		c.Host.ListenAddrs = c.Listen
	}
	return c
}

// Node is one meshcast node or seeder. It wires the libp2p host, the chunk
// store, the chunk exchange, the peer file service, gossip and, on a
// seeder, the CDN client and the site's Raft, and owns their lifecycle. It
// decides nothing itself: which release to stage is the release follower's
// business (deploy.Follower), what to stage for the site and fetch from the
// CDN the leader's (seeder.Leader), what to fetch from peers the exchange's.
type Node struct {
	cfg      Config
	opts     options
	log      *slog.Logger
	host     host.Host
	gater    *p2p.Gater
	store    *content.DiskStore
	exch     *exchange.Engine
	cdn      *cdn.Client // seeders only
	fsm      *seeder.FSM // seeders only
	site     deploy.Site // the site's target: the FSM on a seeder, the leader's gossip on a node
	follower *deploy.Follower
	act      *deploy.Activator
	agent    *deploy.Agent
	up, down *rate.Limiter

	// Started by Run, which sets them before it closes ready; read them
	// only after ready is closed.
	ready  chan struct{}
	gossip *gossip.Gossip
	raft   *seeder.Raft   // seeders only
	leader *seeder.Leader // seeders only

	closeOnce sync.Once
	bg        sync.WaitGroup // dials of members gossip reports
	chgMu     sync.Mutex
	chg       chan struct{} // closed at the next change of the status (watchChanges)
	joinErr   atomic.Pointer[timedErr]
	// Index chunks this seeder fetched from the CDN, for the status.
	indexChunks, indexBytes atomic.Int64
}

// timedErr is a failure and when it happened.
type timedErr struct {
	err error
	at  time.Time
}

// New builds a node: it loads (or creates) the identity, opens the store
// and starts the libp2p host listening, so that its addresses are known
// before Run; nothing else runs until Run. Call Run, or Close if Run is
// never called.
func New(cfg Config, log *slog.Logger, opts ...Option) (*Node, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Node{cfg: cfg, gater: p2p.NewGater(), up: newLimiter(cfg.UploadRate), down: newLimiter(cfg.DownloadRate), ready: make(chan struct{}),
		chg: make(chan struct{})}
	for _, f := range opts {
		f(&n.opts)
	}
	if err := n.build(log); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// build opens what New promises; Close releases what it opened.
func (n *Node) build(log *slog.Logger) error {
	key, err := p2p.LoadIdentity(filepath.Join(n.cfg.StateDir, "identity.key"))
	if err != nil {
		return err
	}
	if n.store, err = content.OpenDiskStore(filepath.Join(n.cfg.StateDir, "chunks")); err != nil {
		return err
	}
	n.gater.SetOpen(n.cfg.Open)
	for _, a := range n.cfg.Peers {
		ai, _ := peer.AddrInfoFromString(a)
		n.gater.Allow(ai.ID)
	}
	if n.cfg.Role == gossip.RoleSeeder {
		if n.cdn, err = cdn.NewClient(n.cfg.CDN, log); err != nil {
			return err
		}
		n.fsm = seeder.NewFSM()
	}
	if n.host, err = p2p.New(n.cfg.Host, key, n.gater, log); err != nil {
		return err
	}
	n.log = log.With("node", n.host.ID().ShortString())
	n.exch = exchange.New(n.store, banner{n}, n.cfg.Exchange, n.log)
	peers := meta.NewPeers(n.host, n.log)
	sources := deploy.Sources{Peers: peers, PeerChunks: peers.FetchChunks(n.store)}
	n.site = gossipSite{n}
	if n.fsm != nil {
		n.site = fsmSite{n.fsm}
		sources.Origin, sources.OriginName, sources.Leading = n.cdn, n.cfg.CDN.URL, n.leading
		sources.OriginChunks = func(ctx context.Context, refs []content.ChunkRef) error {
			return n.cdn.FetchChunks(ctx, refs, func(c content.Chunk) error {
				if err := n.store.Put(c); err != nil {
					return err
				}
				n.indexChunks.Add(1)
				n.indexBytes.Add(int64(len(c.Body)))
				return nil
			})
		}
	}
	n.follower, err = deploy.NewFollower(deploy.FollowerConfig{
		Platform: n.cfg.Platform, Limits: n.cfg.Limits, TUFDir: n.tufDir(), TrustedRoot: n.cfg.TrustedRoot, Refresh: n.cfg.Refresh,
		Store: n.store,
	}, n.site, sources, swarms{n}, n.log)
	if err != nil {
		return err
	}
	return n.buildAgent()
}

// buildAgent opens the activator (which recovers an interrupted
// activation) and builds the node's rollout agent.
func (n *Node) buildAgent() error {
	var err error
	n.act, err = deploy.OpenActivator(deploy.ActivatorConfig{
		Dir: filepath.Join(n.cfg.StateDir, "releases", n.cfg.Release), Name: n.cfg.Release,
		Hooks: n.cfg.Hooks, HealthURL: n.cfg.HealthURL, CrashHook: n.opts.crashHook,
	}, n.log)
	if err != nil {
		return fmt.Errorf("mesh: %w", err)
	}
	var site deploy.SiteRollout = fsmRollout{n.fsm}
	if n.fsm == nil {
		site = seedersRollout{control.NewSeeders(n.host, n.seederIDs)}
	}
	n.agent, err = deploy.NewAgent(deploy.AgentConfig{Self: n.host.ID().String(), Name: n.cfg.Release, Poll: n.cfg.RolloutPoll,
		Assemble: content.AssembleOptions{DropPrivileges: n.cfg.DropPrivileges}}, n.act, n.follower, n.store, site, n.log)
	return err
}

// ID returns the node's peer id.
func (n *Node) ID() peer.ID { return n.host.ID() }

// Addrs returns the node's listen addresses with its /p2p/ id.
func (n *Node) Addrs() []ma.Multiaddr { return p2p.Addrs(n.host) }

// Store returns the node's chunk store.
func (n *Node) Store() *content.DiskStore { return n.store }

// Allow lets peers connect (when the node is not open).
func (n *Node) Allow(ids ...peer.ID) { n.gater.Allow(ids...) }

// Ban refuses peers and closes the connections to them until Allow is
// called for them (an operator's decision, or a test cutting links).
func (n *Node) Ban(ids ...peer.ID) { n.gater.Ban(ids...) }

// Connect dials a peer.
func (n *Node) Connect(ctx context.Context, ai peer.AddrInfo) error {
	n.gater.Allow(ai.ID)
	return n.host.Connect(ctx, ai)
}

type banner struct{ n *Node }

// Ban implements exchange.Banner: the peer is revoked at the gater, which
// closes its connections and refuses new ones.
func (b banner) Ban(id peer.ID, reason error) {
	b.n.log.Warn("banning peer", "peer", id, "reason", reason)
	b.n.gater.Ban(id)
}

// Ready is closed once Run has started every part of the node: gossip
// listens (GossipAddr), Raft runs on a seeder, and the status has a site
// view. If Run fails before, it is never closed.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// started reports whether Ready is closed.
func (n *Node) started() bool {
	select {
	case <-n.ready:
		return true
	default:
		return false
	}
}

// Run runs the node until ctx is done or a part fails, then stops every
// part in reverse order of start and releases the host and the store. It
// leaves the site without a goodbye, as a crash would: call Leave first
// for a graceful stop.
func (n *Node) Run(ctx context.Context) error {
	defer n.Close()
	if err := n.start(); err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return n.exch.Run(ctx) })
	g.Go(func() error {
		n.exch.Attach(ctx, n.host, n.wrap(ctx))
		return nil
	})
	meta.Serve(n.host, meta.WithChunks(func(path string) ([]byte, error) {
		return tuf.CachedFile(n.tufDir(), path)
	}, n.store), n.log)
	g.Go(func() error { n.keepConnected(ctx); return nil })
	g.Go(func() error { n.runGossip(ctx); return nil })
	if n.cfg.MDNS {
		g.Go(func() error { n.runMDNS(ctx); return nil })
	}
	g.Go(func() error { n.publishMeta(ctx); return nil })
	g.Go(func() error { return n.follower.Run(ctx) })
	g.Go(func() error { return n.agent.Run(ctx) })
	g.Go(func() error { n.watchChanges(ctx); return nil })
	if n.leader != nil {
		control.Serve(n.host, controlSite{n}, n.log)
		g.Go(func() error { n.wakeOnSiteChanges(ctx); return nil })
		g.Go(func() error { return n.leader.Run(ctx) })
	}
	close(n.ready)
	err := g.Wait()
	n.bg.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// start starts gossip and, on a seeder, Raft and the leader loop.
func (n *Node) start() error {
	gcfg := n.cfg.Gossip
	gcfg.Name = n.host.ID().String()
	var err error
	if n.gossip, err = gossip.New(gcfg, n.meta(), n.log, n.opts.gossip...); err != nil {
		return fmt.Errorf("mesh: gossip: %w", err)
	}
	if n.fsm == nil {
		return nil
	}
	rcfg := n.cfg.Raft
	rcfg.Dir = filepath.Join(n.cfg.StateDir, "raft")
	rcfg.ID = n.host.ID().String()
	rcfg.Bootstrap = n.cfg.Bootstrap
	streams := raftStreams{Listener: p2p.Listen(n.host, raftProtocol), n: n}
	if n.raft, err = seeder.NewRaft(rcfg, streams, n.fsm, n.log); err != nil {
		return fmt.Errorf("mesh: raft: %w", err)
	}
	n.leader, err = seeder.NewLeader(seeder.LeaderConfig{Release: n.cfg.Release, Refresh: n.cfg.Refresh},
		seeder.LeaderDeps{Raft: n.raft, FSM: n.fsm, Origin: origin{n}, Members: members{n}, Follower: staging{n.follower}, Store: n.store,
			Views: members{n}, Policy: staging{n.follower}}, n.log)
	return err
}

// wakeOnSiteChanges wakes the follower and the agent when the site's
// Raft state changes (a seeder follows its FSM), and the leader tells the
// site by a gossip notice, so that nodes ask a seeder at once rather than
// at their next poll.
func (n *Node) wakeOnSiteChanges(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.fsm.Changes():
			n.follower.Wake()
			n.agent.Wake()
			n.leader.WakeRollout()
			if n.leading() {
				if err := n.gossip.Broadcast(control.Notice(n.fsm.State().Index)); err != nil {
					n.log.Debug("gossip the rollout notice", "err", err)
				}
			}
		}
	}
}

// Leave says goodbye to the site before the node stops: a seeder that
// leads hands Raft leadership to another seeder, and the node leaves the
// site's gossip, so that the others learn at once rather than by failure
// detection. Call it before ending Run's context; a node stopped without
// it looks to the site as if it crashed.
func (n *Node) Leave(ctx context.Context) error {
	if !n.started() {
		return nil
	}
	var err error
	if n.raft != nil {
		if _, _, leader := n.raft.Leader(); leader {
			if err = n.raft.TransferLeadership(); err != nil {
				n.log.Warn("hand off raft leadership", "err", err)
			}
		}
	}
	timeout := leaveTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	if gerr := n.gossip.Leave(timeout); gerr != nil {
		n.log.Debug("leave gossip", "err", gerr)
		err = errors.Join(err, gerr)
	}
	return err
}

// leaveTimeout bounds how long Leave waits for gossip to spread the leave.
const leaveTimeout = 2 * time.Second

// GossipAddr returns the host:port the node gossips on, for others to
// join the site through it; empty until Ready.
func (n *Node) GossipAddr() string {
	if !n.started() {
		return ""
	}
	ip, port := n.gossip.LocalAddr()
	return net.JoinHostPort(ip.String(), strconv.Itoa(port))
}

// Close releases Raft, gossip, the host, the CDN client and the store, in
// that order. Run calls it; further calls do nothing.
func (n *Node) Close() error {
	var err error
	n.closeOnce.Do(func() { err = n.close() })
	return err
}

func (n *Node) close() error {
	var errs []error
	if n.raft != nil {
		errs = append(errs, n.raft.Close())
	}
	if n.gossip != nil {
		errs = append(errs, n.gossip.Close())
	}
	if n.host != nil {
		n.host.RemoveStreamHandler(meta.Protocol)
		n.host.RemoveStreamHandler(control.Protocol)
		errs = append(errs, n.host.Close())
	}
	if n.cdn != nil {
		n.cdn.Close()
	}
	if n.store != nil {
		errs = append(errs, n.store.Close())
	}
	return errors.Join(errs...)
}

func (n *Node) tufDir() string { return filepath.Join(n.cfg.StateDir, "tuf") }

func (n *Node) wrap(ctx context.Context) exchange.Wrap {
	var w exchange.Wrap
	if n.up != nil {
		w.Writer = func(wc io.WriteCloser) io.WriteCloser { return limitedWriter{ctx, wc, n.up} }
	}
	if n.down != nil {
		w.Reader = func(rc io.ReadCloser) io.ReadCloser { return limitedReader{ctx, rc, n.down} }
	}
	return w
}

// keepConnected dials the configured peers and redials those that drop.
func (n *Node) keepConnected(ctx context.Context) {
	var infos []peer.AddrInfo
	for _, a := range n.cfg.Peers {
		ai, _ := peer.AddrInfoFromString(a)
		infos = append(infos, *ai)
	}
	if len(infos) == 0 {
		return
	}
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		for _, ai := range infos {
			if ai.ID == n.host.ID() || n.host.Network().Connectedness(ai.ID) == network.Connected {
				continue
			}
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := n.host.Connect(dctx, ai); err != nil {
				n.log.Debug("connect to peer failed", "peer", ai.ID, "err", err)
			}
			cancel()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
