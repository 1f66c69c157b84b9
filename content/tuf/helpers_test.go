package tuf_test

import (
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/content/origin"
	"github.com/meshcast/meshcast/content/tuf"
)

// testOrigin is a signed release origin in a temporary directory, built
// with content/origin as a publisher builds one, with the keys of all four
// roles.
type testOrigin struct {
	dir  string
	keys origin.Keys
	// root is metadata/1.root.json: the trust anchor for clients.
	root []byte
	// rels are the publishes, by "name@version".
	rels map[string]*origin.PublishResult
	// timestamps are timestamp.json after Init and after each publish.
	timestamps [][]byte
}

func newOrigin(t *testing.T) *testOrigin {
	t.Helper()
	base := t.TempDir()
	o := &testOrigin{dir: filepath.Join(base, "origin"), rels: map[string]*origin.PublishResult{}}
	var err error
	if o.keys, err = origin.GenerateKeys(filepath.Join(base, "keys")); err != nil {
		t.Fatal(err)
	}
	if err := origin.Init(o.dir, o.keys, origin.DefaultExpiries(), time.Now()); err != nil {
		t.Fatal(err)
	}
	o.root = o.read(t, "metadata/1.root.json")
	o.timestamps = append(o.timestamps, o.read(t, "metadata/timestamp.json"))
	return o
}

// appFiles is a tree of 24 small files, with the files named in edits
// replaced by their contents there. A release that edits one file has a
// manifest patch from the one before it a small fraction of the manifest.
func appFiles(edits map[string]string) map[string]string {
	files := map[string]string{}
	for i := range 24 {
		files[fmt.Sprintf("lib/mod%02d.txt", i)] = strings.Repeat(fmt.Sprintf("module %d, line of text\n", i), 20+i)
	}
	maps.Copy(files, edits)
	return files
}

// publish writes files (slash-separated path → contents) into a new
// directory and publishes it as name@version for linux/amd64.
func (o *testOrigin) publish(t *testing.T, name, version string, files map[string]string) *origin.PublishResult {
	t.Helper()
	tree := t.TempDir()
	for p, data := range files {
		f := filepath.Join(tree, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var res *origin.PublishResult
	o.withRepo(t, func(r *origin.Repo) (err error) {
		res, err = r.Publish(context.Background(), o.keys, origin.PublishOptions{
			Name: name, Version: version, Artifacts: map[string]string{"linux/amd64": tree},
		}, nil)
		return err
	})
	o.rels[name+"@"+version] = res
	o.timestamps = append(o.timestamps, o.read(t, "metadata/timestamp.json"))
	return res
}

// addTarget signs data as the target at path, with no meshcast custom
// metadata: what a stolen targets key or a buggy publisher could sign.
func (o *testOrigin) addTarget(t *testing.T, path string, data []byte) {
	t.Helper()
	o.withRepo(t, func(r *origin.Repo) error {
		return r.AddTarget(o.keys, origin.DefaultExpiries(), path, data, nil)
	})
	o.timestamps = append(o.timestamps, o.read(t, "metadata/timestamp.json"))
}

// withRepo opens the origin, holding its lock while fn runs.
func (o *testOrigin) withRepo(t *testing.T, fn func(r *origin.Repo) error) {
	t.Helper()
	r, err := origin.Open(o.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := fn(r); err != nil {
		t.Fatal(err)
	}
}

// rotateRoot signs the next root version, with the same keys, as
// metadata/<version>.root.json, and returns its bytes. The origin keeps
// working: it loads the highest root.
func (o *testOrigin) rotateRoot(t *testing.T) []byte {
	t.Helper()
	v := 1
	for ; ; v++ {
		if _, err := os.Stat(filepath.Join(o.dir, "metadata", fmt.Sprintf("%d.root.json", v+1))); err != nil {
			break
		}
	}
	root, err := metadata.Root().FromBytes(o.read(t, fmt.Sprintf("metadata/%d.root.json", v)))
	if err != nil {
		t.Fatal(err)
	}
	root.Signed.Version = int64(v + 1)
	root.Signed.Expires = root.Signed.Expires.Add(24 * time.Hour)
	s, err := signature.LoadSigner(o.keys[metadata.ROOT], crypto.Hash(0))
	if err != nil {
		t.Fatal(err)
	}
	root.ClearSignatures()
	if _, err := root.Sign(s); err != nil {
		t.Fatal(err)
	}
	b, err := root.ToBytes(true)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(o.dir, "metadata", fmt.Sprintf("%d.root.json", v+1)), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// read returns the origin's file at path (slash-separated, below the
// origin), as a Source delivers it.
func (o *testOrigin) read(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(o.dir, filepath.FromSlash(p)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rel returns a publish by "name@version".
func (o *testOrigin) rel(t *testing.T, release string) *origin.PublishResult {
	t.Helper()
	r, ok := o.rels[release]
	if !ok {
		t.Fatalf("the test origin has no %s", release)
	}
	return r
}

// metaPaths returns the origin paths of the current snapshot and targets
// metadata: metadata/N.snapshot.json and metadata/M.targets.json.
func (o *testOrigin) metaPaths(t *testing.T) (snapshot, targets string) {
	t.Helper()
	sv := version(t, o.read(t, "metadata/timestamp.json"), "snapshot.json")
	snapshot = fmt.Sprintf("metadata/%d.snapshot.json", sv)
	targets = fmt.Sprintf("metadata/%d.targets.json", version(t, o.read(t, snapshot), "targets.json"))
	return snapshot, targets
}

// version reads, from timestamp or snapshot metadata, the version it
// lists for file, or with file empty the metadata's own version.
func version(t *testing.T, b []byte, file string) int64 {
	t.Helper()
	var m struct {
		Signed struct {
			Version int64 `json:"version"`
			Meta    map[string]struct {
				Version int64 `json:"version"`
			} `json:"meta"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if file == "" {
		return m.Signed.Version
	}
	f, ok := m.Signed.Meta[file]
	if !ok {
		t.Fatalf("the metadata lists no %s", file)
	}
	return f.Version
}

// manifestPath is the origin path of the manifest of "name@version":
// targets/releases/<name>/<sha256>.<version>.json.
func (o *testOrigin) manifestPath(t *testing.T, release string) string {
	t.Helper()
	r := o.rel(t, release)
	dir, file := path.Split(r.Target)
	return "targets/" + dir + r.ReleaseID.String() + "." + file
}

// manifest returns the signed manifest of "name@version".
func (o *testOrigin) manifest(t *testing.T, release string) []byte {
	t.Helper()
	return o.read(t, o.manifestPath(t, release))
}

// decoded returns the signed manifest of "name@version", decoded.
func (o *testOrigin) decoded(t *testing.T, release string) *content.Manifest {
	t.Helper()
	m, err := content.DecodeManifest(o.manifest(t, release), content.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// patchPath is the origin path of the manifest patch from one release to
// another, both "name@version".
func (o *testOrigin) patchPath(t *testing.T, to, from string) string {
	t.Helper()
	return "targets/" + content.ManifestPatchPath(o.rel(t, to).Target, o.rel(t, to).ReleaseID, o.rel(t, from).ReleaseID)
}

// appOrigin is an origin holding app@1.2.0, app@1.9.0 (one file edited),
// app@1.10.0 (another edited) and tool@0.1.0, published in that order:
// 1.9.0 lists a manifest patch from 1.2.0, and 1.10.0 from both; and the
// versions sort otherwise as text than as semver.
func appOrigin(t *testing.T) *testOrigin {
	t.Helper()
	o := newOrigin(t)
	o.publish(t, "app", "1.2.0", appFiles(nil))
	o.publish(t, "app", "1.9.0", appFiles(map[string]string{"lib/mod07.txt": "module 7, edited for 1.9.0\n"}))
	o.publish(t, "app", "1.10.0", appFiles(map[string]string{
		"lib/mod07.txt": "module 7, edited for 1.9.0\n",
		"lib/mod13.txt": "module 13, edited for 1.10.0\n",
	}))
	o.publish(t, "tool", "0.1.0", map[string]string{"bin/tool": "#!/bin/sh\necho tool\n"})
	for _, p := range [][2]string{{"app@1.9.0", "app@1.2.0"}, {"app@1.10.0", "app@1.9.0"}, {"app@1.10.0", "app@1.2.0"}} {
		if _, err := os.Stat(filepath.Join(o.dir, filepath.FromSlash(o.patchPath(t, p[0], p[1])))); err != nil {
			t.Fatalf("the test premise fails: the origin has no manifest patch to %s from %s: %v", p[0], p[1], err)
		}
	}
	return o
}

// refresh runs tuf.Refresh from src into the state directory, trusting
// root, and fails the test on error. The log holds what the Trusted logs.
func refresh(t *testing.T, src tuf.Source, state string, root []byte) (*tuf.Trusted, *testLog) {
	t.Helper()
	log, l := newTestLog(t)
	tr, err := tuf.Refresh(context.Background(), src, "test origin", state, root, log)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	return tr, l
}

// find returns the signed target of "name@version", failing the test if
// there is none.
func find(t *testing.T, tr *tuf.Trusted, release string) tuf.Target {
	t.Helper()
	r, err := content.ParseRelease(release)
	if err != nil {
		t.Fatal(err)
	}
	target, err := tr.Find(r)
	if err != nil {
		t.Fatalf("find %s: %v", release, err)
	}
	return target
}

// readTree returns every regular file under dir by its slash-separated
// path, for comparing a directory before and after.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// requireSameTree fails unless two readTree results hold the same files
// with the same bytes.
func requireSameTree(t *testing.T, before, after map[string]string) {
	t.Helper()
	for p, b := range before {
		if a, ok := after[p]; !ok {
			t.Errorf("%s was removed", p)
		} else if a != b {
			t.Errorf("%s changed", p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s was added", p)
		}
	}
}

// corruptCached flips a byte of the state's cached copy of the target at
// path (releases/<name>/<version>.json), where go-tuf keeps it.
func corruptCached(t *testing.T, state, target string) {
	t.Helper()
	p := filepath.Join(state, "targets", url.PathEscape(target))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("the state does not cache %s: %v", target, err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// testLog is a logger for the code under test that writes to the test's
// log and keeps what it wrote, for a test to read why the code gave up on
// something.
type testLog struct {
	t testing.TB

	mu    sync.Mutex
	lines []string // guarded by mu
}

func newTestLog(t testing.TB) (*slog.Logger, *testLog) {
	l := &testLog{t: t}
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug})), l
}

// Write implements io.Writer; slog's text handler writes one record per
// call.
func (l *testLog) Write(p []byte) (int, error) {
	line := strings.TrimSuffix(string(p), "\n")
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
	l.t.Log(line)
	return len(p), nil
}

// warnings returns the records logged at level WARN.
func (l *testLog) warnings() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		if strings.Contains(line, " level=WARN ") {
			out = append(out, line)
		}
	}
	return out
}
