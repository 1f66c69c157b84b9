package rootfs

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestUpdateSeries builds (or finds in the cache) every tree of the
// update series and checks that each step changed what its packages own
// and nothing else of note, then copies the last tree out and checks that
// it has the version of every package that the steps say.
func TestUpdateSeries(t *testing.T) {
	s := UpdateSeries(t)
	t.Logf("base: %s", s.Base)
	for i, st := range s.Steps {
		t.Logf("step %d: %s", i+1, st)
	}
	if len(s.Steps) == 0 {
		t.Fatal("the mirrors have one version of every group: no update to make a series of")
	}
	want := map[string]string{}
	for _, p := range s.Base.Include {
		if name, v, ok := strings.Cut(p, "="); ok {
			want[name] = v
		}
	}
	var prev []Entry
	for n := range s.Len() {
		start := time.Now()
		es := s.Listing(t, n)
		t.Logf("tree %d (%v to get its listing): %d entries, %d bytes; %s", n, time.Since(start).Round(time.Millisecond),
			len(es), count(es).bytes, changes(prev, es))
		if n > 0 {
			checkStep(t, prev, es, s.Steps[n-1])
			for _, p := range s.Steps[n-1].Packages {
				name, v, _ := strings.Cut(p, "=")
				want[name] = v
			}
		}
		prev = es
	}
	last := s.Tree(t, s.Len()-1)
	status := dpkgStatus(t, last)
	for name, v := range want {
		if status[name] != v {
			t.Errorf("the last tree has %s %q, want %q", name, status[name], v)
		}
	}
}

// checkStep checks that the step from tree a to tree b changed the dpkg
// records of each of its packages.
func checkStep(t *testing.T, a, b []Entry, step Step) {
	t.Helper()
	if Diff(a, b, 0) == "" {
		t.Errorf("step %s changed nothing", step)
		return
	}
	sums := func(es []Entry, name string) string {
		for _, e := range es {
			if e.Path == "var/lib/dpkg/info/"+name+".md5sums" || strings.HasPrefix(e.Path, "var/lib/dpkg/info/"+name+":") && strings.HasSuffix(e.Path, ".md5sums") {
				return e.SHA256
			}
		}
		return ""
	}
	for _, p := range step.Packages {
		name, _, _ := strings.Cut(p, "=")
		if before, after := sums(a, name), sums(b, name); before == "" || before == after {
			t.Errorf("step %s: the md5sums of %s did not change (%q → %q)", step, name, before, after)
		}
	}
}

// changes sums up how tree b differs from tree a.
func changes(a, b []Entry) string {
	if a == nil {
		return "the base"
	}
	byPath := map[string]Entry{}
	for _, e := range a {
		byPath[e.Path] = e
	}
	var added, modified, newBytes int64
	for _, e := range b {
		old, ok := byPath[e.Path]
		delete(byPath, e.Path)
		switch {
		case !ok:
			added++
			newBytes += e.Size
		case Diff([]Entry{old}, []Entry{e}, IgnoreMtime) != "":
			modified++
			if old.SHA256 != e.SHA256 {
				newBytes += e.Size
			}
		}
	}
	return fmt.Sprintf("against the tree before: %d added, %d removed, %d changed (not counting mtime), %d bytes of new content",
		added, len(byPath), modified, newBytes)
}
