package baseline_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshcast/meshcast/tests/baseline"
)

func TestRawStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), runTimeout)
	defer cancel()

	const n = 8<<20 + 123 // not a multiple of the 1 MiB writes
	bps, err := baseline.RawStream(ctx, n, logger(t))
	if err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t)
	if bps <= 0 {
		t.Fatalf("throughput %v", bps)
	}
	t.Logf("%.0f MB/s", bps/1e6)

	// One byte, the smallest stream.
	if _, err := baseline.RawStream(ctx, 1, nil); err != nil {
		t.Fatalf("one byte: %v", err)
	}
	goleak.VerifyNone(t)
}

func TestRawStreamRefuses(t *testing.T) {
	for _, n := range []int64{0, -1} {
		if _, err := baseline.RawStream(t.Context(), n, nil); err == nil {
			t.Errorf("%d bytes: no error", n)
		}
	}
	goleak.VerifyNone(t)
}

func TestRawStreamCancelled(t *testing.T) {
	t.Run("before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := baseline.RawStream(ctx, 1<<20, nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
		goleak.VerifyNone(t)
	})
	t.Run("sending", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		// 100 ms into sending far more than loopback moves in that time.
		log := slog.New(onMessage{logger(t).Handler(), "raw stream baseline: sending", func() {
			time.AfterFunc(100*time.Millisecond, cancel)
		}})
		if _, err := baseline.RawStream(ctx, 1<<40, log); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
		goleak.VerifyNone(t)
	})
}

// BenchmarkRawStream moves 256 MiB over one libp2p QUIC stream between two
// hosts in this process: the baseline (the ceiling) that the chunk exchange
// benchmarks compare with. It reports the stream's throughput (MB/s),
// which leaves out starting and connecting the hosts; ns/op includes them.
func BenchmarkRawStream(b *testing.B) {
	const n = 256 << 20
	var sum float64
	var runs int
	for b.Loop() {
		bps, err := baseline.RawStream(b.Context(), n, nil)
		if err != nil {
			b.Fatal(err)
		}
		sum += bps
		runs++
	}
	b.ReportMetric(sum/float64(runs)/1e6, "MB/s")
}
