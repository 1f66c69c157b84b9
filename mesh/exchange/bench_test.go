package exchange

import (
	"context"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/mesh/p2p"
	"github.com/meshcast/meshcast/tests/baseline"
)

func benchHost(tb testing.TB) host.Host {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	g := p2p.NewGater()
	g.SetOpen(true)
	h, err := p2p.New(p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}}, key, g, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Close() })
	return h
}

// BenchmarkExchangeVsRaw moves the same bytes from one holder to n
// fetchers over libp2p QUIC with the exchange (memory stores), and over
// one raw stream, and reports the ratio of aggregate goodputs.
func BenchmarkExchangeVsRaw(b *testing.B) {
	for _, n := range []int{1, 4} {
		b.Run(map[int]string{1: "1to1", 4: "1to4"}[n], func(b *testing.B) {
			refs, chunks := testChunks(b, 1024, 64<<10) // 64 MiB
			total := sumBytes(chunks)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			raw, err := baseline.RawStream(ctx, total, nil)
			if err != nil {
				b.Fatal(err)
			}
			var wg sync.WaitGroup
			defer wg.Wait()
			defer cancel()
			start := func(st Store) (*Engine, host.Host) {
				h := benchHost(b)
				e := New(st, nil, Config{}, nil)
				wg.Add(2)
				go func() { defer wg.Done(); e.Run(ctx) }()
				go func() { defer wg.Done(); e.Attach(ctx, h, Wrap{}) }()
				return e, h
			}
			src := content.NewMemStore()
			for _, ch := range chunks {
				src.Put(ch)
			}
			se, sh := start(src)
			id := SwarmID{byte(n)}
			se.Join(ctx, id, refs, JoinOptions{})
			var swarms []*Swarm
			var hosts []host.Host
			for i := 0; i < n; i++ {
				e, h := start(content.NewMemStore())
				sw, _ := e.Join(ctx, id, refs, JoinOptions{})
				swarms = append(swarms, sw)
				hosts = append(hosts, h)
			}
			t0 := time.Now()
			for i, h := range hosts {
				h.Connect(ctx, p2p.AddrInfo(sh))
				for _, o := range hosts[:i] {
					h.Connect(ctx, p2p.AddrInfo(o))
				}
			}
			for _, sw := range swarms {
				<-sw.Done()
			}
			el := time.Since(t0).Seconds()
			good := float64(n) * float64(total) / el
			b.ReportMetric(raw/1e6, "raw_MB/s")
			b.ReportMetric(good/1e6, "swarm_MB/s")
			b.ReportMetric(good/raw, "vs_raw")
		})
	}
}
