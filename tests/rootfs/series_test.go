package rootfs

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestUpdateSeries builds (or copies from the cache) every tree of the
// update series and checks that each has exactly the versions its steps
// say, and that each step changed the tree, logging by how much.
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
		if n > 0 {
			for _, p := range s.Steps[n-1].Packages {
				name, v, _ := strings.Cut(p, "=")
				want[name] = v
			}
		}
		start := time.Now()
		dir := s.Tree(t, n)
		took := time.Since(start)
		status := dpkgStatus(t, dir)
		for name, v := range want {
			if status[name] != v {
				t.Errorf("tree %d: %s is %q, want %q", n, name, status[name], v)
			}
		}
		es, err := List(dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("tree %d (%v to get): %d entries, %d bytes; %s", n, took.Round(time.Millisecond),
			count(es).entries, count(es).bytes, changes(prev, es))
		if n > 0 && Diff(prev, es, 0) == "" {
			t.Errorf("tree %d is tree %d: step %s changed nothing", n, n-1, s.Steps[n-1])
		}
		prev = es
		os.RemoveAll(dir) // each tree is 200 MB
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
	var added, removed, modified, addedBytes int64
	for _, e := range b {
		old, ok := byPath[e.Path]
		delete(byPath, e.Path)
		switch {
		case !ok:
			added++
			addedBytes += e.Size
		case Diff([]Entry{old}, []Entry{e}, IgnoreMtime) != "":
			modified++
			if old.SHA256 != e.SHA256 {
				addedBytes += e.Size
			}
		}
	}
	removed = int64(len(byPath))
	return fmt.Sprintf("against the tree before: %d added, %d removed, %d changed (not counting mtime), %d bytes of new content",
		added, removed, modified, addedBytes)
}
