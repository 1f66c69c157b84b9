package treegen

import (
	"math"
	"math/bits"
)

// rng is wyrand: a 64-bit generator small enough to inline, so the content
// models can draw one value per token or instruction at full speed. It is
// deterministic on every platform.
type rng struct{ s uint64 }

func newRNG(seed uint64) rng { return rng{s: mix64(seed ^ 0x9e3779b97f4a7c15)} }

func (r *rng) u64() uint64 {
	r.s += 0xa0761d6478bd642f
	hi, lo := bits.Mul64(r.s, r.s^0xe7037ed1a0b428db)
	return hi ^ lo
}

// intn returns a value in [0, n); n must be > 0.
func (r *rng) intn(n int) int {
	hi, _ := bits.Mul64(r.u64(), uint64(n))
	return int(hi)
}

// between returns a value in [lo, hi].
func (r *rng) between(lo, hi int) int { return lo + r.intn(hi-lo+1) }

// pct reports true with probability p/100.
func (r *rng) pct(p int) bool { return r.intn(100) < p }

// skewed returns a value in [0, n) biased towards 0 (the smaller of two
// uniform draws).
func (r *rng) skewed(n int) int { return min(r.intn(n), r.intn(n)) }

// mix64 is the splitmix64 finalizer.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// seedOf derives an independent seed from a seed and names (FNV-1a, then
// mixed), so a file's content depends only on the tree seed and its path.
func seedOf(seed uint64, names ...string) uint64 {
	h := uint64(14695981039346656037)
	for _, n := range names {
		for i := 0; i < len(n); i++ {
			h ^= uint64(n[i])
			h *= 1099511628211
		}
		h ^= 0xff
		h *= 1099511628211
	}
	return mix64(h ^ mix64(seed))
}

// exp2frac[f] is 2^(f/256) in 16.16 fixed point, built from square roots and
// products only (both correctly rounded in IEEE 754, so identical everywhere).
var exp2frac = func() (t [256]uint32) {
	var root [8]float64 // root[k] = 2^(1/2^(k+1))
	x := 2.0
	for k := range root {
		x = math.Sqrt(x)
		root[k] = x
	}
	for f := range t {
		v := 1.0
		for k := range 8 {
			if f&(128>>k) != 0 {
				v = float64(v * root[k])
			}
		}
		t[f] = uint32(v * 65536)
	}
	return t
}()

// scale2 returns v * 2^(e/256).
func scale2(v int64, e int64) int64 {
	i, f := e>>8, e&255
	v = v * int64(exp2frac[f]) >> 16
	switch {
	case i >= 40:
		return math.MaxInt64 >> 8
	case i >= 0:
		return v << i
	case i > -63:
		return v >> -i
	}
	return 0
}

// logNormal returns median * 2^(sigma*z/256), z approximately standard normal
// (Irwin-Hall of four uniforms, so |z| < 3.5). sigma is in 1/256 doublings.
func (r *rng) logNormal(median int64, sigma int) int64 {
	x := r.u64()
	s := int64(x&0xffff+x>>16&0xffff+x>>32&0xffff+x>>48) - 131070
	return scale2(median, s*int64(sigma)/37837)
}

// alias draws from a fixed discrete distribution in O(1) (Walker/Vose), with
// integer weights only.
type alias struct {
	n      uint64
	thresh []uint32
	alias  []uint32
}

func newAlias(weights []uint64) alias {
	n := len(weights)
	var total uint64
	for _, w := range weights {
		total += w
	}
	// p[i] = w[i] * n * 2^32 / total, each slot holds 2^32.
	const slot = uint64(1) << 32
	p := make([]uint64, n)
	var sum uint64
	for i, w := range weights {
		hi, lo := bits.Mul64(w, uint64(n)<<32)
		q, _ := bits.Div64(hi, lo, total)
		p[i] = q
		sum += q
	}
	for i := 0; sum < uint64(n)*slot; i = (i + 1) % n { // rounding leftovers
		p[i]++
		sum++
	}
	a := alias{n: uint64(n), thresh: make([]uint32, n), alias: make([]uint32, n)}
	var small, large []int
	for i, v := range p {
		if v < slot {
			small = append(small, i)
		} else {
			large = append(large, i)
		}
	}
	for len(small) > 0 && len(large) > 0 {
		s, l := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		a.thresh[s] = uint32(p[s])
		a.alias[s] = uint32(l)
		p[l] -= slot - p[s]
		if p[l] < slot {
			large = large[:len(large)-1]
			small = append(small, l)
		}
	}
	for _, i := range append(small, large...) {
		a.thresh[i] = math.MaxUint32
		a.alias[i] = uint32(i)
	}
	return a
}

func (a *alias) draw(r *rng) int {
	x := r.u64()
	i := (x >> 32) * a.n >> 32
	if uint32(x) < a.thresh[i] {
		return int(i)
	}
	return int(a.alias[i])
}

// zipfWeights returns Zipf-Mandelbrot weights for ranks k in [0, n): a blend
// of 1/(k+q) (weight 100-steep percent) and q/(k+q)^2 (steep percent), which
// makes the head steeper without a floating-point power. Integer only.
func zipfWeights(n int, q uint64, steep int) []uint64 {
	w := make([]uint64, n)
	for k := range w {
		d := uint64(k) + q
		w1 := (uint64(1) << 50) / d
		w2 := (uint64(1) << 50) / (d * d) * q
		w[k] = (w1*uint64(100-steep) + w2*uint64(steep)) / 100
		if w[k] == 0 {
			w[k] = 1
		}
	}
	return w
}
