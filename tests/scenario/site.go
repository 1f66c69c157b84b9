package scenario

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"time"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/gossip"
	"github.com/meshcast/meshcast/seeder/cdn"
	"github.com/meshcast/meshcast/tests/baseline"
	"github.com/meshcast/meshcast/tests/sitetest"
)

// SiteOptions size the site distribution benchmark.
type SiteOptions struct {
	Dir     string // work directory; must exist
	Nodes   int    // default 10
	Seeders int    // default 1
	Size    int64  // release bytes (incompressible: ΔS is about Size); default 256 MiB
	WAN     int64  // the CDN's cap in bits per second; 0: none
	LAN     int64  // every member's cap, each way, in bits per second; 0: none
	// SkipDirect, SkipEfficiency and SkipBitswap leave out the baselines.
	SkipDirect, SkipEfficiency, SkipBitswap bool
	// Bitswap runs the boxo bitswap baseline over the release's chunks and
	// returns its wall time in seconds (tests/baseline provides it).
	Bitswap func(ctx context.Context, blocks [][]byte, nodes int) (float64, error)
	// Profile, if set, is called when the capped run's distribution starts
	// (after the publish) and returns what is called when every member is
	// done: a CPU profile of the swarm alone.
	Profile func() (stop func())
}

// SiteResult is what the site benchmark measured. Byte ratios are against
// ΔS, the chunk bytes the site lacked.
type SiteResult struct {
	Nodes, Seeders   int       `json:"-"`
	DeltaS           int64     `json:"delta_s_bytes"`
	CDNBytes         int64     `json:"cdn_bytes"`
	CDNAmplification float64   `json:"cdn_amplification"`
	CompletionP50    float64   `json:"completion_p50_s"`
	CompletionP100   float64   `json:"completion_p100_s"`
	Completions      []float64 `json:"completion_s"`
	WANBound         float64   `json:"wan_bound_s"`
	WANBoundLimit    float64   `json:"wan_bound_limit_s"` // 1.10 × wan_bound_s + 2 s
	DirectFetch      float64   `json:"direct_fetch_s"`
	VsDirect         float64   `json:"completion_vs_direct"`
	Goodput          float64   `json:"swarm_goodput_mb_s"` // uncapped: nodes × ΔS / time
	RawStream        float64   `json:"raw_stream_mb_s"`
	ExchangeVsRaw    float64   `json:"exchange_vs_raw"`
	RawCPUPerGB      float64   `json:"raw_cpu_s_per_gb"`  // CPU-seconds per GB the raw stream cost, both ends
	DiskWrite        float64   `json:"disk_write_mb_s"`   // one chunk store's durable write rate on the benchmark's disk
	DiskBoundVsRaw   float64   `json:"disk_bound_vs_raw"` // the most exchange_vs_raw could be with every member's store on that one disk
	BitswapGoodput   float64   `json:"bitswap_goodput_mb_s"`
	BitswapVsRaw     float64   `json:"bitswap_vs_raw"`
	// BitswapErr says why bitswap has no figure: a boxo session now and
	// then stops asking for its last blocks and never ends.
	BitswapErr       string  `json:"bitswap_error,omitempty"`
	DuplicateRatio   float64 `json:"duplicate_ratio"`
	SeederUpload     float64 `json:"seeder_upload_ratio"`
	PushLatency      float64 `json:"seeder_push_latency_ms"`  // push to announcement, the seeders' moving average
	RequestLatency   float64 `json:"node_request_latency_ms"` // request to piece, the nodes' median moving average
	CPUPerGB         float64 `json:"cpu_s_per_gb"`
	CPUBusy          float64 `json:"cpu_busy"` // CPU-seconds ÷ (p100 × GOMAXPROCS): near 1 is CPU-bound
	PeakRSSMiB       float64 `json:"peak_rss_mib"`
	PeakRSSPerMember float64 `json:"peak_rss_mib_per_member"`
}

// Site runs the site benchmark: a capped run (amplification, completion,
// duplicates, seeder upload, CPU, memory), a direct fetch against the same
// CDN, an uncapped run against a raw libp2p stream, and bitswap.
func Site(ctx context.Context, tb sitetest.TB, opt SiteOptions, log *slog.Logger) (*SiteResult, error) {
	if opt.Nodes == 0 {
		opt.Nodes = 10
	}
	if opt.Seeders == 0 {
		opt.Seeders = 1
	}
	if opt.Size == 0 {
		opt.Size = 256 << 20
	}
	res := &SiteResult{Nodes: opt.Nodes, Seeders: opt.Seeders}
	release := filepath.Join(opt.Dir, "release.img")
	if err := randomFile(release, opt.Size); err != nil {
		return nil, err
	}

	// The capped run. CPU is counted from the end of the publish, which is
	// the operator's work, not the site's.
	site := sitetest.New(tb, sitetest.Seeders(opt.Seeders), sitetest.Nodes(opt.Nodes), sitetest.LANGossip(), sitetest.LANRaft(),
		sitetest.WAN(opt.WAN/8), sitetest.LAN(opt.LAN/8), sitetest.Dir(filepath.Join(opt.Dir, "capped")))
	cdn0 := site.CDN.BytesSent()
	pub := site.Publish("1.0.0", release)
	var ru0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	stopProfile := func() {}
	if opt.Profile != nil {
		stopProfile = opt.Profile()
	}
	t0 := time.Now()
	res.DeltaS = pub.NewBytes
	site.WaitVerified("1.0.0", 30*time.Minute)
	stopProfile()
	var received int64
	var latencies []float64
	for _, m := range site.Members() {
		st := m.Status()
		res.Completions = append(res.Completions, st.DoneAt.Sub(t0).Seconds())
		received += st.Exchange.Received
		res.DuplicateRatio += float64(st.Exchange.Duplicate)
		if m.Role == gossip.RoleSeeder {
			res.SeederUpload += float64(st.Exchange.Served)
			res.PushLatency = max(res.PushLatency, ms(st.Exchange.PushLatency))
		} else {
			latencies = append(latencies, ms(st.Exchange.Latency))
		}
	}
	if len(latencies) > 0 {
		slices.Sort(latencies)
		res.RequestLatency = latencies[len(latencies)/2]
	}
	res.CDNBytes = site.CDN.BytesSent() - cdn0
	var ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	site.Check("1.0.0")
	site.Close()

	ds := float64(res.DeltaS)
	res.CDNAmplification = float64(res.CDNBytes) / ds
	res.DuplicateRatio /= ds
	res.SeederUpload /= ds
	slices.Sort(res.Completions)
	res.CompletionP50 = res.Completions[len(res.Completions)/2]
	res.CompletionP100 = res.Completions[len(res.Completions)-1]
	if opt.WAN > 0 {
		res.WANBound = ds / (float64(opt.WAN) / 8)
		res.WANBoundLimit = 1.10*res.WANBound + 2
	}
	cpu := tv(ru1.Utime) + tv(ru1.Stime) - tv(ru0.Utime) - tv(ru0.Stime)
	res.CPUPerGB = cpu / (float64(received) / 1e9)
	res.CPUBusy = cpu / (res.CompletionP100 * float64(runtime.GOMAXPROCS(0)))
	res.PeakRSSMiB = float64(ru1.Maxrss) / 1024
	res.PeakRSSPerMember = res.PeakRSSMiB / float64(opt.Nodes+opt.Seeders)

	if !opt.SkipDirect {
		d, err := directFetch(ctx, opt, release)
		if err != nil {
			return nil, fmt.Errorf("direct fetch: %w", err)
		}
		res.DirectFetch = d
		res.VsDirect = res.CompletionP100 / d
	}
	if !opt.SkipEfficiency {
		if err := efficiency(ctx, tb, opt, release, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// directFetch times one node fetching the release alone from a CDN with
// the same cap.
func directFetch(ctx context.Context, opt SiteOptions, release string) (float64, error) {
	var secs float64
	tb := &commandTB{dir: filepath.Join(opt.Dir, "direct")}
	defer tb.cleanup()
	site := sitetest.New(tb, sitetest.Seeders(0), sitetest.Nodes(0), sitetest.WAN(opt.WAN/8), sitetest.Dir(tb.dir))
	site.Publish("1.0.0", release)
	c, err := cdn.NewClient(cdn.ClientConfig{URL: site.URL}, nil)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	start := time.Now()
	_, err = cdn.DirectFetch(ctx, c, cdn.DirectFetchOptions{
		StateDir: filepath.Join(tb.dir, "node"), TrustedRoot: site.Root(), Release: content.Release{Name: sitetest.Release},
		Platform: sitetest.Platform, Out: filepath.Join(tb.dir, "node", "out"),
	}, nil)
	secs = time.Since(start).Seconds()
	return secs, err
}

// efficiency runs the site without caps and compares its aggregate goodput
// with one raw libp2p stream and with bitswap, measured in the same run.
func efficiency(ctx context.Context, tb sitetest.TB, opt SiteOptions, release string, res *SiteResult) error {
	site := sitetest.New(tb, sitetest.Seeders(opt.Seeders), sitetest.Nodes(opt.Nodes), sitetest.LANGossip(), sitetest.LANRaft(),
		sitetest.Dir(filepath.Join(opt.Dir, "uncapped")))
	site.Publish("1.0.0", release)
	t0 := time.Now()
	site.WaitVerified("1.0.0", 30*time.Minute)
	var last time.Time
	for _, m := range site.Nodes() {
		if d := m.Status().DoneAt; d.After(last) {
			last = d
		}
	}
	res.Goodput = float64(opt.Nodes) * float64(res.DeltaS) / last.Sub(t0).Seconds() / 1e6
	blocks := site.ReleaseChunks("1.0.0")
	site.Close()

	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	rawBytes := min(res.DeltaS, 256<<20)
	raw, err := baseline.RawStream(ctx, rawBytes, nil)
	if err != nil {
		return err
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	res.RawCPUPerGB = (tv(ru1.Utime) + tv(ru1.Stime) - tv(ru0.Utime) - tv(ru0.Stime)) / (float64(rawBytes) / 1e9)
	res.RawStream = raw / 1e6
	res.ExchangeVsRaw = res.Goodput / res.RawStream
	// The raw stream stores nothing; every member of the site stores the
	// release durably, on the one disk they share here. The disk's rate
	// alone caps the goodput at nodes × ΔS ÷ ((members) × ΔS ÷ rate).
	disk, err := diskWrite(filepath.Join(opt.Dir, "disk"), min(res.DeltaS, 256<<20))
	if err != nil {
		return err
	}
	res.DiskWrite = disk / 1e6
	members := opt.Nodes + opt.Seeders
	res.DiskBoundVsRaw = float64(opt.Nodes) / float64(members) * res.DiskWrite / res.RawStream
	if !opt.SkipBitswap && opt.Bitswap != nil {
		// A stalled bitswap session must not hang the benchmark: it gets
		// many times what the exchange took, and is reported as failed.
		bctx, cancel := context.WithTimeout(ctx, bitswapTimeout)
		secs, err := opt.Bitswap(bctx, blocks, opt.Nodes)
		cancel()
		if err != nil {
			res.BitswapErr = err.Error()
			return nil
		}
		res.BitswapGoodput = float64(opt.Nodes) * float64(res.DeltaS) / secs / 1e6
		res.BitswapVsRaw = res.BitswapGoodput / res.RawStream
	}
	return nil
}

// bitswapTimeout bounds the bitswap baseline: a boxo session now and then
// stops asking for its last blocks and never ends (seen once at N = 10 and
// 256 MiB, idle for minutes in boxo's sessionWantSender).
const bitswapTimeout = 5 * time.Minute

// diskWrite measures the rate at which a chunk store, as members open it,
// durably takes n bytes of incompressible 64 KiB chunks, in bytes per
// second. Hashing the chunks is not timed.
func diskWrite(dir string, n int64) (float64, error) {
	defer os.RemoveAll(dir)
	st, err := content.OpenDiskStore(dir)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	const size = 64 << 10
	chunks := make([]content.Chunk, 0, n/size+1)
	for left := n; left > 0; left -= size {
		b := make([]byte, min(left, size))
		rand.Read(b)
		chunks = append(chunks, content.Chunk{ID: content.SumChunk(b), Size: len(b), Enc: content.EncodingRaw, Body: b})
	}
	start := time.Now()
	for _, c := range chunks {
		if err := st.Put(c); err != nil {
			return 0, err
		}
	}
	if err := st.Flush(); err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

func randomFile(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for left := size; left > 0; left -= int64(len(buf)) {
		b := buf[:min(left, int64(len(buf)))]
		rand.Read(b)
		if _, err := f.Write(b); err != nil {
			return err
		}
	}
	return f.Close()
}

// commandTB lets a command (not a test) run a site: failures panic with
// their message, cleanups run in reverse when cleanup is called.
type commandTB struct {
	dir      string
	cleanups []func()
	tmp      int
}

func (c *commandTB) Helper()                           {}
func (c *commandTB) Fatal(args ...any)                 { panic(fmt.Sprint(args...)) }
func (c *commandTB) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (c *commandTB) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "error: "+format+"\n", args...)
}
func (c *commandTB) Logf(format string, args ...any) {}
func (c *commandTB) Cleanup(f func())                { c.cleanups = append(c.cleanups, f) }
func (c *commandTB) TempDir() string {
	c.tmp++
	d := filepath.Join(c.dir, fmt.Sprintf("tmp%d", c.tmp))
	os.MkdirAll(d, 0o755)
	return d
}

func (c *commandTB) cleanup() {
	for i := len(c.cleanups) - 1; i >= 0; i-- {
		c.cleanups[i]()
	}
	c.cleanups = nil
}

// NewCommandTB returns a TB for a command working in dir, and the function
// that runs its cleanups.
func NewCommandTB(dir string) (sitetest.TB, func()) {
	c := &commandTB{dir: dir}
	return c, c.cleanup
}
