package treegen

import (
	"encoding/binary"
	"slices"
	"strconv"
)

// ELF-like binaries: a valid ELF64 file (debug/elf reads it) with
//
//	ELF header, 4 program headers, .note.package (JSON, as Fedora and systemd
//	stamp binaries), .dynsym, .dynstr | page | .text | page | .rodata | page |
//	.data (pointers) , .shstrtab, section headers
//
// Virtual addresses equal file offsets, as in a position-independent binary.

const (
	elfHeaderLen = 64
	elfPhdrLen   = 56
	elfShdrLen   = 64
	elfSymLen    = 24
	elfNumPhdr   = 4
	elfPage      = 4096
)

// Section indices.
const (
	secNote = 1 + iota
	secDynsym
	secDynstr
	secText
	secRodata
	secData
	secShstrtab
	numSections
)

var shstrtab = []byte("\x00.note.package\x00.dynsym\x00.dynstr\x00.text\x00.rodata\x00.data\x00.shstrtab\x00")

var shName = [numSections]uint32{0, 1, 15, 23, 31, 37, 45, 51}

func alignUp(n, a int) int { return (n + a - 1) &^ (a - 1) }

// elfLayout is where each part of a binary lives.
type elfLayout struct {
	off, size [numSections]int
	shoff     int
	end       int
}

func (l *elfLayout) place(noteLen, nsyms, dynstrLen, textLen, rodataLen, dataLen int) {
	l.size = [numSections]int{0, noteLen, nsyms * elfSymLen, dynstrLen, textLen, rodataLen, dataLen, len(shstrtab)}
	l.off[secNote] = elfHeaderLen + elfNumPhdr*elfPhdrLen
	l.off[secDynsym] = alignUp(l.off[secNote]+noteLen, 8)
	l.off[secDynstr] = l.off[secDynsym] + l.size[secDynsym]
	l.off[secText] = alignUp(l.off[secDynstr]+dynstrLen, elfPage)
	l.off[secRodata] = alignUp(l.off[secText]+textLen, elfPage)
	l.off[secData] = alignUp(l.off[secRodata]+rodataLen, elfPage)
	l.off[secShstrtab] = l.off[secData] + dataLen
	l.shoff = alignUp(l.off[secShstrtab]+len(shstrtab), 8)
	l.end = l.shoff + numSections*elfShdrLen
}

// padTo appends zeros up to length n.
func padTo(b []byte, n int) []byte {
	if n > len(b) {
		b = append(b, make([]byte, n-len(b))...)
	}
	return b
}

// writeHeaders fills the ELF header, program headers and section headers of
// b (already l.end long) and appends nothing.
func writeHeaders(b []byte, l *elfLayout, entry int, lib bool) {
	le := binary.LittleEndian
	copy(b, "\x7fELF\x02\x01\x01")
	le.PutUint16(b[16:], 3) // ET_DYN
	le.PutUint16(b[18:], 0x3e)
	le.PutUint32(b[20:], 1)
	if !lib {
		le.PutUint64(b[24:], uint64(entry))
	}
	le.PutUint64(b[32:], elfHeaderLen)
	le.PutUint64(b[40:], uint64(l.shoff))
	le.PutUint16(b[52:], elfHeaderLen)
	le.PutUint16(b[54:], elfPhdrLen)
	le.PutUint16(b[56:], elfNumPhdr)
	le.PutUint16(b[58:], elfShdrLen)
	le.PutUint16(b[60:], numSections)
	le.PutUint16(b[62:], secShstrtab)
	segs := [elfNumPhdr][3]int{ // flags, first section, last section
		{4, secNote, secDynstr}, {5, secText, secText}, {4, secRodata, secRodata}, {6, secData, secData},
	}
	for i, s := range segs {
		p := b[elfHeaderLen+i*elfPhdrLen:]
		start := l.off[s[1]]
		if i == 0 {
			start = 0
		}
		size := l.off[s[2]] + l.size[s[2]] - start
		le.PutUint32(p, 1) // PT_LOAD
		le.PutUint32(p[4:], uint32(s[0]))
		le.PutUint64(p[8:], uint64(start))
		le.PutUint64(p[16:], uint64(start))
		le.PutUint64(p[24:], uint64(start))
		le.PutUint64(p[32:], uint64(size))
		le.PutUint64(p[40:], uint64(size))
		le.PutUint64(p[48:], elfPage)
	}
	type shdr struct {
		typ        uint32
		flags      uint64
		link       uint32
		info       uint32
		align, ent uint64
	}
	hdrs := [numSections]shdr{
		{},
		{7, 2, 0, 0, 4, 0},           // .note.package
		{11, 2, secDynstr, 1, 8, 24}, // .dynsym
		{3, 2, 0, 0, 1, 0},           // .dynstr
		{1, 6, 0, 0, 16, 0},          // .text
		{1, 2, 0, 0, 32, 0},          // .rodata
		{1, 3, 0, 0, 8, 0},           // .data
		{3, 0, 0, 0, 1, 0},           // .shstrtab
	}
	for i, h := range hdrs {
		if i == 0 {
			continue
		}
		s := b[l.shoff+i*elfShdrLen:]
		le.PutUint32(s, shName[i])
		le.PutUint32(s[4:], h.typ)
		le.PutUint64(s[8:], h.flags)
		if h.flags&2 != 0 {
			le.PutUint64(s[16:], uint64(l.off[i]))
		}
		le.PutUint64(s[24:], uint64(l.off[i]))
		le.PutUint64(s[32:], uint64(l.size[i]))
		le.PutUint32(s[40:], h.link)
		le.PutUint32(s[44:], h.info)
		le.PutUint64(s[48:], h.align)
		le.PutUint64(s[56:], h.ent)
	}
}

// appendNote appends the .note.package payload for a package version.
func appendNote(b []byte, pkg, ver string) []byte {
	desc := `{"type":"deb","os":"debian","name":"` + pkg + `","version":"` + ver + `","architecture":"amd64"}`
	desc += "\x00"
	le := binary.LittleEndian
	b = le.AppendUint32(b, 4)
	b = le.AppendUint32(b, uint32(alignUp(len(desc), 4)))
	b = le.AppendUint32(b, 0xcafe1a7e)
	b = append(b, "FDO\x00"...)
	b = append(b, desc...)
	return padTo(b, alignUp(len(b), 4))
}

var importNames = []string{"malloc", "free", "calloc", "realloc", "memcpy", "memmove", "memset", "memcmp", "strlen",
	"strcmp", "strncmp", "strchr", "strrchr", "strdup", "snprintf", "fprintf", "printf", "fputs", "fwrite", "fopen",
	"fclose", "open", "close", "read", "write", "lseek", "fstat", "stat", "mmap", "munmap", "getenv", "setlocale",
	"dcgettext", "bindtextdomain", "textdomain", "exit", "abort", "__stack_chk_fail", "__cxa_finalize", "errno",
	"strerror", "pthread_mutex_lock", "pthread_mutex_unlock", "qsort", "bsearch", "time", "clock_gettime", "poll",
	"socket", "connect", "getopt_long", "optarg", "optind", "stdout", "stderr", "fflush", "isatty", "ioctl"}

// elfSpec says what binary to make.
type elfSpec struct {
	name    string // package
	ver     version
	lib     bool
	size    int
	program string // file name
}

// elf appends a binary of about spec.size bytes to dst.
func (g *gen) elf(dst []byte, s elfSpec) []byte {
	isa()
	base := len(dst)
	cs := &g.code
	cs.fix = cs.fix[:0]
	g.initConsts()
	g.makeIdents(24)

	// budget: .text 55%, .rodata 22%, .data 8%, symbols about 8%, pages.
	avail := max(s.size-elfHeaderLen-elfNumPhdr*elfPhdrLen-700-3*elfPage/2, 2048)
	textLen := avail * 55 / 100
	rodataLen := avail * 22 / 100
	dataLen := alignUp(avail*8/100, 8)
	nfunc := max(2, textLen/360)
	nimp := min(len(importNames), 4+nfunc/6)

	// header placeholder, note, dynsym placeholder, dynstr
	var l elfLayout
	dst = padTo(dst, base+elfHeaderLen+elfNumPhdr*elfPhdrLen)
	dst = appendNote(dst, s.name, s.ver.String())
	noteLen := len(dst) - base - elfHeaderLen - elfNumPhdr*elfPhdrLen
	nsyms := 1 + nimp + nfunc
	dst = padTo(dst, base+alignUp(len(dst)-base, 8)+nsyms*elfSymLen)
	strBase := len(dst)
	dst = append(dst, 0)
	nameOff := cs.strOff[:0] // reuse as scratch for symbol names, rebuilt below
	for i := range nimp {
		nameOff = append(nameOff, uint32(len(dst)-strBase))
		dst = append(dst, importNames[(i*7)%len(importNames)]...)
		dst = append(dst, 0)
	}
	prefix := s.name
	if len(prefix) > 8 {
		prefix = prefix[:8]
	}
	for range nfunc {
		nameOff = append(nameOff, uint32(len(dst)-strBase))
		if g.r.pct(70) {
			dst = append(dst, prefix...)
			dst = append(dst, '_')
		}
		dst = append(dst, g.ident()...)
		dst = append(dst, 0)
	}
	dynstrLen := len(dst) - strBase
	l.place(noteLen, nsyms, dynstrLen, 0, 0, 0)

	// .text
	dst = padTo(dst, base+l.off[secText])
	cs.sizes = cs.sizes[:0]
	var total int64
	for range nfunc {
		sz := g.r.logNormal(160, 400)
		cs.sizes = append(cs.sizes, sz)
		total += sz
	}
	cs.funcStart, cs.funcEnd = cs.funcStart[:0], cs.funcEnd[:0]
	pos := len(dst)
	for _, sz := range cs.sizes {
		want := int(sz * int64(textLen) / max(total, 1))
		dst = slices.Grow(dst, want+512)
		b := dst[:cap(dst)]
		end, padded := g.function(b, pos, want)
		cs.funcStart = append(cs.funcStart, uint32(pos-base))
		cs.funcEnd = append(cs.funcEnd, uint32(end-base))
		pos = padded
		dst = b[:pos]
	}
	textLen = pos - base - l.off[secText]
	for i := range cs.fix {
		cs.fix[i].pos -= uint32(base)
	}
	l.place(noteLen, nsyms, dynstrLen, textLen, 0, 0)

	// .rodata
	dst = padTo(dst, base+l.off[secRodata])
	names := slices.Clone(nameOff) // strOff is about to be reused
	dst = g.rodata(dst, rodataLen, s)
	rodataLen = len(dst) - base - l.off[secRodata]
	l.place(noteLen, nsyms, dynstrLen, textLen, rodataLen, dataLen)

	// .data
	dst = padTo(dst, base+l.off[secData])
	dst = g.data(dst, dataLen, &l)
	dst = append(dst, shstrtab...)
	dst = padTo(dst, base+l.end)
	b := dst[base:]
	g.applyFixups(b, &l)
	writeHeaders(b, &l, int(cs.funcStart[0]), s.lib)
	writeDynsym(b[l.off[secDynsym]:], names[:nimp], names[nimp:], cs.funcStart, cs.funcEnd)
	return dst
}

// writeDynsym fills .dynsym: imports (undefined), then functions.
func writeDynsym(b []byte, imports, funcs []uint32, start, end []uint32) {
	le := binary.LittleEndian
	b = b[elfSymLen:]
	for _, n := range imports {
		le.PutUint32(b, n)
		b[4] = 0x12 // GLOBAL FUNC
		b = b[elfSymLen:]
	}
	for i, n := range funcs {
		le.PutUint32(b, n)
		b[4] = 0x12
		le.PutUint16(b[6:], secText)
		le.PutUint64(b[8:], uint64(start[i]))
		le.PutUint64(b[16:], uint64(end[i]-start[i]))
		b = b[elfSymLen:]
	}
}

// applyFixups resolves scheduled displacements against the final layout. b is
// the whole binary; the fixups' positions are relative to it.
func (g *gen) applyFixups(b []byte, l *elfLayout) {
	cs := &g.code
	nslots := uint32(max(l.size[secData]/8, 1))
	for _, f := range cs.fix {
		var target uint32
		switch f.kind {
		case fixCall:
			target = cs.funcStart[f.pick%uint32(len(cs.funcStart))]
		case fixString:
			target = uint32(l.off[secRodata]) + cs.strOff[f.pick%uint32(len(cs.strOff))]
		default:
			target = uint32(l.off[secData]) + 8*(f.pick%nslots)
		}
		binary.LittleEndian.PutUint32(b[f.pos:], target-(f.pos+4))
	}
}

var fmtSpecs = []string{"%s", "%d", "%u", "%lu", "%x", "%zu", "%p", "%.*s", "%c"}

// rodata appends about n bytes of read-only data: messages, paths, option
// names, the version string (with room to grow), and a few integer tables.
// It records string starts in code.strOff.
func (g *gen) rodata(dst []byte, n int, s elfSpec) []byte {
	cs := &g.code
	base := len(dst)
	cs.strOff = cs.strOff[:0]
	str := func() { cs.strOff = append(cs.strOff, uint32(len(dst)-base)) }
	str()
	dst = append(dst, s.program...)
	dst = append(dst, ' ')
	dst = append(dst, s.ver.upstream()...)
	dst = append(dst, make([]byte, 8)...)
	str()
	dst = append(dst, s.ver.upstream()...)
	dst = append(dst, make([]byte, 8)...)
	// message stems this program repeats ("cannot open", "invalid value for")
	stems := cs.stems[:0]
	stemEnd := cs.stemEnd[:0]
	for range 24 {
		g.width, g.indent, g.col = 1000, "", 0
		for range 2 + g.r.skewed(5) {
			stems = g.put(stems, g.word())
		}
		stemEnd = append(stemEnd, len(stems))
	}
	cs.stems, cs.stemEnd = stems, stemEnd
	for len(dst)-base < n {
		str()
		switch k := g.r.intn(100); {
		case k < 25:
			i := g.r.skewed(len(stemEnd))
			if g.r.pct(60) {
				dst = append(dst, s.program...)
				dst = append(dst, ": "...)
			}
			from := 0
			if i > 0 {
				from = stemEnd[i-1]
			}
			dst = append(dst, stems[from:stemEnd[i]]...)
			dst = append(dst, ' ')
			dst = append(dst, fmtSpecs[g.r.skewed(len(fmtSpecs))]...)
			if g.r.pct(40) {
				dst = append(dst, ": %s"...)
			}
			if g.r.pct(50) {
				dst = append(dst, '\n')
			}
		case k < 50:
			g.width, g.indent, g.col = 1000, "", 0
			if g.r.pct(40) {
				dst = append(dst, s.program...)
				dst = append(dst, ": "...)
			}
			dst = g.sentence(dst)
			dst = dst[:len(dst)-1]
			for range g.r.skewed(3) {
				dst = append(dst, ' ')
				dst = append(dst, fmtSpecs[g.r.skewed(len(fmtSpecs))]...)
			}
			if g.r.pct(50) {
				dst = append(dst, '\n')
			}
		case k < 65:
			dst = append(dst, g.ident()...)
		case k < 72:
			dst = append(dst, [...]string{"/etc/", "/usr/share/", "/var/lib/", "/usr/lib/", "/run/"}[g.r.intn(5)]...)
			dst = append(dst, s.name...)
			dst = append(dst, '/')
			dst = append(dst, g.ident()...)
		case k < 83:
			dst = append(dst, "  -"...)
			dst = append(dst, 'a'+byte(g.r.intn(26)), ',', ' ', '-', '-')
			dst = append(dst, g.ident()...)
			dst = append(dst, "\t\t"...)
			g.width, g.indent, g.col = 1000, "", 0
			dst = g.sentence(dst)
			dst = append(dst, '\n')
		case k < 90:
			dst = strconv.AppendInt(dst, int64(g.r.skewed(100000)), 10)
		default: // an aligned table of small integers
			dst = padTo(dst, base+alignUp(len(dst)-base, 16))
			v := uint32(g.r.skewed(1000))
			step := uint32(g.r.skewed(64))
			for range 4 + g.r.skewed(120) {
				dst = binary.LittleEndian.AppendUint32(dst, v)
				v += step
				if g.r.pct(10) {
					v += uint32(g.r.skewed(1000))
				}
			}
		}
		dst = append(dst, 0)
	}
	return dst
}

// data appends n bytes of .data/.got: runs of pointers (vtables, string
// tables), zeros and small integers. Pointers are file offsets of functions
// and strings, so they share their high bytes.
func (g *gen) data(dst []byte, n int, l *elfLayout) []byte {
	cs := &g.code
	le := binary.LittleEndian
	end := len(dst) + n
	for len(dst) < end {
		k := g.r.intn(100)
		for range 1 + g.r.skewed(16) {
			if len(dst) >= end {
				break
			}
			var v uint64
			switch {
			case k < 30:
				v = uint64(cs.funcStart[g.r.intn(len(cs.funcStart))])
			case k < 45:
				v = uint64(l.off[secRodata]) + uint64(cs.strOff[g.r.intn(len(cs.strOff))])
			case k < 85:
			case k < 98:
				v = uint64(g.r.skewed(4096))
			default:
				v = g.r.u64()
			}
			dst = le.AppendUint64(dst, v)
		}
	}
	return dst[:end]
}
