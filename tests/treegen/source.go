package treegen

import "strconv"

// Source code in the text model: Python modules and shell scripts built from
// statement templates over the file's own identifiers, so names repeat the way
// they do in real code.

func (g *gen) line(dst []byte, depth int) []byte {
	for range depth {
		dst = append(dst, "    "...)
	}
	return dst
}

func (g *gen) pyString(dst []byte) []byte {
	dst = append(dst, '"')
	for i := range 1 + g.r.skewed(6) {
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = append(dst, g.word()...)
	}
	if g.r.pct(30) {
		dst = append(dst, ": %s"...)
	}
	return append(dst, '"')
}

func (g *gen) pyExpr(dst []byte, depth int) []byte {
	kw := g.l.pyKw
	k := g.r.intn(14)
	if depth > 2 && k > 8 {
		k = 0
	}
	switch k {
	case 0, 1, 2:
		return append(dst, g.ident()...)
	case 3:
		dst = append(dst, "self."...)
		return append(dst, g.ident()...)
	case 4:
		return g.pyString(dst)
	case 5:
		return strconv.AppendInt(dst, int64(g.r.skewed(300)), 10)
	case 6:
		return append(dst, [...]string{"None", "True", "False", "0", "1", "[]", "{}"}[g.r.intn(7)]...)
	case 7:
		dst = append(dst, g.ident()...)
		dst = append(dst, '.')
		return append(dst, g.ident()...)
	case 8:
		dst = append(dst, g.ident()...)
		dst = append(dst, '[')
		dst = g.pyExpr(dst, depth+1)
		return append(dst, ']')
	case 9, 10:
		if g.r.pct(40) {
			dst = append(dst, "self."...)
		}
		dst = append(dst, g.ident()...)
		dst = append(dst, '(')
		for i := range g.r.skewed(4) {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			if g.r.pct(20) {
				dst = append(dst, g.ident()...)
				dst = append(dst, '=')
			}
			dst = g.pyExpr(dst, depth+1)
		}
		return append(dst, ')')
	case 11:
		dst = g.pyExpr(dst, depth+1)
		dst = append(dst, [...]string{" + ", " == ", " and ", " or ", " - ", " in ", " is not ", " != "}[g.r.intn(8)]...)
		return g.pyExpr(dst, depth+1)
	case 12:
		dst = append(dst, kw[g.r.intn(len(kw))]...)
		dst = append(dst, '(')
		dst = append(dst, g.ident()...)
		return append(dst, ')')
	default:
		dst = append(dst, '[')
		dst = g.pyExpr(dst, depth+1)
		dst = append(dst, " for "...)
		x := g.ident()
		dst = append(dst, x...)
		dst = append(dst, " in "...)
		dst = append(dst, g.ident()...)
		return append(dst, ']')
	}
}

// pyBlock appends statements at depth; it may nest.
func (g *gen) pyBlock(dst []byte, depth, n int) []byte {
	for range n {
		dst = g.line(dst, depth)
		switch k := g.r.intn(20); {
		case k < 5:
			if g.r.pct(50) {
				x := g.ident()
				dst = append(dst, "self."...)
				dst = append(dst, x...)
				dst = append(dst, " = "...)
				dst = append(dst, x...)
				break
			}
			dst = append(dst, g.ident()...)
			dst = append(dst, " = "...)
			dst = g.pyExpr(dst, 0)
		case k < 7:
			dst = append(dst, "return "...)
			dst = g.pyExpr(dst, 0)
		case k < 9 && depth < 4:
			dst = append(dst, [...]string{"if ", "elif ", "while ", "if not "}[g.r.skewed(4)]...)
			dst = g.pyExpr(dst, 1)
			dst = append(dst, ":\n"...)
			dst = g.pyBlock(dst, depth+1, 1+g.r.skewed(4))
			continue
		case k < 10 && depth < 4:
			dst = append(dst, "for "...)
			dst = append(dst, g.ident()...)
			dst = append(dst, " in "...)
			dst = g.pyExpr(dst, 1)
			dst = append(dst, ":\n"...)
			dst = g.pyBlock(dst, depth+1, 1+g.r.skewed(4))
			continue
		case k < 11 && depth < 4:
			dst = append(dst, "try:\n"...)
			dst = g.pyBlock(dst, depth+1, 1+g.r.skewed(3))
			dst = g.line(dst, depth)
			dst = append(dst, "except "...)
			dst = append(dst, g.class()...)
			dst = append(dst, "Error as e:\n"...)
			dst = g.line(dst, depth+1)
			dst = append(dst, "logger.warning("...)
			dst = g.pyString(dst)
			dst = append(dst, ", e)\n"...)
			continue
		case k < 12:
			dst = append(dst, "raise "...)
			dst = append(dst, g.class()...)
			dst = append(dst, "Error("...)
			dst = g.pyString(dst)
			dst = append(dst, ')')
		case k < 13:
			dst = append(dst, "# "...)
			g.width, g.indent, g.col = 1000, "", 0
			dst = g.sentence(dst)
		case k < 14:
			dst = append(dst, "logger.debug("...)
			dst = g.pyString(dst)
			dst = append(dst, ", "...)
			dst = append(dst, g.ident()...)
			dst = append(dst, ')')
		default:
			dst = g.pyExpr(dst, 0)
		}
		dst = append(dst, '\n')
	}
	return dst
}

func (g *gen) pyDef(dst []byte, depth int, method bool) []byte {
	dst = g.line(dst, depth)
	dst = append(dst, "def "...)
	if g.r.pct(30) {
		dst = append(dst, '_')
	}
	dst = append(dst, g.ident()...)
	dst = append(dst, '(')
	if method {
		dst = append(dst, "self"...)
	}
	for i := range g.r.skewed(5) {
		if i > 0 || method {
			dst = append(dst, ", "...)
		}
		dst = append(dst, g.ident()...)
		if g.r.pct(25) {
			dst = append(dst, "=None"...)
		}
	}
	dst = append(dst, "):\n"...)
	if g.r.pct(50) {
		dst = g.line(dst, depth+1)
		dst = append(dst, `"""`...)
		dst = g.startLines(dst, 72, "")
		dst = g.sentence(dst)
		dst = append(dst, "\"\"\"\n"...)
	}
	dst = g.pyBlock(dst, depth+1, 2+g.r.skewed(14))
	return append(dst, '\n')
}

// python appends about n bytes of a Python module.
func (g *gen) python(dst []byte, n int, pkg string) []byte {
	end := len(dst) + n
	g.makeIdents(16 + g.r.intn(24))
	dst = append(dst, `"""`...)
	dst = g.startLines(dst, 72, "")
	dst = g.sentence(dst)
	dst = append(dst, "\n\"\"\"\n\n"...)
	for range 1 + g.r.skewed(8) {
		if g.r.pct(50) {
			dst = append(dst, "import "...)
			dst = append(dst, g.word()...)
		} else {
			dst = append(dst, "from "...)
			dst = append(dst, pkg...)
			dst = append(dst, '.')
			dst = append(dst, g.ident()...)
			dst = append(dst, " import "...)
			dst = append(dst, g.class()...)
		}
		dst = append(dst, '\n')
	}
	dst = append(dst, "\nlogger = logging.getLogger(__name__)\n\n"...)
	for len(dst) < end {
		switch k := g.r.intn(10); {
		case k < 3:
			dst = append(dst, "\nclass "...)
			dst = append(dst, g.class()...)
			dst = append(dst, '(')
			dst = append(dst, g.class()...)
			dst = append(dst, "):\n"...)
			dst = g.pyInit(dst)
			for range 1 + g.r.skewed(8) {
				if g.r.pct(25) {
					dst = g.pyProperty(dst)
					continue
				}
				dst = g.pyDef(dst, 1, true)
			}
		case k < 9:
			dst = g.pyDef(dst, 0, false)
		default:
			for range 1 + g.r.skewed(5) {
				w := g.word()
				for _, c := range w {
					dst = append(dst, c-32)
				}
				dst = append(dst, " = "...)
				dst = g.pyExpr(dst, 2)
				dst = append(dst, '\n')
			}
			dst = append(dst, '\n')
		}
	}
	return dst
}

// shell appends about n bytes of a shell script.
func (g *gen) shell(dst []byte, n int, name string) []byte {
	end := len(dst) + n
	g.makeIdents(16 + g.r.intn(24))
	dst = append(dst, "#!/bin/sh\n# "...)
	dst = append(dst, name...)
	dst = append(dst, "\n\nset -e\n\n"...)
	depth := 0
	for len(dst) < end || depth > 0 {
		dst = g.line(dst, depth)
		switch k := g.r.intn(12); {
		case k < 3:
			dst = g.shVar(dst)
			dst = append(dst, '=')
			dst = g.shWord(dst)
		case k < 5 && depth < 3:
			dst = append(dst, "if [ -"...)
			dst = append(dst, "fdenxz"[g.r.intn(6)])
			dst = append(dst, ` "$`...)
			dst = g.shVar(dst)
			dst = append(dst, "\" ]; then"...)
			depth++
		case k < 6 && depth < 3:
			dst = append(dst, "for "...)
			dst = append(dst, g.ident()...)
			dst = append(dst, " in $"...)
			dst = g.shVar(dst)
			dst = append(dst, "; do"...)
			depth++
		case k < 8 && depth > 0:
			depth--
			dst = dst[:len(dst)-4]
			dst = append(dst, [...]string{"fi", "done"}[g.r.intn(2)]...)
		case k < 9:
			dst = append(dst, "echo \""...)
			dst = g.startLines(dst, 1000, "")
			dst = g.sentence(dst)
			dst = append(dst, " $"...)
			dst = g.shVar(dst)
			dst = append(dst, '"')
		case k < 10:
			dst = append(dst, "# "...)
			dst = g.startLines(dst, 1000, "")
			dst = g.sentence(dst)
		default:
			kw := g.l.shKw
			dst = append(dst, kw[g.r.intn(len(kw))]...)
			for range 1 + g.r.skewed(4) {
				dst = append(dst, ' ')
				dst = g.shWord(dst)
			}
		}
		dst = append(dst, '\n')
	}
	return append(dst, "\nexit 0\n"...)
}

func (g *gen) shVar(dst []byte) []byte {
	for _, c := range g.ident() {
		if c >= 'a' {
			c -= 32
		}
		dst = append(dst, c)
	}
	return dst
}

func (g *gen) shWord(dst []byte) []byte {
	switch g.r.intn(5) {
	case 0:
		dst = append(dst, "\"$"...)
		dst = g.shVar(dst)
		return append(dst, '"')
	case 1:
		dst = append(dst, "--"...)
		return append(dst, g.ident()...)
	case 2:
		dst = append(dst, "/usr/lib/"...)
		return append(dst, g.ident()...)
	default:
		return append(dst, g.ident()...)
	}
}

// pyInit appends a constructor that stores its arguments.
func (g *gen) pyInit(dst []byte) []byte {
	n := 1 + g.r.skewed(6)
	start := len(g.code.strOff)
	dst = append(dst, "    def __init__(self"...)
	for range n {
		i := min(g.r.intn(len(g.idents)), g.r.intn(len(g.idents)))
		g.code.strOff = append(g.code.strOff, uint32(i))
		dst = append(dst, ", "...)
		dst = append(dst, g.idents[i]...)
		if g.r.pct(40) {
			dst = append(dst, "=None"...)
		}
	}
	dst = append(dst, "):\n        super().__init__()\n"...)
	for _, i := range g.code.strOff[start:] {
		dst = append(dst, "        self._"...)
		dst = append(dst, g.idents[i]...)
		dst = append(dst, " = "...)
		dst = append(dst, g.idents[i]...)
		dst = append(dst, '\n')
	}
	g.code.strOff = g.code.strOff[:start]
	return append(dst, '\n')
}

// pyProperty appends a read-only property.
func (g *gen) pyProperty(dst []byte) []byte {
	x := g.ident()
	dst = append(dst, "    @property\n    def "...)
	dst = append(dst, x...)
	dst = append(dst, "(self):\n"...)
	if g.r.pct(50) {
		dst = append(dst, "        \"\"\"Return the "...)
		dst = append(dst, x...)
		dst = append(dst, ".\"\"\"\n"...)
	}
	dst = append(dst, "        return self._"...)
	dst = append(dst, x...)
	return append(dst, "\n\n"...)
}

// xml appends about n bytes of an XML data file (metainfo, schemas, icons
// themes): nested elements from a small set of tags, attributes, short text.
func (g *gen) xml(dst []byte, n int) []byte {
	end := len(dst) + n
	g.makeIdents(8 + g.r.intn(10))
	dst = append(dst, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<"...)
	root := g.ident()
	dst = append(dst, root...)
	dst = append(dst, ">\n"...)
	depth := 1
	var stack [6][]byte
	for len(dst) < end || depth > 1 {
		if depth > 1 && (g.r.pct(30) || len(dst) >= end) {
			depth--
			dst = g.line(dst, depth)
			dst = append(dst, "</"...)
			dst = append(dst, stack[depth]...)
			dst = append(dst, ">\n"...)
			continue
		}
		dst = g.line(dst, depth)
		tag := g.ident()
		dst = append(dst, '<')
		dst = append(dst, tag...)
		for range g.r.skewed(3) {
			dst = append(dst, ' ')
			dst = append(dst, g.ident()...)
			dst = append(dst, "=\""...)
			dst = g.value(dst)
			dst = append(dst, '"')
		}
		switch {
		case depth < len(stack)-1 && g.r.pct(30):
			stack[depth] = tag
			depth++
			dst = append(dst, ">\n"...)
		case g.r.pct(20):
			dst = append(dst, "/>\n"...)
		default:
			dst = append(dst, '>')
			if g.r.pct(50) {
				g.width, g.indent, g.col = 1000, "", 0
				dst = g.sentence(dst)
			} else {
				dst = g.value(dst)
			}
			dst = append(dst, "</"...)
			dst = append(dst, tag...)
			dst = append(dst, ">\n"...)
		}
	}
	dst = append(dst, "</"...)
	dst = append(dst, root...)
	return append(dst, ">\n"...)
}
