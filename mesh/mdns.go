package mesh

import (
	"context"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/libp2p/zeroconf/v2"
)

const (
	// mdnsService is the DNS-SD service type under which members announce
	// their gossip address on the LAN (mDNS, with the zeroconf library
	// libp2p's own mDNS discovery is built on).
	mdnsService = "_meshcast._udp"
	mdnsDomain  = "local."
	// mdnsRetry is how long a member found by mDNS is left alone after a
	// join through it failed.
	mdnsRetry = 30 * time.Second
	// mdnsJoinTimeout bounds one join through a member found by mDNS.
	mdnsJoinTimeout = 10 * time.Second
)

// runMDNS announces this member's gossip address by mDNS and joins the
// site's gossip through the members of the same site it finds, so that a
// gateway in a simple site needs no address list. The TXT record names
// the site; who really gets in is decided by gossip's encryption (a member
// of another site, or without the key, cannot join). It returns when ctx
// ends, or at once if mDNS cannot start (no multicast interface): mDNS is
// a convenience, and its failure is logged, not fatal.
func (n *Node) runMDNS(ctx context.Context) {
	ip, port := n.gossip.LocalAddr()
	self := n.host.ID().String()
	txt := []string{"v=1", "site=" + n.cfg.Site}
	host := "meshcast-" + self[len(self)-12:] + "." + mdnsDomain
	srv, err := zeroconf.RegisterProxy(self, mdnsService, mdnsDomain, port, host, []string{ip.String()}, txt, nil)
	if err != nil {
		n.log.Warn("mdns: cannot announce this member; other members must --join it", "err", err)
		return
	}
	defer srv.Shutdown()
	n.log.Info("mdns: announcing", "service", mdnsService, "gossip", net.JoinHostPort(ip.String(), strconv.Itoa(port)))

	entries := make(chan *zeroconf.ServiceEntry, 16)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := zeroconf.Browse(ctx, mdnsService, mdnsDomain, entries); err != nil && ctx.Err() == nil {
			n.log.Warn("mdns: cannot browse for members", "err", err)
		}
	}()
	tried := map[string]time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-entries:
			addr, ok := n.mdnsCandidate(e, self)
			if !ok || time.Since(tried[e.Instance]) < mdnsRetry {
				continue
			}
			tried[e.Instance] = time.Now()
			jctx, cancel := context.WithTimeout(ctx, mdnsJoinTimeout)
			_, err := n.gossip.Join(jctx, []string{addr})
			cancel()
			if err != nil {
				n.log.Debug("mdns: join through a member found failed", "member", e.Instance, "addr", addr, "err", err)
				continue
			}
			n.log.Info("mdns: joined the site through a member found on the LAN", "member", e.Instance, "addr", addr)
		}
	}
}

// mdnsCandidate returns the gossip address of a member found by mDNS if it
// is worth joining through: another member of this site that gossip does
// not know yet.
func (n *Node) mdnsCandidate(e *zeroconf.ServiceEntry, self string) (string, bool) {
	if e == nil || e.Instance == self || e.Port <= 0 || e.Port > 65535 || !slices.Contains(e.Text, "site="+n.cfg.Site) {
		return "", false
	}
	for _, m := range n.gossip.Members() {
		if m.Name == e.Instance {
			return "", false
		}
	}
	var ip net.IP
	switch {
	case len(e.AddrIPv4) > 0:
		ip = e.AddrIPv4[0]
	case len(e.AddrIPv6) > 0:
		ip = e.AddrIPv6[0]
	default:
		return "", false
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(e.Port)), true
}
