package p2p_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/meshcast/meshcast/mesh/p2p"
)

func TestRawStreamThroughput(t *testing.T) {
	a, b := newHost(t, "a", p2p.Limits{}), newHost(t, "b", p2p.Limits{})
	allowEachOther(a, b)
	ctx := ctxT(t)

	const n = 8<<20 + 123 // not a multiple of the 1 MiB writes
	bps, err := p2p.RawStreamThroughput(ctx, a, b, n)
	if err != nil {
		t.Fatal(err)
	}
	if bps <= 0 {
		t.Fatalf("throughput %v", bps)
	}
	t.Logf("%.0f MB/s", bps/1e6)
	for _, p := range b.Mux().Protocols() {
		if strings.HasPrefix(string(p), "/meshcast/bench/") {
			t.Errorf("handler %s left registered on b", p)
		}
	}

	// Twice on the same pair of hosts works: the protocol is per call.
	if _, err := p2p.RawStreamThroughput(ctx, a, b, 1); err != nil {
		t.Fatalf("second run: %v", err)
	}

	// Cancelled: returns the context's error.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p2p.RawStreamThroughput(cctx, a, b, 1<<30); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: %v, want context.Canceled", err)
	}
}

// BenchmarkRawStream moves 256 MiB over one libp2p QUIC stream between two
// hosts in this process: the baseline (the ceiling) that the chunk exchange
// benchmarks compare with.
func BenchmarkRawStream(b *testing.B) {
	const n = 256 << 20
	src, dst := newHost(b, "src", p2p.Limits{}), newHost(b, "dst", p2p.Limits{})
	allowEachOther(src, dst)
	ctx := context.Background()
	b.SetBytes(n)
	for b.Loop() {
		if _, err := p2p.RawStreamThroughput(ctx, src, dst, n); err != nil {
			b.Fatal(err)
		}
	}
}
