package deploy_test

import (
	"bytes"
	"crypto/sha256"
	"flag"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/deploy"
)

// tree is a test release's files: contents by path.
type tree map[string]string

// testReleases are the releases the activator tests install: 2.0.0
// changes one file of 1.0.0, adds one and keeps one.
var testReleases = map[string]tree{
	"1.0.0": {"bin/app": "app 1.0.0\n", "etc/app.conf": "port = 8080\n", "share/big": strings.Repeat("unchanged ", 1000)},
	"2.0.0": {"bin/app": "app 2.0.0\n", "etc/app.conf": "port = 8080\n", "share/big": strings.Repeat("unchanged ", 1000), "share/new": "new in 2\n"},
	"3.0.0": {"bin/app": "app 3.0.0\n"},
}

// testPack names the pack of the test chunks: they are read from a
// store, so it only has to be named.
var testPack = content.Digest(sha256.Sum256([]byte("deploy test pack")))

// buildArtifact puts files' chunks into store, raw, and returns their
// tree artifact.
func buildArtifact(tb testing.TB, store content.Store, files tree) *content.Artifact {
	tb.Helper()
	art := &content.Artifact{Kind: content.KindTree}
	refs := make(map[content.ChunkID]content.ChunkRef)
	var offset int64
	for _, p := range slices.Sorted(maps.Keys(files)) {
		data := []byte(files[p])
		f := content.File{Path: p, Type: content.TypeFile, Mode: 0o644, Size: int64(len(data)), SHA256: content.Digest(sha256.Sum256(data))}
		for off := 0; off < len(data); off += content.MaxChunkSize {
			piece := data[off:min(off+content.MaxChunkSize, len(data))]
			id := content.SumChunk(piece)
			ref, ok := refs[id]
			if !ok {
				if err := store.Put(content.Chunk{ID: id, Size: len(piece), Enc: content.EncodingRaw, Body: piece}); err != nil {
					tb.Fatalf("put a chunk of %s: %v", p, err)
				}
				ref = content.ChunkRef{ID: id, Size: len(piece), Stored: len(piece), Enc: content.EncodingRaw, Pack: testPack, Offset: offset}
				refs[id] = ref
				offset += int64(len(piece))
			}
			f.Chunks = append(f.Chunks, ref)
		}
		art.Files = append(art.Files, f)
	}
	return art
}

// fixture is a releases directory, a hooks directory and the test
// releases' chunks.
type fixture struct {
	t     *testing.T
	dir   string // the releases directory
	hooks string // the hooks directory
	out   string // where the test hooks write what they saw
	store *content.MemStore
	arts  map[string]*content.Artifact
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	root := t.TempDir()
	f := &fixture{t: t, dir: filepath.Join(root, "releases", "app"), hooks: filepath.Join(root, "hooks"),
		out: filepath.Join(root, "out"), store: content.NewMemStore(), arts: make(map[string]*content.Artifact)}
	for _, d := range []string{f.hooks, f.out} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for v, files := range testReleases {
		f.arts[v] = buildArtifact(t, f.store, files)
	}
	return f
}

// config is the activator configuration of the tests: short health
// checks, and hooks that time out only when something is broken.
func (f *fixture) config() deploy.ActivatorConfig {
	return deploy.ActivatorConfig{Dir: f.dir, Name: "app", Hooks: f.hooks, HookTimeout: time.Minute, HealthInterval: 5 * time.Millisecond}
}

// open opens the activator with the test configuration, changed by mods.
func (f *fixture) open(mods ...func(*deploy.ActivatorConfig)) *deploy.Activator {
	f.t.Helper()
	cfg := f.config()
	for _, m := range mods {
		m(&cfg)
	}
	a, err := deploy.OpenActivator(cfg, testLog(f.t))
	if err != nil {
		f.t.Fatalf("OpenActivator: %v", err)
	}
	return a
}

func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// install installs versions.
func (f *fixture) install(a *deploy.Activator, versions ...string) {
	f.t.Helper()
	for _, v := range versions {
		if err := a.Install(f.t.Context(), v, f.arts[v], f.store, content.AssembleOptions{}); err != nil {
			f.t.Fatalf("Install %s: %v", v, err)
		}
	}
}

// activate activates version with a policy of one healthy check, and
// fails the test if it fails.
func (f *fixture) activate(a *deploy.Activator, version string) {
	f.t.Helper()
	if err := a.Activate(f.t.Context(), version, quick); err != nil {
		f.t.Fatalf("Activate %s: %v", version, err)
	}
}

// quick is a policy of one healthy check, within a health timeout that
// only a broken test reaches.
var quick = deploy.Policy{HealthTimeout: time.Minute}

// hook writes a hook: a shell script of body.
func (f *fixture) hook(name, body string) { writeHook(f.t, f.hooks, name, body) }

// recordingHooks writes hooks that record their environment in out.
func (f *fixture) recordingHooks() {
	for _, h := range []string{"pre-activate", "activate", "health", "rollback"} {
		f.hook(h, "env | sort > "+filepath.Join(f.out, h+".env"))
	}
}

// hookEnv is the environment a recording hook saw, or nil if it did
// not run.
func (f *fixture) hookEnv(hook string) map[string]string {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join(f.out, hook+".env"))
	if err != nil {
		return nil
	}
	env := make(map[string]string)
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(strings.TrimSuffix(line, "\n"), "=")
		env[k] = v
	}
	return env
}

// writeHook writes an executable shell script. It holds syscall.ForkLock
// while the file is open for writing, so that no process forked
// meanwhile by a parallel test inherits the descriptor and makes the
// script's exec fail with ETXTBSY.
func writeHook(tb testing.TB, dir, name, body string) {
	tb.Helper()
	syscall.ForkLock.Lock()
	err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755)
	syscall.ForkLock.Unlock()
	if err != nil {
		tb.Fatal(err)
	}
}

// checkRunning checks that `current` points at version and that its
// directory holds exactly the release's files.
func (f *fixture) checkRunning(version string) {
	f.t.Helper()
	target, err := os.Readlink(filepath.Join(f.dir, "current"))
	if err != nil {
		f.t.Fatalf("current: %v", err)
	}
	if target != version {
		f.t.Fatalf("current points at %q; want %q", target, version)
	}
	checkTree(f.t, filepath.Join(f.dir, version), testReleases[version])
}

// checkTree checks that dir holds exactly files (and their directories).
func checkTree(tb testing.TB, dir string, files tree) {
	tb.Helper()
	got := make(tree)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		got[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		tb.Fatalf("read %s: %v", dir, err)
	}
	if !maps.Equal(got, files) {
		tb.Fatalf("%s holds %v; want %v", dir, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(files)))
	}
}

// checkStatus checks the fields of st that want sets, and Pending.
func checkStatus(tb testing.TB, st deploy.ActivatorStatus, want deploy.ActivatorStatus) {
	tb.Helper()
	if st.Running != want.Running || st.Phase != want.Phase || st.Pending != want.Pending ||
		(want.Previous != "" && st.Previous != want.Previous) || (want.Floor != "" && st.Floor != want.Floor) {
		tb.Fatalf("status %+v; want %+v", st, want)
	}
}

// journalLines is the number of lines of the journal.
func (f *fixture) journalLines() int {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join(f.dir, "journal"))
	if err != nil {
		f.t.Fatal(err)
	}
	return bytes.Count(b, []byte("\n"))
}

// syncBuffer is a log destination that tests read.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// init registers -update, which rewrites the golden files in testdata/
// (journal_test.go reads it with flag.Lookup), unless a test file of the
// package registered it already: a package-level flag.Bool("update")
// here would panic at start the day another file of the package declares
// its own.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the golden files in testdata/")
	}
}
