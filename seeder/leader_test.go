package seeder_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/raft"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/deploy"
	"github.com/meshcast/meshcast/seeder"
)

// The leader loop's tests run in synctest bubbles: its refresh timer, the
// spread stall and the fetch backoff read the bubble's fake clock, so a
// test advances time with time.Sleep and waits for the loop to settle with
// synctest.Wait, never on the wall clock. The Raft it drives is a fake
// (fakeRaft) that applies commands to a real FSM in the term it is told.

const selfID = "seeder-self"

// fakeRaft is the leader's Consensus: a one-log Raft whose leadership and
// term the test sets, applying commands to a real FSM.
type fakeRaft struct {
	fsm      *seeder.FSM
	leaderCh chan bool

	mu      sync.Mutex
	leading bool
	term    uint64
	index   uint64
	servers []seeder.Server
	applied []seeder.StageRelease // commands proposed, accepted or not
	added   []string              // AddVoter calls
}

func newFakeRaft(fsm *seeder.FSM) *fakeRaft {
	return &fakeRaft{fsm: fsm, leaderCh: make(chan bool, 1), servers: []seeder.Server{{ID: selfID, Suffrage: seeder.Voter}}}
}

// lead makes this server the leader in term (or a follower), and tells
// LeaderCh as hashicorp/raft's notifications do: the latest value only.
func (r *fakeRaft) lead(leading bool, term uint64) {
	r.mu.Lock()
	r.leading, r.term = leading, term
	r.mu.Unlock()
	select {
	case <-r.leaderCh:
	default:
	}
	r.leaderCh <- leading
}

func (r *fakeRaft) Leader() (string, uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.leading {
		return selfID, r.term, true
	}
	return "", r.term, false
}

func (r *fakeRaft) LeaderCh() <-chan bool { return r.leaderCh }

func (r *fakeRaft) Apply(ctx context.Context, cmd []byte) (any, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.leading {
		return nil, seeder.ErrNotLeader
	}
	if _, body, err := seeder.DecodeCommand(cmd); err == nil {
		if s, ok := body.(seeder.StageRelease); ok {
			r.applied = append(r.applied, s)
		}
	}
	r.index++
	resp := r.fsm.Apply(&raft.Log{Index: r.index, Term: r.term, Type: raft.LogCommand, Data: cmd})
	if err, ok := resp.(error); ok {
		return nil, err
	}
	return resp, nil
}

func (r *fakeRaft) Servers() ([]seeder.Server, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.servers), nil
}

func (r *fakeRaft) AddVoter(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.leading {
		return seeder.ErrNotLeader
	}
	r.added = append(r.added, id)
	r.servers = append(r.servers, seeder.Server{ID: id, Suffrage: seeder.Voter})
	return nil
}

func (r *fakeRaft) RemoveServer(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.leading {
		return seeder.ErrNotLeader
	}
	r.servers = slices.DeleteFunc(r.servers, func(s seeder.Server) bool { return s.ID == id })
	return nil
}

func (r *fakeRaft) proposals() []seeder.StageRelease {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.applied)
}

func (r *fakeRaft) voters() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	for _, s := range r.servers {
		ids = append(ids, s.ID)
	}
	return ids
}

// fakeOrigin is the leader's Origin: the newest release the test sets, and
// chunks it serves from a map, optionally one at a time through a gate.
type fakeOrigin struct {
	mu      sync.Mutex
	newest  content.Release
	chunks  map[content.ChunkID]content.Chunk
	fetched []content.ChunkID // every chunk handed to a sink
	fail    int               // FetchChunks calls left to fail
	gate    chan struct{}     // if set, each chunk waits for a value
}

func (o *fakeOrigin) setNewest(r content.Release) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.newest = r
}

func (o *fakeOrigin) Newest(context.Context, string) (content.Release, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.newest, nil
}

func (o *fakeOrigin) FetchChunks(ctx context.Context, refs []content.ChunkRef, sink func(content.Chunk) error) error {
	o.mu.Lock()
	gate := o.gate
	if o.fail > 0 {
		o.fail--
		o.mu.Unlock()
		return errors.New("origin: 503 Service Unavailable")
	}
	o.mu.Unlock()
	for _, r := range refs {
		if gate != nil {
			select {
			case <-gate:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		o.mu.Lock()
		c := o.chunks[r.ID]
		o.fetched = append(o.fetched, r.ID)
		o.mu.Unlock()
		if err := sink(c); err != nil {
			return err
		}
	}
	return nil
}

func (o *fakeOrigin) fetchedIDs() []content.ChunkID {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.fetched)
}

// fakeMembers lists the seeders gossip knows alive.
type fakeMembers struct {
	mu      sync.Mutex
	seeders []string
}

func (m *fakeMembers) Seeders() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.seeders)
}

// fakeFollower is this seeder's follower: the swarm the test stages.
// fakeViews is what gossip says of the members, and the staged policy,
// as a test sets them.
type fakeViews struct {
	mu        sync.Mutex
	views     map[string]deploy.MemberView
	rel       content.Release
	policy    content.Rollout
	platforms []string
}

func (v *fakeViews) Views() map[string]deploy.MemberView {
	v.mu.Lock()
	defer v.mu.Unlock()
	return maps.Clone(v.views)
}

func (v *fakeViews) StagedPolicy() (content.Release, content.Rollout, []string, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.rel, v.policy, v.platforms, !v.rel.IsZero()
}

func (v *fakeViews) set(fn func(v *fakeViews)) {
	v.mu.Lock()
	defer v.mu.Unlock()
	fn(v)
}

type fakeFollower struct {
	mu      sync.Mutex
	swarm   seeder.Swarm
	changed chan struct{}
}

func newFakeFollower() *fakeFollower { return &fakeFollower{changed: make(chan struct{})} }

func (f *fakeFollower) Staged() (seeder.Swarm, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.swarm, f.changed
}

func (f *fakeFollower) stage(sw seeder.Swarm) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.swarm = sw
	close(f.changed)
	f.changed = make(chan struct{})
}

// fakeSwarm is the staged swarm: which chunks the site holds, what the
// leader offered, and whether it spreads. With takes false, WaitSpread
// blocks until its context ends: a site that takes nothing.
type fakeSwarm struct {
	chunks []content.ChunkRef
	takes  bool

	mu      sync.Mutex
	self    []bool
	site    []bool
	offered []int
	spread  []bool // every SetSpread, in order
}

func (s *fakeSwarm) Chunks() []content.ChunkRef { return s.chunks }
func (s *fakeSwarm) Peers() int                 { return 3 }

func (s *fakeSwarm) Held(context.Context) (self, site []bool, members int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.self), slices.Clone(s.site), 3, nil
}

func (s *fakeSwarm) SetSpread(on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.spread = append(s.spread, on)
	return nil
}

func (s *fakeSwarm) Offer(i int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offered = append(s.offered, i)
	s.self[i] = true
	if s.takes {
		s.site[i] = true
	}
	return nil
}

func (s *fakeSwarm) WaitSpread(ctx context.Context, window int) error {
	if s.takes {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

func (s *fakeSwarm) state() (offered []int, spread []bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.offered), slices.Clone(s.spread)
}

// leaderRig is a leader over fakes, with a release of n chunks published.
type leaderRig struct {
	raft     *fakeRaft
	fsm      *seeder.FSM
	origin   *fakeOrigin
	members  *fakeMembers
	follower *fakeFollower
	views    *fakeViews
	store    *content.MemStore
	leader   *seeder.Leader
	refs     []content.ChunkRef
	rel      content.Release
}

const refresh = 30 * time.Second

func newLeaderRig(t *testing.T, fsm *seeder.FSM, chunks int) *leaderRig {
	t.Helper()
	r := &leaderRig{fsm: fsm, raft: newFakeRaft(fsm), origin: &fakeOrigin{chunks: map[content.ChunkID]content.Chunk{}},
		members: &fakeMembers{}, follower: newFakeFollower(), views: &fakeViews{}, store: content.NewMemStore()}
	for i := range chunks {
		body := []byte(fmt.Sprintf("chunk %d of the release", i))
		c := content.Chunk{ID: content.SumChunk(body), Size: len(body), Enc: content.EncodingRaw, Body: body}
		r.origin.chunks[c.ID] = c
		r.refs = append(r.refs, content.ChunkRef{ID: c.ID, Size: c.Size, Stored: c.Size, Enc: c.Enc})
	}
	r.rel = content.Release{Name: "gw", Version: "1.0.0", ID: relID("gw", "1.0.0")}
	r.origin.newest = r.rel
	var err error
	r.leader, err = seeder.NewLeader(seeder.LeaderConfig{Release: "gw", Refresh: refresh},
		seeder.LeaderDeps{Raft: r.raft, FSM: fsm, Origin: r.origin, Members: r.members, Follower: r.follower, Store: r.store,
			Views: r.views, Policy: r.views}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// run starts the leader loop; it is stopped, and waited for, at the end of
// the bubble's test.
func (r *leaderRig) run(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.leader.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// swarm returns a swarm of the rig's chunks where the site holds site and
// this seeder self (indexes).
func (r *leaderRig) swarm(takes bool, site, self []int) *fakeSwarm {
	s := &fakeSwarm{chunks: r.refs, takes: takes, self: make([]bool, len(r.refs)), site: make([]bool, len(r.refs))}
	for _, i := range site {
		s.site[i] = true
	}
	for _, i := range self {
		s.self[i] = true
	}
	return s
}

func targetOf(fsm *seeder.FSM) content.Release {
	if t := fsm.State().Target; t != nil {
		return t.Release
	}
	return content.Release{}
}

// The leader stages the highest signed version through Raft, with its
// term, and again each time a newer one is signed; a follower proposes
// nothing.
func TestLeaderStagesNewestSignedVersion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newLeaderRig(t, seeder.NewFSM(), 4)
		r.run(t)
		synctest.Wait()
		if p := r.raft.proposals(); len(p) != 0 || targetOf(r.fsm) != (content.Release{}) {
			t.Fatalf("a follower proposed %v", p)
		}
		r.raft.lead(true, 3)
		synctest.Wait()
		if got := r.fsm.State().Target; got == nil || got.Release != r.rel || got.Term != 3 {
			t.Fatalf("target after leading in term 3: %+v, want %s in term 3", got, r.rel)
		}
		// Nothing new on the origin: nothing proposed at the next refresh.
		time.Sleep(refresh)
		synctest.Wait()
		if p := r.raft.proposals(); len(p) != 1 {
			t.Fatalf("proposals after an unchanged refresh: %v", p)
		}
		next := content.Release{Name: "gw", Version: "1.1.0", ID: relID("gw", "1.1.0")}
		r.origin.setNewest(next)
		time.Sleep(refresh)
		synctest.Wait()
		if got := targetOf(r.fsm); got != next {
			t.Fatalf("target after 1.1.0 was signed: %s, want %s", got, next)
		}
	})
}

// Nothing signed yet: nothing is proposed and nothing is noted as a
// failure.
func TestLeaderWaitsForAFirstRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newLeaderRig(t, seeder.NewFSM(), 4)
		r.origin.setNewest(content.Release{})
		r.raft.lead(true, 1)
		r.run(t)
		time.Sleep(3 * refresh)
		synctest.Wait()
		if p, st := r.raft.proposals(), r.leader.Stats(); len(p) != 0 || st.Err != nil {
			t.Fatalf("with nothing signed: proposals %v, error %v", p, st.Err)
		}
	})
}

// The leader adds as voters the seeders gossip lists alive and Raft does
// not know, once each; it removes, on request, a seeder gossip no longer
// lists, and refuses one it lists alive (the leader would add it back).
func TestLeaderAddsAndRemovesVoters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newLeaderRig(t, seeder.NewFSM(), 4)
		r.members.seeders = []string{"seeder-b", "seeder-c"}
		r.raft.lead(true, 2)
		r.run(t)
		synctest.Wait()
		if v := r.raft.voters(); !slices.Equal(v, []string{selfID, "seeder-b", "seeder-c"}) {
			t.Fatalf("voters after the first check: %v", v)
		}
		time.Sleep(refresh)
		synctest.Wait()
		r.raft.mu.Lock()
		added := slices.Clone(r.raft.added)
		r.raft.mu.Unlock()
		if len(added) != 2 {
			t.Fatalf("AddVoter calls after a second check: %v, want each seeder once", added)
		}
		ctx := t.Context()
		if err := r.leader.RemoveSeeder(ctx, "seeder-b"); !errors.Is(err, seeder.ErrSeederAlive) {
			t.Fatalf("removing a seeder gossip lists alive: %v, want ErrSeederAlive", err)
		}
		r.members.mu.Lock()
		r.members.seeders = []string{"seeder-c"} // seeder-b died
		r.members.mu.Unlock()
		if err := r.leader.RemoveSeeder(ctx, "seeder-b"); err != nil {
			t.Fatalf("removing a dead seeder: %v", err)
		}
		time.Sleep(refresh)
		synctest.Wait()
		if v := r.raft.voters(); !slices.Equal(v, []string{selfID, "seeder-c"}) {
			t.Fatalf("voters after removing seeder-b: %v", v)
		}
		r.raft.lead(false, 3)
		synctest.Wait()
		if err := r.leader.RemoveSeeder(ctx, "seeder-x"); !errors.Is(err, seeder.ErrNotLeader) {
			t.Fatalf("removing on a follower: %v, want ErrNotLeader", err)
		}
	})
}

// A new leader after a failover resumes the staged release: it proposes
// nothing (the target is the newest), fetches from the origin exactly the
// chunks neither it nor any member holds, offers each, and spreads.
func TestLeaderResumesAfterFailover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fsm := withTarget(t, stage("gw", "1.0.0", 2)) // staged by the previous leader
		r := newLeaderRig(t, fsm, 20)
		site, self := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, []int{12, 13}
		sw := r.swarm(true, site, self)
		r.follower.stage(sw)
		r.raft.lead(true, 4)
		r.run(t)
		synctest.Wait()
		if p := r.raft.proposals(); len(p) != 0 {
			t.Fatalf("the new leader proposed %v for a target already staged", p)
		}
		var want []content.ChunkID
		for _, c := range r.refs[14:] {
			want = append(want, c.ID)
		}
		if got := r.origin.fetchedIDs(); !slices.Equal(got, want) {
			t.Fatalf("fetched %d chunks from the origin, want the 6 the site lacks (14-19)", len(got))
		}
		offered, spread := sw.state()
		if !slices.Equal(offered, []int{14, 15, 16, 17, 18, 19}) || !slices.Equal(spread, []bool{true}) {
			t.Fatalf("offered %v, spread %v", offered, spread)
		}
		for _, id := range want {
			if !r.store.Has(id) {
				t.Fatalf("chunk %s fetched but not stored", id.Short())
			}
		}
		if st := r.leader.Stats(); st.ChunksFromCDN != 6 {
			t.Fatalf("stats: %+v", st)
		}
		// The site holds everything: later checks fetch nothing.
		time.Sleep(3 * refresh)
		synctest.Wait()
		if n := len(r.origin.fetchedIDs()); n != 6 {
			t.Fatalf("fetched %d chunks in all, want 6", n)
		}
	})
}

// A site that takes nothing does not stall the fetch: after SpreadStall
// per chunk the leader fetches on.
func TestLeaderFetchesOnWhenTheSiteTakesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newLeaderRig(t, withTarget(t, stage("gw", "1.0.0", 1)), 3)
		sw := r.swarm(false, nil, nil)
		r.follower.stage(sw)
		r.raft.lead(true, 1)
		start := time.Now()
		r.run(t)
		for len(r.origin.fetchedIDs()) < 3 {
			time.Sleep(time.Second)
		}
		// The second and third chunks each came after a stall of the
		// default 5 s on the one before (the loop looks once a second).
		if d := time.Since(start); d < 10*time.Second || d > 11*time.Second {
			t.Fatalf("fetched 3 chunks in %v of fake time, want 2 stalls of 5 s", d)
		}
	})
}

// A failed fetch is noted and retried after a backoff.
func TestLeaderRetriesAFailedFetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newLeaderRig(t, withTarget(t, stage("gw", "1.0.0", 1)), 5)
		r.origin.fail = 1
		sw := r.swarm(true, nil, nil)
		r.follower.stage(sw)
		r.raft.lead(true, 1)
		r.run(t)
		time.Sleep(100 * time.Millisecond) // well within the first backoff (1 s)
		synctest.Wait()
		if st := r.leader.Stats(); st.Err == nil || len(r.origin.fetchedIDs()) != 0 {
			t.Fatalf("after a failed fetch: error %v, fetched %d", st.Err, len(r.origin.fetchedIDs()))
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if n := len(r.origin.fetchedIDs()); n != 5 {
			t.Fatalf("after the backoff: fetched %d of 5", n)
		}
	})
}

// When the leadership ends, the leader stops in the middle of a fetch,
// turns spread mode off and proposes nothing more; won back in a new
// term, it leads again with that term (LeaderCh shows only the latest
// leadership, so lost-and-won-back arrives as one "leading").
func TestLeaderStepsDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newLeaderRig(t, seeder.NewFSM(), 10)
		r.origin.gate = make(chan struct{})
		r.raft.lead(true, 5)
		r.run(t)
		synctest.Wait()
		if got := r.fsm.State().Target; got == nil || got.Term != 5 {
			t.Fatalf("target: %+v", got)
		}
		sw := r.swarm(true, nil, nil)
		r.follower.stage(sw)
		for range 3 {
			r.origin.gate <- struct{}{}
		}
		synctest.Wait()
		r.raft.lead(false, 6)
		synctest.Wait()
		offered, spread := sw.state()
		if len(offered) != 3 || !slices.Equal(spread, []bool{true, false}) {
			t.Fatalf("after stepping down: offered %v, spread %v; want 3 chunks and spread turned off", offered, spread)
		}
		r.origin.setNewest(content.Release{Name: "gw", Version: "2.0.0", ID: relID("gw", "2.0.0")})
		time.Sleep(3 * refresh)
		synctest.Wait()
		if p := r.raft.proposals(); len(p) != 1 {
			t.Fatalf("a former leader proposed: %v", p)
		}
		// Leading again, in term 8.
		r.raft.lead(true, 8)
		synctest.Wait()
		if got := r.fsm.State().Target; got == nil || got.Version != "2.0.0" || got.Term != 8 {
			t.Fatalf("target after leading again in term 8: %+v", got)
		}
		close(r.origin.gate) // let the fetch finish
		synctest.Wait()
	})
}

// Leadership lost and won back between two looks at LeaderCh arrives as
// one "leading", in a new term: the leader starts over in that term, whose
// decisions the FSM accepts, rather than going on proposing in the old
// one, which the FSM refuses as stale.
func TestLeaderLeadsAgainInANewTerm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newLeaderRig(t, seeder.NewFSM(), 4)
		r.raft.lead(true, 5)
		r.run(t)
		synctest.Wait()
		next := content.Release{Name: "gw", Version: "2.0.0", ID: relID("gw", "2.0.0")}
		r.origin.setNewest(next)
		r.raft.lead(true, 8)
		synctest.Wait()
		if got := r.fsm.State().Target; got == nil || got.Release != next || got.Term != 8 {
			t.Fatalf("target after leading again in term 8: %+v, want %s staged in term 8", got, next)
		}
	})
}
