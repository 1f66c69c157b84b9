package treegen

import (
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
)

// Binary formats other than code: already-compressed assets (Random model),
// gettext catalogs and time zone files (compressible tables and strings).

// random appends n incompressible bytes.
func (g *gen) random(dst []byte, n int) []byte {
	start := len(dst)
	dst = padTo(dst, start+n)
	b := dst[start:]
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, g.r.u64())
		b = b[8:]
	}
	for i := range b {
		b[i] = byte(g.r.u64())
	}
	return dst
}

// png appends an n-byte PNG whose IDAT is random (deflate output looks so).
func (g *gen) png(dst []byte, n int) []byte {
	be := binary.BigEndian
	chunk := func(dst []byte, typ string, body func([]byte) []byte) []byte {
		at := len(dst)
		dst = be.AppendUint32(dst, 0)
		dst = append(dst, typ...)
		dst = body(dst)
		be.PutUint32(dst[at:], uint32(len(dst)-at-8))
		return be.AppendUint32(dst, crc32.ChecksumIEEE(dst[at+4:]))
	}
	dst = append(dst, "\x89PNG\r\n\x1a\n"...)
	side := uint32(16 << g.r.intn(5))
	dst = chunk(dst, "IHDR", func(b []byte) []byte {
		b = be.AppendUint32(b, side)
		b = be.AppendUint32(b, side)
		return append(b, 8, 6, 0, 0, 0)
	})
	dst = chunk(dst, "IDAT", func(b []byte) []byte { return g.random(b, max(n-57, 16)) })
	return chunk(dst, "IEND", func(b []byte) []byte { return b })
}

// gz appends an n-byte gzip member with a random body.
func (g *gen) gz(dst []byte, n int) []byte {
	dst = append(dst, 0x1f, 0x8b, 8, 0)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(1600000000+g.r.intn(100000000)))
	dst = append(dst, 2, 3)
	dst = g.random(dst, max(n-18, 16))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(g.r.u64()))
	return binary.LittleEndian.AppendUint32(dst, uint32(n*3+g.r.intn(n+1)))
}

// sshKey appends an OpenSSH private key: base64 of random bytes.
func (g *gen) sshKey(dst []byte, n int) []byte {
	dst = append(dst, "-----BEGIN OPENSSH PRIVATE KEY-----\n"...)
	var raw [51]byte
	var line [68]byte
	for range max(n/69, 3) {
		for i := range raw {
			raw[i] = byte(g.r.u64())
		}
		base64.StdEncoding.Encode(line[:], raw[:])
		dst = append(dst, line[:]...)
		dst = append(dst, '\n')
	}
	return append(dst, "-----END OPENSSH PRIVATE KEY-----\n"...)
}

var langs = []string{"de", "fr", "es", "it", "pt_BR", "ru", "ja", "zh_CN", "pl", "nl", "sv", "cs", "uk", "da",
	"fi", "tr", "hu", "ko", "ca", "el", "nb", "ro", "sk", "sl", "sr", "vi", "eu", "gl", "id", "zh_TW"}

// mo appends a GNU gettext catalog of about n bytes. The messages (msgids)
// depend on catalogSeed only, so every language of a package shares them, as
// real catalogs do; the translations depend on the file.
func (g *gen) mo(dst []byte, n int, catalogSeed uint64, pkg, lang string) []byte {
	cs := &g.code
	fileRNG := g.r
	// originals: "" (the header entry), then messages; offs[i] is where
	// string i starts, offs[num] the end.
	g.r = newRNG(catalogSeed)
	orig := append(cs.stems[:0], 0)
	offs := append(cs.strOff[:0], 0)
	for len(orig) < n*45/100 {
		offs = append(offs, uint32(len(orig)))
		g.width, g.indent, g.col = 1000, "", 0
		orig = g.sentence(orig)
		orig = append(orig, 0)
	}
	num := len(offs)
	offs = append(offs, uint32(len(orig)))
	g.r = fileRNG

	trans := append(cs.scratch[:0], "Project-Id-Version: "...)
	trans = append(trans, pkg...)
	trans = append(trans, "\nReport-Msgid-Bugs-To: \nPOT-Creation-Date: 2023-01-15 10:12+0000\nLanguage: "...)
	trans = append(trans, lang...)
	trans = append(trans, "\nMIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n"...)
	trans = append(trans, 0)
	toffs := append(cs.scratch2[:0], 0)
	for range num - 1 {
		toffs = append(toffs, uint32(len(trans)))
		g.width, g.indent, g.col = 1000, "", 0
		trans = g.sentence(trans)
		trans = append(trans, 0)
	}
	toffs = append(toffs, uint32(len(trans)))

	le := binary.LittleEndian
	hdr := uint32(28 + 16*num)
	for _, v := range []uint32{0x950412de, 0, uint32(num), 28, uint32(28 + 8*num), 0, hdr} {
		dst = le.AppendUint32(dst, v)
	}
	for i := range num {
		dst = le.AppendUint32(dst, offs[i+1]-offs[i]-1)
		dst = le.AppendUint32(dst, hdr+offs[i])
	}
	tbase := hdr + uint32(len(orig))
	for i := range num {
		dst = le.AppendUint32(dst, toffs[i+1]-toffs[i]-1)
		dst = le.AppendUint32(dst, tbase+toffs[i])
	}
	dst = append(dst, orig...)
	dst = append(dst, trans...)
	cs.stems, cs.strOff, cs.scratch, cs.scratch2 = orig[:0], offs[:0], trans[:0], toffs[:0]
	return dst
}

// tzif appends a time zone file: big-endian transition times sharing their
// high bytes, type indices, and a POSIX TZ footer.
func (g *gen) tzif(dst []byte, n int) []byte {
	be := binary.BigEndian
	count := max((n-120)/13, 4)
	header := func(dst []byte, v byte) []byte {
		dst = append(dst, "TZif"...)
		dst = append(dst, v)
		dst = padTo(dst, len(dst)+15)
		for _, c := range []int{0, 0, 0, count, 3, 13} {
			dst = be.AppendUint32(dst, uint32(c))
		}
		return dst
	}
	t0 := int64(-2000000000 + g.r.intn(400000000))
	body := func(dst []byte, wide bool) []byte {
		t := t0
		for range count {
			if wide {
				dst = be.AppendUint64(dst, uint64(t))
			} else {
				dst = be.AppendUint32(dst, uint32(t))
			}
			t += 15552000 + int64(g.r.skewed(2000000)) - 1000000
		}
		for i := range count {
			dst = append(dst, byte(1+i%2))
		}
		off := int32(g.r.between(-12, 12) * 3600)
		for i := range 3 {
			dst = be.AppendUint32(dst, uint32(off+int32(i%2)*3600))
			dst = append(dst, byte(i%2), byte(4*i))
		}
		return append(dst, "LMT\x00CET\x00CEST\x00"...)
	}
	dst = header(dst, '2')
	dst = body(dst, false)
	dst = header(dst, '2')
	dst = body(dst, true)
	return append(dst, "\nCET-1CEST,M3.5.0,M10.5.0/3\n"...)
}
