package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
)

// Config configures New. Zero fields mean their default; New validates it
// once (Validate) and never changes it.
type Config struct {
	// Name is the member's unique name in the site: its libp2p peer id, at
	// most MaxFieldLen bytes. Required. Meta.ID carries the same text.
	Name string
	// BindAddr is the IP address gossip listens on, UDP and TCP. Default
	// "0.0.0.0".
	BindAddr string
	// BindPort is the port gossip listens on, UDP and TCP. Zero means the
	// profile's default: 7946 for "lan", a free port for "test". AnyPort
	// asks the system for a free port in any profile; LocalAddr tells which.
	BindPort int
	// AdvertiseAddr and AdvertisePort are what the others dial. Zero means
	// the bound address (a private IP of this host when bound to 0.0.0.0)
	// and port.
	AdvertiseAddr string
	AdvertisePort int
	// Seeds are "host:port" of members to contact on Join(ctx, nil).
	Seeds []string
	// Keys are the AES keys of the gossip keyring, 16, 24 or 32 bytes
	// each; Keys[0] is the primary (encrypts), all of them decrypt. Empty
	// means unencrypted gossip, allowed only with Insecure. New copies them.
	Keys [][]byte
	// Insecure allows gossip without encryption (development only): anyone
	// who reaches the port can then read the site's status and inject
	// members. It may not be combined with Keys.
	Insecure bool
	// Profile names the timers: "lan" (the default) or "test". See the
	// package documentation for each profile's timers and the failure
	// detection and status propagation times that follow from them.
	Profile string

	// plainBroadcast makes broadcasts what memberlist's queue alone gives:
	// receivers do not send them on, and the sender sends each only
	// memberlist's RetransmitMult × ⌈log10(N+1)⌉ times. For the test that
	// shows why this package does more.
	plainBroadcast bool
}

// AnyPort as Config.BindPort asks the system for a free port.
const AnyPort = -1

// Profile names.
const (
	ProfileLAN  = "lan"
	ProfileTest = "test"
)

// profile holds the timers of a named profile. Fields are memberlist's
// Config fields of the same name unless said otherwise.
type profile struct {
	name                    string
	defaultPort             int // BindPort 0 means this; 0 = a free port
	probeInterval           time.Duration
	probeTimeout            time.Duration
	suspicionMult           int
	suspicionMaxTimeoutMult int
	indirectChecks          int
	gossipInterval          time.Duration
	gossipNodes             int
	retransmitMult          int
	// broadcastRetransmitMult is retransmitMult for user broadcasts: each
	// member that holds one sends it broadcastRetransmitMult × ⌈log10(N+1)⌉
	// times (see broadcast.go for why it is twice memberlist's).
	broadcastRetransmitMult int
	gossipToTheDeadTime     time.Duration
	deadNodeReclaimTime     time.Duration
	pushPullInterval        time.Duration
	tcpTimeout              time.Duration
	// pushWait is how long the status pusher waits for one NodeMeta update
	// to go out before it sends the next: bursts of SetMeta collapse into
	// at most one update per pushWait.
	pushWait time.Duration
	// repeatAfter is when a change other than Progress is pushed a second
	// time (see pushLoop).
	repeatAfter time.Duration
	// progressPerMember × members is the least time between two pushes of
	// a change of Progress alone (see pushLoop).
	progressPerMember time.Duration
	// reconnectInterval is how often a member tries to join again one of
	// the members it declared failed, and reconnectTimeout how long it
	// keeps trying: a partition heals by itself (as Serf's reconnect does;
	// memberlist alone never contacts a dead member again).
	reconnectInterval, reconnectTimeout time.Duration
	// joinBackoff is the first and the longest wait between Join attempts.
	joinBackoffMin, joinBackoffMax time.Duration

	// detect is the documented bound on failure detection in a site of up
	// to 10 members: from a member's crash to every other member's
	// EventFail. spread is the documented bound for a SetMeta to reach
	// every member. Both are in doc.go with how they follow from the
	// timers; the tests check them for the test profile.
	detect, spread time.Duration
}

var profiles = map[string]profile{
	// memberlist's DefaultLANConfig.
	ProfileLAN: {
		name:                    ProfileLAN,
		defaultPort:             7946,
		probeInterval:           time.Second,
		probeTimeout:            500 * time.Millisecond,
		suspicionMult:           4,
		suspicionMaxTimeoutMult: 6,
		indirectChecks:          3,
		gossipInterval:          200 * time.Millisecond,
		gossipNodes:             3,
		retransmitMult:          4,
		broadcastRetransmitMult: 8,
		gossipToTheDeadTime:     30 * time.Second,
		deadNodeReclaimTime:     30 * time.Second,
		pushPullInterval:        30 * time.Second,
		tcpTimeout:              10 * time.Second,
		pushWait:                200 * time.Millisecond,
		repeatAfter:             time.Second,
		progressPerMember:       400 * time.Millisecond,
		reconnectInterval:       10 * time.Second,
		reconnectTimeout:        72 * time.Hour,
		joinBackoffMin:          500 * time.Millisecond,
		joinBackoffMax:          10 * time.Second,
		detect:                  8 * time.Second,
		spread:                  time.Second,
	},
	// Short timers for tests on one machine.
	ProfileTest: {
		name:                    ProfileTest,
		defaultPort:             0,
		probeInterval:           200 * time.Millisecond,
		probeTimeout:            100 * time.Millisecond,
		suspicionMult:           3,
		suspicionMaxTimeoutMult: 3,
		indirectChecks:          3,
		gossipInterval:          50 * time.Millisecond,
		gossipNodes:             3,
		retransmitMult:          4,
		broadcastRetransmitMult: 8,
		gossipToTheDeadTime:     2 * time.Second,
		deadNodeReclaimTime:     2 * time.Second,
		pushPullInterval:        2 * time.Second,
		tcpTimeout:              time.Second,
		pushWait:                50 * time.Millisecond,
		repeatAfter:             250 * time.Millisecond,
		progressPerMember:       50 * time.Millisecond,
		reconnectInterval:       500 * time.Millisecond,
		reconnectTimeout:        time.Minute,
		joinBackoffMin:          50 * time.Millisecond,
		joinBackoffMax:          500 * time.Millisecond,
		detect:                  1500 * time.Millisecond,
		spread:                  500 * time.Millisecond,
	},
}

// ErrConfig is wrapped by every error of Validate.
var ErrConfig = errors.New("gossip config")

// Validate reports the first problem with c, naming the field.
func (c Config) Validate() error {
	_, err := c.resolve()
	return err
}

// resolved is a validated Config with the defaults applied.
type resolved struct {
	Config
	prof profile
}

func (c Config) resolve() (resolved, error) {
	bad := func(format string, a ...any) (resolved, error) {
		return resolved{}, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, a...)...)
	}
	if c.Name == "" {
		return bad("Name is empty; want the node's peer id")
	}
	if len(c.Name) > MaxFieldLen {
		return bad("Name is %d bytes, limit %d", len(c.Name), MaxFieldLen)
	}
	if err := checkText("Name", c.Name); err != nil {
		return bad("Name %q is not UTF-8", c.Name)
	}
	pname := c.Profile
	if pname == "" {
		pname = ProfileLAN
	}
	prof, ok := profiles[pname]
	if !ok {
		return bad("Profile %q unknown (want %q or %q)", c.Profile, ProfileLAN, ProfileTest)
	}
	r := resolved{Config: c, prof: prof}
	r.Profile = pname
	if r.BindAddr == "" {
		r.BindAddr = "0.0.0.0"
	}
	if net.ParseIP(r.BindAddr) == nil {
		return bad("BindAddr %q is not an IP address", c.BindAddr)
	}
	switch {
	case r.BindPort == 0:
		r.BindPort = prof.defaultPort
	case r.BindPort == AnyPort:
		r.BindPort = 0
	case r.BindPort < 0 || r.BindPort > 65535:
		return bad("BindPort %d out of range (want 1..65535, 0 for the default or AnyPort)", c.BindPort)
	}
	if r.AdvertiseAddr != "" && net.ParseIP(r.AdvertiseAddr) == nil {
		return bad("AdvertiseAddr %q is not an IP address", c.AdvertiseAddr)
	}
	if r.AdvertisePort < 0 || r.AdvertisePort > 65535 {
		return bad("AdvertisePort %d out of range", c.AdvertisePort)
	}
	for _, s := range c.Seeds {
		if err := checkSeed(s); err != nil {
			return resolved{}, err
		}
	}
	switch {
	case len(c.Keys) == 0 && !c.Insecure:
		return bad("no Keys: gossip is encrypted unless Insecure is set")
	case len(c.Keys) > 0 && c.Insecure:
		return bad("Insecure is set together with %d Keys; choose one", len(c.Keys))
	}
	r.Keys = make([][]byte, 0, len(c.Keys))
	for i, k := range c.Keys {
		if err := memberlist.ValidateKey(k); err != nil {
			return bad("Keys[%d] is %d bytes; want 16, 24 or 32 (AES-128, -192 or -256)", i, len(k))
		}
		for j := range i {
			if bytes.Equal(c.Keys[j], k) {
				return bad("Keys[%d] repeats Keys[%d]", i, j)
			}
		}
		r.Keys = append(r.Keys, bytes.Clone(k))
	}
	r.Seeds = append([]string(nil), c.Seeds...)
	return r, nil
}

// checkSeed checks that s is "host:port".
func checkSeed(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return fmt.Errorf("%w: seed %q: want host:port", ErrConfig, s)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%w: seed %q: port %q is not 1..65535", ErrConfig, s, port)
	}
	return nil
}

// memberlistConfig returns memberlist's configuration for r: the profile's
// timers, the given delegates, logger and transport.
func (r resolved) memberlistConfig() *memberlist.Config {
	p := r.prof
	mc := memberlist.DefaultLANConfig()
	mc.Name = r.Name
	mc.BindAddr = r.BindAddr
	mc.BindPort = r.BindPort
	mc.AdvertiseAddr = r.AdvertiseAddr
	mc.AdvertisePort = r.AdvertisePort
	mc.ProbeInterval = p.probeInterval
	mc.ProbeTimeout = p.probeTimeout
	mc.SuspicionMult = p.suspicionMult
	mc.SuspicionMaxTimeoutMult = p.suspicionMaxTimeoutMult
	mc.IndirectChecks = p.indirectChecks
	mc.GossipInterval = p.gossipInterval
	mc.GossipNodes = p.gossipNodes
	mc.RetransmitMult = p.retransmitMult
	mc.GossipToTheDeadTime = p.gossipToTheDeadTime
	mc.DeadNodeReclaimTime = p.deadNodeReclaimTime
	mc.PushPullInterval = p.pushPullInterval
	mc.TCPTimeout = p.tcpTimeout
	mc.GossipVerifyIncoming = true
	mc.GossipVerifyOutgoing = true
	// Compression (LZW of every packet) buys nothing on a LAN for
	// messages this small, and cost a tenth of the CPU of a 51-member site
	// on one machine (profiled).
	mc.EnableCompression = false
	return mc
}
