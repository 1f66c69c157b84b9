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
	case c.Refresh < 0 || c.UploadRate < 0 || c.DownloadRate < 0:
		return errors.New("mesh: refresh and rates must not be negative")
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
	if c.Limits == (content.Limits{}) {
		c.Limits = content.DefaultLimits()
	}
	if len(c.Listen) > 0 {
		c.Host.ListenAddrs = c.Listen
	}
	return c
}

// Node is one meshcast node or seeder: it wires the libp2p host, the chunk
// store, the exchange, the peer file service and, on a seeder, the CDN
// client, and owns their lifecycle. It decides nothing itself: which
// release to stage comes from the signed metadata, what to fetch from the
// exchange and the store.
type Node struct {
	cfg   Config
	log   *slog.Logger
	host  host.Host
	gater *p2p.Gater
	store *content.DiskStore
	exch  *exchange.Engine
	cdn   *cdn.Client // seeders only
	up    *rate.Limiter
	down  *rate.Limiter

	gossip *gossip.Gossip
	raft   *seeder.Raft // seeders only
	fsm    *seeder.FSM  // seeders only

	closeOnce  sync.Once
	crashed    atomic.Bool
	changed    chan struct{} // 1-buffered: the site's target may have changed
	leaderWake chan struct{} // 1-buffered: a new swarm to seed
	bg         sync.WaitGroup

	cdnChunks, cdnChunkBytes atomic.Int64 // chunks the seeder fetched

	mu     sync.Mutex
	status Status
	swarm  *exchange.Swarm // being staged
	staged tuf.Target
}

// Status is what a node reports about itself.
type Status struct {
	ID      string          `json:"id"`
	Site    string          `json:"site"`
	Role    gossip.Role     `json:"role"`
	Release content.Release `json:"release,omitzero"` // being staged
	Phase   deploy.Phase    `json:"phase"`            // idle, fetching, verified
	Have    int             `json:"have"`
	Total   int             `json:"total"`
	Peers   int             `json:"peers"`
	// BytesFromCDN counts the seeder's CDN traffic (wire bytes, metadata
	// polling included); ChunksFromCDN and ChunkBytesFromCDN the chunks it
	// fetched.
	BytesFromCDN      int64          `json:"bytes_from_cdn"`
	ChunksFromCDN     int64          `json:"chunks_from_cdn"`
	ChunkBytesFromCDN int64          `json:"chunk_bytes_from_cdn"`
	Exchange          exchange.Stats `json:"exchange"`
	DoneAt            time.Time      `json:"done_at,omitzero"`
	Err               string         `json:"error,omitempty"`
	// SiteView is this node's view of its site, when it takes part in
	// the site's gossip.
	SiteView *SiteStatus `json:"site_view,omitempty"`
}

// SiteStatus is a node's view of its site.
type SiteStatus struct {
	Leader  string          `json:"leader,omitempty"` // peer id of the active seeder
	Term    uint64          `json:"term,omitempty"`
	Target  content.Release `json:"target,omitzero"` // the release the site stages
	Members []MemberStatus  `json:"members"`
	// GossipHealth is memberlist's health score: 0 is healthy.
	GossipHealth int `json:"gossip_health"`
	// Raft is the Raft state of a seeder: leader, follower, candidate.
	Raft string `json:"raft,omitempty"`
}

// MemberStatus is what a node knows of one member of its site.
type MemberStatus struct {
	ID       string          `json:"id"`
	Addr     string          `json:"addr"`
	Role     gossip.Role     `json:"role"`
	Platform string          `json:"platform"`
	Running  content.Release `json:"running,omitzero"`
	Staged   content.Release `json:"staged,omitzero"`
	Phase    deploy.Phase    `json:"phase"`
	Progress float64         `json:"progress"` // 0..1 of the staged release held
	Health   string          `json:"health"`
	Leader   bool            `json:"leader,omitempty"`
	State    string          `json:"state"` // alive, suspect
}

// New builds a node: it loads (or creates) the identity, opens the store
// and starts the libp2p host listening, so that its addresses are known
// before Run. Call Run, or Close if Run is never called.
func New(cfg Config, log *slog.Logger) (*Node, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	key, err := p2p.LoadIdentity(filepath.Join(cfg.StateDir, "identity.key"))
	if err != nil {
		return nil, err
	}
	store, err := content.OpenDiskStore(filepath.Join(cfg.StateDir, "chunks"))
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, store: store, gater: p2p.NewGater(), up: newLimiter(cfg.UploadRate), down: newLimiter(cfg.DownloadRate)}
	n.gater.SetOpen(cfg.Open)
	for _, a := range cfg.Peers {
		ai, _ := peer.AddrInfoFromString(a)
		n.gater.Allow(ai.ID)
	}
	if cfg.Role == gossip.RoleSeeder {
		if n.cdn, err = cdn.NewClient(cfg.CDN, log); err != nil {
			store.Close()
			return nil, err
		}
	}
	n.host, err = p2p.New(cfg.Host, key, n.gater, log)
	if err != nil {
		store.Close()
		return nil, err
	}
	n.log = log.With("node", n.host.ID().ShortString())
	n.exch = exchange.New(store, banner{n}, cfg.Exchange, n.log)
	n.status = Status{ID: n.host.ID().String(), Site: cfg.Site, Role: cfg.Role, Phase: deploy.PhaseIdle}
	n.changed, n.leaderWake = make(chan struct{}, 1), make(chan struct{}, 1)
	fail := func(err error) (*Node, error) {
		n.Close()
		return nil, err
	}
	gcfg := cfg.Gossip
	gcfg.Name = n.host.ID().String()
	if n.gossip, err = gossip.New(gcfg, n.meta0(), n.log); err != nil {
		return fail(fmt.Errorf("mesh: gossip: %w", err))
	}
	if cfg.Role == gossip.RoleSeeder {
		rcfg := cfg.Raft
		rcfg.Dir = filepath.Join(cfg.StateDir, "raft")
		rcfg.ID = n.host.ID().String()
		rcfg.Bootstrap = cfg.Bootstrap
		n.fsm = seeder.NewFSM()
		streams := raftStreams{Listener: p2p.Listen(n.host, raftProtocol), n: n}
		if n.raft, err = seeder.NewRaft(rcfg, streams, n.fsm, n.log); err != nil {
			return fail(fmt.Errorf("mesh: raft: %w", err))
		}
	}
	return n, nil
}

// meta0 is the node's first gossip status, before Run.
func (n *Node) meta0() gossip.Meta {
	m := gossip.Meta{ID: n.host.ID().String(), Platform: n.cfg.Platform, P2PPort: n.p2pPort()}
	if n.cfg.Role == gossip.RoleSeeder {
		m.Role = gossip.RoleSeeder
	}
	return m
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

// Status returns the node's status.
func (n *Node) Status() Status {
	st := n.localStatus()
	if n.gossip != nil {
		st.SiteView = n.siteView()
	}
	return st
}

// localStatus is Status without the site view, which costs a walk of
// every member: what the node says about itself.
func (n *Node) localStatus() Status {
	n.mu.Lock()
	st := n.status
	sw := n.swarm
	n.mu.Unlock()
	if sw != nil {
		st.Have, st.Total = sw.Progress()
	}
	st.Exchange = n.exch.Stats()
	st.Peers = len(n.host.Network().Peers())
	if n.cdn != nil {
		st.BytesFromCDN = n.cdn.BytesFromCDN()
	}
	st.ChunksFromCDN, st.ChunkBytesFromCDN = n.cdnChunks.Load(), n.cdnChunkBytes.Load()
	return st
}

func (n *Node) setStatus(fn func(*Status)) {
	n.mu.Lock()
	fn(&n.status)
	n.mu.Unlock()
}

// Run runs the node until ctx is done or a part fails, then stops every
// part in reverse order of start and releases the host and the store.
func (n *Node) Run(ctx context.Context) error {
	defer n.Close()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return n.exch.Run(ctx) })
	g.Go(func() error {
		n.exch.Attach(ctx, n.host, n.wrap(ctx))
		return nil
	})
	meta.Serve(n.host, func(path string) ([]byte, error) {
		return tuf.CachedFile(n.tufDir(), path)
	}, n.log)
	g.Go(func() error { n.keepConnected(ctx); return nil })
	g.Go(func() error { n.runGossip(ctx); return nil })
	if n.cfg.MDNS {
		g.Go(func() error { n.runMDNS(ctx); return nil })
	}
	g.Go(func() error { n.publishMeta(ctx); return nil })
	g.Go(func() error { return n.follow(ctx) })
	if n.raft != nil {
		g.Go(func() error { n.leaderLoop(ctx); return nil })
	}
	err := g.Wait()
	n.bg.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	n.leave()
	return err
}

// Crash makes the node's Run skip its goodbye (no leadership hand-off, no
// gossip leave), as if the process died; for failure tests.
func (n *Node) Crash() { n.crashed.Store(true) }

// leave hands off Raft leadership and leaves the site's gossip, so that
// the others learn at once rather than by failure detection.
func (n *Node) leave() {
	if n.crashed.Load() {
		return
	}
	if n.raft != nil {
		if _, _, leader := n.raft.Leader(); leader {
			if err := n.raft.TransferLeadership(); err != nil {
				n.log.Warn("hand off raft leadership", "err", err)
			}
		}
	}
	if err := n.gossip.Leave(2 * time.Second); err != nil {
		n.log.Debug("leave gossip", "err", err)
	}
}

// GossipAddr returns the host:port the node gossips on, for others to
// join the site through it.
func (n *Node) GossipAddr() string {
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
	var err error
	if n.raft != nil {
		err = n.raft.Close()
	}
	if n.gossip != nil {
		if gerr := n.gossip.Close(); err == nil {
			err = gerr
		}
	}
	n.host.RemoveStreamHandler(meta.Protocol)
	if herr := n.host.Close(); err == nil {
		err = herr
	}
	if n.cdn != nil {
		n.cdn.Close()
	}
	if serr := n.store.Close(); err == nil {
		err = serr
	}
	return err
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
