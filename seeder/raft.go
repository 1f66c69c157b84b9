package seeder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"golang.org/x/sys/unix"
)

// Errors of Raft's methods. Each is wrapped with the operation.
var (
	// ErrNotLeader: the call needs the leader and this server is not it
	// (the error names the leader when one is known). Nothing was proposed.
	ErrNotLeader = errors.New("not the raft leader")
	// ErrLeadershipLost: this server stopped being the leader while the
	// command was in flight. It may or may not commit: re-read the state.
	ErrLeadershipLost = errors.New("raft leadership lost before the command committed")
	// ErrClosed: the Raft node is closed.
	ErrClosed = errors.New("raft node closed")
)

// RaftConfig configures a Raft node. A zero field takes its value from
// LANRaftConfig, except Dir and ID, which are required, and Bootstrap.
type RaftConfig struct {
	// Dir is the node's raft/ state directory. It holds wal/ (the raft-wal
	// log and stable store), snapshots/ (the file snapshot store,
	// keeping the newest 3), both created when missing, and .lock, which
	// one Raft node at a time holds (a second gets an error, not a hang).
	Dir string
	// ID is the server id: this seeder's libp2p peer id in text form. It is
	// also its Raft address (Streams dials by id).
	ID string
	// Bootstrap makes this server a new cluster's only voter when Dir holds
	// no Raft state yet; with state it is ignored, so the first seeder can
	// keep the flag across restarts. Every other seeder starts without it
	// and is added by the leader (AddVoter, AddNonVoter).
	Bootstrap bool

	// HeartbeatTimeout is how long a follower goes without hearing from the
	// leader before it calls an election (a random time between one and two
	// of it). The leader sends heartbeats ten times as often.
	HeartbeatTimeout time.Duration
	// ElectionTimeout is how long a candidate waits for votes before it
	// tries again (also randomised between one and two of it).
	ElectionTimeout time.Duration
	// LeaderLeaseTimeout is how long a leader stays leader without hearing
	// from a quorum; at most HeartbeatTimeout.
	LeaderLeaseTimeout time.Duration
	// CommitTimeout is the longest a leader waits before it sends followers
	// the latest commit index when there is nothing else to send.
	CommitTimeout time.Duration
	// SnapshotInterval is how often raft checks whether to snapshot (at a
	// random time between one and two of it); it snapshots when
	// SnapshotThreshold entries have been added since the last one.
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	// TrailingLogs is how many entries a snapshot leaves in the log, so
	// that a follower a little behind catches up from the log rather than
	// from the snapshot.
	TrailingLogs uint64
	// RPCTimeout bounds dialing a peer and each Raft RPC's I/O (an
	// InstallSnapshot gets more in proportion to its size).
	RPCTimeout time.Duration
	// WALSegmentSize is the size of a raft-wal segment file; each is
	// preallocated on disk.
	WALSegmentSize int
}

// LANRaftConfig returns the timeouts for a site's seeders on one LAN: a
// new leader is elected within about 1 s of the leader's crash (a follower
// notices within 0.5–1 s, then pre-vote and vote take a few round trips),
// half of hashicorp/raft's defaults (which take about 2 s), and still ten
// heartbeats per follower timeout, which tolerates a loaded seeder's
// hiccups. A graceful leader (TransferLeadership) hands over in one round
// trip.
//
//	HeartbeatTimeout    500 ms   ElectionTimeout  500 ms
//	LeaderLeaseTimeout  250 ms   CommitTimeout     50 ms
//	SnapshotInterval    2 min    SnapshotThreshold 1024 entries, TrailingLogs 1024
//	RPCTimeout          10 s     WALSegmentSize    64 MiB (raft-wal's default)
//
// Site decisions are few and small, so snapshots are rare and cheap.
func LANRaftConfig() RaftConfig {
	return RaftConfig{
		HeartbeatTimeout:   500 * time.Millisecond,
		ElectionTimeout:    500 * time.Millisecond,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		CommitTimeout:      50 * time.Millisecond,
		SnapshotInterval:   2 * time.Minute,
		SnapshotThreshold:  1024,
		TrailingLogs:       1024,
		RPCTimeout:         10 * time.Second,
		WALSegmentSize:     wal.DefaultSegmentSize,
	}
}

// TestRaftConfig returns timeouts for in-process test clusters: elections
// within a few hundred milliseconds, snapshots after 64 entries with 16
// kept, and 1 MiB WAL segments to spare the disk.
func TestRaftConfig() RaftConfig {
	return RaftConfig{
		HeartbeatTimeout:   200 * time.Millisecond,
		ElectionTimeout:    200 * time.Millisecond,
		LeaderLeaseTimeout: 100 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		SnapshotInterval:   100 * time.Millisecond,
		SnapshotThreshold:  64,
		TrailingLogs:       16,
		RPCTimeout:         2 * time.Second,
		WALSegmentSize:     1 << 20,
	}
}

// withDefaults fills zero fields from LANRaftConfig.
func (c RaftConfig) withDefaults() RaftConfig {
	d := LANRaftConfig()
	set := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	set(&c.HeartbeatTimeout, d.HeartbeatTimeout)
	set(&c.ElectionTimeout, d.ElectionTimeout)
	set(&c.LeaderLeaseTimeout, d.LeaderLeaseTimeout)
	set(&c.CommitTimeout, d.CommitTimeout)
	set(&c.SnapshotInterval, d.SnapshotInterval)
	set(&c.RPCTimeout, d.RPCTimeout)
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = d.SnapshotThreshold
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = d.TrailingLogs
	}
	if c.WALSegmentSize == 0 {
		c.WALSegmentSize = d.WALSegmentSize
	}
	return c
}

// Validate checks c (zero fields meaning their defaults), naming the first
// bad field.
func (c RaftConfig) Validate() error {
	if c.Dir == "" {
		return errors.New("raft config: Dir is empty")
	}
	if c.ID == "" {
		return errors.New("raft config: ID is empty")
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"HeartbeatTimeout", c.HeartbeatTimeout},
		{"ElectionTimeout", c.ElectionTimeout},
		{"LeaderLeaseTimeout", c.LeaderLeaseTimeout},
		{"CommitTimeout", c.CommitTimeout},
		{"SnapshotInterval", c.SnapshotInterval},
		{"RPCTimeout", c.RPCTimeout},
	} {
		if f.v < 0 {
			return fmt.Errorf("raft config: %s is %v; durations are positive (0 means the default)", f.name, f.v)
		}
	}
	if c.WALSegmentSize < 0 {
		return fmt.Errorf("raft config: WALSegmentSize is %d", c.WALSegmentSize)
	}
	if err := raft.ValidateConfig(c.withDefaults().raftConfig()); err != nil {
		return fmt.Errorf("raft config: %w", err)
	}
	return nil
}

// raftConfig maps c (defaults applied) onto hashicorp/raft's config, without
// the logger and the notify channel.
func (c RaftConfig) raftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.ID)
	rc.HeartbeatTimeout = c.HeartbeatTimeout
	rc.ElectionTimeout = c.ElectionTimeout
	rc.LeaderLeaseTimeout = c.LeaderLeaseTimeout
	rc.CommitTimeout = c.CommitTimeout
	rc.SnapshotInterval = c.SnapshotInterval
	rc.SnapshotThreshold = c.SnapshotThreshold
	rc.TrailingLogs = c.TrailingLogs
	// A server removed from the configuration stops instead of going on as
	// a one-server cluster of its own.
	rc.ShutdownOnRemove = true
	return rc
}

// Suffrage is a server's role in the Raft configuration.
type Suffrage string

const (
	Voter    Suffrage = "voter"    // votes and counts toward the quorum
	NonVoter Suffrage = "nonvoter" // receives the log, does not vote
	Staging  Suffrage = "staging"  // unused by hashicorp/raft today
)

// Server is a member of the Raft configuration.
type Server struct {
	ID       string
	Suffrage Suffrage
}

// Raft is one seeder's Raft node: hashicorp/raft with the FSM, a raft-wal
// log and stable store, a file snapshot store and a network transport over
// Streams. It owns all of them: Close stops and closes everything.
//
// Leadership: the leader is the site's active seeder. LeaderCh reports
// changes; Leader reports the leader and the current term, which the leader
// puts in the commands it proposes (see FSM on fencing).
type Raft struct {
	log     *slog.Logger
	fsm     *FSM
	id      string
	raft    *raft.Raft
	trans   *raft.NetworkTransport
	layer   *streamLayer
	wal     *wal.WAL
	meta    *metadb.BoltMetaDB // the WAL's; wal.Close does not close it
	lock    *os.File           // holds the flock on Dir/.lock
	notify  chan bool          // raft's NotifyCh, read by forwardLeadership
	leaderc chan bool          // LeaderCh: the latest leadership, 1-buffered
	stop    chan struct{}      // closed by Close after raft stopped
	wg      sync.WaitGroup

	closeOnce sync.Once
	closeErr  error

	mu     sync.Mutex
	closed bool // set by Close before it waits for wg
}

// handlerWait bounds how long Close waits for raft's handlers of inbound
// streams to return after their streams were closed.
const handlerWait = 5 * time.Second

// NewRaft starts a Raft node with state in cfg.Dir, talking over s (which
// it owns from now on, even on error), applying to fsm and logging to log
// (nil discards). s.Addr() must be cfg.ID.
func NewRaft(cfg RaftConfig, s Streams, fsm *FSM, log *slog.Logger) (_ *Raft, err error) {
	if s == nil {
		return nil, errors.New("start raft: no Streams")
	}
	var trans *raft.NetworkTransport
	defer func() {
		if err != nil && trans == nil { // else closing trans closes s
			_ = s.Close()
		}
	}()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if fsm == nil {
		return nil, errors.New("start raft: no FSM")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("start raft: %w", err)
	}
	cfg = cfg.withDefaults()
	if a := s.Addr().String(); a != cfg.ID {
		return nil, fmt.Errorf("start raft %s: the streams listen as %q: want the server id", cfg.ID, a)
	}
	r := &Raft{
		log:     log,
		fsm:     fsm,
		id:      cfg.ID,
		notify:  make(chan bool, 1),
		leaderc: make(chan bool, 1),
		stop:    make(chan struct{}),
	}

	snaps, err := r.openStores(cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = r.closeStores()
		}
	}()

	r.layer = newStreamLayer(s)
	trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Logger:  newHclogger(log, "raft-net"),
		Stream:  r.layer,
		MaxPool: 3,
		Timeout: cfg.RPCTimeout,
	})
	r.trans = trans
	defer func() {
		if err != nil {
			_ = r.trans.Close()
			r.layer.closeAll(handlerWait)
		}
	}()

	if err := r.bootstrap(cfg, snaps); err != nil {
		return nil, err
	}
	if err := r.start(cfg, snaps); err != nil {
		return nil, err
	}
	return r, nil
}

// openStores takes the lock on cfg.Dir and opens the WAL (the log and
// stable store) and the snapshot store; on error it leaves none open.
func (r *Raft) openStores(cfg RaftConfig) (*raft.FileSnapshotStore, error) {
	walDir := filepath.Join(cfg.Dir, "wal")
	if err := os.MkdirAll(walDir, 0o700); err != nil { // wal.Open does not create it
		return nil, fmt.Errorf("start raft %s: %w", cfg.ID, err)
	}
	var err error
	if r.lock, err = lockDir(cfg.Dir); err != nil {
		return nil, fmt.Errorf("start raft %s: %w", cfg.ID, err)
	}
	// raft-wal's Close leaves its metadata DB (a bbolt file) open, locked,
	// so the WAL gets one that Raft closes itself.
	r.meta = &metadb.BoltMetaDB{}
	r.wal, err = wal.Open(walDir,
		wal.WithLogger(newHclogger(r.log, "raft-wal")),
		wal.WithSegmentSize(cfg.WALSegmentSize),
		wal.WithMetaStore(r.meta))
	if err != nil {
		_ = r.meta.Close()
		_ = r.lock.Close()
		return nil, fmt.Errorf("start raft %s: open log %s: %w", cfg.ID, walDir, err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 3, newHclogger(r.log, "raft-snapshots"))
	if err != nil {
		_ = r.closeStores()
		return nil, fmt.Errorf("start raft %s: snapshot store in %s: %w", cfg.ID, cfg.Dir, err)
	}
	return snaps, nil
}

// bootstrap makes this server a new cluster's only voter when
// cfg.Bootstrap is set and Dir holds no Raft state yet.
func (r *Raft) bootstrap(cfg RaftConfig, snaps *raft.FileSnapshotStore) error {
	if !cfg.Bootstrap {
		return nil
	}
	has, err := raft.HasExistingState(r.wal, r.wal, snaps)
	if err != nil {
		return fmt.Errorf("start raft %s: read state: %w", cfg.ID, err)
	}
	if has {
		return nil
	}
	conf := raft.Configuration{Servers: []raft.Server{{
		Suffrage: raft.Voter, ID: raft.ServerID(cfg.ID), Address: raft.ServerAddress(cfg.ID),
	}}}
	if err := raft.BootstrapCluster(cfg.raftConfig(), r.wal, r.wal, snaps, r.trans, conf); err != nil {
		return fmt.Errorf("start raft %s: bootstrap: %w", cfg.ID, err)
	}
	r.log.Info("raft cluster bootstrapped", "dir", cfg.Dir)
	return nil
}

// start runs hashicorp/raft over the stores and the transport, and the
// goroutine that forwards its leadership changes.
func (r *Raft) start(cfg RaftConfig, snaps *raft.FileSnapshotStore) error {
	rc := cfg.raftConfig()
	rc.Logger = newHclogger(r.log, "raft")
	rc.NotifyCh = r.notify
	var err error
	r.raft, err = raft.NewRaft(rc, r.fsm, r.wal, r.wal, snaps, r.trans)
	if err != nil {
		return fmt.Errorf("start raft %s: %w", cfg.ID, err)
	}
	r.wg.Go(r.forwardLeadership)
	r.log.Debug("raft started", "dir", cfg.Dir, "last_index", r.raft.LastIndex())
	return nil
}

// forwardLeadership reads raft's NotifyCh, so raft never blocks on it, logs
// each change and keeps the latest in LeaderCh.
func (r *Raft) forwardLeadership() {
	for {
		select {
		case <-r.stop:
			return
		case leader := <-r.notify:
			if leader {
				r.log.Info("raft leadership gained", "term", r.raft.CurrentTerm())
			} else {
				r.log.Info("raft leadership lost", "term", r.raft.CurrentTerm())
			}
			select { // replace an unread value
			case <-r.leaderc:
			default:
			}
			r.leaderc <- leader // the only sender, and the buffer is now empty
		}
	}
}

// LeaderCh returns a 1-buffered channel holding the latest leadership
// change: true when this server became leader, false when it stopped. An
// unread value is replaced by the next, so a receiver that was slow sees
// the latest state, not every change. It has one consumer (the leader
// loop). It is never closed.
func (r *Raft) LeaderCh() <-chan bool { return r.leaderc }

// Leader returns the current leader's id ("" when none is known), the
// current term, and whether this server is the leader. A leader proposes
// with this term; the FSM refuses a command whose term is not the term in
// which it was appended.
func (r *Raft) Leader() (id string, term uint64, isLeader bool) {
	for {
		term = r.raft.CurrentTerm()
		isLeader = r.raft.State() == raft.Leader
		_, lid := r.raft.LeaderWithID()
		if r.raft.CurrentTerm() == term { // consistent: no election in between
			return string(lid), term, isLeader
		}
	}
}

// Term returns the current term.
func (r *Raft) Term() uint64 { return r.raft.CurrentTerm() }

// Apply proposes cmd (an encoded command, at most MaxCommandSize bytes) and
// waits until it is applied on this server or ctx ends. It returns the FSM's
// response (an ApplyResult), or:
//   - an error wrapping ErrBadCommand or ErrRefused when the command
//     committed but the FSM refused it;
//   - ErrNotLeader when this server is not the leader: nothing proposed;
//   - ErrLeadershipLost: the outcome is unknown;
//   - ctx's error: the command may still commit.
func (r *Raft) Apply(ctx context.Context, cmd []byte) (any, error) {
	if len(cmd) > MaxCommandSize {
		return nil, fmt.Errorf("raft apply: %d bytes exceed the limit of %d: %w", len(cmd), MaxCommandSize, ErrBadCommand)
	}
	if err := r.checkLeader("raft apply"); err != nil {
		return nil, err
	}
	f := r.raft.Apply(cmd, enqueueTimeout(ctx))
	if err := r.wait(ctx, "raft apply", f); err != nil {
		return nil, err
	}
	resp := f.Response()
	if err, ok := resp.(error); ok {
		return nil, fmt.Errorf("raft apply: %w", err)
	}
	return resp, nil
}

// AddVoter adds the server with this id as a voter (or promotes a
// non-voter), waiting until the configuration change commits. Only the
// leader can.
func (r *Raft) AddVoter(ctx context.Context, id string) error {
	op := "raft add voter " + id
	if err := r.checkLeader(op); err != nil {
		return err
	}
	return r.wait(ctx, op, r.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(id), 0, enqueueTimeout(ctx)))
}

// AddNonVoter adds the server with this id as a non-voter: it receives the
// log and can be promoted later. Only the leader can.
func (r *Raft) AddNonVoter(ctx context.Context, id string) error {
	op := "raft add non-voter " + id
	if err := r.checkLeader(op); err != nil {
		return err
	}
	return r.wait(ctx, op, r.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(id), 0, enqueueTimeout(ctx)))
}

// RemoveServer removes the server with this id from the configuration:
// the operator's command for a seeder that is gone for good (a dead voter
// otherwise counts toward the quorum forever). Removing the leader itself
// makes it step down and stop. Only the leader can.
func (r *Raft) RemoveServer(ctx context.Context, id string) error {
	op := "raft remove server " + id
	if err := r.checkLeader(op); err != nil {
		return err
	}
	return r.wait(ctx, op, r.raft.RemoveServer(raft.ServerID(id), 0, enqueueTimeout(ctx)))
}

// Servers returns the latest Raft configuration (which may not be
// committed yet).
func (r *Raft) Servers() ([]Server, error) {
	if r.raft.State() == raft.Shutdown {
		return nil, fmt.Errorf("raft configuration: %w", ErrClosed)
	}
	f := r.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("raft configuration: %w", r.mapErr(err))
	}
	var out []Server
	for _, s := range f.Configuration().Servers {
		su := Voter
		switch s.Suffrage {
		case raft.Nonvoter:
			su = NonVoter
		case raft.Staging:
			su = Staging
		}
		out = append(out, Server{ID: string(s.ID), Suffrage: su})
	}
	return out, nil
}

// Stats returns hashicorp/raft's statistics (state, term, indexes, …).
func (r *Raft) Stats() map[string]string { return r.raft.Stats() }

// TransferLeadership hands leadership to the most up-to-date voter and
// waits until it took over (or the attempt failed): what a leader does
// before a graceful shutdown, so the site is not without a leader for an
// election timeout.
func (r *Raft) TransferLeadership() error {
	if err := r.raft.LeadershipTransfer().Error(); err != nil {
		return fmt.Errorf("raft leadership transfer: %w", r.mapErr(err))
	}
	return nil
}

// Close stops the node: raft's goroutines, the transport (its streams
// closed, its handlers returned) and the Streams, then the log store. It
// does not transfer leadership (call TransferLeadership first for that) and
// does not leave the configuration. It is safe to call more than once.
func (r *Raft) Close() error {
	r.closeOnce.Do(func() {
		// Shutdown waits for raft's goroutines, then closes the transport,
		// which closes the Streams; every pending future resolves.
		err := r.raft.Shutdown().Error()
		if !r.layer.closeAll(handlerWait) {
			r.log.Warn("raft stream handlers still running after close", "waited", handlerWait)
		}
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		close(r.stop)
		r.wg.Wait()
		r.closeErr = errors.Join(err, r.closeStores())
		if r.closeErr != nil {
			r.closeErr = fmt.Errorf("close raft %s: %w", r.id, r.closeErr)
		}
	})
	return r.closeErr
}

// closeStores closes the WAL and its metadata DB, then drops the lock on
// Dir.
func (r *Raft) closeStores() error {
	return errors.Join(r.wal.Close(), r.meta.Close(), r.lock.Close())
}

// lockDir takes an exclusive flock on dir/.lock, so that two Raft nodes
// (in one process or two) never share a state directory. The lock lasts
// until the returned file is closed.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("state directory %s is in use by another raft node (lock %s): %w", dir, f.Name(), err)
	}
	return f, nil
}

// checkLeader returns ErrNotLeader, naming the leader, unless this server
// is the leader.
func (r *Raft) checkLeader(op string) error {
	if r.raft.State() == raft.Leader {
		return nil
	}
	if r.raft.State() == raft.Shutdown {
		return fmt.Errorf("%s: %w", op, ErrClosed)
	}
	_, lid := r.raft.LeaderWithID()
	if lid == "" {
		return fmt.Errorf("%s: %w (no leader known)", op, ErrNotLeader)
	}
	return fmt.Errorf("%s: %w (the leader is %s)", op, ErrNotLeader, lid)
}

// wait waits for f or ctx. raft's futures cannot be cancelled, so the wait
// runs on a goroutine that ends when f resolves, which every future does at
// the latest when raft shuts down; Close waits for it.
func (r *Raft) wait(ctx context.Context, op string, f raft.Future) error {
	done := make(chan error, 1)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return fmt.Errorf("%s: %w", op, ErrClosed)
	}
	r.wg.Go(func() { done <- f.Error() })
	r.mu.Unlock()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%s: %w", op, r.mapErr(err))
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", op, ctx.Err())
	}
}

// mapErr turns raft's errors into this package's.
func (r *Raft) mapErr(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader):
		_, lid := r.raft.LeaderWithID()
		return fmt.Errorf("%w (%w; the leader is %q)", ErrNotLeader, err, lid)
	case errors.Is(err, raft.ErrLeadershipLost):
		return fmt.Errorf("%w (%w)", ErrLeadershipLost, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w (%w)", ErrClosed, err)
	}
	return err
}

// enqueueTimeout is how long raft may wait to enqueue a request: until ctx's
// deadline, or forever (0) without one; the wait for the outcome watches ctx
// itself.
func enqueueTimeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return 0
}
