package rootfs

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// features counts what a listing has of each thing worth testing a
// tree copier on.
type features struct {
	entries, bytes                     int64
	byType                             map[Type]int
	caps, setuid, setgid, sticky       int
	linkGroups, linkedFiles            int
	nonRootOwner, userXattrs, absLinks int
	examples                           map[string][]string // feature → a few paths
}

func count(es []Entry) features {
	f := features{byType: map[Type]int{}, examples: map[string][]string{}}
	note := func(feature, path string) {
		if len(f.examples[feature]) < 3 {
			f.examples[feature] = append(f.examples[feature], path)
		}
	}
	groups := map[string]bool{}
	for _, e := range es {
		f.entries++
		f.bytes += e.Size
		f.byType[e.Type]++
		for _, x := range e.Xattrs {
			switch {
			case x.Name == "security.capability":
				f.caps++
				note("capability", e.Path)
			case strings.HasPrefix(x.Name, "user."):
				f.userXattrs++
				note("user xattr", e.Path)
			}
		}
		if e.Type != Dir && e.Mode&0o4000 != 0 {
			f.setuid++
			note("setuid", e.Path)
		}
		if e.Type != Dir && e.Mode&0o2000 != 0 {
			f.setgid++
			note("setgid", e.Path)
		}
		if e.Mode&0o1000 != 0 {
			f.sticky++
		}
		if e.Link != "" {
			f.linkedFiles++
			if !groups[e.Link] {
				groups[e.Link] = true
				note("hard link", e.Path)
			}
		}
		if e.UID != 0 || e.GID != 0 {
			f.nonRootOwner++
			note("non-root owner", fmt.Sprintf("%s (%d:%d)", e.Path, e.UID, e.GID))
		}
		if e.Type == Symlink && strings.HasPrefix(e.Target, "/") {
			f.absLinks++
		}
	}
	f.linkGroups = len(groups)
	return f
}

func (f features) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d entries, %d bytes of regular files (%.1f MiB)\n", f.entries, f.bytes, float64(f.bytes)/(1<<20))
	for _, ty := range []Type{File, Dir, Symlink, Char, Block, FIFO, Socket} {
		fmt.Fprintf(&b, "  %-8s %d\n", ty, f.byType[ty])
	}
	fmt.Fprintf(&b, "  capabilities %d, setuid %d, setgid %d, sticky %d, hard-link groups %d (%d files), "+
		"non-root owner %d, user.* xattrs %d, absolute symlinks %d\n",
		f.caps, f.setuid, f.setgid, f.sticky, f.linkGroups, f.linkedFiles, f.nonRootOwner, f.userXattrs, f.absLinks)
	for _, k := range slices.Sorted(maps.Keys(f.examples)) {
		fmt.Fprintf(&b, "  e.g. %s: %s\n", k, strings.Join(f.examples[k], ", "))
	}
	return b.String()
}

// fromPackages keeps the entries that Debian's packages made, leaving
// out what addExtras adds (its directory; the user.* xattr on ping).
func fromPackages(es []Entry) []Entry {
	out := slices.DeleteFunc(slices.Clone(es), func(e Entry) bool {
		return e.Path == extrasDir || strings.HasPrefix(e.Path, extrasDir+"/")
	})
	for i := range out {
		out[i].Xattrs = slices.DeleteFunc(slices.Clone(out[i].Xattrs), func(x Xattr) bool {
			return out[i].Path == "usr/bin/ping" && strings.HasPrefix(x.Name, "user.")
		})
	}
	return out
}

// TestBookworm builds (or copies from the cache) the Bookworm tree and
// checks that it has one of everything: a file capability, setuid and
// setgid files, hard links, files of non-root owners, devices, a fifo,
// user.* xattrs. It logs which of them the packages made themselves.
func TestBookworm(t *testing.T) {
	start := time.Now()
	dir := Build(t, Bookworm)
	t.Logf("Build took %v", time.Since(start).Round(time.Millisecond))
	es, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	all, pkgs := count(es), count(fromPackages(es))
	t.Logf("the tree:\n%s", all)
	t.Logf("made by the packages alone:\n%s", pkgs)
	checks := []struct {
		what string
		n    int
	}{
		{"file capability", all.caps}, {"setuid file", all.setuid}, {"setgid file", all.setgid},
		{"hard-link group", all.linkGroups}, {"non-root owner", all.nonRootOwner},
		{"char device", all.byType[Char]}, {"block device", all.byType[Block]}, {"fifo", all.byType[FIFO]},
		{"user.* xattr", all.userXattrs}, {"symlink", all.byType[Symlink]},
	}
	for _, c := range checks {
		if c.n == 0 {
			t.Errorf("the tree has no %s", c.what)
		}
	}
	if pkgs.caps == 0 {
		t.Log("no package set a file capability: addExtras set the one on usr/bin/ping")
	}
	status := dpkgStatus(t, dir)
	for _, p := range append([]string{"dpkg", "apt"}, Bookworm.Include...) {
		if status[p] == "" {
			t.Errorf("%s is not installed in the tree", p)
		}
	}
}

// dpkgStatus reads the installed packages of a tree and their versions.
func dpkgStatus(t *testing.T, root string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "var/lib/dpkg/status"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for para := range strings.SplitSeq(string(b), "\n\n") {
		var name, version string
		installed := false
		for line := range strings.Lines(para) {
			k, v, _ := strings.Cut(strings.TrimSpace(line), ": ")
			switch k {
			case "Package":
				name = v
			case "Version":
				version = v
			case "Status":
				installed = v == "install ok installed"
			}
		}
		if name != "" && installed {
			out[name] = version
		}
	}
	return out
}
