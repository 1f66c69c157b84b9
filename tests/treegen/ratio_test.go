package treegen

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// sample is a piece of one content model, compressed on its own like a file.
type sample struct {
	name  string
	model Model
	make  func(g *gen) []byte
}

var samples = []sample{
	{"prose", Text, func(g *gen) []byte { return g.prose(nil, 64<<10, 76, "") }},
	{"readme", Text, func(g *gen) []byte { return g.markdown(nil, 64<<10, "meshcast") }},
	{"changelog", Text, func(g *gen) []byte {
		return g.changelog(nil, 64<<10, "meshcast", version{4, 12, 9, 2}, person(1), 19500)
	}},
	{"config", Text, func(g *gen) []byte { return g.config(nil, 64<<10) }},
	{"python", Text, func(g *gen) []byte { return g.python(nil, 64<<10, "meshcast") }},
	{"xml", Text, func(g *gen) []byte { return g.xml(nil, 64<<10) }},
	{"shell", Text, func(g *gen) []byte { return g.shell(nil, 32<<10, "meshcast") }},
	{"gettext", Text, func(g *gen) []byte { return g.mo(nil, 64<<10, 3, "meshcast", "de") }},
	{"binary-1M", Code, func(g *gen) []byte {
		return g.elf(nil, elfSpec{name: "meshcast", ver: version{1, 2, 3, 1}, size: 1 << 20, program: "meshcast"})
	}},
	{"binary-120K", Code, func(g *gen) []byte {
		return g.elf(nil, elfSpec{name: "meshcast", ver: version{1, 2, 3, 1}, size: 120 << 10, program: "meshcast"})
	}},
	{"library-2M", Code, func(g *gen) []byte {
		return g.elf(nil, elfSpec{name: "libmesh1", ver: version{1, 2, 3, 1}, size: 2 << 20, lib: true, program: "libmesh"})
	}},
	{"png", Random, func(g *gen) []byte { return g.png(nil, 64<<10) }},
	{"gzip", Random, func(g *gen) []byte { return g.gz(nil, 64<<10) }},
}

func ratio(t testing.TB, enc *zstd.Encoder, b []byte) float64 {
	return float64(len(b)) / float64(len(enc.EncodeAll(b, nil)))
}

// cliRatio compresses b with the zstd command at level, 0 if there is none.
func cliRatio(t testing.TB, level string, b []byte) float64 {
	if _, err := os.Stat("/usr/bin/zstd"); err != nil {
		return 0
	}
	cmd := exec.Command("/usr/bin/zstd", "-q", "-c", level)
	cmd.Stdin = bytes.NewReader(b)
	out, err := cmd.Output()
	if err != nil {
		t.Logf("zstd %s: %v", level, err)
		return 0
	}
	return float64(len(b)) / float64(len(out))
}

// TestContentModelRatios keeps the content models realistic: each model's
// compression ratio must stay in a band typical of a Linux root filesystem
// (real text: 2.5-4.5x at zstd -3, code 2-3x, assets 1x).
func TestContentModelRatios(t *testing.T) {
	fast, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	best, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression), zstd.WithEncoderConcurrency(1))
	defer fast.Close()
	defer best.Close()
	var raw, packed [numModels]int
	g := newGen()
	for i, s := range samples {
		g.reset(uint64(100 + i))
		b := s.make(g)
		c := fast.EncodeAll(b, nil)
		raw[s.model] += len(b)
		packed[s.model] += len(c)
		r := float64(len(b)) / float64(len(c))
		t.Logf("%-12s %-6s %8d bytes  SpeedDefault %.2fx  SpeedBestCompression %.2fx  zstd -3 %.2fx  zstd -19 %.2fx",
			s.name, s.model, len(b), r, ratio(t, best, b), cliRatio(t, "-3", b), cliRatio(t, "-19", b))
		lo, hi := map[Model][2]float64{Text: {2.0, 8}, Code: {1.6, 4}, Random: {0.9, 1.02}}[s.model][0],
			map[Model][2]float64{Text: {2.0, 8}, Code: {1.6, 4}, Random: {0.9, 1.02}}[s.model][1]
		if r < lo || r > hi {
			t.Errorf("%s: SpeedDefault ratio %.2f, want %.1f-%.1f", s.name, r, lo, hi)
		}
	}
	bands := map[Model][2]float64{Text: {2.5, 7}, Code: {1.6, 4}, Random: {0, 1.02}}
	for m, band := range bands {
		r := float64(raw[m]) / float64(packed[m])
		t.Logf("model %-6s SpeedDefault %.2fx", m, r)
		if r < band[0] || r > band[1] {
			t.Errorf("model %s: SpeedDefault ratio %.2f, want %.1f-%.1f", m, r, band[0], band[1])
		}
	}
}

// TestTreeRatios reports the compression of a small tree's files, each on
// its own, by model.
func TestTreeRatios(t *testing.T) {
	tr, dir := generate(t, small)
	fast, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	defer fast.Close()
	var raw, packed [numModels]int64
	for _, e := range tr.Entries {
		if e.Type != 0 || e.Size == 0 {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Path))
		if err != nil {
			t.Fatal(err)
		}
		raw[e.Model] += int64(len(b))
		packed[e.Model] += int64(len(fast.EncodeAll(b, nil)))
	}
	var all, allPacked int64
	for m := Text; m < numModels; m++ {
		all += raw[m]
		allPacked += packed[m]
		t.Logf("%-6s %9d bytes (%2d%%), SpeedDefault %.2fx", m, raw[m], raw[m]*100/tr.Bytes, float64(raw[m])/float64(packed[m]))
	}
	t.Logf("tree   %9d bytes, SpeedDefault %.2fx", all, float64(all)/float64(allPacked))
	if r := float64(all) / float64(allPacked); r < 1.8 || r > 3.5 {
		t.Errorf("tree ratio %.2f, want 1.8-3.5 (a root filesystem compresses about 2-3x)", r)
	}
}
