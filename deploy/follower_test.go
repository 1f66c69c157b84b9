package deploy_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/content/origin"
	"github.com/meshcast/meshcast/content/tuf"
	"github.com/meshcast/meshcast/content/tuf/tuftest"
	"github.com/meshcast/meshcast/deploy"
	"github.com/meshcast/meshcast/seeder/cdn/cdntest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const platform = "linux/amd64"

// eventWait bounds every wait for a follower's change; it only expires
// when something is broken.
const eventWait = 10 * time.Second

// fakeSite is the site's target, as the test sets it.
type fakeSite struct {
	mu     sync.Mutex
	target content.Release
}

func (s *fakeSite) Target() (content.Release, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.target, !s.target.IsZero()
}

func (s *fakeSite) set(r content.Release) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.target = r
}

// fakeSwarms records joins and leaves; the test completes a swarm by
// closing its done channel.
type fakeSwarms struct {
	mu     sync.Mutex
	joined []*fakeSwarm
	left   []*fakeSwarm
	events []string // "join 1.0.0", "leave 1.0.0", in order
}

type fakeSwarm struct {
	rel    content.Release
	chunks []content.ChunkRef
	done   chan struct{}
}

func (s *fakeSwarm) Done() <-chan struct{}       { return s.done }
func (s *fakeSwarm) Progress() (have, total int) { return 0, len(s.chunks) }

func (s *fakeSwarms) Join(_ context.Context, rel content.Release, chunks []content.ChunkRef) (deploy.Swarm, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sw := &fakeSwarm{rel: rel, chunks: chunks, done: make(chan struct{})}
	s.joined = append(s.joined, sw)
	s.events = append(s.events, "join "+rel.Version)
	return sw, nil
}

func (s *fakeSwarms) Leave(sw deploy.Swarm) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := sw.(*fakeSwarm)
	s.left = append(s.left, f)
	s.events = append(s.events, "leave "+f.rel.Version)
}

func (s *fakeSwarms) history() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

// followerRig is a follower of a site whose origin is a real signed
// origin in a temp dir, read through its peers (and its CDN, on a seeder).
type followerRig struct {
	o        *cdntest.Origin
	tree     string
	site     *fakeSite
	swarms   *fakeSwarms
	peers    *tuftest.DiskSource
	cdn      *tuftest.DiskSource
	leading  bool
	follower *deploy.Follower
	mu       sync.Mutex
}

func newFollowerRig(t *testing.T, seeder bool) *followerRig {
	t.Helper()
	r := &followerRig{o: cdntest.NewOrigin(t, cdntest.Options{}), tree: t.TempDir(), site: &fakeSite{}, swarms: &fakeSwarms{}}
	cdntest.WriteTree(t, r.tree)
	r.peers, r.cdn = tuftest.NewDiskSource(r.o.Dir), tuftest.NewDiskSource(r.o.Dir)
	store := content.NewMemStore()
	sources := deploy.Sources{Peers: r.peers, PeerChunks: origin.PackFetch(filepath.Join(r.o.Dir, "packs"), store)}
	if seeder {
		sources.Origin, sources.OriginName = r.cdn, "the test CDN"
		sources.OriginChunks = sources.PeerChunks
		sources.Leading = func() bool { r.mu.Lock(); defer r.mu.Unlock(); return r.leading }
	}
	var err error
	r.follower, err = deploy.NewFollower(deploy.FollowerConfig{Platform: platform, TUFDir: filepath.Join(t.TempDir(), "tuf"),
		TrustedRoot: r.o.RootJSON, Refresh: time.Hour, Store: store}, r.site, sources, r.swarms, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.follower.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return r
}

// publish publishes the rig's tree, with a VERSION file, as version, and
// returns the release and the number of chunks of its artifact for the
// rig's platform.
func (r *followerRig) publish(t *testing.T, version string, platforms ...string) (content.Release, int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(r.tree, "VERSION"), []byte(version), 0o644); err != nil {
		t.Fatal(err)
	}
	arts := map[string]string{}
	for _, p := range platforms {
		arts[p] = r.tree
	}
	res := r.o.Publish("gw", version, arts)
	chunks := 0
	if a := r.o.Manifest(res).Platforms[platform]; a != nil {
		chunks = len(a.Chunks())
	}
	return content.Release{Name: "gw", Version: version, ID: res.ReleaseID}, chunks
}

// target sets the site's target, wakes the follower and waits until its
// state says cond.
func (r *followerRig) target(t *testing.T, rel content.Release, cond func(deploy.FollowerState) bool) deploy.FollowerState {
	t.Helper()
	_, changed := r.follower.State()
	r.site.set(rel)
	r.follower.Wake()
	return waitState(t, r.follower, changed, cond)
}

// waitState waits on the follower's changes, from changed on, until its
// state says cond.
func waitState(t *testing.T, f *deploy.Follower, changed <-chan struct{}, cond func(deploy.FollowerState) bool) deploy.FollowerState {
	t.Helper()
	deadline := time.After(eventWait)
	for {
		select {
		case <-changed:
		case <-deadline:
			st, _ := f.State()
			t.Fatalf("the follower's state did not come: %+v", st)
		}
		var st deploy.FollowerState
		st, changed = f.State()
		if cond(st) {
			return st
		}
	}
}

// A node stages its site's target, resolved in the metadata its peers
// serve (with the id the signed metadata gives it), joins the swarm of its
// platform's artifact, and is verified when the swarm is done. A newer
// target is joined before the old swarm is left.
func TestFollowerStagesTheSiteTarget(t *testing.T) {
	r := newFollowerRig(t, false)
	v1, want := r.publish(t, "1.0.0", platform, "linux/arm64")
	st := r.target(t, v1.WithoutID(), func(st deploy.FollowerState) bool { return st.Phase == deploy.PhaseFetching })
	if st.Release != v1 || st.Err != nil {
		t.Fatalf("staged %s (error %v), want %s with its signed id", st.Release, st.Err, v1)
	}
	if len(r.swarms.joined) != 1 || len(r.swarms.joined[0].chunks) != want {
		t.Fatalf("joined %d swarms; want one of the %d chunks of %s's %s artifact", len(r.swarms.joined), want, v1, platform)
	}
	_, changed := r.follower.State()
	close(r.swarms.joined[0].done)
	st = waitState(t, r.follower, changed, func(st deploy.FollowerState) bool { return st.Phase == deploy.PhaseVerified })
	if st.DoneAt.IsZero() {
		t.Fatal("verified without a time")
	}

	v2, _ := r.publish(t, "1.1.0", platform)
	st = r.target(t, v2.WithoutID(), func(st deploy.FollowerState) bool { return st.Release.Version == "1.1.0" })
	if st.Phase != deploy.PhaseFetching || st.Release != v2 {
		t.Fatalf("after the site moved to 1.1.0: %+v", st)
	}
	if got := r.swarms.history(); !slices.Equal(got, []string{"join 1.0.0", "join 1.1.0", "leave 1.0.0"}) {
		t.Fatalf("swarm history %v; want the new one joined before the old one is left", got)
	}
	if len(r.peers.Take()) == 0 {
		t.Fatal("the node asked its peers for nothing")
	}
}

// A target the signed metadata does not back is refused with a reason,
// and nothing is joined: an id other than the signed one, a release with
// no artifact for the node's platform.
func TestFollowerRefusesTargetsTheMetadataDoesNotBack(t *testing.T) {
	r := newFollowerRig(t, false)
	v1, _ := r.publish(t, "1.0.0", platform)
	forged := v1
	forged.ID = content.ReleaseID{0xee}
	st := r.target(t, forged, func(st deploy.FollowerState) bool { return st.Err != nil })
	if !errors.Is(st.Err, tuf.ErrNoRelease) || st.Swarm != nil {
		t.Fatalf("a target with a forged id: %+v; want ErrNoRelease and no swarm", st)
	}
	arm, _ := r.publish(t, "2.0.0", "linux/arm64")
	st = r.target(t, arm.WithoutID(), func(st deploy.FollowerState) bool {
		return st.Err != nil && strings.Contains(st.Err.Error(), "no artifact for "+platform)
	})
	if len(r.swarms.joined) != 0 {
		t.Fatalf("joined %d swarms for refused targets", len(r.swarms.joined))
	}
}

// A seeder refreshes from the CDN while it leads the site, and from its
// peers otherwise.
func TestFollowerAsksTheOriginOnlyWhileLeading(t *testing.T) {
	r := newFollowerRig(t, true)
	v1, _ := r.publish(t, "1.0.0", platform)
	r.target(t, v1, func(st deploy.FollowerState) bool { return st.Release == v1 })
	if cdn, peers := r.cdn.Take(), r.peers.Take(); len(cdn) != 0 || len(peers) == 0 {
		t.Fatalf("a following seeder asked the CDN for %v and its peers for %v", cdn, peers)
	}
	r.mu.Lock()
	r.leading = true
	r.mu.Unlock()
	v2, _ := r.publish(t, "1.1.0", platform)
	r.target(t, v2, func(st deploy.FollowerState) bool { return st.Release == v2 })
	if cdn, peers := r.cdn.Take(), r.peers.Take(); len(cdn) == 0 || len(peers) != 0 {
		t.Fatalf("the leading seeder asked the CDN for %v and its peers for %v", cdn, peers)
	}
}

// When Run ends, the follower leaves the swarm it staged.
func TestFollowerLeavesOnStop(t *testing.T) {
	r := newFollowerRig(t, false)
	v1, _ := r.publish(t, "1.0.0", platform)
	r.target(t, v1, func(st deploy.FollowerState) bool { return st.Release == v1 })
	// A second follower over the same fakes, stopped at once.
	store := content.NewMemStore()
	f, err := deploy.NewFollower(deploy.FollowerConfig{Platform: platform, TUFDir: filepath.Join(t.TempDir(), "tuf"), TrustedRoot: r.o.RootJSON, Store: store},
		r.site, deploy.Sources{Peers: r.peers, PeerChunks: origin.PackFetch(filepath.Join(r.o.Dir, "packs"), store)}, r.swarms, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	_, changed := f.State()
	f.Wake()
	waitState(t, f, changed, func(st deploy.FollowerState) bool { return st.Swarm != nil })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if h := r.swarms.history(); h[len(h)-1] != "leave 1.0.0" {
		t.Fatalf("swarm history after the stop: %v", h)
	}
}
