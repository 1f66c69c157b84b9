package gossip_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/meshcast/meshcast/gossip"
	"github.com/meshcast/meshcast/gossip/gossiptest"
)

// A partition that cuts one member off (gossiptest.Links, the seam
// gossip.WrapTransport gives) makes each side declare the other failed;
// once the links are back, the reconnect loop joins them again and every
// member sees every other alive.
func TestPartitionHeals(t *testing.T) {
	const wait = 10 * time.Second
	links := gossiptest.NewLinks()
	members := make([]*gossip.Gossip, 4)
	for i := range members {
		name := fmt.Sprintf("part-%02d", i)
		cfg := gossip.Config{Name: name, BindAddr: "127.0.0.1", Profile: gossip.ProfileTest, Keys: [][]byte{bytes.Repeat([]byte{0x42}, 32)}}
		g, err := gossip.New(cfg, gossip.Meta{}, nil, gossip.WrapTransport(links.Wrap(name)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Close() })
		ip, port := g.LocalAddr()
		links.At(name, net.JoinHostPort(ip.String(), strconv.Itoa(port)))
		members[i] = g
	}
	for _, g := range members[1:] {
		ip, port := members[0].LocalAddr()
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		_, err := g.Join(ctx, []string{net.JoinHostPort(ip.String(), strconv.Itoa(port))})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range members {
		waitAlive(t, g, 4, wait)
	}
	links.Cut(members[0].Name())
	waitAlive(t, members[0], 1, wait)
	for _, g := range members[1:] {
		waitAlive(t, g, 3, wait)
	}
	healed := time.Now()
	links.Heal()
	for _, g := range members {
		waitAlive(t, g, 4, wait)
	}
	t.Logf("after the partition healed, all saw all alive again in %v", time.Since(healed).Round(time.Millisecond))
}

// waitAlive waits, on g's events, until g sees n members alive (itself
// included).
func waitAlive(t *testing.T, g *gossip.Gossip, n int, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for len(g.Members()) != n {
		select {
		case <-g.Events():
		case <-deadline:
			t.Fatalf("%s sees %d members alive after %v, want %d", g.Name(), len(g.Members()), d, n)
		}
	}
}
