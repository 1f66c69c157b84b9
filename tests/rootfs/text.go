package rootfs

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// String is the entry as one line of text, every field it has spelled
// out, so that two entries print alike exactly when they are equal:
//
//	"usr/bin/ping" file 0755 0:0 size=89768 sha256=… mtime=1700000000000000000 xattr=security.capability=0x01000002…
//	"bin" symlink 0777 0:0 target="usr/bin" mtime=…
//	"usr/bin/perl" file 0755 0:0 link="usr/bin/perl" size=… sha256=… mtime=…
//	"dev/null" char 0666 0:0 dev=1,3 mtime=…
//
// Path and symlink target are Go-quoted; xattr values are hex.
func (e Entry) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %04o %d:%d", strconv.Quote(e.Path), e.Type, e.Mode, e.UID, e.GID)
	if e.Type == Symlink {
		fmt.Fprintf(&b, " target=%s", strconv.Quote(e.Target))
	}
	if e.Link != "" {
		fmt.Fprintf(&b, " link=%s", strconv.Quote(e.Link))
	}
	if e.Type == Char || e.Type == Block {
		fmt.Fprintf(&b, " dev=%d,%d", e.Major, e.Minor)
	}
	if e.Type == File {
		fmt.Fprintf(&b, " size=%d sha256=%s", e.Size, e.SHA256)
	}
	fmt.Fprintf(&b, " mtime=%d", e.Mtime)
	for _, x := range e.Xattrs {
		fmt.Fprintf(&b, " xattr=%s", x)
	}
	return b.String()
}

// String is "name=0xHEX" (Go-quoted name when it has spaces or controls).
func (x Xattr) String() string {
	name := x.Name
	if strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r == '=' || r == '"' || r >= 0x7f }) {
		name = strconv.Quote(name)
	}
	return name + "=0x" + hex.EncodeToString(x.Value)
}

// Text is the listing as text: one Entry.String line per entry, each
// ending in a newline. Two listings have the same text exactly when Diff
// finds no difference between them with nothing ignored.
func Text(entries []Entry) string {
	var b strings.Builder
	for _, e := range entries {
		b.WriteString(e.String())
		b.WriteByte('\n')
	}
	return b.String()
}
