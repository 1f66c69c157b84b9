package treegen

import (
	"encoding/binary"
	"slices"
	"sync"
)

// The machine-code model. A fixed "instruction set" (the same for every tree,
// like amd64 is): the first byte of an instruction decides its length and
// whether a 4-byte field follows (a rel32 displacement or an imm32), so .text
// can be decoded again, which Upgrade needs to shift displacements after an
// edit. A few thousand distinct instruction patterns are drawn with a Zipf law,
// plus recurring multi-instruction idioms, function prologues and epilogues,
// and int3 padding to 16 bytes between functions.

const (
	dispNone = 0
	dispRel  = 1
	dispImm  = 2

	numPatterns = 3000
	numIdioms   = 400

	opRet  = 0xc3
	opInt3 = 0xcc
	opCall = 0xe8
)

type instructionSet struct {
	opLen  [256]uint8 // pattern length, opcode included, 4-byte field excluded
	opDisp [256]uint8
	pat    []uint64 // pattern bytes, little endian
	plen   []uint8
	pdisp  []uint8
	zipf   alias
	idioms [][]uint16
	izipf  alias
	pro    [4][]uint16 // prologues
	epi    [2][]uint16 // epilogues (without the ret)
}

var (
	isaOnce sync.Once
	theISA  *instructionSet
)

func isa() *instructionSet {
	isaOnce.Do(func() { theISA = buildISA() })
	return theISA
}

func buildISA() *instructionSet {
	r := newRNG(langSeed + 1)
	is := &instructionSet{}
	type class struct{ l, d, n int }
	classes := []class{
		{1, 0, 10}, {2, 0, 36}, {3, 0, 44}, {4, 0, 30}, {5, 0, 18}, {6, 0, 10}, {7, 0, 8},
		{1, 1, 2}, {2, 1, 16}, {3, 1, 14}, {4, 1, 6},
		{1, 2, 4}, {2, 2, 16}, {3, 2, 14}, {4, 2, 8}, {5, 2, 5},
	}
	byClass := map[[2]int][]int{}
	reserved := map[int][2]int{opRet: {1, 0}, opInt3: {1, 0}, 0x90: {1, 0}, opCall: {1, 1}, 0xe9: {1, 1}}
	var free []int
	for op := range 256 {
		if c, ok := reserved[op]; ok {
			is.opLen[op], is.opDisp[op] = uint8(c[0]), uint8(c[1])
			if op != opInt3 {
				byClass[c] = append(byClass[c], op)
			}
			continue
		}
		free = append(free, op)
	}
	for i := len(free) - 1; i > 0; i-- {
		j := r.intn(i + 1)
		free[i], free[j] = free[j], free[i]
	}
	for _, c := range classes {
		for range c.n {
			op := free[0]
			free = free[1:]
			is.opLen[op], is.opDisp[op] = uint8(c.l), uint8(c.d)
			byClass[[2]int{c.l, c.d}] = append(byClass[[2]int{c.l, c.d}], op)
		}
	}
	for _, op := range free {
		is.opLen[op], is.opDisp[op] = 3, 0
		byClass[[2]int{3, 0}] = append(byClass[[2]int{3, 0}], op)
	}

	// modrm-like and small operand bytes: skewed over a fixed permutation.
	var perm [256]byte
	for i := range perm {
		perm[i] = byte(i)
	}
	for i := 255; i > 0; i-- {
		j := r.intn(i + 1)
		perm[i], perm[j] = perm[j], perm[i]
	}
	operand := newAlias(zipfWeights(256, 2, 30))
	small := []byte{0x00, 0x08, 0x10, 0x18, 0x20, 0x28, 0x30, 0x38, 0x40, 0x01, 0x02, 0x04, 0xff, 0xf8, 0xf0, 0x24, 0x45, 0x44, 0xc0, 0x89}

	weights := zipfWeights(numPatterns, 6, 0)
	lenDist := []int{1, 2, 2, 2, 3, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 6, 7}
	seen := map[uint64]bool{}
	var mass, massD, massRel uint64
	for k := 0; len(is.pat) < numPatterns; k++ {
		w := weights[len(is.pat)]
		d := dispNone
		if 10*(massD+w) <= 3*(mass+w) {
			d = dispImm
			if 3*(massRel+w) <= 2*(massD+w) {
				d = dispRel
			}
		}
		l := lenDist[r.intn(len(lenDist))]
		if d != dispNone && l > 5 {
			l = 2 + r.intn(3)
		}
		ops := byClass[[2]int{l, d}]
		if len(ops) == 0 {
			continue
		}
		op := ops[r.skewed(len(ops))]
		p := uint64(op)
		for i := 1; i < l; i++ {
			var b byte
			if i == 1 || r.pct(40) {
				b = perm[operand.draw(&r)]
			} else {
				b = small[r.skewed(len(small))]
			}
			p |= uint64(b) << (8 * i)
		}
		key := p | uint64(l)<<56
		if seen[key] {
			continue
		}
		seen[key] = true
		is.pat = append(is.pat, p)
		is.plen = append(is.plen, uint8(l))
		is.pdisp = append(is.pdisp, uint8(d))
		mass += w
		if d != dispNone {
			massD += w
			if d == dispRel {
				massRel += w
			}
		}
	}
	is.zipf = newAlias(weights)
	for range numIdioms {
		n := 2 + r.skewed(5)
		id := make([]uint16, n)
		for i := range id {
			id[i] = uint16(is.zipf.draw(&r))
		}
		is.idioms = append(is.idioms, id)
	}
	is.izipf = newAlias(zipfWeights(numIdioms, 3, 0))
	for i := range is.pro {
		is.pro[i] = slices.Clone(is.idioms[r.intn(40)])
	}
	for i := range is.epi {
		is.epi[i] = slices.Clone(is.idioms[r.intn(40)])
	}
	return is
}

// fixup is a rel32 whose target is known only after layout.
type fixup struct {
	pos  uint32 // file offset of the 4-byte field
	kind uint8
	pick uint32 // random choice among the targets of that kind
}

const (
	fixCall = iota
	fixString
	fixData
)

// codeScratch is per-worker scratch for binaries.
type codeScratch struct {
	fix       []fixup
	funcStart []uint32 // file offsets
	funcEnd   []uint32
	sizes     []int64
	strOff    []uint32 // rodata-relative string starts
	stems     []byte
	stemEnd   []int
	scratch   []byte
	scratch2  []uint32
	consts    [64]uint32
	instrs    []instr
	anchors   []anchor
}

func (g *gen) initConsts() {
	for i := range g.code.consts {
		switch g.r.intn(4) {
		case 0:
			g.code.consts[i] = 1 << g.r.intn(32)
		case 1:
			g.code.consts[i] = 1<<g.r.intn(32) - 1
		case 2:
			g.code.consts[i] = uint32(g.r.intn(100000))
		default:
			g.code.consts[i] = uint32(g.r.u64())
		}
	}
}

func (g *gen) imm() uint32 {
	switch k := g.r.intn(100); {
	case k < 40:
		return uint32(g.r.skewed(256))
	case k < 52:
		return uint32(-1 - g.r.skewed(64))
	case k < 75:
		return g.code.consts[g.r.skewed(64)]
	case k < 90:
		return uint32(g.r.skewed(65536))
	default:
		return uint32(g.r.u64())
	}
}

// emit writes instruction pattern p at b[pos:], which must have 16 bytes of
// room, and returns the position after it.
func (g *gen) emit(b []byte, pos int, p int) int {
	is := theISA
	binary.LittleEndian.PutUint64(b[pos:], is.pat[p])
	pos += int(is.plen[p])
	switch is.pdisp[p] {
	case dispRel:
		g.rel(b, pos, byte(is.pat[p]) == opCall)
		pos += 4
	case dispImm:
		binary.LittleEndian.PutUint32(b[pos:], g.imm())
		pos += 4
	}
	return pos
}

// rel writes or schedules the displacement at b[pos:].
func (g *gen) rel(b []byte, pos int, call bool) {
	k := g.r.intn(100)
	switch {
	case call || k < 20:
		g.code.fix = append(g.code.fix, fixup{uint32(pos), fixCall, uint32(g.r.u64())})
	case k < 35:
		g.code.fix = append(g.code.fix, fixup{uint32(pos), fixString + uint8(k&1), uint32(g.r.u64())})
	case k < 80:
		binary.LittleEndian.PutUint32(b[pos:], uint32(2+g.r.skewed(300)))
	default:
		binary.LittleEndian.PutUint32(b[pos:], uint32(-8-g.r.skewed(600)))
	}
}

// function writes one function of about size bytes at b[pos:] (b must have
// size+256 bytes of room) and returns its end and the padded end.
func (g *gen) function(b []byte, pos, size int) (end, padded int) {
	is := theISA
	start := pos
	for _, p := range is.pro[g.r.intn(len(is.pro))] {
		pos = g.emit(b, pos, int(p))
	}
	for pos-start < size {
		if g.r.intn(100) < 22 {
			for _, p := range is.idioms[is.izipf.draw(&g.r)] {
				pos = g.emit(b, pos, int(p))
			}
			continue
		}
		pos = g.emit(b, pos, is.zipf.draw(&g.r))
	}
	for _, p := range is.epi[g.r.intn(len(is.epi))] {
		pos = g.emit(b, pos, int(p))
	}
	b[pos] = opRet
	pos++
	end = pos
	for pos%16 != 0 {
		b[pos] = opInt3
		pos++
	}
	return end, pos
}
