package deploy_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/deploy"
)

func TestInstall(t *testing.T) {
	f := newFixture(t)
	a := f.open()
	// The leftover of an assembly that a crash interrupted, read-only as
	// an assembly leaves its directories until the end.
	partial := filepath.Join(f.dir, ".1.0.0.partial-123456")
	if err := os.MkdirAll(filepath.Join(partial, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(partial, "bin", "app"), []byte("half"), 0o644)
	os.Chmod(filepath.Join(partial, "bin"), 0o500)
	if a.Installed("1.0.0") {
		t.Fatal("a partial assembly counts as installed")
	}
	f.install(a, "1.0.0")
	if _, err := os.Lstat(partial); err == nil {
		t.Error("the partial assembly is still there")
	}
	checkTree(t, filepath.Join(f.dir, "1.0.0"), testReleases["1.0.0"])
	// Installing again does nothing, even from an artifact that cannot be
	// assembled.
	if err := a.Install(t.Context(), "1.0.0", &content.Artifact{}, content.NewMemStore(), content.AssembleOptions{}); err != nil {
		t.Errorf("Install again: %v", err)
	}
	// A chunk missing from the store fails the install, and leaves
	// nothing.
	err := a.Install(t.Context(), "2.0.0", f.arts["2.0.0"], content.NewMemStore(), content.AssembleOptions{})
	if !errors.Is(err, content.ErrMissingChunk) || !strings.Contains(err.Error(), "2.0.0") || a.Installed("2.0.0") {
		t.Errorf("Install without the chunks: %v; want ErrMissingChunk naming 2.0.0, nothing installed", err)
	}
	for _, bad := range []string{"latest", "../1.0.0", "current"} {
		if err := a.Install(t.Context(), bad, f.arts["2.0.0"], f.store, content.AssembleOptions{}); err == nil {
			t.Errorf("Install %q: no error", bad)
		}
	}
	names := dirNames(t, f.dir)
	if want := []string{".artifacts", "1.0.0"}; !slices.Equal(names, want) {
		t.Errorf("the releases directory holds %v; want %v", names, want)
	}
}

func dirNames(tb testing.TB, dir string) []string {
	tb.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// OpenActivator repairs what a crash or an operator left: a dangling or
// missing `current`, a switch's temporary link, a compaction's temporary
// journal.
func TestOpenRepairs(t *testing.T) {
	f := newFixture(t)
	a := f.open()
	f.install(a, "1.0.0", "2.0.0")
	f.activate(a, "1.0.0")
	current := filepath.Join(f.dir, "current")
	for name, damage := range map[string]func(){
		"dangling": func() {
			os.Remove(current)
			os.Symlink("9.9.9", current)
		},
		"missing": func() { os.Remove(current) },
		"outside": func() {
			os.Remove(current)
			os.Symlink("/", current)
		},
		"leftovers": func() {
			os.Symlink("2.0.0", filepath.Join(f.dir, "current.tmp-abc"))
			os.WriteFile(filepath.Join(f.dir, "journal.tmp-123"), []byte("{"), 0o644)
			os.WriteFile(filepath.Join(f.dir, ".artifacts", "2.0.0.json.tmp-1"), []byte("{"), 0o644)
		},
	} {
		damage()
		a = f.open()
		f.checkRunning("1.0.0")
		checkStatus(t, a.Status(), deploy.ActivatorStatus{Running: "1.0.0", Phase: deploy.PhaseHealthy})
		if names, want := dirNames(t, f.dir), []string{".artifacts", "1.0.0", "2.0.0", "current", "journal"}; !slices.Equal(names, want) {
			t.Errorf("%s: the releases directory holds %v; want %v", name, names, want)
		}
		if names := dirNames(t, filepath.Join(f.dir, ".artifacts")); len(names) != 2 {
			t.Errorf("%s: .artifacts holds %v", name, names)
		}
	}
	// A journal damaged before its last line is refused, by name.
	os.WriteFile(filepath.Join(f.dir, "journal"), []byte("garbage\n{\"v\":1,\"step\":\"floor\",\"floor\":\"1.0.0\"}\n"), 0o644)
	if _, err := deploy.OpenActivator(f.config(), testLog(t)); !errors.Is(err, deploy.ErrJournal) || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("OpenActivator with a damaged journal: %v; want ErrJournal naming the line", err)
	}
}

func TestActivatorConfig(t *testing.T) {
	dir := t.TempDir()
	for name, cfg := range map[string]deploy.ActivatorConfig{
		"no dir":          {Name: "app"},
		"no name":         {Dir: dir},
		"bad name":        {Dir: dir, Name: "a/b"},
		"bad URL":         {Dir: dir, Name: "app", HealthURL: "localhost:8080/health"},
		"negative":        {Dir: dir, Name: "app", HookTimeout: -1},
		"negative output": {Dir: dir, Name: "app", MaxOutput: -1},
	} {
		if _, err := deploy.OpenActivator(cfg, nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := deploy.OpenActivator(deploy.ActivatorConfig{Dir: dir, Name: "app"}, nil); err != nil {
		t.Errorf("the defaults: %v", err)
	}
}

// Prune keeps the running release, the one before it, a pending one and
// those it is asked to keep, and removes the rest with their file lists.
func TestPrune(t *testing.T) {
	f := newFixture(t)
	a := f.open()
	f.install(a, "1.0.0", "2.0.0", "3.0.0")
	f.activate(a, "1.0.0")
	f.activate(a, "2.0.0")
	removed, err := a.Prune()
	if err != nil || len(removed) != 1 || removed[0] != "3.0.0" {
		t.Fatalf("Prune: removed %v, %v; want 3.0.0 only", removed, err)
	}
	if a.Installed("3.0.0") || !a.Installed("1.0.0") || !a.Installed("2.0.0") {
		t.Fatal("Prune removed what runs or what ran before, or not what it said")
	}
	f.install(a, "3.0.0")
	if removed, err := a.Prune("3.0.0"); err != nil || len(removed) != 0 {
		t.Fatalf("Prune(3.0.0): removed %v, %v", removed, err)
	}
	f.activate(a, "3.0.0")
	if removed, err := a.Prune(); err != nil || len(removed) != 1 || removed[0] != "1.0.0" {
		t.Fatalf("after 3.0.0: removed %v, %v; want 1.0.0", removed, err)
	}
	f.checkRunning("3.0.0")
	entries, _ := os.ReadDir(filepath.Join(f.dir, ".artifacts"))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "1.0.0") {
			t.Errorf("the file list of a pruned release stays: %s", e.Name())
		}
	}
}
