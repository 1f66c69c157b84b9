package p2p

import (
	"fmt"
	"strings"

	ma "github.com/multiformats/go-multiaddr"
)

// DefaultPort is the UDP port of the default listen addresses.
const DefaultPort = 4433

// Config configures New. The zero value is valid and means the defaults.
// New validates it once and never changes it.
type Config struct {
	// ListenAddrs are the multiaddrs the host listens on. Each must be QUIC
	// over an IP address: /ip4/<addr>/udp/<port>/quic-v1 or
	// /ip6/<addr>/udp/<port>/quic-v1, nothing before or after; port 0 picks
	// a free port. Empty means DefaultListenAddrs: every interface, IPv4
	// and IPv6, on DefaultPort.
	ListenAddrs []string
	// Limits for the resource manager. Zero fields take their value from
	// DefaultLimits(); see Limits for what each bounds and what happens
	// when one is hit.
	Limits Limits
}

// DefaultListenAddrs returns the listen addresses used when
// Config.ListenAddrs is empty.
func DefaultListenAddrs() []string {
	return []string{
		fmt.Sprintf("/ip4/0.0.0.0/udp/%d/quic-v1", DefaultPort),
		fmt.Sprintf("/ip6/::/udp/%d/quic-v1", DefaultPort),
	}
}

// Validate reports the first problem with c: a listen address that does not
// parse or is not plain QUIC (a /tcp/, /ws, /webtransport, /p2p-circuit or
// DNS address is refused, naming it), or a negative limit.
func (c Config) Validate() error {
	if _, err := c.listenAddrs(); err != nil {
		return err
	}
	return c.Limits.validate()
}

// listenAddrs parses and checks the listen addresses, defaults applied.
func (c Config) listenAddrs() ([]ma.Multiaddr, error) {
	ss := c.ListenAddrs
	if len(ss) == 0 {
		ss = DefaultListenAddrs()
	}
	out := make([]ma.Multiaddr, 0, len(ss))
	for _, s := range ss {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("listen address %q: %w", s, err)
		}
		if err := checkQUIC(a); err != nil {
			return nil, fmt.Errorf("listen address %q: %w", s, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// checkQUIC accepts exactly /ip4|ip6/<addr>/udp/<port>/quic-v1.
func checkQUIC(a ma.Multiaddr) error {
	var names []string
	for _, c := range a {
		names = append(names, c.Protocol().Name)
	}
	const want = "the host listens on QUIC only: /ip4/<addr>/udp/<port>/quic-v1 or /ip6/<addr>/udp/<port>/quic-v1"
	switch {
	case len(a) == 0:
		return fmt.Errorf("empty; %s", want)
	case a[0].Protocol().Code != ma.P_IP4 && a[0].Protocol().Code != ma.P_IP6:
		return fmt.Errorf("/%s is not an IP address; %s", names[0], want)
	case len(a) < 2 || a[1].Protocol().Code != ma.P_UDP:
		if len(a) < 2 {
			return fmt.Errorf("no transport; %s", want)
		}
		return fmt.Errorf("/%s is not QUIC; %s", names[1], want)
	case len(a) < 3 || a[2].Protocol().Code != ma.P_QUIC_V1:
		if len(a) < 3 {
			return fmt.Errorf("bare UDP is not QUIC; %s", want)
		}
		return fmt.Errorf("/%s is not QUIC v1; %s", names[2], want)
	case len(a) > 3:
		return fmt.Errorf("/%s on top of QUIC is not allowed; %s", strings.Join(names[3:], "/"), want)
	}
	return nil
}
