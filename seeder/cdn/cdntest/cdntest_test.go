package cdntest_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/meshcast/meshcast/seeder/cdn/cdntest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestWriteTree(t *testing.T) {
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	cdntest.WriteTree(t, a)
	cdntest.WriteTree(t, b)
	cdntest.RequireSameTree(t, a, b)

	tree := cdntest.ReadTree(t, a)
	files := 0
	for _, e := range tree {
		if e.Type == "file" {
			files++
		}
	}
	if files < 25 || len(tree) > 60 {
		t.Errorf("%d entries, %d files; want a few dozen", len(tree), files)
	}
	for path, want := range map[string]cdntest.TreeEntry{
		cdntest.TreeApp:  {Type: "file", Mode: 0o755, Size: 1280 << 10},
		cdntest.TreeBlob: {Type: "file", Mode: 0o644, Size: 192 << 10},
		"data/empty":     {Type: "file", Mode: 0o644},
		"etc/app.conf":   {Type: "file", Mode: 0o600, Size: 36},
		"current":        {Type: "symlink", Target: "bin/app"},
		"lib/a/b/c/docs": {Type: "symlink", Target: "../../../../docs"},
		"var/empty":      {Type: "dir", Mode: 0o700},
		"etc":            {Type: "dir", Mode: 0o750},
	} {
		got := tree[path]
		got.SHA256 = "" // not part of want
		if got != want {
			t.Errorf("%s: %+v, want %+v", path, got, want)
		}
	}
}

// recordingTB records failures instead of ending the test.
type recordingTB struct {
	testing.TB
	errors []string
	failed bool
}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
func (r *recordingTB) FailNow() { r.failed = true }

func TestRequireSameTreeSeesChanges(t *testing.T) {
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	cdntest.WriteTree(t, a)
	cdntest.CopyTree(t, a, b)
	cdntest.RequireSameTree(t, a, b)
	cdntest.Mutate(t, b)

	r := &recordingTB{TB: t}
	cdntest.RequireSameTree(r, a, b)
	if !r.failed {
		t.Fatal("RequireSameTree passed a mutated tree")
	}
	all := strings.Join(r.errors, "\n")
	for _, want := range []string{cdntest.TreeApp + ": got", "docs/page03.txt: got", "docs/page07.txt: missing", "docs/added.txt: unexpected"} {
		if !strings.Contains(all, want) {
			t.Errorf("no error %q in:\n%s", want, all)
		}
	}
	if len(r.errors) != 4 {
		t.Errorf("%d differences reported, want 4:\n%s", len(r.errors), all)
	}

	// A mode alone is a difference too.
	c := filepath.Join(t.TempDir(), "c")
	cdntest.CopyTree(t, a, c)
	if err := os.Chmod(filepath.Join(c, "bin", "run.sh"), 0o700); err != nil {
		t.Fatal(err)
	}
	r = &recordingTB{TB: t}
	cdntest.RequireSameTree(r, a, c)
	if !r.failed || len(r.errors) != 1 || !strings.Contains(r.errors[0], "bin/run.sh") {
		t.Errorf("a changed mode: failed %v, errors %q", r.failed, r.errors)
	}
}
