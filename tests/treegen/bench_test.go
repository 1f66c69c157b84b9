package treegen

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user and system time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds MB per CPU-second, which a loaded machine does not skew.
func reportCPU(b *testing.B, bytes int64, cpu0 time.Duration) {
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(bytes)/cpu.Seconds()/1e6, "MB/cpu-s")
	}
}

// BenchmarkContent generates the files of a default tree in memory on one
// goroutine: the single-core speed of the content models.
func BenchmarkContent(b *testing.B) {
	p := newPlan(Options{Seed: 1}.withDefaults())
	g := newGen()
	var buf []byte
	var total int64
	cpu0 := cpuTime()
	for b.Loop() {
		total = 0
		for _, n := range p.nodes {
			if n.typ == 0 {
				g.reset(seedOf(p.seed, n.path))
				buf = g.content(buf[:0], n, p)
				total += int64(len(buf))
			}
		}
	}
	b.SetBytes(total)
	reportCPU(b, total*int64(b.N), cpu0)
}

// BenchmarkGenerate writes a default tree (3000 files, 300 MiB).
func BenchmarkGenerate(b *testing.B) {
	var bytes int64
	cpu0 := cpuTime()
	for i := 0; b.Loop(); i++ {
		tr, err := Generate(filepath.Join(b.TempDir(), "t"), Options{Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		bytes = tr.Bytes
	}
	b.SetBytes(bytes)
	reportCPU(b, bytes*int64(b.N), cpu0)
}

// BenchmarkImage writes a 1 GiB image.
func BenchmarkImage(b *testing.B) {
	const size = 1 << 30
	cpu0 := cpuTime()
	for b.Loop() {
		if err := Image(filepath.Join(b.TempDir(), "img"), size, 1); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(size)
	reportCPU(b, size*int64(b.N), cpu0)
}
