package exchange

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/meshcast/meshcast/content"
)

// Store is what the exchange needs of a chunk store. Put must verify the
// chunk, as content.Store's does, and refuse a bad one with an error
// wrapping content.ErrChunkCorrupt or content.ErrChunkEncoding: the
// exchange relies on it and does not hash pieces itself.
type Store interface {
	Has(id content.ChunkID) bool
	Get(id content.ChunkID) (content.Chunk, error)
	Put(c content.Chunk) error
}

// Banner is told about a peer that sent bad bytes too often; it closes
// the peer out (the node revokes it at its connection gater).
type Banner interface {
	Ban(id peer.ID, reason error)
}

// Config tunes the exchange. Zero values mean the documented defaults.
type Config struct {
	// MaxRequests is how many chunks we ask one peer for at a time.
	// Default 16 (1 MiB of 64 KiB chunks in flight per peer).
	MaxRequests int
	// MaxServe is how many of a peer's requests we queue; beyond it they
	// are rejected and the peer asks elsewhere. Default 32.
	MaxServe int
	// MaxPush is how many chunks a spreading seeder queues for one peer.
	// Default 8.
	MaxPush int
	// RequestTimeout: when a peer we wait on delivers nothing for this
	// long (or 8 × the mean request latency, if longer: a loaded site),
	// its requests are cancelled there and issued to other peers. Default
	// 2 s.
	RequestTimeout time.Duration
	// RepushAfter: a chunk a spreading seeder pushed that no peer has
	// announced after this long (or 8 × the mean time from push to
	// announcement, if longer) is pushed to another peer. Default 2 s.
	RepushAfter time.Duration
	// Strikes is how many bad chunks a peer may send before it is banned.
	// Default 3.
	Strikes int
	// Tick is the period of timeout checks. Default 100 ms.
	Tick time.Duration
}

func (c Config) withDefaults() Config {
	if c.MaxRequests == 0 {
		c.MaxRequests = 16
	}
	if c.MaxServe == 0 {
		c.MaxServe = 32
	}
	if c.MaxPush == 0 {
		c.MaxPush = 8
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 2 * time.Second
	}
	if c.RepushAfter == 0 {
		c.RepushAfter = 2 * time.Second
	}
	if c.Strikes == 0 {
		c.Strikes = 3
	}
	if c.Tick == 0 {
		c.Tick = 100 * time.Millisecond
	}
	return c
}

// Stats are the exchange's counters since it started. Byte counts are
// chunk body bytes.
type Stats struct {
	Received      int64 // verified chunk bytes received from peers
	ReceivedCount int64
	Duplicate     int64 // bytes received for chunks already held
	Bad           int64 // bytes that did not verify
	Served        int64 // bytes sent to peers (requested and pushed)
	ServedCount   int64
	Pushed        int64 // of Served, pushed unasked by a spreading seeder
	Rejected      int64 // requests we turned away
	Reissued      int64 // requests moved off a slow or departed peer
	Bans          int64
	Peers         int
	// Latency is the moving average from a request to its piece.
	Latency time.Duration
	// PushLatency is the moving average from a push to its announcement
	// (a spreading seeder).
	PushLatency time.Duration
}

// SwarmIDFor names the swarm of one release's artifact for one platform.
func SwarmIDFor(release content.ReleaseID, platform string) SwarmID {
	h := sha256.New()
	h.Write([]byte("meshcast/swarm/1\x00"))
	h.Write(release[:])
	h.Write([]byte(platform))
	var id SwarmID
	copy(id[:], h.Sum(nil))
	return id
}

// Engine runs the chunk exchange of one node: it tells peers which chunks
// it holds, asks them for the chunks it lacks (the rarest first, several
// peers at once), serves what it holds as soon as it is verified, and, on
// a seeder in spread mode, pushes each chunk that arrives from the CDN to
// one peer instead of announcing it to all.
//
// All swarm and peer state lives on the goroutine of Run; peer streams are
// read and written by goroutines of their own that report back as events.
// A chunk is verified against its id by the goroutine that read it before
// it is stored, counted as held, or served.
type Engine struct {
	cfg    Config
	store  Store
	banner Banner
	log    *slog.Logger

	events chan event
	quit   chan struct{} // closed when Run returns
	wg     sync.WaitGroup
	lists  sync.Map // SwarmID → []content.ChunkRef, immutable once joined
	live   sync.Map // peer.ID → struct{}: peers with an outbound stream
	reads  sync.Map // peer.ID → *atomic.Int64: when bytes from it were last read (Unix ns)

	// Counters updated from any goroutine.
	received, receivedN, dup, bad, served, servedN, pushed, rejected, reissued, bans atomic.Int64
	npeers, latencyNS, pushLatencyNS                                                 atomic.Int64

	// Owned by the Run goroutine.
	peers   map[peer.ID]*peerState
	swarms  map[SwarmID]*swarm
	rng     *rand.Rand
	latency time.Duration // moving average from request to piece
	// pushLatency is the moving average from a push to its announcement.
	pushLatency time.Duration
}

// New returns an engine; Run starts it.
func New(store Store, banner Banner, cfg Config, log *slog.Logger) *Engine {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Engine{
		cfg: cfg.withDefaults(), store: store, banner: banner, log: log,
		events: make(chan event, 1024),
		quit:   make(chan struct{}),
		peers:  map[peer.ID]*peerState{},
		swarms: map[SwarmID]*swarm{},
		rng:    rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
}

// Stats returns the counters.
func (e *Engine) Stats() Stats {
	return Stats{
		Received: e.received.Load(), ReceivedCount: e.receivedN.Load(), Duplicate: e.dup.Load(), Bad: e.bad.Load(),
		Served: e.served.Load(), ServedCount: e.servedN.Load(), Pushed: e.pushed.Load(), Rejected: e.rejected.Load(),
		Reissued: e.reissued.Load(), Bans: e.bans.Load(), Peers: int(e.npeers.Load()),
		Latency: time.Duration(e.latencyNS.Load()), PushLatency: time.Duration(e.pushLatencyNS.Load()),
	}
}

// ErrStopped is returned by calls made after Run returned.
var ErrStopped = errors.New("exchange stopped")

func (e *Engine) send(ev event) error {
	select {
	case e.events <- ev:
		return nil
	case <-e.quit:
		return ErrStopped
	}
}

// Swarm is a handle on a joined swarm.
type Swarm struct {
	ID     SwarmID
	Chunks []content.ChunkRef
	done   chan struct{}
	have   atomic.Int64
}

// Done is closed when every chunk of the swarm is held and verified.
func (s *Swarm) Done() <-chan struct{} { return s.done }

// Progress returns the chunks held and the chunks in the swarm.
func (s *Swarm) Progress() (have, total int) { return int(s.have.Load()), len(s.Chunks) }

// JoinOptions say how a node takes part in a swarm.
type JoinOptions struct {
	// Spread makes this node a spreading seeder: chunks it Offers are
	// pushed to one peer each instead of being announced (see SetSpread).
	Spread bool
}

// Join starts taking part in a swarm: chunks is the artifact's distinct
// chunks, in the manifest's order, which every member derives alike. The
// chunks the store already holds count as held.
func (e *Engine) Join(ctx context.Context, id SwarmID, chunks []content.ChunkRef, opt JoinOptions) (*Swarm, error) {
	if len(chunks) == 0 || len(chunks) > MaxSwarmChunks {
		return nil, fmt.Errorf("join swarm %s: %d chunks", id.Short(), len(chunks))
	}
	s := &Swarm{ID: id, Chunks: chunks, done: make(chan struct{})}
	reply := make(chan *Swarm, 1)
	if err := e.send(evJoin{s: s, opt: opt, reply: reply}); err != nil {
		return nil, err
	}
	select {
	case got := <-reply:
		return got, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-e.quit:
		return nil, ErrStopped
	}
}

// Offer tells the engine that the store now holds chunk i of a swarm,
// from somewhere other than a peer (the CDN).
func (e *Engine) Offer(id SwarmID, i int) error { return e.send(evOffer{swarm: id, index: i}) }

// WaitSpread returns once at most limit chunks of the swarm are held by
// this node alone: pushed to a member that has not announced them yet, or
// waiting for a member with room. A spreading seeder calls it between the
// chunks it brings in, so that it never runs far ahead of the site: what
// it alone holds is lost if it dies, and fetched again by its successor.
// It returns at once when the node is not spreading the swarm, has no
// member to spread to, or left the swarm.
func (e *Engine) WaitSpread(ctx context.Context, id SwarmID, limit int) error {
	ch := make(chan struct{})
	if err := e.send(evWaitSpread{swarm: id, w: spreadWaiter{limit: limit, ch: ch}}); err != nil {
		return err
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-e.quit:
		return ErrStopped
	}
}

// wakeWaiters releases the WaitSpread calls whose limit every swarm
// reached.
func (e *Engine) wakeWaiters() {
	for _, s := range e.swarms {
		s.wakeWaiters()
	}
}

// SetSpread switches spread mode. On, chunks the node Offers are pushed to
// one member each and nothing is announced (the seeder that brings chunks
// into the site). Off, the node announces everything it holds, like any
// member; a seeder that stops leading turns it off.
func (e *Engine) SetSpread(id SwarmID, on bool) error { return e.send(evSpread{swarm: id, on: on}) }

// Leave stops taking part in a swarm.
func (e *Engine) Leave(id SwarmID) error { return e.send(evLeave{swarm: id}) }

// AddPeer gives the engine the stream it writes to a peer; the engine
// owns and closes it. A second stream to the same peer replaces the first.
func (e *Engine) AddPeer(id peer.ID, w io.WriteCloser) error {
	pw := newPeerWriter(e, id, w)
	if err := e.send(evPeerUp{id: id, w: pw}); err != nil {
		w.Close()
		return err
	}
	return nil
}

// HasPeer reports whether the engine has an outbound stream to a peer.
func (e *Engine) HasPeer(id peer.ID) bool {
	_, ok := e.live.Load(id)
	return ok
}

// RemovePeer forgets a peer: requests waiting on it go to other peers.
func (e *Engine) RemovePeer(id peer.ID) error { return e.send(evPeerDown{id: id}) }

// Run runs the engine until ctx is done, then closes every peer stream
// and waits for the goroutines it started.
func (e *Engine) Run(ctx context.Context) error {
	tick := time.NewTicker(e.cfg.Tick)
	defer tick.Stop()
	defer func() {
		close(e.quit)
		for _, p := range e.peers {
			p.w.close()
		}
		e.wg.Wait()
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-e.events:
			e.handle(ev)
			// Drain what else is waiting, then flush the haves the batch
			// produced: under load, haves go out in batches.
			for drained := 0; drained < 256; drained++ {
				select {
				case ev := <-e.events:
					e.handle(ev)
					continue
				default:
				}
				break
			}
			e.flushHaves()
			e.wakeWaiters()
		case now := <-tick.C:
			e.timeouts(now)
			e.flushHaves()
			e.wakeWaiters()
		}
	}
}

// Held reports, for each chunk of a swarm, whether this node holds it and
// whether any connected member is known to hold it, and how many members
// the swarm has. A seeder fetches from the CDN only what the site lacks.
func (e *Engine) Held(ctx context.Context, id SwarmID) (self, site []bool, members int, err error) {
	type held struct {
		self, site []bool
		members    int
	}
	// The engine writes only to the buffered channel: a caller that gave
	// up shares nothing with it.
	out := make(chan held, 1)
	if err := e.send(evFunc{fn: func() {
		var h held
		defer func() { out <- h }()
		s := e.swarms[id]
		if s == nil {
			return
		}
		h.self, h.site = make([]bool, len(s.chunks)), make([]bool, len(s.chunks))
		for i := range s.chunks {
			h.self[i] = s.have.has(i)
			h.site[i] = s.avail[i] > 0
		}
		for pid := range s.members {
			if e.peers[pid] != nil {
				h.members++
			}
		}
	}}); err != nil {
		return nil, nil, 0, err
	}
	var h held
	select {
	case h = <-out:
	case <-ctx.Done():
		return nil, nil, 0, ctx.Err()
	case <-e.quit:
		return nil, nil, 0, ErrStopped
	}
	if h.self == nil {
		return nil, nil, 0, fmt.Errorf("swarm %s: not joined", id.Short())
	}
	return h.self, h.site, h.members, nil
}
