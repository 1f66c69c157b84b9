package p2p_test

import (
	"strings"
	"testing"

	"github.com/meshcast/meshcast/mesh/p2p"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   p2p.Config
		valid bool
		want  string // in the error
	}{
		{name: "zero value", valid: true},
		{name: "quic ip4 and ip6", cfg: p2p.Config{ListenAddrs: []string{"/ip4/10.0.0.1/udp/4433/quic-v1", "/ip6/::1/udp/0/quic-v1"}}, valid: true},
		{name: "tcp", cfg: p2p.Config{ListenAddrs: []string{"/ip4/0.0.0.0/udp/4433/quic-v1", "/ip4/0.0.0.0/tcp/4001"}}, want: "/ip4/0.0.0.0/tcp/4001"},
		{name: "websocket", cfg: p2p.Config{ListenAddrs: []string{"/ip4/0.0.0.0/tcp/4001/ws"}}, want: "/ip4/0.0.0.0/tcp/4001/ws"},
		{name: "webtransport", cfg: p2p.Config{ListenAddrs: []string{"/ip4/0.0.0.0/udp/4433/quic-v1/webtransport"}}, want: "webtransport"},
		{name: "old quic draft", cfg: p2p.Config{ListenAddrs: []string{"/ip4/0.0.0.0/udp/4433/quic"}}, want: "/ip4/0.0.0.0/udp/4433/quic"},
		{name: "bare udp", cfg: p2p.Config{ListenAddrs: []string{"/ip4/0.0.0.0/udp/4433"}}, want: "/ip4/0.0.0.0/udp/4433"},
		{name: "dns", cfg: p2p.Config{ListenAddrs: []string{"/dns4/example.com/udp/4433/quic-v1"}}, want: "example.com"},
		{name: "unparsable", cfg: p2p.Config{ListenAddrs: []string{"0.0.0.0:4433"}}, want: "0.0.0.0:4433"},
		{name: "negative limit", cfg: p2p.Config{Limits: p2p.Limits{StreamsPerPeer: -1}}, want: "StreamsPerPeer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.valid {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
			t.Log(err)
		})
	}
}

func TestNewRefusesInvalidConfig(t *testing.T) {
	key, err := p2p.LoadIdentity(t.TempDir() + "/identity.key")
	if err != nil {
		t.Fatal(err)
	}
	cfg := p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}}
	if h, err := p2p.New(cfg, key, p2p.NewGater(), nil); err == nil {
		h.Close()
		t.Fatal("New accepted a TCP listen address")
	}
	if h, err := p2p.New(p2p.Config{}, key, nil, nil); err == nil {
		h.Close()
		t.Fatal("New accepted a nil gater")
	}
}
