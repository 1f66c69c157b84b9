package rootfs

import (
	"fmt"
	"strings"
	"testing"
)

func sample() []Entry {
	return []Entry{
		{Path: ".", Type: Dir, Mode: 0o755, Mtime: 10},
		{Path: "bin", Type: Symlink, Mode: 0o777, Target: "usr/bin", Mtime: 11},
		{Path: "usr", Type: Dir, Mode: 0o755, Mtime: 12},
		{Path: "usr/bin", Type: Dir, Mode: 0o755, Mtime: 13},
		{Path: "usr/bin/ping", Type: File, Mode: 0o755, Size: 3, SHA256: "aa", Mtime: 14,
			Xattrs: []Xattr{{Name: "security.capability", Value: []byte{1, 2}}, {Name: "user.x", Value: []byte("y")}}},
		{Path: "usr/bin/su", Type: File, Mode: 0o4755, Size: 3, SHA256: "bb", Mtime: 15},
		{Path: "var/mail", Type: Dir, Mode: 0o2775, GID: 8, Mtime: 16},
	}
}

func TestDiffEqual(t *testing.T) {
	if d := Diff(sample(), sample(), 0); d != "" {
		t.Errorf("equal listings differ:\n%s", d)
	}
	// Order does not matter.
	rev := sample()
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	if d := Diff(sample(), rev, 0); d != "" {
		t.Errorf("a listing and its reverse differ:\n%s", d)
	}
}

func TestDiffReportsEachField(t *testing.T) {
	cases := []struct {
		change func(es []Entry)
		want   string
	}{
		{func(es []Entry) { es[4].Type = Char }, `"usr/bin/ping": type file → char`},
		{func(es []Entry) { es[5].Mode = 0o755 }, `"usr/bin/su": mode 4755 → 0755`},
		{func(es []Entry) { es[6].GID = 0 }, `"var/mail": owner 0:8 → 0:0`},
		{func(es []Entry) { es[1].Target = "/usr/bin" }, `"bin": target "usr/bin" → "/usr/bin"`},
		{func(es []Entry) { es[5].Link = "usr/bin/su" }, `"usr/bin/su": link "" → "usr/bin/su"`},
		{func(es []Entry) { es[4].Major = 1 }, `"usr/bin/ping": dev 0,0 → 1,0`},
		{func(es []Entry) { es[4].Size = 4 }, `"usr/bin/ping": size 3 → 4`},
		{func(es []Entry) { es[4].SHA256 = "cc" }, `"usr/bin/ping": sha256 aa → cc`},
		{func(es []Entry) { es[0].Mtime = 1 }, `".": mtime 10 → 1`},
		{func(es []Entry) { es[4].Xattrs = es[4].Xattrs[1:] },
			`"usr/bin/ping": xattrs [security.capability=0x0102 user.x=0x79] → [user.x=0x79]`},
		{func(es []Entry) { es[4].Xattrs = nil }, `"usr/bin/ping": xattrs [security.capability=0x0102 user.x=0x79] → []`},
	}
	for _, c := range cases {
		b := sample()
		c.change(b)
		if got := Diff(sample(), b, 0); got != c.want+"\n" {
			t.Errorf("Diff = %q, want %q", got, c.want+"\n")
		}
	}
}

func TestDiffOnlyIn(t *testing.T) {
	a, b := sample(), sample()
	a = append(a[:2], a[3:]...) // drop "usr"
	b = b[:len(b)-1]            // drop "var/mail"
	want := `only in b: "usr" dir 0755 0:0 mtime=12` + "\n" +
		`only in a: "var/mail" dir 2775 0:8 mtime=16` + "\n"
	if got := Diff(a, b, 0); got != want {
		t.Errorf("Diff =\n%s\nwant\n%s", got, want)
	}
}

func TestDiffIgnore(t *testing.T) {
	cases := []struct {
		name   string
		ignore Ignore
		change func(es []Entry)
	}{
		{"owner", IgnoreOwner, func(es []Entry) { es[6].GID, es[4].UID = 0, 1000 }},
		{"setid", IgnoreSetID, func(es []Entry) { es[5].Mode, es[6].Mode = 0o755, 0o775 }},
		{"root mtime", IgnoreRootMtime, func(es []Entry) { es[0].Mtime = 99 }},
		{"mtime", IgnoreMtime, func(es []Entry) {
			for i := range es {
				es[i].Mtime++
			}
		}},
		{"xattrs", IgnoreXattrs, func(es []Entry) { es[4].Xattrs = nil }},
		{"non-user xattrs", IgnoreNonUserXattrs, func(es []Entry) { es[4].Xattrs = es[4].Xattrs[1:] }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := sample()
			c.change(b)
			if Diff(sample(), b, 0) == "" {
				t.Fatal("the change makes no difference: the case tests nothing")
			}
			if d := Diff(sample(), b, c.ignore); d != "" {
				t.Errorf("ignored fields still differ:\n%s", d)
			}
		})
	}
	// IgnoreRootMtime ignores only the root's, and IgnoreNonUserXattrs
	// keeps user.*.
	b := sample()
	b[2].Mtime = 99
	if Diff(sample(), b, IgnoreRootMtime) == "" {
		t.Error("IgnoreRootMtime hides the mtime of usr")
	}
	b = sample()
	b[4].Xattrs = b[4].Xattrs[:1]
	if Diff(sample(), b, IgnoreNonUserXattrs) == "" {
		t.Error("IgnoreNonUserXattrs hides a user.* xattr")
	}
	// The ignoring does not write through to the caller's entries.
	a := sample()
	Diff(a, b, IgnoreNonUserXattrs|IgnoreOwner|IgnoreSetID|IgnoreMtime)
	if Diff(a, sample(), 0) != "" {
		t.Error("Diff changed its arguments")
	}
}

func TestDiffStopsAtTwenty(t *testing.T) {
	var a, b []Entry
	for i := range 25 {
		a = append(a, Entry{Path: fmt.Sprintf("f%02d", i), Type: File})
		b = append(b, Entry{Path: fmt.Sprintf("f%02d", i), Type: File, Size: 1})
	}
	d := Diff(a, b, 0)
	lines := strings.Split(strings.TrimSuffix(d, "\n"), "\n")
	if len(lines) != maxDiffs+1 || lines[maxDiffs] != "… and 5 more differences" {
		t.Errorf("Diff of 25 differences gave %d lines, ending %q", len(lines), lines[len(lines)-1])
	}
}

func TestEntryString(t *testing.T) {
	es := []Entry{
		{Path: "usr/bin/ping", Type: File, Mode: 0o755, Size: 3, SHA256: "ab", Mtime: 7,
			Xattrs: []Xattr{{Name: "security.capability", Value: []byte{1, 0}}, {Name: "user.a b", Value: nil}}},
		{Path: "dev/sda", Type: Block, Mode: 0o660, GID: 6, Major: 8, Mtime: 1},
		{Path: "a b", Type: Symlink, Mode: 0o777, Target: "/x\ny", Link: "", Mtime: 2},
		{Path: "p", Type: File, Mode: 0o644, Link: "o", SHA256: "e3", Mtime: 3},
	}
	want := `"usr/bin/ping" file 0755 0:0 size=3 sha256=ab mtime=7 xattr=security.capability=0x0100 xattr="user.a b"=0x` + "\n" +
		`"dev/sda" block 0660 0:6 dev=8,0 mtime=1` + "\n" +
		`"a b" symlink 0777 0:0 target="/x\ny" mtime=2` + "\n" +
		`"p" file 0644 0:0 link="o" size=0 sha256=e3 mtime=3` + "\n"
	if got := Text(es); got != want {
		t.Errorf("Text =\n%s\nwant\n%s", got, want)
	}
}
