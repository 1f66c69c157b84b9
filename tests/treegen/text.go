package treegen

import (
	"encoding/binary"
	"strconv"
)

// gen is one worker's generator: the random stream of the file being made,
// that file's topic words and identifiers, and scratch space reused from file
// to file so steady-state generation does not allocate.
type gen struct {
	r rng
	l *language

	topic    [48]int  // this file's topic words (ranks)
	prev     int      // rank of the last word drawn
	idents   [][]byte // this file's identifiers, most used first
	classes  [][]byte // this file's class names
	identBuf []byte

	// line state for wrapped text
	col    int
	width  int
	indent string

	tok  [64]byte
	code codeScratch
}

func newGen() *gen { return &gen{l: lang()} }

// reset starts a new file.
func (g *gen) reset(seed uint64) {
	g.r = newRNG(seed)
	g.prev, g.col, g.width, g.indent = 0, 0, 1000, ""
	for i := range g.topic {
		g.topic[i] = 64 + g.l.content.draw(&g.r)
	}
	g.idents, g.classes, g.identBuf = g.idents[:0], g.classes[:0], g.identBuf[:0]
}

// word returns a word: a topic word of this file or a word of the language.
func (g *gen) word() []byte {
	k := g.r.intn(100)
	switch {
	case k < bigramPct:
		g.prev = int(g.l.next[g.prev][g.r.skewed(4)])
	case k < bigramPct+topicPct:
		g.prev = g.topic[g.r.skewed(len(g.topic))]
	default:
		g.prev = g.l.zipf.draw(&g.r)
	}
	return g.l.words[g.prev]
}

var bigramPct, topicPct = 65, 20

// makeIdents fills the file's identifiers: n snake_case names and a few
// CamelCase class names.
func (g *gen) makeIdents(n int) {
	for range n {
		start := len(g.identBuf)
		parts := 1 + g.r.intn(3)
		if g.r.pct(50) {
			parts = 2
		}
		for p := range parts {
			if p > 0 {
				g.identBuf = append(g.identBuf, '_')
			}
			g.identBuf = append(g.identBuf, g.word()...)
		}
		g.idents = append(g.idents, g.identBuf[start:len(g.identBuf):len(g.identBuf)])
	}
	for range 3 + n/10 {
		start := len(g.identBuf)
		for range 1 + g.r.skewed(3) {
			w := g.word()
			g.identBuf = append(g.identBuf, w[0]-32)
			g.identBuf = append(g.identBuf, w[1:]...)
		}
		g.classes = append(g.classes, g.identBuf[start:len(g.identBuf):len(g.identBuf)])
	}
}

func (g *gen) ident() []byte {
	if g.r.intn(100) < 4 {
		return g.word()
	}
	n := len(g.idents)
	return g.idents[min(g.r.intn(n), g.r.intn(n), g.r.intn(n))]
}

func (g *gen) class() []byte { return g.classes[g.r.skewed(len(g.classes))] }

// put appends a token to wrapped text.
func (g *gen) put(dst []byte, w []byte) []byte {
	if g.col > len(g.indent) {
		if g.col+1+len(w) > g.width {
			dst = append(dst, '\n')
			dst = append(dst, g.indent...)
			g.col = len(g.indent)
		} else {
			dst = append(dst, ' ')
			g.col++
		}
	}
	g.col += len(w)
	return appendWord(dst, w)
}

// appendWord appends w; words of the language take a fast path without a
// memmove call.
func appendWord(dst, w []byte) []byte {
	n := len(dst)
	if len(w) > 16 || cap(w) < 16 || cap(dst)-n < 16 {
		return append(dst, w...)
	}
	b := dst[n : n+16]
	ww := w[:16]
	binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(ww))
	binary.LittleEndian.PutUint64(b[8:], binary.LittleEndian.Uint64(ww[8:]))
	return dst[:n+len(w)]
}

func (g *gen) startLines(dst []byte, width int, indent string) []byte {
	g.width, g.indent, g.col = width, indent, len(indent)
	return append(dst, indent...)
}

// sentence appends one sentence to wrapped text.
func (g *gen) sentence(dst []byte) []byte {
	n := 3 + g.r.skewed(22)
	for i := 0; i < n; i++ {
		var w []byte
		switch k := g.r.intn(100); {
		case k < 9:
			p := g.l.phrases[g.l.pzipf.draw(&g.r)]
			for j, rank := range p {
				dst = g.put(dst, g.l.words[rank])
				if i == 0 && j == 0 {
					dst[len(dst)-len(g.l.words[rank])] -= 32
				}
			}
			i += len(p) - 1
			continue
		case k < 10:
			w = strconv.AppendInt(g.tok[:0], int64(g.r.skewed(2000)), 10)
		case k < 12:
			b := append(g.tok[:0], "--"...)
			b = append(b, g.word()...)
			if g.r.pct(50) {
				b = append(append(b, '-'), g.word()...)
			}
			w = b
		case k < 13:
			b := append(g.tok[:0], "/usr/share/"...)
			w = append(b, g.word()...)
		default:
			w = g.word()
		}
		dst = g.put(dst, w)
		if i == 0 && w[0] >= 'a' && w[0] <= 'z' {
			dst[len(dst)-len(w)] -= 32
		}
		if i < n-1 && g.r.intn(100) < 7 {
			dst = append(dst, ',')
			g.col++
		}
	}
	end := byte('.')
	if g.r.intn(100) < 4 {
		end = ':'
	}
	g.col++
	return append(dst, end)
}

// prose appends about n bytes of paragraphs wrapped at width.
func (g *gen) prose(dst []byte, n, width int, indent string) []byte {
	end := len(dst) + n
	for len(dst) < end {
		dst = g.startLines(dst, width, indent)
		for range 1 + g.r.skewed(7) {
			dst = g.sentence(dst)
		}
		dst = append(dst, '\n', '\n')
	}
	return dst
}

// markdown appends about n bytes of a README-like document.
func (g *gen) markdown(dst []byte, n int, title string) []byte {
	end := len(dst) + n
	g.makeIdents(12)
	dst = append(dst, title...)
	dst = append(dst, "\n=========\n\n"...)
	for len(dst) < end {
		switch g.r.intn(10) {
		case 0:
			dst = append(dst, "## "...)
			dst = g.startLines(dst, 200, "")
			dst = g.put(dst, g.word())
			dst[len(dst)-g.col] -= 32
			dst = g.put(dst, g.word())
			dst = append(dst, "\n\n"...)
		case 1:
			for range 2 + g.r.intn(5) {
				dst = g.startLines(dst, 76, "  ")
				dst[len(dst)-2] = '*'
				dst = g.sentence(dst)
				dst = append(dst, '\n')
			}
			dst = append(dst, '\n')
		case 2:
			dst = append(dst, "    $ "...)
			dst = append(dst, title...)
			for range 1 + g.r.intn(3) {
				dst = append(dst, " --"...)
				dst = append(dst, g.ident()...)
			}
			dst = append(dst, "\n\n"...)
		default:
			dst = g.prose(dst, 1, 72+g.r.intn(8), "")
		}
	}
	return dst
}

// Versions and dates.

type version struct{ maj, min, pat, deb int }

func (v version) upstream() string {
	return strconv.Itoa(v.maj) + "." + strconv.Itoa(v.min) + "." + strconv.Itoa(v.pat)
}
func (v version) String() string { return v.upstream() + "-" + strconv.Itoa(v.deb) }

func parseVersion(s string) (version, bool) {
	var v version
	var parts [4]int
	i := 0
	cur, digits := 0, 0
	for j := 0; j <= len(s); j++ {
		if j < len(s) && s[j] >= '0' && s[j] <= '9' {
			cur = cur*10 + int(s[j]-'0')
			digits++
			continue
		}
		if digits == 0 || i == 4 {
			return v, false
		}
		parts[i], i, cur, digits = cur, i+1, 0, 0
		if j < len(s) && ((i < 3 && s[j] != '.') || (i == 3 && s[j] != '-') || i == 4) {
			return v, false
		}
	}
	if i != 4 {
		return v, false
	}
	return version{parts[0], parts[1], parts[2], parts[3]}, true
}

// older returns a plausible previous version, false for the first release.
func (v version) older(r *rng) (version, bool) {
	switch {
	case v.deb > 1:
		v.deb--
	case v.pat > 0:
		v.pat, v.deb = v.pat-1, 1+r.skewed(3)
	case v.min > 0:
		v.min, v.pat, v.deb = v.min-1, r.skewed(10), 1+r.skewed(3)
	case v.maj > 0:
		v.maj, v.min, v.pat, v.deb = v.maj-1, r.skewed(12), r.skewed(6), 1+r.skewed(3)
	default:
		return v, false
	}
	return v, true
}

// newer returns the next upstream release.
func (v version) newer(r *rng) version {
	if r.pct(75) {
		return version{v.maj, v.min, v.pat + 1, 1}
	}
	return version{v.maj, v.min + 1, 0, 1}
}

var (
	dayNames   = [7]string{"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"} // 1970-01-01 was a Thursday
	monthNames = [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
)

// appendDate appends an RFC 2822 date for a day number since 1970 and a
// second of that day.
func appendDate(dst []byte, day, sec int) []byte {
	// civil from days (Howard Hinnant)
	z := day + 719468
	era := z / 146097
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	dst = append(dst, dayNames[day%7]...)
	dst = append(dst, ", "...)
	dst = appendPad(dst, d, 2)
	dst = append(dst, ' ')
	dst = append(dst, monthNames[m-1]...)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(y), 10)
	dst = append(dst, ' ')
	dst = appendPad(dst, sec/3600, 2)
	dst = append(dst, ':')
	dst = appendPad(dst, sec/60%60, 2)
	dst = append(dst, ':')
	dst = appendPad(dst, sec%60, 2)
	return append(dst, " +0000"...)
}

func appendPad(dst []byte, v, w int) []byte {
	var b [20]byte
	s := strconv.AppendInt(b[:0], int64(v), 10)
	for i := len(s); i < w; i++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

// person is a maintainer: "Name Surname <name.surname@domain.org>".
func person(seed uint64) string {
	r := newRNG(seed)
	l := lang()
	cap := func(w []byte) string { return string(w[0]-32) + string(w[1:]) }
	first := l.words[64+r.intn(1500)]
	last := l.words[64+r.intn(3000)]
	dom := l.words[64+r.intn(3000)]
	return cap(first) + " " + cap(last) + " <" + string(first) + "." + string(last) + "@" + string(dom) + ".org>"
}

// changelogEntry appends one Debian changelog entry.
func (g *gen) changelogEntry(dst []byte, pkg string, v version, maint string, day int, first bool) []byte {
	dst = append(dst, pkg...)
	dst = append(dst, " ("...)
	dst = append(dst, v.String()...)
	dst = append(dst, ") unstable; urgency="...)
	if g.r.pct(85) {
		dst = append(dst, "medium\n\n"...)
	} else {
		dst = append(dst, "high\n\n"...)
	}
	switch {
	case first:
		dst = append(dst, "  * Initial release. (Closes: #"...)
		dst = strconv.AppendInt(dst, int64(100000+g.r.intn(900000)), 10)
		dst = append(dst, ")\n"...)
	default:
		if v.deb == 1 {
			dst = append(dst, "  * New upstream release.\n"...)
		}
		for range 1 + g.r.skewed(9) {
			dst = g.startLines(dst, 78, "    ")
			dst[len(dst)-2] = '*'
			dst = g.sentence(dst)
			if g.r.pct(30) {
				dst = append(dst, " (Closes: #"...)
				dst = strconv.AppendInt(dst, int64(100000+g.r.intn(900000)), 10)
				dst = append(dst, ')')
			}
			dst = append(dst, '\n')
		}
	}
	dst = append(dst, "\n -- "...)
	dst = append(dst, maint...)
	dst = append(dst, "  "...)
	dst = appendDate(dst, day, g.r.intn(86400))
	return append(dst, "\n\n"...)
}

// changelog appends entries, newest first, until about n bytes.
func (g *gen) changelog(dst []byte, n int, pkg string, v version, maint string, day int) []byte {
	end := len(dst) + n
	for {
		prev, ok := v.older(&g.r)
		ok = ok && day > 9000 // 1994
		dst = g.changelogEntry(dst, pkg, v, maint, day, !ok)
		if !ok || len(dst) >= end {
			return dst
		}
		v = prev
		day -= 3 + g.r.skewed(120)
	}
}

// config appends about n bytes of a configuration file.
func (g *gen) config(dst []byte, n int) []byte {
	end := len(dst) + n
	g.makeIdents(6 + g.r.intn(8))
	sep := [...]string{" = ", "=", " ", ": "}[g.r.intn(4)]
	camel := g.r.pct(40)
	for len(dst) < end {
		if g.r.pct(20) {
			dst = append(dst, '[')
			dst = append(dst, g.class()...)
			dst = append(dst, "]\n"...)
		}
		key := g.class()
		if !camel {
			key = g.ident()
		}
		if g.r.pct(15) {
			dst = append(dst, "#########################################################################\n"...)
		}
		if g.r.pct(40) {
			dst = append(dst, "# "...)
			dst = append(dst, key...)
			dst = append(dst, ": "...)
		}
		for range g.r.skewed(4) {
			dst = g.startLines(dst, 72, "# ")
			dst = g.sentence(dst)
			dst = append(dst, '\n')
		}
		if g.r.pct(30) {
			dst = append(dst, "# Default: "...)
			dst = g.value(dst)
			dst = append(dst, '\n')
		}
		for i := range 1 + g.r.skewed(4) {
			if g.r.pct(50) {
				dst = append(dst, '#')
			}
			if i > 0 {
				key = g.class()
				if !camel {
					key = g.ident()
				}
			}
			dst = append(dst, key...)
			dst = append(dst, sep...)
			dst = g.value(dst)
			dst = append(dst, '\n')
		}
		dst = append(dst, '\n')
	}
	return dst
}

func (g *gen) value(dst []byte) []byte {
	switch g.r.intn(8) {
	case 0:
		return append(dst, [...]string{"yes", "no", "true", "false", "on", "off"}[g.r.intn(6)]...)
	case 1, 2:
		return strconv.AppendInt(dst, int64(g.r.skewed(1<<g.r.intn(17))), 10)
	case 3:
		dst = append(dst, [...]string{"/etc/", "/var/lib/", "/usr/share/", "/run/", "/var/log/"}[g.r.intn(5)]...)
		dst = append(dst, g.ident()...)
		return dst
	case 4:
		dst = strconv.AppendInt(dst, int64(1+g.r.skewed(120)), 10)
		return append(dst, [...]string{"s", "m", "h", "ms", "min"}[g.r.intn(5)]...)
	default:
		return append(dst, g.ident()...)
	}
}
