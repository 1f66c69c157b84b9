package gossip

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Limits of the queues between memberlist and the reader of Events and
// Messages (see Events).
const (
	MaxQueuedEvents   = 10000
	MaxQueuedMessages = 4096 // of at most MaxBroadcastSize bytes each: ≤ 4 MiB
)

var (
	// ErrClosed is returned by the methods of a Gossip after Close.
	ErrClosed = errors.New("gossip: closed")
	// ErrLeft is returned by SetMeta, Broadcast and Join after Leave.
	ErrLeft = errors.New("gossip: member has left the site")
	// ErrNoSeeds is returned by Join without seeds, given or configured.
	ErrNoSeeds = errors.New("gossip: no seeds to join")
	// ErrJoin is wrapped by Join when no seed answered before ctx ended;
	// the error also wraps ctx's error and names the last failure.
	ErrJoin = errors.New("gossip: join failed")
	// ErrTooLarge is returned by Broadcast for a message over
	// MaxBroadcastSize bytes.
	ErrTooLarge = errors.New("gossip: broadcast too large")
	// ErrInsecure is returned by the key methods of an unencrypted member.
	ErrInsecure = errors.New("gossip: unencrypted (Insecure): there is no keyring")
	// ErrBadKey is wrapped for a key that is not 16, 24 or 32 bytes.
	ErrBadKey = errors.New("gossip: bad key")
	// ErrKeyNotInstalled is wrapped by UseKey for a key not in the keyring.
	ErrKeyNotInstalled = errors.New("gossip: key not installed")
	// ErrPrimaryKey is wrapped by RemoveKey for the primary key: switch to
	// another one first (UseKey).
	ErrPrimaryKey = errors.New("gossip: cannot remove the primary key")
)

// EventKind says what happened to a member.
type EventKind uint8

const (
	// EventJoin: the member is alive: it joined, or came back after it
	// was declared failed (a false suspicion it refuted, or a restart).
	EventJoin EventKind = iota
	// EventLeave: the member left gracefully (Leave).
	EventLeave
	// EventFail: the member stopped answering and was declared dead.
	EventFail
	// EventUpdate: the member's Meta changed.
	EventUpdate
)

var eventNames = [...]string{EventJoin: "join", EventLeave: "leave", EventFail: "fail", EventUpdate: "update"}

func (k EventKind) String() string {
	if int(k) < len(eventNames) {
		return eventNames[k]
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Member states, as Member.State writes them.
const (
	StateAlive = "alive"
	// StateSuspect is part of the vocabulary, but memberlist v0.7.0 does
	// not tell its users which members it suspects: a suspect member
	// shows as alive until it refutes or is declared dead.
	StateSuspect = "suspect"
	StateDead    = "dead"
	StateLeft    = "left"
)

// Member is one member of the site as this member sees it. It is a copy:
// the caller may keep and change it.
type Member struct {
	Name  string // the member's Config.Name: its peer id
	Addr  net.IP // its gossip address; its libp2p address is Addr and Meta.P2PPort
	Port  uint16 // its gossip port
	Meta  Meta   // its status; zero if MetaErr is set
	State string // StateAlive, StateDead or StateLeft
	// MetaErr says why the member's NodeMeta could not be decoded (it
	// wraps ErrBadMeta or ErrMetaVersion, the latter from a member that
	// runs a newer meshcast). The member is still a member.
	MetaErr error
}

// Event is one change of a member.
type Event struct {
	Kind   EventKind
	Member Member // as of the event
}

// Stats counts what a member dropped.
type Stats struct {
	DroppedEvents    uint64 // events dropped because nobody read Events
	DroppedMessages  uint64 // broadcasts dropped because nobody read Messages
	BadMessages      uint64 // user messages that were not broadcasts of this version
	PrunedBroadcasts uint64 // broadcasts dropped before their last retransmission (queue over its limit)
}

// Gossip is one member of a site's gossip: memberlist with this package's
// delegates. Create it with New, stop it with Close.
type Gossip struct {
	log  *slog.Logger // goes through gate
	gate *logGate
	cfg  resolved
	boot uint64 // random: tells this instance's broadcasts from an earlier one's
	addr net.IP // advertised gossip address and port; fixed at New
	port int

	ml      *memberlist.Memberlist
	keyring *memberlist.Keyring // nil when Insecure
	bq      *transmitQueue
	events  *queue[Event]
	msgs    *queue[[]byte]
	dedup   *dedup

	push chan struct{} // 1-buffered: "NodeMeta changed, push it"
	done chan struct{} // closed by Close
	wg   sync.WaitGroup

	seq     atomic.Uint64 // broadcasts sent
	alive   atomic.Int64  // alive members, self included (sizes the broadcast queue's retransmits)
	badMsgs atomic.Uint64
	pruned  atomic.Uint64
	// pushWakes counts pushLoop's wake-ups (a test bounds them).
	pushWakes atomic.Uint64

	// lifeMu serializes what changes memberlist's own state: UpdateNode,
	// Leave and Shutdown (memberlist panics on Leave after Shutdown, and an
	// UpdateNode after Leave would announce us alive again).
	lifeMu sync.Mutex
	// keyMu serializes keyring changes.
	keyMu sync.Mutex

	// mu guards what follows. It is taken inside memberlist's callbacks,
	// under memberlist's own lock, so nothing holding mu calls memberlist.
	mu      sync.Mutex
	meta    Meta
	wire    []byte // meta encoded, with the leaving flag; replaced, never changed in place
	leaving bool   // Leave began
	closed  bool
	members map[string]*memberState
	failed  map[string]failure // members declared failed, to reconnect to
}

// failure is a member declared failed: where it was, and when.
type failure struct {
	addr string
	at   time.Time
}

// memberState is a member in Gossip's table.
type memberState struct {
	Member
	leaving bool // its last NodeMeta carried the leaving flag
}

// Transport is memberlist's network transport.
type Transport = memberlist.NodeAwareTransport

// Option gives New what it wires in besides Config.
type Option func(*options)

type options struct {
	wrap func(Transport) Transport
}

// WrapTransport has the member send and receive through wrap(t), where t
// is the UDP and TCP transport New binds: the seam for tests that cut,
// delay or watch the member's links (see gossiptest.Links).
func WrapTransport(wrap func(Transport) Transport) Option {
	return func(o *options) { o.wrap = wrap }
}

// New starts a member: it validates cfg, binds the gossip port (UDP and
// TCP) and starts memberlist, alone, with meta as its status. meta.ID may
// be empty and then means cfg.Name; otherwise it must equal cfg.Name. Join
// contacts the site. A nil log discards.
func New(cfg Config, meta Meta, log *slog.Logger, opts ...Option) (*Gossip, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	r, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	if meta.ID == "" {
		meta.ID = r.Name
	} else if meta.ID != r.Name {
		return nil, fmt.Errorf("%w: Meta.ID %q differs from Config.Name %q", ErrBadMeta, meta.ID, r.Name)
	}
	wire, err := meta.encode(false)
	if err != nil {
		return nil, err
	}
	g := newGossip(r, meta, wire, log)
	ml, err := g.startMemberlist(o.wrap)
	if err != nil {
		return nil, err
	}
	g.ml = ml
	g.mu.Lock()
	if self := g.members[r.Name]; self != nil { // memberlist announced us during Create
		g.addr, g.port = slices.Clone(self.Addr), int(self.Port)
	}
	g.mu.Unlock()
	g.wg.Add(4)
	go func() { defer g.wg.Done(); g.events.run(g.done) }()
	go func() { defer g.wg.Done(); g.msgs.run(g.done) }()
	go func() { defer g.wg.Done(); g.pushLoop() }()
	go func() { defer g.wg.Done(); g.reconnectLoop() }()
	g.log.Info("gossip: listening", "name", r.Name, "addr", net.JoinHostPort(g.addr.String(), fmt.Sprint(g.port)),
		"profile", r.Profile, "encrypted", g.keyring != nil)
	return g, nil
}

// newGossip returns a member for r, with meta (encoded as wire) as its
// status, before memberlist starts. A nil log discards.
func newGossip(r resolved, meta Meta, wire []byte, log *slog.Logger) *Gossip {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	gate := &logGate{}
	g := &Gossip{
		log:     slog.New(gatedHandler{log.Handler(), gate}),
		gate:    gate,
		cfg:     r,
		boot:    rand.Uint64(),
		events:  newQueue(MaxQueuedEvents, func(e Event) bool { return e.Kind == EventUpdate }),
		msgs:    newQueue[[]byte](MaxQueuedMessages, nil),
		dedup:   newDedup(dedupSize),
		push:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		meta:    meta,
		wire:    wire,
		members: make(map[string]*memberState),
		failed:  make(map[string]failure),
	}
	mult := r.prof.broadcastRetransmitMult
	if r.plainBroadcast {
		mult = r.prof.retransmitMult
	}
	g.bq = &transmitQueue{
		retransmitMult: mult,
		numNodes:       func() int { return int(g.alive.Load()) },
		limit:          maxQueuedBroadcasts,
	}
	return g
}

// startMemberlist binds the transport (through wrap, if set) and starts
// memberlist with g as its delegate: from here on memberlist calls g.
func (g *Gossip) startMemberlist(wrap func(Transport) Transport) (*memberlist.Memberlist, error) {
	r := g.cfg
	mc := r.memberlistConfig()
	mc.Logger = newMemberlistLogger(g.log)
	d := (*delegate)(g)
	mc.Delegate = d
	mc.Events = d
	if len(r.Keys) > 0 {
		kr, err := memberlist.NewKeyring(r.Keys[1:], r.Keys[0])
		if err != nil {
			return nil, fmt.Errorf("%w: keyring: %v", ErrConfig, err)
		}
		g.keyring = kr
		mc.Keyring = kr
	}
	nt, err := newTransport(r, mc, wrap)
	if err != nil {
		return nil, err
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		_ = nt.Shutdown()
		return nil, fmt.Errorf("gossip: start memberlist as %s on %s:%d: %w", r.Name, r.BindAddr, mc.BindPort, err)
	}
	return ml, nil
}

// newTransport binds memberlist's UDP and TCP listeners and fills in the
// ports of mc. A free port (BindPort 0) is picked by TCP and may be taken
// for UDP meanwhile: that is retried, as memberlist does.
func newTransport(r resolved, mc *memberlist.Config, wrap func(Transport) Transport) (*memberlist.NetTransport, error) {
	nc := &memberlist.NetTransportConfig{BindAddrs: []string{r.BindAddr}, BindPort: r.BindPort, Logger: mc.Logger}
	tries := 1
	if r.BindPort == 0 {
		tries = 10
	}
	var err error
	for range tries {
		var nt *memberlist.NetTransport
		if nt, err = memberlist.NewNetTransport(nc); err == nil {
			port := nt.GetAutoBindPort()
			mc.Transport = nt
			if wrap != nil {
				mc.Transport = wrap(nt)
			}
			mc.BindPort = port
			if mc.AdvertisePort == 0 {
				mc.AdvertisePort = port
			}
			return nt, nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, fmt.Errorf("gossip: listen on %s port %d: %w", r.BindAddr, r.BindPort, err)
}

// reconnectLoop tries, every reconnectInterval, to join again one member
// (at random) of those declared failed in the last reconnectTimeout. A
// member on the other side of a partition is declared failed and, with
// memberlist alone, never contacted again: both sides would stay apart
// after the network healed. A member that left is not tried.
func (g *Gossip) reconnectLoop() {
	t := time.NewTicker(g.cfg.prof.reconnectInterval)
	defer t.Stop()
	for {
		select {
		case <-g.done:
			return
		case <-t.C:
		}
		g.mu.Lock()
		var addrs []string
		for name, f := range g.failed {
			if time.Since(f.at) > g.cfg.prof.reconnectTimeout {
				delete(g.failed, name)
				continue
			}
			addrs = append(addrs, f.addr)
		}
		g.mu.Unlock()
		if len(addrs) == 0 || g.usable() != nil {
			continue
		}
		addr := addrs[rand.IntN(len(addrs))]
		if n, err := g.ml.Join([]string{addr}); n > 0 {
			g.log.Info("gossip: reconnected to a failed member", "addr", addr)
		} else {
			g.log.Debug("gossip: failed member still unreachable", "addr", addr, "err", flatError{err})
		}
	}
}

// pushLoop pushes this member's Meta to the site (memberlist's
// UpdateNode) when SetMeta changed it. It owns what was last pushed.
//
//   - A change of anything but Progress goes out at once (after the push in
//     flight, if any: SetMeta calls made meanwhile collapse into the
//     latest), and once more repeatAfter later. memberlist gossips an
//     update a limited number of times, and rarely a member misses every
//     copy (measured: 2 of 1200 in a site of 5 on a loaded machine); it
//     would then learn the change only at the next push/pull, 30 s later
//     with the lan profile. The repeat makes that a second chance a
//     fraction of a second later. Members that got the first see no
//     second event.
//   - A change of Progress alone goes out at most once per progressEvery:
//     every update costs every member a share of its gossip bandwidth, so
//     the site can carry only a few per second whatever its size.
func (g *Gossip) pushLoop() {
	g.mu.Lock()
	pushed := g.meta // memberlist announced it in Create
	g.mu.Unlock()
	var lastAt, repeatAt, progressAt time.Time // zero: nothing due
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-g.done:
			return
		case <-g.push:
		case <-timer.C:
		}
		g.mu.Lock()
		m, skip := g.meta, g.closed || g.leaving
		g.mu.Unlock()
		if skip {
			continue
		}
		g.pushWakes.Add(1)
		now := time.Now()
		progressOnly := m != pushed && m.withProgress(pushed.Progress) == pushed
		switch {
		case m != pushed && (!progressOnly || !now.Before(lastAt.Add(g.progressEvery()))):
			g.updateNode()
			if !progressOnly {
				repeatAt = now.Add(g.cfg.prof.repeatAfter)
			}
			pushed, lastAt = m, now
		case !repeatAt.IsZero() && !now.Before(repeatAt):
			// The repeat announces the current Meta: a change of
			// Progress waiting for its turn goes with it.
			g.updateNode()
			repeatAt = time.Time{}
			pushed, lastAt = m, now
		}
		// Every time kept is in the future, so the loop sleeps until
		// something is due (a due repeat left behind a waiting change of
		// Progress used to wake it at once, again and again, for up to
		// progressEvery).
		progressAt = time.Time{}
		if m != pushed { // Progress alone, too soon
			progressAt = lastAt.Add(g.progressEvery())
		}
		if next := earliest(repeatAt, progressAt); !next.IsZero() {
			timer.Reset(time.Until(next))
		}
	}
}

// updateNode has memberlist announce this member's current Meta, unless
// the member is leaving or closed.
func (g *Gossip) updateNode() {
	g.lifeMu.Lock()
	defer g.lifeMu.Unlock()
	g.mu.Lock()
	skip := g.closed || g.leaving
	g.mu.Unlock()
	if skip {
		return
	}
	// UpdateNode returns once the update went out to the retransmit
	// limit, or (the error) after pushWait with the update still queued:
	// it goes out either way.
	if err := g.ml.UpdateNode(g.cfg.prof.pushWait); err != nil {
		g.log.Debug("gossip: status update still spreading", "err", err)
	}
}

// progressEvery is how often a change of Progress alone may be pushed:
// the profile's cost per member times the number of members, so that the
// whole site pushes about the same number of progress updates per second
// at any size.
func (g *Gossip) progressEvery() time.Duration {
	n := max(g.alive.Load(), 1)
	return max(g.cfg.prof.pushWait, time.Duration(n)*g.cfg.prof.progressPerMember)
}

// earliest returns the earlier of two times, ignoring zero ones.
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}

// Join contacts seeds ("host:port"; nil means Config.Seeds), all of them,
// until at least one answers and this member has exchanged the member list
// with it; it returns how many answered. Rounds that reach no seed are
// retried with exponential backoff (the profile's, with jitter) until ctx
// ends; then the error wraps ErrJoin and ctx.Err() and names the last
// failure. A round takes up to the profile's TCP timeout per seed and is
// not interrupted by ctx. Joining through a member of a site that uses other
// keys fails: it cannot decrypt what we send.
func (g *Gossip) Join(ctx context.Context, seeds []string) (int, error) {
	if seeds == nil {
		seeds = g.cfg.Seeds
	}
	if len(seeds) == 0 {
		return 0, ErrNoSeeds
	}
	for _, s := range seeds {
		if err := checkSeed(s); err != nil {
			return 0, fmt.Errorf("gossip: join: %w", err)
		}
	}
	backoff := g.cfg.prof.joinBackoffMin
	var last error
	for attempt := 1; ; attempt++ {
		if err := g.usable(); err != nil {
			return 0, err
		}
		if err := ctx.Err(); err != nil {
			return 0, joinError(seeds, attempt-1, err, last)
		}
		n, err := g.ml.Join(seeds)
		if n > 0 {
			g.log.Info("gossip: joined the site", "seeds", seeds, "answered", n, "attempts", attempt)
			return n, nil
		}
		last = flatError{err}
		wait := time.Duration(float64(backoff) * (0.8 + 0.4*rand.Float64()))
		g.log.Warn("gossip: no seed answered; retrying", "seeds", seeds, "attempt", attempt, "retry_in", wait, "err", last)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, joinError(seeds, attempt, ctx.Err(), last)
		case <-g.done:
			t.Stop()
			return 0, ErrClosed
		case <-t.C:
		}
		backoff = min(2*backoff, g.cfg.prof.joinBackoffMax)
	}
}

func joinError(seeds []string, attempts int, ctxErr, last error) error {
	if last == nil {
		return fmt.Errorf("%w: seeds %s: %w", ErrJoin, strings.Join(seeds, ", "), ctxErr)
	}
	return fmt.Errorf("%w: seeds %s: no answer in %d attempts: %w; last failure: %v",
		ErrJoin, strings.Join(seeds, ", "), attempts, ctxErr, last)
}

// flatError shows memberlist's multi-line errors ("1 error occurred:\n\t*
// failed to join …") on one line; it unwraps to the original.
type flatError struct{ err error }

func (e flatError) Unwrap() error { return e.err }

func (e flatError) Error() string {
	var parts []string
	for _, l := range strings.Split(e.err.Error(), "\n") {
		l = strings.TrimSpace(l)
		l = strings.TrimPrefix(l, "* ")
		if l == "" || strings.HasSuffix(l, "error occurred:") || strings.HasSuffix(l, "errors occurred:") {
			continue
		}
		parts = append(parts, l)
	}
	return strings.Join(parts, "; ")
}

// usable returns ErrClosed after Close and ErrLeft after Leave began.
func (g *Gossip) usable() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.closed:
		return ErrClosed
	case g.leaving:
		return ErrLeft
	}
	return nil
}

// LocalAddr returns the gossip address and port the others reach this
// member at (the port the system picked, for AnyPort).
func (g *Gossip) LocalAddr() (net.IP, int) { return slices.Clone(g.addr), g.port }

// Name returns Config.Name.
func (g *Gossip) Name() string { return g.cfg.Name }

// SetMeta sets this member's status. It validates m (m.ID may be empty
// for Config.Name; otherwise it must equal it), keeps it, and returns; a
// goroutine of Gossip pushes it to the site. A change of anything but
// Progress goes out at once and reaches every member within the profile's
// spread time; a burst of changes collapses into the latest. A change of
// Progress alone goes out at most once per (members × the profile's
// progress cost: 400 ms for lan, 50 ms for test), so that progress
// reports, however frequent, cannot saturate the site's gossip; the latest
// always goes out eventually.
func (g *Gossip) SetMeta(m Meta) error {
	if m.ID == "" {
		m.ID = g.cfg.Name
	} else if m.ID != g.cfg.Name {
		return fmt.Errorf("%w: Meta.ID %q differs from this member's name %q", ErrBadMeta, m.ID, g.cfg.Name)
	}
	wire, err := m.encode(false)
	if err != nil {
		return err
	}
	g.mu.Lock()
	switch {
	case g.closed:
		g.mu.Unlock()
		return ErrClosed
	case g.leaving:
		g.mu.Unlock()
		return ErrLeft
	}
	g.meta, g.wire = m, wire
	g.mu.Unlock()
	select {
	case g.push <- struct{}{}:
	default:
	}
	return nil
}

// Meta returns this member's status as last set.
func (g *Gossip) Meta() Meta {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.meta
}

// Members returns the members this member believes alive, itself
// included, sorted by name. Members that memberlist suspects are included
// (and show as alive; see StateSuspect).
func (g *Gossip) Members() []Member {
	g.mu.Lock()
	out := make([]Member, 0, len(g.members))
	for _, m := range g.members {
		if m.State == StateAlive {
			c := m.Member
			c.Addr = slices.Clone(c.Addr)
			out = append(out, c)
		}
	}
	g.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Leader returns the alive member that announces itself the Raft leader
// (Meta.Leader) with the highest term, if any. It is what the members say
// of themselves, not a decision: nodes follow the release it names until
// issue [7/10] has them read the leader's decisions from Raft.
func (g *Gossip) Leader() (Member, bool) {
	var best Member
	found := false
	for _, m := range g.Members() {
		if m.Meta.Leader && (!found || m.Meta.Term > best.Meta.Term) {
			best, found = m, true
		}
	}
	return best, found
}

// Events returns the membership events in the order memberlist reported
// them: this member's own join comes first, then joins, leaves, failures
// and Meta updates of every member, this one included. The channel is
// closed by Close.
//
// memberlist's callbacks never wait for the reader: events wait in a queue
// in memory. If nobody reads, the queue grows to MaxQueuedEvents; then each
// new event drops the oldest EventUpdate waiting (the oldest event of any
// kind if none is an update), Stats().DroppedEvents counts them, and a
// warning is logged at the 1st, 10th, 100th, … drop. Members() is always
// current, whatever was dropped.
func (g *Gossip) Events() <-chan Event { return g.events.out }

// Broadcast sends msg (at most MaxBroadcastSize bytes) to every member of
// the site through gossip. Every member that receives it delivers it on
// Messages once and gossips it on once, so it reaches every member that is
// alive and reachable while it spreads (a fraction of a second); a member
// that joins later does not get it. Broadcast does not wait for delivery
// and this member does not receive its own broadcasts. Order between
// broadcasts is not kept.
func (g *Gossip) Broadcast(msg []byte) error {
	if len(msg) > MaxBroadcastSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(msg), MaxBroadcastSize)
	}
	if err := g.usable(); err != nil {
		return err
	}
	id := msgID{origin: g.cfg.Name, boot: g.boot, seq: g.seq.Add(1)}
	g.dedup.add(id)
	g.queueBroadcast(encodeBroadcast(id, msg))
	return nil
}

// Messages returns the payloads of the broadcasts other members sent, each
// once. The channel is closed by Close. Like Events, messages wait in a
// queue in memory, of at most MaxQueuedMessages: beyond it the oldest is
// dropped and counted in Stats().DroppedMessages.
func (g *Gossip) Messages() <-chan []byte { return g.msgs.out }

func (g *Gossip) queueBroadcast(msg []byte) {
	if n := g.bq.add(msg); n > 0 {
		if p := g.pruned.Add(uint64(n)); isPowerOf10(p) {
			g.log.Warn("gossip: broadcast queue full; dropped the most sent and oldest", "dropped_so_far", p)
		}
	}
}

// Stats returns what this member dropped so far.
func (g *Gossip) Stats() Stats {
	return Stats{
		DroppedEvents:    g.events.droppedCount(),
		DroppedMessages:  g.msgs.droppedCount(),
		BadMessages:      g.badMsgs.Load(),
		PrunedBroadcasts: g.pruned.Load(),
	}
}

// Health returns memberlist's health score of this member: 0 is healthy;
// higher means it has been missing its own probe deadlines (a slow or
// overloaded host), and memberlist then probes more slowly.
func (g *Gossip) Health() int { return g.ml.GetHealthScore() }

// Leave leaves the site gracefully: it tells the others that this member
// is leaving (a flag in its NodeMeta, so they report EventLeave rather than
// EventFail), then sends memberlist's leave message, waiting up to timeout
// in all for both to go out. After Leave, only Close is useful. Leave twice
// does nothing.
func (g *Gossip) Leave(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	g.lifeMu.Lock()
	defer g.lifeMu.Unlock()
	g.mu.Lock()
	switch {
	case g.closed:
		g.mu.Unlock()
		return ErrClosed
	case g.leaving:
		g.mu.Unlock()
		return nil
	}
	wire, err := g.meta.encode(true)
	if err != nil { // cannot happen: g.meta was encoded before
		g.mu.Unlock()
		return err
	}
	g.leaving, g.wire = true, wire
	g.mu.Unlock()

	remaining := func() time.Duration { return max(time.Until(deadline), time.Millisecond) }
	if err := g.ml.UpdateNode(remaining()); err != nil {
		g.log.Warn("gossip: leave: the leaving flag did not go out in time; some members may report a failure", "err", err)
	}
	if err := g.ml.Leave(remaining()); err != nil {
		return fmt.Errorf("gossip: leave: %w", err)
	}
	g.log.Info("gossip: left the site")
	return nil
}

// Close stops the member without leaving: the others detect it as failed
// (call Leave first to leave gracefully). It stops memberlist and every
// goroutine of Gossip, waits for them, and closes Events and Messages.
// memberlist's own goroutines are told to stop but not waited for
// (memberlist offers no way to), and nothing is logged after Close returns.
// Close twice does nothing.
func (g *Gossip) Close() error {
	g.lifeMu.Lock()
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		g.lifeMu.Unlock()
		return nil
	}
	g.closed = true
	g.mu.Unlock()
	err := g.ml.Shutdown()
	g.lifeMu.Unlock()
	close(g.done)
	g.wg.Wait()
	g.gate.close()
	if err != nil {
		return fmt.Errorf("gossip: shutdown: %w", err)
	}
	return nil
}

func isPowerOf10(n uint64) bool {
	for n >= 10 && n%10 == 0 {
		n /= 10
	}
	return n == 1
}
