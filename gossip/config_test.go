package gossip

import (
	"errors"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	key := testKey
	ok := Config{Name: "n", Keys: [][]byte{key}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("minimal config: %v", err)
	}
	r, _ := ok.resolve()
	if r.BindAddr != "0.0.0.0" || r.BindPort != 7946 || r.Profile != ProfileLAN {
		t.Errorf("defaults: %s:%d %s; want 0.0.0.0:7946 lan", r.BindAddr, r.BindPort, r.Profile)
	}
	if r, _ := (Config{Name: "n", Insecure: true, Profile: ProfileTest}).resolve(); r.BindPort != 0 {
		t.Errorf("test profile's default port: %d; want 0 (a free one)", r.BindPort)
	}
	if r, _ := (Config{Name: "n", Insecure: true, BindPort: AnyPort}).resolve(); r.BindPort != 0 {
		t.Errorf("AnyPort resolves to %d; want 0", r.BindPort)
	}
	for _, c := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no name", func(c *Config) { c.Name = "" }, "Name is empty"},
		{"long name", func(c *Config) { c.Name = strings.Repeat("n", 65) }, "Name is 65 bytes"},
		{"profile", func(c *Config) { c.Profile = "wan" }, `Profile "wan" unknown`},
		{"bind addr", func(c *Config) { c.BindAddr = "localhost" }, `BindAddr "localhost" is not an IP address`},
		{"bind port", func(c *Config) { c.BindPort = 70000 }, "BindPort 70000 out of range"},
		{"negative port", func(c *Config) { c.BindPort = -2 }, "BindPort -2 out of range"},
		{"advertise addr", func(c *Config) { c.AdvertiseAddr = "x" }, `AdvertiseAddr "x"`},
		{"advertise port", func(c *Config) { c.AdvertisePort = -1 }, "AdvertisePort -1"},
		{"seed", func(c *Config) { c.Seeds = []string{"10.0.0.1"} }, `seed "10.0.0.1": want host:port`},
		{"seed port", func(c *Config) { c.Seeds = []string{"10.0.0.1:0"} }, `seed "10.0.0.1:0": port "0"`},
		{"no keys", func(c *Config) { c.Keys = nil }, "no Keys: gossip is encrypted unless Insecure is set"},
		{"keys and insecure", func(c *Config) { c.Insecure = true }, "Insecure is set together with 1 Keys"},
		{"key size", func(c *Config) { c.Keys = [][]byte{key, make([]byte, 20)} }, "Keys[1] is 20 bytes"},
		{"key repeated", func(c *Config) { c.Keys = [][]byte{key, key} }, "Keys[1] repeats Keys[0]"},
	} {
		cfg := ok
		c.mod(&cfg)
		err := cfg.Validate()
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Validate() = %v; want ErrConfig saying %q", c.name, err, c.want)
		}
	}
	// New keeps its own copy of the keys.
	cfg := Config{Name: "n", Keys: [][]byte{append([]byte(nil), key...)}}
	r, _ = cfg.resolve()
	cfg.Keys[0][0] ^= 0xff
	if r.Keys[0][0] != key[0] {
		t.Error("resolve did not copy the keys")
	}
}

// The memberlist configuration carries the profile's timers.
func TestProfiles(t *testing.T) {
	for name, p := range profiles {
		r, err := Config{Name: "n", Insecure: true, Profile: name}.resolve()
		if err != nil {
			t.Fatal(err)
		}
		mc := r.memberlistConfig()
		if mc.ProbeInterval != p.probeInterval || mc.ProbeTimeout != p.probeTimeout || mc.GossipInterval != p.gossipInterval ||
			mc.SuspicionMult != p.suspicionMult || mc.PushPullInterval != p.pushPullInterval || !mc.GossipVerifyIncoming {
			t.Errorf("%s: memberlist config does not carry the profile", name)
		}
		t.Logf("%s: probe %v/%v, suspicion ×%d, gossip %v to %d, push/pull %v; documented detection %v, spread %v",
			name, p.probeInterval, p.probeTimeout, p.suspicionMult, p.gossipInterval, p.gossipNodes, p.pushPullInterval, p.detect, p.spread)
	}
}
