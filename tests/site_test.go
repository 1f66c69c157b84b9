package tests

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshcast/meshcast/deploy"
	"github.com/meshcast/meshcast/gossip"
	"github.com/meshcast/meshcast/tests/sitetest"
)

// writeRandomTree writes a small tree of incompressible files.
func writeRandomTree(t testing.TB, dir string, files, size int) {
	t.Helper()
	for i := 0; i < files; i++ {
		p := filepath.Join(dir, "f", string(rune('a'+i%26)), filepath.Base(t.Name())+"-"+string(rune('a'+i/26)))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, size)
		rand.Read(b)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSiteDistributes(t *testing.T) {
	site := sitetest.New(t, sitetest.Seeders(1), sitetest.Nodes(4))
	tree := t.TempDir()
	writeRandomTree(t, tree, 20, 200<<10)
	res := site.Publish("1.0.0", tree)
	site.WaitVerified("1.0.0", 60*time.Second)
	site.Check("1.0.0")
	sent := site.CDN.BytesSent()
	t.Logf("release %d new bytes; CDN sent %d (amplification %.3f)", res.NewBytes, sent, float64(sent)/float64(res.NewBytes))
	for _, m := range site.Members() {
		st := m.Status()
		t.Logf("%s: from peers %d, served %d, dup %d, cdn %d", m.Name, st.Exchange.Received, st.Exchange.Served, st.Exchange.Duplicate, st.BytesFromCDN)
	}
	if float64(sent) > 1.02*float64(res.NewBytes)+64<<10 {
		t.Errorf("CDN sent %d bytes for a release of %d", sent, res.NewBytes)
	}
}

// A peer that serves corrupted chunks is detected and banned, the site
// completes with the right bytes, and nobody fetches from the CDN because
// of it.
func TestSiteBansCorruptPeer(t *testing.T) {
	site := sitetest.New(t, sitetest.Seeders(1), sitetest.Nodes(4))
	v1 := t.TempDir()
	writeRandomTree(t, v1, 10, 100<<10)
	r1 := site.Publish("1.0.0", v1)
	site.WaitVerified("1.0.0", time.Minute)
	// The rogue joins the swarm of 2.0.0 claiming to hold everything
	// before the seeder has any of it.
	v2 := t.TempDir()
	writeRandomTree(t, v2, 30, 100<<10)
	res := site.Publish("2.0.0", v2)
	rogue := site.AddRogue("2.0.0", res.ReleaseID)
	site.WaitVerified("2.0.0", time.Minute)
	site.Check("2.0.0")
	var bad, bans int64
	for _, m := range site.Members() {
		st := m.Status()
		bad += st.Exchange.Bad
		bans += st.Exchange.Bans
	}
	if rogue.Served() == 0 || bad == 0 {
		t.Fatalf("the rogue served %d bytes and %d did not verify: the scenario did not exercise anything", rogue.Served(), bad)
	}
	if bans == 0 {
		t.Errorf("nobody banned the rogue (%d bad bytes received)", bad)
	}
	// Each chunk came from the CDN once, and only to the seeder.
	seeder := site.Seeders()[0].Status()
	if want := r1.NewBytes + res.NewBytes; seeder.ChunkBytesFromCDN != want {
		t.Errorf("the seeder fetched %d chunk bytes from the CDN, want %d (each chunk once)", seeder.ChunkBytesFromCDN, want)
	}
	for _, m := range site.Nodes() {
		if st := m.Status(); st.BytesFromCDN != 0 {
			t.Errorf("%s read %d bytes from the CDN", m.Name, st.BytesFromCDN)
		}
	}
	t.Logf("rogue served %d bytes; %d bad bytes received; %d bans", rogue.Served(), bad, bans)
}

// A node killed mid-transfer resumes after a restart without fetching
// again what it had verified.
func TestSiteNodeResumesAfterKill(t *testing.T) {
	// A slow LAN keeps the transfer going long enough to kill a node in
	// the middle of it.
	site := sitetest.New(t, sitetest.Seeders(1), sitetest.Nodes(3), sitetest.LAN(2<<20))
	tree := t.TempDir()
	writeRandomTree(t, tree, 40, 128<<10)
	res := site.Publish("1.0.0", tree)
	victim := site.Nodes()[0]
	if !sitetest.Poll(time.Minute, 10*time.Millisecond, func() bool {
		st := victim.Status()
		return st.Total > 0 && st.Have >= st.Total/3
	}) {
		t.Fatalf("the victim never got a third of the release: %+v", victim.Status())
	}
	site.Crash(victim) // at once: a goodbye takes long enough for the transfer to end
	held := sitetest.StoredBytes(t, victim.State)
	if held == 0 || held >= res.NewBytes {
		t.Fatalf("killed with %d of %d bytes stored: not mid-transfer", held, res.NewBytes)
	}
	site.Restart(victim)
	site.WaitVerified("1.0.0", time.Minute)
	site.Check("1.0.0")
	got := victim.Status().Exchange
	// After the restart it receives only what it lacked; a chunk that was
	// in flight when it was killed may come twice.
	if want := res.NewBytes - held; got.Received > want+256<<10 || got.Received < want {
		t.Errorf("after the restart the node received %d bytes; it lacked %d", got.Received, want)
	}
	t.Logf("killed holding %d of %d bytes; received %d after the restart", held, res.NewBytes, got.Received)
}

// A node that joins after the site has the release gets all of it from
// its peers and nothing from the CDN.
func TestSiteLateJoinerUsesPeers(t *testing.T) {
	site := sitetest.New(t, sitetest.Seeders(1), sitetest.Nodes(3))
	tree := t.TempDir()
	writeRandomTree(t, tree, 20, 128<<10)
	res := site.Publish("1.0.0", tree)
	site.WaitVerified("1.0.0", time.Minute)
	before := site.Seeders()[0].Status().ChunkBytesFromCDN
	late := site.Add(gossip.RoleNode)
	site.WaitVerified("1.0.0", time.Minute)
	site.Check("1.0.0")
	st := late.Status()
	// The index's chunks come from the peers too, over mesh/meta, before
	// the node joins the swarm of the files' chunks.
	if want := res.NewBytes - res.IndexNewBytes; st.Exchange.Received != want {
		t.Errorf("the late node received %d bytes from peers in the swarm, want %d", st.Exchange.Received, want)
	}
	if after := site.Seeders()[0].Status().ChunkBytesFromCDN; after != before {
		t.Errorf("the seeder fetched %d more chunk bytes from the CDN for the late node", after-before)
	}
	if st.BytesFromCDN != 0 {
		t.Errorf("the late node read %d bytes from the CDN", st.BytesFromCDN)
	}
}

// The leader dies in the middle of fetching a release: another seeder is
// elected, resumes the fetch without fetching again what the site holds,
// and the release completes.
//
// What is fetched twice is bounded by the design: the chunks the dead
// leader alone held (at most the spread window, 8 chunks for a release
// this small) and those its range requests were reading (4 requests in
// flight). The timing figures (a new leader within 2 s with the LAN
// timeouts; the origin sends at most 0.15 × the release more than the
// chunks fetched, for the bytes in flight to the dead leader's four
// connections: 0.045-0.082 measured) are asserted without the race detector only: under it, a 2-core machine running 13 members is so starved that
// Raft's 500 ms heartbeats time out now and then, and every spurious
// change of leader costs a cancelled fetch. The chunks fetched, which
// only a fault in the design would inflate, are checked always.
func TestSiteLeaderFailover(t *testing.T) {
	// Metadata is polled every second, as a site would every 30 s.
	site := sitetest.New(t, sitetest.Seeders(3), sitetest.Nodes(10), sitetest.WAN(4<<20), sitetest.LANRaft(), sitetest.Refresh(time.Second))
	site.WaitVoters(3, 30*time.Second)
	tree := t.TempDir()
	writeRandomTree(t, tree, 40, 256<<10)
	res := site.Publish("1.0.0", tree)
	site.WaitLeader(nil, 10*time.Second)
	// Kill the leader once a third of the release came in.
	if !sitetest.Poll(2*time.Minute, 10*time.Millisecond, func() bool { return site.CDN.BytesSent() >= res.NewBytes/3 }) {
		t.Fatalf("the site fetched %d of %d bytes in two minutes", site.CDN.BytesSent(), res.NewBytes)
	}
	old := site.WaitLeader(nil, 10*time.Second)
	fetchedByOld := old.Status().ChunkBytesFromCDN
	killed := time.Now()
	site.Crash(old)
	leader := site.WaitLeader(old, 30*time.Second)
	elected := time.Since(killed)
	site.WaitVerified("1.0.0", 2*time.Minute)
	site.Check("1.0.0")
	sent := site.CDN.BytesSent()
	amp := float64(sent) / float64(res.NewBytes)
	var chunkBytes int64
	for _, m := range site.Seeders() {
		st := m.Status()
		chunkBytes += st.ChunkBytesFromCDN
		t.Logf("%s: %d chunk bytes from the CDN, %d wire bytes; last error %q", m.Name, st.ChunkBytesFromCDN, st.BytesFromCDN, st.Err)
	}
	chunkRatio := float64(chunkBytes) / float64(res.NewBytes)
	t.Logf("old leader %s fetched %d of %d bytes; new leader %s elected %.2fs after the kill; chunks fetched %.3f of the release; CDN amplification %.3f",
		old.Name, fetchedByOld, res.NewBytes, leader.Name, elected.Seconds(), chunkRatio, amp)
	// What the dead leader alone held (at most the spread window) and the
	// chunks in flight to it are fetched again; nothing else is.
	const window, inFlight, avgChunk = 8, 4, 64 << 10
	if limit := 1 + float64((window+inFlight)*avgChunk)/float64(res.NewBytes); chunkRatio > limit {
		t.Errorf("the seeders fetched %.3f of the release from the CDN, more than %.3f", chunkRatio, limit)
	}
	if raceEnabled() {
		return
	}
	if elected > 2*time.Second {
		t.Errorf("a new leader took %s", elected)
	}
	if amp > chunkRatio+0.15 {
		t.Errorf("CDN amplification %.3f over the run, for %.3f of the release in chunks", amp, chunkRatio)
	}
}

// A partition isolates the leader: the majority elects another, which
// stages and brings in the next release; the old leader steps down and
// does nothing meanwhile (it fetches nothing, decides nothing); after the
// partition heals the site has one leader and one target, and every member
// holds it.
func TestSitePartitionIsolatesLeader(t *testing.T) {
	site := sitetest.New(t, sitetest.Seeders(3), sitetest.Nodes(4))
	site.WaitVoters(3, 30*time.Second)
	tree := t.TempDir()
	writeRandomTree(t, tree, 8, 128<<10)
	site.Publish("1.0.0", tree)
	site.WaitVerified("1.0.0", time.Minute)
	old := site.WaitLeader(nil, 10*time.Second)
	want1 := sitetest.Release + "@1.0.0"

	site.Partition(old)
	leader := site.WaitLeader(old, 30*time.Second)
	waitUntil(t, 10*time.Second, "the isolated leader to step down", func() bool {
		return old.Status().SiteView.Raft != "leader"
	})
	fetched := old.Status().ChunkBytesFromCDN
	// The next release comes out while the site is split.
	writeRandomTree(t, tree, 8, 128<<10)
	site.Publish("2.0.0", tree)
	want2 := sitetest.Release + "@2.0.0"
	waitUntil(t, time.Minute, "the majority to verify 2.0.0", func() bool {
		for _, m := range site.Members() {
			if st := m.Status(); m != old && (st.Release.String() != want2 || st.Phase < deploy.PhaseVerified) {
				return false
			}
		}
		return true
	})
	st := old.Status()
	if st.SiteView.Raft == "leader" || st.ChunkBytesFromCDN != fetched || st.SiteView.Target.String() != want1 || st.Release.String() != want1 {
		t.Fatalf("the isolated old leader acted: raft %s, fetched %d more bytes, target %q, staged %q",
			st.SiteView.Raft, st.ChunkBytesFromCDN-fetched, st.SiteView.Target, st.Release)
	}
	t.Logf("partitioned: %s took over from %s; the old leader stayed a %s with target %s", leader.Name, old.Name, st.SiteView.Raft, st.SiteView.Target)

	healed := time.Now()
	site.Heal()
	site.WaitVerified("2.0.0", time.Minute)
	waitUntil(t, 30*time.Second, "one leader and one target", func() bool {
		leaders := 0
		for _, m := range site.Members() {
			st := m.Status()
			if st.SiteView.Target.String() != want2 {
				return false
			}
			if m.Role == gossip.RoleSeeder && st.SiteView.Raft == "leader" {
				leaders++
			}
		}
		return leaders == 1
	})
	site.Check("2.0.0")
	t.Logf("after healing, the site converged on one leader (%s) and %s in %v", site.Leader().Name, want2, time.Since(healed).Round(time.Millisecond))
}
