package baseline_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshcast/meshcast/tests/baseline"
)

// runTimeout bounds one Bitswap run in these tests.
const runTimeout = 60 * time.Second

func TestBitswap(t *testing.T) {
	data := randomBlocks(1, 64, 256<<10)
	for _, nodes := range []int{2, 4} {
		t.Run(fmt.Sprintf("1to%d", nodes), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), runTimeout)
			defer cancel()
			res, err := baseline.Bitswap(ctx, data, nodes, logger(t))
			if err != nil {
				t.Fatal(err)
			}
			goleak.VerifyNone(t)
			checkResult(t, res, nodes, 64*256<<10)
			t.Logf("%d nodes: %.3f s, %.0f MB/s aggregate, dup %d blocks (%d bytes), seeder sent %d, nodes sent %d",
				nodes, res.Seconds, res.Goodput()/1e6, res.DupBlocks, res.DupBytes, res.SeederSent, res.PeerSent)
		})
	}
}

// checkResult checks what holds for every successful run.
func checkResult(t *testing.T, res *baseline.BitswapResult, nodes int, size int64) {
	t.Helper()
	if res.BytesPerNode != size {
		t.Errorf("BytesPerNode %d, want %d", res.BytesPerNode, size)
	}
	if len(res.NodeSeconds) != nodes {
		t.Fatalf("%d NodeSeconds, want %d", len(res.NodeSeconds), nodes)
	}
	for i, s := range res.NodeSeconds {
		if s <= 0 || s > res.Seconds {
			t.Errorf("NodeSeconds[%d] = %v, want in (0, Seconds=%v]", i, s, res.Seconds)
		}
	}
	if res.Seconds <= 0 || res.Seconds != slices.Max(res.NodeSeconds) {
		t.Errorf("Seconds %v, want the largest NodeSeconds %v", res.Seconds, res.NodeSeconds)
	}
	if res.SeederSent < size {
		t.Errorf("seeder sent %d bytes, less than one copy (%d)", res.SeederSent, size)
	}
	// Every node received every byte once, from the seeder or from
	// another node, plus the duplicates. What was sent can differ by the
	// (duplicate) blocks still in flight when the stats were read: a
	// sender counts a block once its message is written, a receiver once
	// it is read. Allow 1 MiB per node, bitswap's default limit on the
	// bytes a server has outstanding to one peer.
	sent, received := res.SeederSent+res.PeerSent, int64(nodes)*size+res.DupBytes
	if slack := int64(nodes) << 20; sent < received-slack || sent > received+slack {
		t.Errorf("seeder sent %d + nodes sent %d = %d bytes, want %d nodes × %d + %d duplicate = %d (± %d)",
			res.SeederSent, res.PeerSent, sent, nodes, size, res.DupBytes, received, slack)
	}
	if res.DupBlocks < 0 || res.DupBytes < 0 || (res.DupBlocks == 0) != (res.DupBytes == 0) {
		t.Errorf("duplicates: %d blocks, %d bytes", res.DupBlocks, res.DupBytes)
	}
	if g := res.Goodput(); g <= 0 {
		t.Errorf("goodput %v", g)
	}
}

func TestBitswapRepeatedBlocks(t *testing.T) {
	data := randomBlocks(2, 4, 64<<10)
	data = append(data, data[0], data[2]) // sent once each
	ctx, cancel := context.WithTimeout(t.Context(), runTimeout)
	defer cancel()
	res, err := baseline.Bitswap(ctx, data, 1, logger(t))
	if err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t)
	checkResult(t, res, 1, 4*64<<10)
}

func TestBitswapRefuses(t *testing.T) {
	ctx := t.Context()
	if _, err := baseline.Bitswap(ctx, randomBlocks(3, 1, 10), 0, nil); err == nil {
		t.Error("0 nodes: no error")
	}
	if _, err := baseline.Bitswap(ctx, nil, 2, nil); err == nil {
		t.Error("no blocks: no error")
	}
	goleak.VerifyNone(t)
}

func TestBitswapCancelled(t *testing.T) {
	// Cancelled while the nodes fetch: far more data than loopback moves
	// in the time allowed.
	data := randomBlocks(4, 512, 256<<10)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// 100 ms after the nodes start fetching 2 × 128 MiB.
	log := slog.New(onMessage{logger(t).Handler(), "bitswap baseline: fetching", func() {
		time.AfterFunc(100*time.Millisecond, cancel)
	}})
	_, err := baseline.Bitswap(ctx, data, 2, log)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	goleak.VerifyNone(t)
}

// TestReport measures, when MESHCAST_BASELINE_REPORT is set, the figures
// docs and DEPENDENCIES.md compare with: the raw libp2p stream between two
// hosts (256 MiB), and bitswap's aggregate goodput for 64 MiB of random
// blocks from one seeder to 1, 2 and 9 nodes, each MESHCAST_BASELINE_RUNS
// times (default 3), in one run of the process.
//
//	MESHCAST_BASELINE_REPORT=1 go test -run TestReport -v ./tests/baseline/
func TestReport(t *testing.T) {
	if os.Getenv("MESHCAST_BASELINE_REPORT") == "" {
		t.Skip("set MESHCAST_BASELINE_REPORT=1 to measure")
	}
	runs := 3
	if s := os.Getenv("MESHCAST_BASELINE_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("MESHCAST_BASELINE_RUNS=%q", s)
		}
		runs = n
	}
	ctx := t.Context()
	var lines []string
	report := func(format string, args ...any) {
		lines = append(lines, fmt.Sprintf(format, args...))
		t.Logf(format, args...)
	}

	const rawBytes = 256 << 20
	var raws []float64
	for range runs {
		cpu := cpuTime()
		bps, err := baseline.RawStream(ctx, rawBytes, nil)
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, bps/1e6)
		report("raw stream 1→1, 256 MiB: %.0f MB/s, %.1f CPU-s/GB", bps/1e6, (cpuTime()-cpu)/(rawBytes/1e9))
	}
	rawMedian := median(raws)

	for _, c := range []struct {
		nodes     int
		blockSize int
	}{{1, 1 << 20}, {1, 256 << 10}, {2, 256 << 10}, {9, 256 << 10}} {
		data := randomBlocks(uint64(c.blockSize), (64<<20)/c.blockSize, c.blockSize)
		var goodputs []float64
		for range runs {
			cpu := cpuTime()
			rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			res, err := baseline.Bitswap(rctx, data, c.nodes, nil)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			moved := float64(res.BytesPerNode) * float64(c.nodes)
			goodputs = append(goodputs, res.Goodput()/1e6)
			report("bitswap 1→%d, %d KiB blocks: %.2f s (nodes %.2f…%.2f s), %.0f MB/s aggregate, %.1f CPU-s/GB, dup %d blocks (%.0f%% of the data), seeder sent %.2f copies, nodes sent %.0f MiB",
				c.nodes, c.blockSize>>10, res.Seconds, slices.Min(res.NodeSeconds), res.Seconds,
				res.Goodput()/1e6, (cpuTime()-cpu)/(moved/1e9),
				res.DupBlocks, 100*float64(res.DupBytes)/moved, float64(res.SeederSent)/float64(res.BytesPerNode),
				float64(res.PeerSent)/(1<<20))
		}
		report("  median 1→%d, %d KiB blocks: %.0f MB/s = %.2f of the raw stream's median %.0f MB/s",
			c.nodes, c.blockSize>>10, median(goodputs), median(goodputs)/rawMedian, rawMedian)
	}
	if out := os.Getenv("MESHCAST_BASELINE_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// randomBlocks returns n blocks of size bytes, the same for the same seed.
func randomBlocks(seed uint64, n, size int) [][]byte {
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	s[2] = byte(seed >> 16)
	r := rand.NewChaCha8(s)
	out := make([][]byte, n)
	for i := range out {
		out[i] = make([]byte, size)
		_, _ = r.Read(out[i])
	}
	return out
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// cpuTime returns the user and system CPU seconds the process has used.
func cpuTime() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// onMessage is a slog.Handler that calls do (once per record) when a
// record with message msg passes through it.
type onMessage struct {
	slog.Handler
	msg string
	do  func()
}

func (h onMessage) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.do()
	}
	return h.Handler.Handle(ctx, r)
}

func (h onMessage) WithAttrs(as []slog.Attr) slog.Handler {
	return onMessage{h.Handler.WithAttrs(as), h.msg, h.do}
}

func (h onMessage) WithGroup(name string) slog.Handler {
	return onMessage{h.Handler.WithGroup(name), h.msg, h.do}
}

// logger writes Info and above to t.Log.
func logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
