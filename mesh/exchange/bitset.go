package exchange

import "math/bits"

// bitset is a fixed-size set of chunk indexes.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

func (b bitset) has(i int) bool { return b[i>>6]&(1<<(i&63)) != 0 }
func (b bitset) set(i int)      { b[i>>6] |= 1 << (i & 63) }
func (b bitset) clear(i int)    { b[i>>6] &^= 1 << (i & 63) }

func (b bitset) count() int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}

// bytes returns the wire form: count bits, LSB first in each byte.
func (b bitset) bytes(count int) []byte {
	out := make([]byte, (count+7)/8)
	for i := range out {
		out[i] = byte(b[i/8] >> (8 * (i % 8)))
	}
	return out
}

// bitsetFrom parses the wire form of count bits; bits past count must be
// zero.
func bitsetFrom(p []byte, count int) (bitset, bool) {
	b := newBitset(count)
	for i, v := range p {
		b[i/8] |= uint64(v) << (8 * (i % 8))
	}
	if count%64 != 0 && len(b) > 0 && b[len(b)-1]>>(count%64) != 0 {
		return nil, false
	}
	return b, true
}
