package api_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/deploy"
	"github.com/meshcast/meshcast/gossip"
	"github.com/meshcast/meshcast/mesh/api"
	"github.com/meshcast/meshcast/mesh/exchange"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeNode is an api.Node with a fixed status that records removals.
type fakeNode struct {
	st api.Status

	mu      sync.Mutex
	removed []string
	rollout []string // op: reason
	fail    error
}

func (n *fakeNode) Rollout(_ context.Context, op deploy.CommandOp, reason string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.fail != nil {
		return n.fail
	}
	n.rollout = append(n.rollout, string(op)+": "+reason)
	return nil
}

func (n *fakeNode) Status() api.Status { return n.st }

func (n *fakeNode) RemoveSeeder(_ context.Context, id string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.fail != nil {
		return n.fail
	}
	n.removed = append(n.removed, id)
	return nil
}

func sampleStatus() api.Status {
	rel := content.Release{Name: "gw", Version: "1.2.0", ID: content.ReleaseID{7}}
	return api.Status{
		ID: "12D3KooWnode", Site: "depot", Role: gossip.RoleSeeder, Release: rel, Phase: deploy.PhaseVerified,
		Have: 10, Total: 10, Peers: 4, BytesFromCDN: 1234, ChunksFromCDN: 3, ChunkBytesFromCDN: 1000,
		Exchange: exchange.Stats{Received: 5000, ReceivedCount: 7, Served: 6000},
		SiteView: &api.SiteStatus{Leader: "12D3KooWnode", Term: 3, Target: rel.WithoutID(), Raft: "leader", Members: []api.MemberStatus{
			{ID: "12D3KooWnode", Role: gossip.RoleSeeder, Platform: "linux/amd64", Staged: rel.WithoutID(), Phase: deploy.PhaseVerified, Progress: 1, Health: "unknown", Leader: true, State: "alive"},
		}},
	}
}

// serve runs the Handler of n on a listener until the test ends and
// returns a Client of it.
func serve(t *testing.T, ln net.Listener, addr string, n api.Node) *api.Client {
	t.Helper()
	srv := &http.Server{Handler: api.Handler(n)}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return api.NewClient(addr)
}

func serveTCP(t *testing.T, n api.Node) (*api.Client, string) {
	t.Helper()
	ln, err := api.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, ln, ln.Addr().String(), n), ln.Addr().String()
}

// The status a client reads is the one the node reported, over TCP and a
// unix socket (whose stale file from an earlier run Listen replaces).
func TestStatusRoundTrip(t *testing.T) {
	n := &fakeNode{st: sampleStatus()}
	c, _ := serveTCP(t, n)
	got, err := c.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got.Release != n.st.Release || got.Phase != deploy.PhaseVerified || got.Role != gossip.RoleSeeder ||
		got.SiteView == nil || got.SiteView.Target != n.st.SiteView.Target || len(got.SiteView.Members) != 1 ||
		got.SiteView.Members[0].Staged != n.st.SiteView.Members[0].Staged || got.Exchange != n.st.Exchange {
		t.Fatalf("status read back: %+v\nwant %+v", got, n.st)
	}

	sock := filepath.Join(t.TempDir(), "api.sock")
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close() // the socket file stays, as after a crash
	ln, err := api.Listen("unix:" + sock)
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	uc := serve(t, ln, "unix:"+sock, n)
	if got, err := uc.Status(t.Context()); err != nil || got.ID != n.st.ID {
		t.Fatalf("status over the unix socket: %+v, %v", got, err)
	}
}

// Listen refuses to remove a file that is not a socket.
func TestListenKeepsOtherFiles(t *testing.T) {
	p := filepath.Join(t.TempDir(), "not-a-socket")
	if err := os.WriteFile(p, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if ln, err := api.Listen("unix:" + p); err == nil {
		ln.Close()
		t.Fatal("Listen took the place of a regular file")
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "data" {
		t.Fatalf("the file is gone or changed: %q, %v", b, err)
	}
}

// A removal reaches the node; a refusal comes back as the node's reason;
// a request without an id is refused before the node is asked.
func TestRemoveSeeder(t *testing.T) {
	n := &fakeNode{st: sampleStatus()}
	c, addr := serveTCP(t, n)
	answer, err := c.RemoveSeeder(t.Context(), "12D3KooWdead")
	if err != nil || !strings.Contains(answer, "removed 12D3KooWdead") {
		t.Fatalf("remove: %q, %v", answer, err)
	}
	n.fail = errors.New("the seeder is alive in the site's gossip")
	if _, err := c.RemoveSeeder(t.Context(), "12D3KooWalive"); err == nil || !strings.Contains(err.Error(), "alive in the site's gossip") ||
		!strings.Contains(err.Error(), "409") {
		t.Fatalf("a refused removal: %v; want the node's reason and 409", err)
	}
	resp, err := http.Post("http://"+addr+"/v1/seeders/remove", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("remove without an id: %s", resp.Status)
	}
	if len(n.removed) != 1 || n.removed[0] != "12D3KooWdead" {
		t.Fatalf("the node was asked to remove %v", n.removed)
	}
}

// /metrics carries the node's figures from its status.
func TestMetrics(t *testing.T) {
	_, addr := serveTCP(t, &fakeNode{st: sampleStatus()})
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"meshcast_bytes_from_peers_total 5000",
		"meshcast_chunk_bytes_from_cdn_total 1000",
		`meshcast_phase{phase="verified"} 1`,
		`meshcast_phase{phase="fetching"} 0`,
		`meshcast_raft_state{state="leader"} 1`,
		"meshcast_raft_term 3",
		"meshcast_site_members 1",
		"go_goroutines",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// /metrics carries the running release, the activation outcomes and the
// site's rollout.
func TestRolloutMetrics(t *testing.T) {
	st := sampleStatus()
	st.Running = content.Release{Name: "gw", Version: "1.1.0"}
	st.Phase = deploy.PhaseActive
	st.Activations = map[string]int64{"activated": 2, "rolled-back": 1}
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	st.SiteView.RolloutState = deploy.RolloutDone
	st.SiteView.Rollout = &deploy.Rollout{Release: st.Release, State: deploy.RolloutDone, Wave: 3,
		Waves: make([]deploy.Wave, 3), StartedAt: t0, EndedAt: t0.Add(1500 * time.Millisecond)}
	_, addr := serveTCP(t, &fakeNode{st: st})
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`meshcast_release_info{name="gw",state="running",version="1.1.0"} 1`,
		`meshcast_release_info{name="gw",state="active",version="1.2.0"} 1`,
		`meshcast_activations_total{outcome="activated"} 2`,
		`meshcast_activations_total{outcome="rolled-back"} 1`,
		`meshcast_rollout_state{state="done"} 1`,
		`meshcast_rollout_state{state="wave-open"} 0`,
		"meshcast_rollout_wave 3",
		"meshcast_rollout_duration_seconds 1.5",
		`meshcast_phase{phase="active"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// A client's errors name the address it asked.
func TestClientNamesTheAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nobody listens there now
	if _, err := api.NewClient(addr).Status(t.Context()); err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("status from nobody: %v; want an error naming %s", err, addr)
	}
}

// A rollout command reaches the node with its reason; an unknown one is
// refused before the node is asked; a refusal comes back with the reason.
func TestRolloutCommand(t *testing.T) {
	n := &fakeNode{st: sampleStatus()}
	c, _ := serveTCP(t, n)
	if answer, err := c.Rollout(t.Context(), "pause", "change freeze"); err != nil || !strings.Contains(answer, "rollout pause: done") {
		t.Fatalf("pause: %q, %v", answer, err)
	}
	if _, err := c.Rollout(t.Context(), "explode", ""); err == nil || !strings.Contains(err.Error(), `unknown rollout command "explode"`) {
		t.Fatalf("an unknown command: %v", err)
	}
	n.fail = errors.New("rollout transition not allowed: resume in state wave-open")
	if _, err := c.Rollout(t.Context(), "resume", ""); err == nil || !strings.Contains(err.Error(), "resume in state wave-open") {
		t.Fatalf("a refused command: %v", err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.rollout) != 1 || n.rollout[0] != "pause: change freeze" {
		t.Fatalf("the node received %q", n.rollout)
	}
}
