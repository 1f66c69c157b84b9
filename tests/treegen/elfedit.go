package treegen

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
)

// Rebuilding a binary the way a new upstream release does: some functions
// edited (instruction runs deleted and inserted), everything after an edit
// moves, so every displacement that crosses an edit point, every pointer in
// .data and every symbol value changes; the version strings in .rodata and
// .note.package change and a few new strings appear.

// instr is a decoded instruction of .text.
type instr struct {
	off  uint32 // section-relative
	size uint8
	disp uint8
}

// anchor maps an old text offset to a new one.
type anchor struct{ old, new uint32 }

// errNotGenerated is returned for a binary treegen did not make.
var errNotGenerated = errors.New("not a treegen binary")

// rebuildELF returns the next build of binary old: version newVer, about
// changePct percent of its functions edited.
func (g *gen) rebuildELF(old []byte, pkg string, oldVer, newVer version, changePct int) ([]byte, error) {
	f, err := elf.NewFile(bytes.NewReader(old))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNotGenerated, err)
	}
	var ol elfLayout
	for i, name := range []string{"", ".note.package", ".dynsym", ".dynstr", ".text", ".rodata", ".data", ".shstrtab"} {
		if i == 0 {
			continue
		}
		s := f.Section(name)
		if s == nil || s.Offset+s.Size > uint64(len(old)) {
			return nil, fmt.Errorf("%w: no section %s", errNotGenerated, name)
		}
		ol.off[i], ol.size[i] = int(s.Offset), int(s.Size)
	}
	lib := f.Entry == 0
	section := func(i int) []byte { return old[ol.off[i] : ol.off[i]+ol.size[i]] }
	is := isa()
	cs := &g.code
	g.initConsts()
	g.makeIdents(24)

	// decode .text
	text := section(secText)
	instrs := cs.instrs[:0]
	for pos := 0; pos < len(text); {
		op := text[pos]
		size := is.opLen[op]
		if is.opDisp[op] != dispNone {
			size += 4
		}
		instrs = append(instrs, instr{uint32(pos), size, is.opDisp[op]})
		pos += int(size)
		if pos > len(text) {
			return nil, fmt.Errorf("%w: .text does not decode", errNotGenerated)
		}
	}
	cs.instrs = instrs

	// functions, from .dynsym
	le := binary.LittleEndian
	syms := slices.Clone(section(secDynsym))
	type fn struct{ start, end uint32 } // text-relative
	var funcs []fn
	for s := syms[elfSymLen:]; len(s) >= elfSymLen; s = s[elfSymLen:] {
		if le.Uint16(s[6:]) == secText {
			v := uint32(le.Uint64(s[8:])) - uint32(ol.off[secText])
			funcs = append(funcs, fn{v, v + uint32(le.Uint64(s[16:]))})
		}
	}
	slices.SortFunc(funcs, func(a, b fn) int { return int(a.start) - int(b.start) })

	// rodata string starts, for new references
	rodata := slices.Clone(section(secRodata))
	cs.strOff = cs.strOff[:0]
	for i := 1; i < len(rodata) && len(cs.strOff) < 8192; i++ {
		if rodata[i-1] == 0 && rodata[i] != 0 {
			cs.strOff = append(cs.strOff, uint32(i))
		}
	}
	if len(cs.strOff) == 0 {
		cs.strOff = append(cs.strOff, 0)
	}

	// new .text
	nt := make([]byte, 0, len(text)+len(text)/8+4096)
	anchors := cs.anchors[:0]
	type reloc struct{ pos, oldTarget int64 } // new text-relative field position, old file address
	var relocs []reloc
	cs.fix = cs.fix[:0]
	newStart := make([]uint32, len(funcs))
	newEnd := make([]uint32, len(funcs))
	keep := func(in instr) {
		anchors = append(anchors, anchor{in.off, uint32(len(nt))})
		nt = append(nt, text[in.off:in.off+uint32(in.size)]...)
		if in.disp == dispRel {
			end := in.off + uint32(in.size)
			d := int32(le.Uint32(text[end-4:]))
			relocs = append(relocs, reloc{int64(len(nt) - 4), int64(ol.off[secText]) + int64(end) + int64(d)})
		}
	}
	insert := func(n int) {
		for range n {
			nt = slices.Grow(nt, 16)
			b := nt[:cap(nt)]
			pos := g.emit(b, len(nt), is.zipf.draw(&g.r))
			nt = b[:pos]
		}
	}
	k := 0 // next instruction
	for fi, fu := range funcs {
		for k < len(instrs) && instrs[k].off < fu.start {
			k++ // padding
		}
		first := k
		for k < len(instrs) && instrs[k].off < fu.end {
			k++
		}
		body := instrs[first:k]
		newStart[fi] = uint32(len(nt))
		switch {
		case len(body) > 8 && g.r.intn(100) < changePct:
			// edit points after the prologue
			var points []int
			for range 1 + g.r.skewed(3) {
				points = append(points, 3+g.r.intn(len(body)-4))
			}
			slices.Sort(points)
			for i := 0; i < len(body); i++ {
				if len(points) > 0 && i >= points[0] {
					for len(points) > 0 && points[0] <= i {
						points = points[1:]
					}
					if g.r.pct(3) { // rewritten
						insert(len(body) - 4 + g.r.intn(len(body)/2+1))
						i = len(body) - 2
						continue
					}
					insert(1 + g.r.skewed(24))
					del := g.r.skewed(12)
					if i+del >= len(body)-1 {
						del = 0
					}
					if del > 0 {
						i += del - 1
						continue
					}
				}
				keep(body[i])
			}
		default:
			for _, in := range body {
				keep(in)
			}
		}
		newEnd[fi] = uint32(len(nt))
		for len(nt)%16 != 0 {
			nt = append(nt, opInt3)
		}
	}
	cs.anchors = anchors

	// new .rodata: version strings replaced in place, new messages appended
	replaceVersion(rodata, oldVer.upstream(), newVer.upstream())
	g.width, g.indent = 1000, ""
	for range 3 + g.r.skewed(30) {
		g.col = 0
		rodata = g.sentence(rodata)
		rodata = append(rodata[:len(rodata)-1], 0)
	}
	note := appendNote(nil, pkg, newVer.String())
	data := slices.Clone(section(secData))

	var nl elfLayout
	nl.place(len(note), ol.size[secDynsym]/elfSymLen, ol.size[secDynstr], len(nt), len(rodata), len(data))
	mapAddr := func(a int64) int64 {
		switch {
		case a < int64(ol.off[secText]):
			return a
		case a < int64(ol.off[secText]+ol.size[secText]):
			rel := uint32(a - int64(ol.off[secText]))
			i := sort.Search(len(anchors), func(i int) bool { return anchors[i].old > rel }) - 1
			if i < 0 {
				return int64(nl.off[secText]) + int64(rel)
			}
			return int64(nl.off[secText]) + int64(anchors[i].new) + int64(rel-anchors[i].old)
		case a < int64(ol.off[secData]):
			return a - int64(ol.off[secRodata]) + int64(nl.off[secRodata])
		}
		return a - int64(ol.off[secData]) + int64(nl.off[secData])
	}
	for _, r := range relocs {
		at := int64(nl.off[secText]) + r.pos
		le.PutUint32(nt[r.pos:], uint32(mapAddr(r.oldTarget)-(at+4)))
	}
	for i := 0; i+8 <= len(data); i += 8 {
		if v := le.Uint64(data[i:]); v >= uint64(ol.off[secText]) && v < uint64(ol.off[secData]+len(data)) {
			le.PutUint64(data[i:], uint64(mapAddr(int64(v))))
		}
	}
	// symbols
	for s := syms[elfSymLen:]; len(s) >= elfSymLen; s = s[elfSymLen:] {
		if le.Uint16(s[6:]) != secText {
			continue
		}
		v := uint32(le.Uint64(s[8:])) - uint32(ol.off[secText])
		fi := sort.Search(len(funcs), func(i int) bool { return funcs[i].start >= v })
		if fi < len(funcs) && funcs[fi].start == v {
			le.PutUint64(s[8:], uint64(nl.off[secText])+uint64(newStart[fi]))
			le.PutUint64(s[16:], uint64(newEnd[fi]-newStart[fi]))
		}
	}
	// new instructions' targets
	cs.funcStart = cs.funcStart[:0]
	for _, s := range newStart {
		cs.funcStart = append(cs.funcStart, uint32(nl.off[secText])+s)
	}
	if len(cs.funcStart) == 0 {
		cs.funcStart = append(cs.funcStart, uint32(nl.off[secText]))
	}
	for i := range cs.fix {
		cs.fix[i].pos += uint32(nl.off[secText])
	}

	out := make([]byte, 0, nl.end)
	out = padTo(out, nl.off[secNote])
	out = append(out, note...)
	out = padTo(out, nl.off[secDynsym])
	out = append(out, syms...)
	out = append(out, section(secDynstr)...)
	out = padTo(out, nl.off[secText])
	out = append(out, nt...)
	out = padTo(out, nl.off[secRodata])
	out = append(out, rodata...)
	out = padTo(out, nl.off[secData])
	out = append(out, data...)
	out = append(out, shstrtab...)
	out = padTo(out, nl.end)
	g.applyFixups(out, &nl)
	writeHeaders(out, &nl, int(cs.funcStart[0]), lib)
	return out, nil
}

// replaceVersion overwrites NUL-terminated occurrences of version old in
// rodata with new where the zero padding after them leaves room.
func replaceVersion(rodata []byte, old, new string) {
	pat := []byte(old + "\x00")
	for i := 0; ; {
		j := bytes.Index(rodata[i:], pat)
		if j < 0 {
			return
		}
		at := i + j
		i = at + len(pat)
		if at > 0 && rodata[at-1] != ' ' && rodata[at-1] != 0 {
			continue
		}
		room := len(old)
		for at+room < len(rodata) && rodata[at+room] == 0 && room < len(old)+8 {
			room++
		}
		if len(new)+1 > room {
			continue
		}
		clear(rodata[at : at+room])
		copy(rodata[at:], new)
	}
}
