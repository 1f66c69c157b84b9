package tests

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshcast/meshcast/deploy"
	"github.com/meshcast/meshcast/mesh/api"
	"github.com/meshcast/meshcast/mesh/p2p"
	"github.com/meshcast/meshcast/seeder/cdn/cdntest"
	"github.com/meshcast/meshcast/tests/sitetest"
)

// TestMultiProcessSite runs a site of real meshcast processes: a CDN
// (meshcast cdn serve), a seeder and three nodes (meshcast seeder, meshcast
// node), started from the command line, so that the daemon path is what is
// tested. The release published with meshcast publish must reach every
// node, verified, with each chunk fetched from the CDN once.
func TestMultiProcessSite(t *testing.T) {
	mc := buildMeshcast(t)
	dir := t.TempDir()
	keys, originDir := filepath.Join(dir, "keys"), filepath.Join(dir, "origin")
	mc.ok(t, "keys", "init", "--dir", keys)
	mc.ok(t, "repo", "init", "--repo", originDir, "--keys", keys)
	root := filepath.Join(originDir, "metadata", "1.root.json")
	url := mc.serveCDN(t, originDir)

	gossipKey := filepath.Join(dir, "gossip.key")
	mc.ok(t, "keys", "gossip", "--file", gossipKey)
	type member struct {
		name, role, state, api, gossip string
		id                             peer.ID
		d                              *daemon
	}
	var members []*member
	for i, role := range []string{"seeder", "node", "node", "node"} {
		m := &member{name: fmt.Sprintf("%s-%d", role, i), role: role, state: filepath.Join(dir, fmt.Sprintf("m%d", i))}
		key, err := p2p.LoadIdentity(filepath.Join(m.state, "identity.key"))
		if err != nil {
			t.Fatal(err)
		}
		if m.id, err = peer.IDFromPrivateKey(key); err != nil {
			t.Fatal(err)
		}
		members = append(members, m)
	}
	for _, m := range members {
		// Every port is the system's choice, read back from the daemon's
		// output: ports picked free beforehand can be taken meanwhile.
		args := []string{m.role, "--site", "mp", "--state", m.state, "--listen", "/ip4/127.0.0.1/udp/0/quic-v1", "--api", "127.0.0.1:0",
			"--release", "app", "--platform", "linux/amd64", "--trust", root, "--refresh", "200ms",
			"--gossip-listen", "127.0.0.1:0", "--gossip-key-file", gossipKey, "--profile", "test", "--mdns=false"}
		if m.role == "seeder" {
			args = append(args, "--cdn", url, "--bootstrap")
		} else {
			// Nodes find the site through the seeder's gossip; no peer list.
			args = append(args, "--join", members[0].gossip)
		}
		m.d = mc.startDaemon(t, m.name, args...)
		m.api, m.gossip = m.d.addrs(t)
	}

	tree := t.TempDir()
	writeRandomTree(t, tree, 30, 96<<10)
	var pub struct {
		NewBytes      int64 `json:"new_bytes"`
		IndexNewBytes int64 `json:"index_new_bytes"`
	}
	decodeJSON(t, mc.ok(t, "publish", "--repo", originDir, "--keys", keys, "--name", "app", "--version", "1.0.0",
		"--artifact", "linux/amd64="+tree, "--json"), &pub, "new_bytes")

	statuses := map[string]api.Status{}
	for _, m := range members {
		var st api.Status
		var err error
		if !sitetest.Poll(90*time.Second, 50*time.Millisecond, func() bool {
			st, err = apiStatus(m.api)
			return err == nil && st.Release.String() == "app@1.0.0" && st.Phase >= deploy.PhaseVerified
		}) {
			t.Fatalf("%s did not verify app@1.0.0 in time: %+v %v\nstderr:\n%s", m.name, st, err, tail(m.d.stderr.String()))
		}
		statuses[m.name] = st
	}
	seeder := statuses["seeder-0"]
	if seeder.ChunkBytesFromCDN != pub.NewBytes {
		t.Errorf("the seeder fetched %d chunk bytes from the CDN, want %d", seeder.ChunkBytesFromCDN, pub.NewBytes)
	}
	// The nodes take the index's chunks from their peers over mesh/meta,
	// and the files' chunks in the swarm, whose bytes these are.
	swarmBytes := pub.NewBytes - pub.IndexNewBytes
	for name, st := range statuses {
		if name != "seeder-0" && (st.Exchange.Received != swarmBytes || st.BytesFromCDN != 0) {
			t.Errorf("%s: %d bytes from peers (want %d), %d from the CDN (want 0)", name, st.Exchange.Received, swarmBytes, st.BytesFromCDN)
		}
	}
	// meshcast status and /metrics on the running daemons.
	var viaCLI api.Status
	decodeJSON(t, mc.ok(t, "status", "--api", members[1].api, "--json"), &viaCLI, "id", "phase")
	if viaCLI.ID != members[1].id.String() || viaCLI.Phase < deploy.PhaseVerified {
		t.Errorf("meshcast status says %s is %s", viaCLI.ID, viaCLI.Phase)
	}
	if out := mc.ok(t, "status", "--api", members[1].api); !strings.Contains(out, "staging app@1.0.0: ") {
		t.Errorf("meshcast status printed:\n%s", out)
	}
	resp, err := http.Get("http://" + members[1].api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"meshcast_bytes_from_peers_total " + strconv.FormatFloat(float64(swarmBytes), 'g', -1, 64), "meshcast_release_progress_ratio 1", "go_goroutines"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	// Stop the daemons (SIGTERM, checked by their cleanup) and check every
	// store: all chunks of the release, each verifying.
	mc.stopDaemons(t)
	for _, m := range members {
		n := len(cdntest.CheckStore(t, filepath.Join(m.state, "chunks")))
		if n != statuses[m.name].Total {
			t.Errorf("%s stores %d chunks, the release has %d", m.name, n, statuses[m.name].Total)
		}
	}
}

func apiStatus(addr string) (api.Status, error) {
	var st api.Status
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/v1/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

type daemon struct {
	name   string
	cmd    *exec.Cmd
	exited chan error
	stdout *lockedBuffer
	stderr *lockedBuffer
	killed bool // by kill: exited already, and not cleanly
}

// addrs returns the API and gossip addresses a daemon listens on, from
// the lines it prints once it runs ("api on http://ADDR/v1/status",
// "gossip on ADDR"), failing the test if it does not print them in 30 s.
func (d *daemon) addrs(t *testing.T) (api, gossip string) {
	t.Helper()
	find := func(prefix string) string {
		for line := range strings.Lines(d.stdout.String()) {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), prefix); ok {
				return rest
			}
		}
		return ""
	}
	if !sitetest.Poll(30*time.Second, 20*time.Millisecond, func() bool {
		api, gossip = find("api on http://"), find("gossip on ")
		return api != "" && gossip != ""
	}) {
		t.Fatalf("%s did not say where it listens in 30 s; stdout:\n%s\nstderr:\n%s", d.name, d.stdout.String(), tail(d.stderr.String()))
	}
	return strings.TrimSuffix(api, "/v1/status"), gossip
}

// startDaemon starts a long-running meshcast command; stopDaemons (or the
// test's cleanup) stops it with SIGTERM and requires a clean exit.
func (mc *meshcast) startDaemon(t *testing.T, name string, args ...string) *daemon {
	t.Helper()
	return mc.startIn(t, "", name, args...)
}

// startIn is startDaemon in network namespace netns ("": this one).
func (mc *meshcast) startIn(t *testing.T, netns, name string, args ...string) *daemon {
	t.Helper()
	cmd := exec.Command(mc.path, args...)
	if netns != "" {
		// ip netns exec execs the command: the process is meshcast's.
		cmd = exec.Command("ip", append([]string{"netns", "exec", netns, mc.path}, args...)...)
	}
	d := &daemon{name: name, cmd: cmd, exited: make(chan error, 1), stdout: &lockedBuffer{}, stderr: &lockedBuffer{}}
	cmd.Stdout, cmd.Stderr = d.stdout, d.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exited <- cmd.Wait() }()
	mc.daemons = append(mc.daemons, d)
	t.Cleanup(func() { mc.stop(t, d) })
	return d
}

// kill stops a daemon with SIGKILL, as a crash would, and waits for it.
func (mc *meshcast) kill(t *testing.T, d *daemon) {
	t.Helper()
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill %s: %v", d.name, err)
	}
	<-d.exited
	d.killed = true
}

func (mc *meshcast) stopDaemons(t *testing.T) {
	for _, d := range mc.daemons {
		mc.stop(t, d)
	}
}

func (mc *meshcast) stop(t *testing.T, d *daemon) {
	if d.killed || d.cmd.ProcessState != nil {
		return
	}
	select {
	case err := <-d.exited: // it ended before it was asked to
		t.Errorf("%s exited on its own: %v\nstderr:\n%s", d.name, err, tail(d.stderr.String()))
		return
	default:
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("stop %s: %v", d.name, err)
	}
	select {
	case err := <-d.exited:
		if err != nil {
			t.Errorf("%s did not shut down cleanly on SIGTERM: %v\nstderr:\n%s", d.name, err, tail(d.stderr.String()))
		}
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
		t.Errorf("%s still running 30s after SIGTERM; killed it", d.name)
	}
	if s := d.stderr.String(); strings.Contains(s, "DATA RACE") {
		t.Errorf("%s: data race:\n%s", d.name, s)
	}
}

func tail(s string) string {
	if len(s) > 4000 {
		return "…" + s[len(s)-4000:]
	}
	return s
}

// TestMultiProcessLeaderKill runs the control plane as an operator would:
// three `meshcast seeder` and five `meshcast node` processes, each started
// with a YAML config file (the first seeder bootstraps the site, everyone
// else joins through its gossip). The leader is killed with SIGKILL in the
// middle of fetching a release; another seeder takes over, the release
// completes on every survivor, and `meshcast status` shows the new leader
// and the dead seeder gone.
func TestMultiProcessLeaderKill(t *testing.T) {
	mc := buildMeshcast(t)
	dir := t.TempDir()
	keys, originDir := filepath.Join(dir, "keys"), filepath.Join(dir, "origin")
	mc.ok(t, "keys", "init", "--dir", keys)
	mc.ok(t, "repo", "init", "--repo", originDir, "--keys", keys)
	root := filepath.Join(originDir, "metadata", "1.root.json")
	url := mc.serveCDN(t, originDir, "--rate", "2000000") // 2 MB/s: the fetch takes seconds
	gossipKey := filepath.Join(dir, "gossip.key")
	mc.ok(t, "keys", "gossip", "--file", gossipKey)

	type member struct {
		name, role, api, gossip string
		id                      peer.ID
		d                       *daemon
	}
	var members []*member
	roles := []string{"seeder", "seeder", "seeder", "node", "node", "node", "node", "node"}
	for i, role := range roles {
		m := &member{name: fmt.Sprintf("%s-%d", role, i), role: role}
		state := filepath.Join(dir, m.name)
		key, err := p2p.LoadIdentity(filepath.Join(state, "identity.key"))
		if err != nil {
			t.Fatal(err)
		}
		if m.id, err = peer.IDFromPrivateKey(key); err != nil {
			t.Fatal(err)
		}
		cfg := fmt.Sprintf(`# %s
site: mp
state: %s
listen:
  - /ip4/127.0.0.1/udp/0/quic-v1
api: 127.0.0.1:0
release: app
platform: linux/amd64
trust: %s
refresh: 200ms
gossip-listen: 127.0.0.1:0
gossip-key-file: %s
profile: test
mdns: false
`, m.name, state, root, gossipKey)
		switch {
		case i == 0:
			cfg += "cdn: " + url + "\nbootstrap: true\n"
		case role == "seeder":
			cfg += "cdn: " + url + "\njoin:\n  - " + members[0].gossip + "\n"
		default:
			cfg += "join:\n  - " + members[0].gossip + "\n  - " + members[1].gossip + "\n"
		}
		file := filepath.Join(dir, m.name+".yaml")
		if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		m.d = mc.startDaemon(t, m.name, role, "--config", file)
		m.api, m.gossip = m.d.addrs(t)
		members = append(members, m)
	}
	byID := map[string]*member{}
	for _, m := range members {
		byID[m.id.String()] = m
	}
	// The leader, as the seeders' APIs report it, once the three are voters.
	leaderOf := func(except *member) *member {
		for _, m := range members[:3] {
			if m == except {
				continue
			}
			if st, err := apiStatus(m.api); err == nil && st.SiteView != nil && st.SiteView.Raft == "leader" {
				return m
			}
		}
		return nil
	}
	waitUntil(t, 60*time.Second, "a leader with three seeders in the site", func() bool {
		l := leaderOf(nil)
		if l == nil {
			return false
		}
		st, err := apiStatus(l.api)
		return err == nil && len(st.SiteView.Members) == len(members)
	})

	tree := t.TempDir()
	writeRandomTree(t, tree, 40, 256<<10)
	var pub struct {
		NewBytes int64 `json:"new_bytes"`
	}
	decodeJSON(t, mc.ok(t, "publish", "--repo", originDir, "--keys", keys, "--name", "app", "--version", "1.0.0",
		"--artifact", "linux/amd64="+tree, "--json"), &pub, "new_bytes")

	// SIGKILL the leader once it fetched a quarter of the release.
	var old *member
	var before int64 // what the old leader had fetched, a moment before the kill
	waitUntil(t, 90*time.Second, "the leader to fetch a quarter of the release", func() bool {
		old = leaderOf(nil)
		if old == nil {
			return false
		}
		st, err := apiStatus(old.api)
		before = st.ChunkBytesFromCDN
		return err == nil && before >= pub.NewBytes/4
	})
	killed := time.Now()
	mc.kill(t, old.d)
	var leader *member
	waitUntil(t, 30*time.Second, "a new leader", func() bool { leader = leaderOf(old); return leader != nil })
	t.Logf("%s killed with SIGKILL; %s leads %v later", old.name, leader.name, time.Since(killed).Round(time.Millisecond))

	waitUntil(t, 2*time.Minute, "every survivor to verify app@1.0.0", func() bool {
		for _, m := range members {
			if m == old {
				continue
			}
			st, err := apiStatus(m.api)
			if err != nil || st.Release.String() != "app@1.0.0" || st.Phase < deploy.PhaseVerified {
				return false
			}
		}
		return true
	})
	var fetched int64
	for _, m := range members[:3] {
		if m != old {
			st, _ := apiStatus(m.api)
			fetched += st.ChunkBytesFromCDN
		}
	}
	t.Logf("the old leader fetched %d bytes before the kill, the survivors %d: %.3f of the %d-byte release",
		before, fetched, float64(before+fetched)/float64(pub.NewBytes), pub.NewBytes)
	// What the old leader brought into the site is not fetched again: only
	// what it alone held when it died (at most the spread window of 8
	// chunks) and what it fetched after the last look may be.
	if slack := int64(1 << 20); fetched > pub.NewBytes-before+slack {
		t.Errorf("the survivors fetched %d bytes; the site lacked at most %d (+%d slack)", fetched, pub.NewBytes-before, slack)
	}
	// meshcast status on a node: the new leader, and the dead seeder gone
	// once gossip declared it failed.
	node := members[len(members)-1]
	// The leader may have changed again meanwhile (a loaded machine can
	// time out a heartbeat): the status must name the current one.
	var why string
	if !sitetest.Poll(30*time.Second, 100*time.Millisecond, func() bool {
		var st api.Status
		why = statusShows(mc.ok(t, "status", "--api", node.api, "--json"), &st, len(members)-1, old.id.String())
		if why == "" {
			if leader = byID[st.SiteView.Leader]; leader == nil || leaderOf(old) != leader {
				why = fmt.Sprintf("it names %s as the leader; the seeders say %v", st.SiteView.Leader, leaderOf(old))
			}
		}
		return why == ""
	}) {
		t.Fatalf("after 30s, meshcast status does not show the site recovered: %s", why)
	}
	table := mc.ok(t, "status", "--api", node.api)
	t.Logf("meshcast status after the kill:\n%s", table)
	if id := leader.id.String(); !strings.Contains(table, "leader "+id[len(id)-12:]) {
		t.Errorf("meshcast status does not name the new leader %s:\n%s", leader.id, table)
	}
}

// statusShows decodes `meshcast status --json` into st and says what
// keeps it from showing a recovered site: members alive (dead not among
// them), everyone verified, a leader. "" means nothing.
func statusShows(out string, st *api.Status, members int, dead string) string {
	if err := json.Unmarshal([]byte(out), st); err != nil || st.SiteView == nil {
		return fmt.Sprintf("no site view (%v)", err)
	}
	if len(st.SiteView.Members) != members {
		return fmt.Sprintf("%d members, want %d", len(st.SiteView.Members), members)
	}
	for _, ms := range st.SiteView.Members {
		switch {
		case ms.ID == dead:
			return "the dead seeder is still listed"
		case ms.Phase < deploy.PhaseVerified:
			return fmt.Sprintf("%s is %s", ms.ID, ms.Phase) // gossip is still carrying the last phase changes
		}
	}
	if st.SiteView.Leader == "" {
		return "no leader"
	}
	return ""
}

// waitUntil polls cond until it holds, failing the test after d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !sitetest.Poll(d, 50*time.Millisecond, cond) {
		t.Fatalf("waited %s for %s", d, what)
	}
}
