package rootfs

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Ignore is a set of fields Diff leaves out of the comparison.
type Ignore uint

const (
	// IgnoreOwner leaves out UID and GID (a tree written by a non-root
	// user belongs to that user).
	IgnoreOwner Ignore = 1 << iota
	// IgnoreSetID compares modes with the setuid and setgid bits (06000)
	// cleared.
	IgnoreSetID
	// IgnoreRootMtime leaves out the mtime of "." (a tree copied into a
	// fresh directory often keeps that directory's own).
	IgnoreRootMtime
	// IgnoreMtime leaves out every mtime.
	IgnoreMtime
	// IgnoreXattrs leaves out every extended attribute.
	IgnoreXattrs
	// IgnoreNonUserXattrs leaves out the extended attributes outside the
	// user.* namespace (security.capability, trusted.*, system.*), which
	// an unprivileged writer cannot set.
	IgnoreNonUserXattrs
)

// maxDiffs is how many differences Diff describes before it only counts.
const maxDiffs = 20

// Diff describes the first differences between two listings, one line
// each (at most 20, then how many more there are), or returns "" when
// they are equal in every field that ignore keeps. Entries are matched by
// Path; a and b need not be sorted. Lines read "only in a: ENTRY", "only
// in b: ENTRY", or "PATH: FIELD A → B; FIELD A → B".
func Diff(a, b []Entry, ignore Ignore) string {
	a, b = sortedCopy(a), sortedCopy(b)
	var lines []string
	more := 0
	note := func(s string) {
		if len(lines) < maxDiffs {
			lines = append(lines, s)
		} else {
			more++
		}
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || i < len(a) && a[i].Path < b[j].Path:
			note("only in a: " + a[i].String())
			i++
		case i == len(a) || b[j].Path < a[i].Path:
			note("only in b: " + b[j].String())
			j++
		default:
			if d := fieldDiffs(normalize(a[i], ignore), normalize(b[j], ignore)); len(d) > 0 {
				note(strconv.Quote(a[i].Path) + ": " + strings.Join(d, "; "))
			}
			i, j = i+1, j+1
		}
	}
	if more > 0 {
		lines = append(lines, fmt.Sprintf("… and %d more differences", more))
	}
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}

func sortedCopy(es []Entry) []Entry {
	return slices.SortedFunc(slices.Values(es), func(x, y Entry) int { return strings.Compare(x.Path, y.Path) })
}

// normalize clears the fields ignore leaves out.
func normalize(e Entry, ignore Ignore) Entry {
	if ignore&IgnoreOwner != 0 {
		e.UID, e.GID = 0, 0
	}
	if ignore&IgnoreSetID != 0 {
		e.Mode &^= 0o6000
	}
	if ignore&IgnoreMtime != 0 || ignore&IgnoreRootMtime != 0 && e.Path == "." {
		e.Mtime = 0
	}
	switch {
	case ignore&IgnoreXattrs != 0:
		e.Xattrs = nil
	case ignore&IgnoreNonUserXattrs != 0:
		e.Xattrs = slices.DeleteFunc(slices.Clone(e.Xattrs), func(x Xattr) bool { return !strings.HasPrefix(x.Name, "user.") })
	}
	return e
}

// fieldDiffs names each field that differs, with both values.
func fieldDiffs(a, b Entry) []string {
	var d []string
	add := func(differ bool, name string, x, y any) {
		if differ {
			d = append(d, fmt.Sprintf("%s %v → %v", name, x, y))
		}
	}
	add(a.Type != b.Type, "type", a.Type, b.Type)
	add(a.Mode != b.Mode, "mode", fmt.Sprintf("%04o", a.Mode), fmt.Sprintf("%04o", b.Mode))
	add(a.UID != b.UID || a.GID != b.GID, "owner", fmt.Sprintf("%d:%d", a.UID, a.GID), fmt.Sprintf("%d:%d", b.UID, b.GID))
	add(a.Target != b.Target, "target", strconv.Quote(a.Target), strconv.Quote(b.Target))
	add(a.Link != b.Link, "link", strconv.Quote(a.Link), strconv.Quote(b.Link))
	add(a.Major != b.Major || a.Minor != b.Minor, "dev", fmt.Sprintf("%d,%d", a.Major, a.Minor), fmt.Sprintf("%d,%d", b.Major, b.Minor))
	add(a.Size != b.Size, "size", a.Size, b.Size)
	add(a.SHA256 != b.SHA256, "sha256", a.SHA256, b.SHA256)
	add(a.Mtime != b.Mtime, "mtime", a.Mtime, b.Mtime)
	add(!xattrsEqual(a.Xattrs, b.Xattrs), "xattrs", xattrText(a.Xattrs), xattrText(b.Xattrs))
	return d
}

func xattrsEqual(a, b []Xattr) bool {
	return slices.EqualFunc(a, b, func(x, y Xattr) bool { return x.Name == y.Name && bytes.Equal(x.Value, y.Value) })
}

func xattrText(xs []Xattr) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = x.String()
	}
	return "[" + strings.Join(parts, " ") + "]"
}
