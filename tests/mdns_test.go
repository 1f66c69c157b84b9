package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshcast/meshcast/mesh/api"
	"github.com/meshcast/meshcast/tests/sitetest"
)

// TestMDNSFormsSite starts a seeder and two nodes with no --join, in a
// network namespace of the test's own (its loopback made multicast, so
// mDNS stays inside it): they find each other by mDNS and form one site
// with one leader.
func TestMDNSFormsSite(t *testing.T) {
	ns := newNetns(t)
	mc := buildMeshcast(t)
	dir := t.TempDir()
	keys, originDir := filepath.Join(dir, "keys"), filepath.Join(dir, "origin")
	mc.ok(t, "keys", "init", "--dir", keys)
	mc.ok(t, "repo", "init", "--repo", originDir, "--keys", keys)
	root := filepath.Join(originDir, "metadata", "1.root.json")
	gossipKey := filepath.Join(dir, "gossip.key")
	mc.ok(t, "keys", "gossip", "--file", gossipKey)

	roles := []string{"seeder", "node", "node"}
	apis := make([]string, len(roles))
	for i, role := range roles {
		name := fmt.Sprintf("%s-%d", role, i)
		// Fixed ports: the namespace is the test's alone.
		apis[i] = fmt.Sprintf("127.0.0.1:%d", 7070+i)
		args := []string{role, "--site", "lan", "--state", filepath.Join(dir, name),
			"--listen", fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", 4433+i), "--api", apis[i],
			"--release", "app", "--platform", "linux/amd64", "--trust", root,
			"--gossip-listen", fmt.Sprintf("127.0.0.1:%d", 7946+i), "--gossip-key-file", gossipKey, "--profile", "test"}
		if role == "seeder" {
			// No CDN in the namespace: membership is what is tested.
			args = append(args, "--cdn", "http://127.0.0.1:1", "--bootstrap")
		}
		mc.startIn(t, ns, name, args...)
	}
	var st api.Status
	var out []byte
	var err error
	if !sitetest.Poll(60*time.Second, 200*time.Millisecond, func() bool {
		out, err = exec.Command("ip", "netns", "exec", ns, mc.path, "status", "--api", apis[2], "--json").Output()
		return err == nil && json.Unmarshal(out, &st) == nil && st.SiteView != nil &&
			len(st.SiteView.Members) == len(roles) && st.SiteView.Leader != ""
	}) {
		t.Fatalf("no site of %d members with a leader by mDNS in 60s; last status %s (%v)", len(roles), out, err)
	}
	t.Logf("by mDNS: %d members, leader %s", len(st.SiteView.Members), st.SiteView.Leader)
	for _, d := range mc.daemons {
		if s := d.stderr.String(); !strings.Contains(s, "mdns: announcing") {
			t.Errorf("%s did not announce itself by mDNS:\n%s", d.name, tail(s))
		}
	}
}

// newNetns creates a network namespace with its loopback up and
// multicast-capable, deleted when the test ends (after the daemons in it
// stopped: cleanups run last-registered first). Creating one needs root.
func newNetns(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	ns := fmt.Sprintf("meshcast-test-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", ns, err, out)
		}
	})
	run("-n", ns, "link", "set", "dev", "lo", "multicast", "on")
	run("-n", ns, "link", "set", "dev", "lo", "up")
	return ns
}
