package gossip

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/meshcast/meshcast/deploy"
)

var otherKey = bytes.Repeat([]byte{0x17}, 32)

// joinFails checks that n cannot join through seed: Join keeps failing
// until its context ends.
func joinFails(t *testing.T, n, seed *tnode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	_, err := n.Join(ctx, []string{seed.seedAddr()})
	if !errors.Is(err, ErrJoin) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%s joined through %s: %v; want ErrJoin after the deadline", n.name, seed.name, err)
	}
	t.Logf("%s cannot join: %v", n.name, err)
	if got := n.Members(); len(got) != 1 || got[0].Name != n.name {
		t.Errorf("%s lists %d members after a failed join; want only itself", n.name, len(got))
	}
	if slices.ContainsFunc(seed.Members(), func(m Member) bool { return m.Name == n.name }) {
		t.Errorf("%s lists %s, which has the wrong key", seed.name, n.name)
	}
}

// A member without the site's key cannot join it, whether it has another
// key or none; an encrypted member cannot join an unencrypted site.
func TestWrongKeyCannotJoin(t *testing.T) {
	site := newCluster(t, "keyed", 2, nil)
	wrong := newNode(t, "wrongkey-00", func(c *Config) { c.Keys = [][]byte{otherKey} })
	joinFails(t, wrong, site[0])
	plain := newNode(t, "plain-00", func(c *Config) { c.Keys, c.Insecure = nil, true })
	joinFails(t, plain, site[0])
	keyed := newNode(t, "keyed-xx", nil)
	joinFails(t, keyed, plain)
	for _, n := range site {
		n.rec.mu.Lock()
		for _, e := range n.rec.events {
			if e.v.Member.Name != site[0].name && e.v.Member.Name != site[1].name {
				t.Errorf("%s got %v for %s", n.name, e.v.Kind, e.v.Member.Name)
			}
		}
		n.rec.mu.Unlock()
	}
	if !site[0].logs.contains("decrypt") && !site[0].logs.contains("Decrypt") {
		t.Errorf("%s logged nothing about what it could not decrypt", site[0].name)
	}
	noneFailed(t, site)
}

// garbage sends random datagrams and streams to addr: some start with
// each of memberlist's message types so that they get past the first byte.
func garbage(t *testing.T, addr string, rng *rand.Rand) {
	t.Helper()
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		return b
	}
	udp, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	for i := range 400 {
		b := random(rng.IntN(1400))
		if i < 256 && len(b) > 0 {
			b[0] = byte(i)
		}
		if _, err := udp.Write(b); err != nil {
			t.Logf("udp write: %v", err)
		}
	}
	crafted := [][]byte{
		{},
		{10, 0xff, 0xff, 0xff, 0xff},             // encrypted stream claiming 4 GiB
		{10, 0x01, 0x00, 0x00, 0x00, 1, 2, 3, 4}, // claiming 16 MiB, then EOF
		{6},                                      // push/pull with nothing
		{9, 0xff},                                // compressed, garbage
		{244, 200},                               // label header, too long
	}
	for i := range 40 {
		b := random(rng.IntN(4096))
		if i < 16 && len(b) > 0 {
			b[0] = byte(i)
		}
		crafted = append(crafted, b)
	}
	for _, b := range crafted {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Logf("tcp dial: %v", err) // the attacker's trouble, not the member's
			continue
		}
		c.SetDeadline(time.Now().Add(time.Second))
		c.Write(b)
		c.Close()
	}
}

// afterGarbage checks that a site is unharmed: all members still see
// each other, none was reported failed, and a status change and a
// broadcast still reach everyone.
func afterGarbage(t *testing.T, nodes []*tnode) {
	t.Helper()
	waitConverged(t, nodes, names(nodes))
	m := testMeta(nodes[1].name)
	m.Phase = deploy.PhaseVerified
	if err := nodes[1].SetMeta(m); err != nil {
		t.Fatal(err)
	}
	msg := []byte("still here")
	if err := nodes[1].Broadcast(msg); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if _, ok := n.rec.waitEvent(converge, func(e Event) bool { return e.Kind == EventUpdate && e.Member.Meta == m }); !ok {
			t.Errorf("%s did not see a status change after the garbage", n.name)
		}
		if n != nodes[1] && !n.rec.waitFor(converge, func(r *recorder) bool { return r.count(msg) == 1 }) {
			t.Errorf("%s did not get a broadcast after the garbage", n.name)
		}
		t.Logf("%s: health score %d, stats %+v", n.name, n.Health(), n.Stats())
	}
	noneFailed(t, nodes)
}

// Garbage sent to an encrypted member's UDP and TCP port is refused with
// a logged error; nothing crashes and the site stays healthy.
func TestGarbagePacketsEncrypted(t *testing.T) {
	nodes := newCluster(t, "garbage", 3, nil)
	garbage(t, nodes[0].seedAddr(), rand.New(rand.NewPCG(1, 2)))
	afterGarbage(t, nodes)
	if !nodes[0].logs.contains("Decrypt packet failed") {
		t.Error("the target logged no decryption failure for the garbage")
	}
}

// The same against an unencrypted site, where garbage reaches memberlist's
// decoders and our user-message decoder.
func TestGarbagePacketsInsecure(t *testing.T) {
	nodes := newCluster(t, "garbplain", 3, func(c *Config) { c.Keys, c.Insecure = nil, true })
	rng := rand.New(rand.NewPCG(3, 4))
	garbage(t, nodes[0].seedAddr(), rng)
	// User messages (memberlist type 8) with a bad body reach NotifyMsg.
	udp, err := net.Dial("udp", nodes[0].seedAddr())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		b := []byte{8, byte(2 + i%250), byte(i)}
		udp.Write(b)
	}
	udp.Close()
	if !nodes[0].rec.waitFor(converge, func(*recorder) bool { return nodes[0].Stats().BadMessages > 0 }) {
		t.Error("no bad user message was counted")
	}
	afterGarbage(t, nodes)
}

// Keys rotate across a running site: install the new key everywhere, make
// it primary everywhere, remove the old one everywhere. The site stays
// whole throughout; then a member with only the new key joins and one
// with only the old key cannot.
func TestKeyRotation(t *testing.T) {
	oldKey, newKey := testKey, bytes.Repeat([]byte{0x99}, 16)
	nodes := newCluster(t, "rotate", 3, nil)
	steps := []struct {
		name string
		do   func(*Gossip) error
		want []string // fingerprints, primary first
	}{
		{"install new", func(g *Gossip) error { return g.InstallKey(newKey) }, []string{KeyFingerprint(oldKey), KeyFingerprint(newKey)}},
		{"use new", func(g *Gossip) error { return g.UseKey(newKey) }, []string{KeyFingerprint(newKey), KeyFingerprint(oldKey)}},
		{"remove old", func(g *Gossip) error { return g.RemoveKey(oldKey) }, []string{KeyFingerprint(newKey)}},
	}
	for i, st := range steps {
		for _, n := range nodes {
			if err := st.do(n.Gossip); err != nil {
				t.Fatalf("%s: %s: %v", st.name, n.name, err)
			}
			if got := n.Keys(); !slices.Equal(got, st.want) {
				t.Fatalf("%s: %s has keys %v; want %v", st.name, n.name, got, st.want)
			}
		}
		// Traffic still flows: a status change reaches everyone.
		m := testMeta(nodes[i].name)
		m.Progress = uint16(100 * (i + 1))
		if err := nodes[i].SetMeta(m); err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			if _, ok := n.rec.waitEvent(converge, func(e Event) bool { return e.Kind == EventUpdate && e.Member.Meta == m }); !ok {
				t.Fatalf("after %q, %s did not see %s's status change", st.name, n.name, nodes[i].name)
			}
		}
	}
	newcomer := newNode(t, "rotate-new", func(c *Config) { c.Keys = [][]byte{newKey} })
	newcomer.join(t, nodes[2])
	waitConverged(t, append(slices.Clone(nodes), newcomer), append(names(nodes), newcomer.name))
	stale := newNode(t, "rotate-old", nil) // testKey only
	joinFails(t, stale, nodes[0])
	noneFailed(t, nodes)

	// Misuse.
	g := nodes[0].Gossip
	if err := g.RemoveKey(newKey); !errors.Is(err, ErrPrimaryKey) {
		t.Errorf("RemoveKey(primary): %v; want ErrPrimaryKey", err)
	}
	if err := g.UseKey(otherKey); !errors.Is(err, ErrKeyNotInstalled) {
		t.Errorf("UseKey(not installed): %v; want ErrKeyNotInstalled", err)
	}
	if err := g.InstallKey([]byte("short")); !errors.Is(err, ErrBadKey) {
		t.Errorf("InstallKey(5 bytes): %v; want ErrBadKey", err)
	}
	if err := g.RemoveKey(otherKey); err != nil {
		t.Errorf("RemoveKey(not installed): %v; want nil", err)
	}
	if err := g.InstallKey(newKey); err != nil {
		t.Errorf("InstallKey(installed): %v; want nil", err)
	}
	plain := newNode(t, "rotate-plain", func(c *Config) { c.Keys, c.Insecure = nil, true })
	if err := plain.InstallKey(newKey); !errors.Is(err, ErrInsecure) {
		t.Errorf("InstallKey on an unencrypted member: %v; want ErrInsecure", err)
	}
	if plain.Keys() != nil {
		t.Errorf("Keys of an unencrypted member: %v", plain.Keys())
	}
}
