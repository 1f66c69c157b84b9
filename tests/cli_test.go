package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestCLI drives the real meshcast binary as an operator and a device
// would: keys, origin, publish, a CDN, fetch, an update, refresh; bad input;
// the demo. It builds the binary once (with -race when the test runs with
// it).
func TestCLI(t *testing.T) {
	mc := buildMeshcast(t)
	t.Run("session", func(t *testing.T) { t.Parallel(); testCLISession(t, mc) })
	t.Run("bad input", func(t *testing.T) { t.Parallel(); testCLIBadInput(t, mc) })
	t.Run("demo", func(t *testing.T) { t.Parallel(); testCLIDemo(t, mc) })
}

// publishJSON is `meshcast publish --json`.
type publishJSON struct {
	Release    string `json:"release"`
	ReleaseID  string `json:"release_id"`
	Target     string `json:"target"`
	Unchanged  bool   `json:"unchanged"`
	Chunks     int    `json:"chunks"`
	NewChunks  int    `json:"new_chunks"`
	InputBytes int64  `json:"input_bytes"`
	NewBytes   int64  `json:"new_bytes"`
	Pack       string `json:"pack"`
}

// fetchJSON is `meshcast fetch --json`.
type fetchJSON struct {
	Release       string  `json:"release"`
	ReleaseID     string  `json:"release_id"`
	Platform      string  `json:"platform"`
	Out           string  `json:"out"`
	BytesFromCDN  int64   `json:"bytes_from_cdn"`
	Requests      int64   `json:"requests"`
	ChunksFetched int     `json:"chunks_fetched"`
	ChunksReused  int     `json:"chunks_reused"`
	ChunkBytes    int64   `json:"chunk_bytes"`
	Files         int     `json:"files"`
	Seconds       float64 `json:"seconds"`
}

// refreshJSON is `meshcast repo refresh --json`.
type refreshJSON struct {
	Resigned         []string  `json:"resigned"`
	TimestampExpires time.Time `json:"timestamp_expires"`
	SnapshotExpires  time.Time `json:"snapshot_expires"`
	TargetsExpires   time.Time `json:"targets_expires"`
	RootExpires      time.Time `json:"root_expires"`
	RootExpiresSoon  bool      `json:"root_expires_soon"`
}

func testCLISession(t *testing.T, mc *meshcast) {
	dir := t.TempDir()
	keys, originDir, state := filepath.Join(dir, "keys"), filepath.Join(dir, "origin"), filepath.Join(dir, "state")
	v1, v2 := newTestTree(), newTestTree().upgrade()
	in1, in2 := filepath.Join(dir, "in1"), filepath.Join(dir, "in2")
	v1.write(t, in1)
	v2.write(t, in2)

	// keys init: four keys, 0600, in a 0700 directory.
	out := mc.ok(t, "keys", "init", "--dir", keys)
	for _, role := range []string{"root", "targets", "snapshot", "timestamp"} {
		p := filepath.Join(keys, role+".key")
		if !strings.Contains(out, p) {
			t.Errorf("keys init did not print %s:\n%s", p, out)
		}
		if fi, err := os.Stat(p); err != nil {
			t.Fatal(err)
		} else if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", p, fi.Mode().Perm())
		}
	}
	if fi, err := os.Stat(keys); err != nil {
		t.Fatal(err)
	} else if fi.Mode().Perm() != 0o700 {
		t.Errorf("key directory %s has mode %04o, want 0700", keys, fi.Mode().Perm())
	}
	if r := mc.run(t, "keys", "init", "--dir", keys); r.code == 0 || !strings.Contains(r.stderr, "refusing to overwrite") {
		t.Errorf("keys init over existing keys: exit %d, stderr %q; want a refusal", r.code, r.stderr)
	}

	out = mc.ok(t, "repo", "init", "--repo", originDir, "--keys", keys)
	root := filepath.Join(originDir, "metadata", "1.root.json")
	if !strings.Contains(out, root) {
		t.Errorf("repo init does not say which root devices trust:\n%s", out)
	}

	publish := func(version, in string) publishJSON {
		t.Helper()
		var p publishJSON
		decodeJSON(t, mc.ok(t, "publish", "--repo", originDir, "--keys", keys, "--name", "gw", "--version", version,
			"--artifact", "linux/amd64="+in, "--json"), &p,
			"release", "release_id", "target", "unchanged", "chunks", "new_chunks", "input_bytes", "new_bytes")
		return p
	}
	p1 := publish("1.0.0", in1)
	if p1.Release != "gw@1.0.0" || p1.Target != "releases/gw/1.0.0.json" || p1.Unchanged ||
		len(p1.ReleaseID) != 64 || p1.InputBytes != v1.fileBytes() ||
		p1.Chunks == 0 || p1.NewChunks != p1.Chunks || p1.NewBytes <= 0 || p1.NewBytes >= p1.InputBytes || p1.Pack == "" {
		t.Errorf("publish 1.0.0 into an empty origin: %+v (input %d bytes)", p1, v1.fileBytes())
	}

	cdnURL := mc.serveCDN(t, originDir)
	fetch := func(version, out string) fetchJSON {
		t.Helper()
		var f fetchJSON
		decodeJSON(t, mc.ok(t, "fetch", "--cdn", cdnURL, "--trust", root, "--state", state, "--release", "gw@"+version,
			"--platform", "linux/amd64", "--out", out, "--json"), &f,
			"release", "release_id", "platform", "out", "bytes_from_cdn", "requests", "chunks_fetched", "chunks_reused", "chunk_bytes", "files")
		return f
	}
	out1 := filepath.Join(dir, "out1")
	f1 := fetch("1.0.0", out1)
	compareTrees(t, in1, out1)
	if f1.Release != "gw@1.0.0" || f1.ReleaseID != p1.ReleaseID || f1.Platform != "linux/amd64" || f1.Out != out1 ||
		f1.Files != v1.files() || f1.Requests <= 0 || f1.ChunksReused != 0 || f1.ChunksFetched != p1.Chunks ||
		f1.ChunkBytes != p1.NewBytes || f1.BytesFromCDN < f1.ChunkBytes {
		t.Errorf("first fetch: %+v; publish said %+v", f1, p1)
	}

	// Publishing the same version again: identical content is a no-op,
	// other content is refused and writes nothing.
	again := publish("1.0.0", in1)
	if !again.Unchanged || again.ReleaseID != p1.ReleaseID || again.NewChunks != 0 || again.NewBytes != 0 {
		t.Errorf("identical re-publish: %+v, want unchanged with release id %s", again, p1.ReleaseID)
	}
	if out := mc.ok(t, "publish", "--repo", originDir, "--keys", keys, "--name", "gw", "--version", "1.0.0", "--artifact", "linux/amd64="+in1); !strings.Contains(out, "already published with this content") {
		t.Errorf("identical re-publish without --json says %q", out)
	}
	before := snapshotDir(t, originDir)
	r := mc.run(t, "publish", "--repo", originDir, "--keys", keys, "--name", "gw", "--version", "1.0.0", "--artifact", "linux/amd64="+in2)
	if r.code == 0 || !strings.Contains(r.stderr, "already published") {
		t.Errorf("publish 1.0.0 with other content: exit %d, stderr %q; want a refusal saying it is already published", r.code, r.stderr)
	}
	if after := snapshotDir(t, originDir); !maps.Equal(before, after) {
		t.Errorf("a refused publish changed the origin:\nbefore %v\nafter  %v", before, after)
	}

	var rf refreshJSON
	decodeJSON(t, mc.ok(t, "repo", "refresh", "--repo", originDir, "--keys", keys, "--json"), &rf,
		"resigned", "timestamp_expires", "snapshot_expires", "targets_expires", "root_expires", "root_expires_soon")
	if !slices.Equal(rf.Resigned, []string{"timestamp"}) || !rf.TimestampExpires.After(time.Now()) ||
		rf.SnapshotExpires.Before(rf.TimestampExpires) || rf.TargetsExpires.Before(rf.SnapshotExpires) ||
		rf.RootExpires.Before(rf.TargetsExpires) || rf.RootExpiresSoon {
		t.Errorf("refresh of fresh metadata: %+v; want only the timestamp re-signed, expiries in order", rf)
	}

	// The update: only what changed is written, and fetched.
	p2 := publish("2.0.0", in2)
	if p2.Unchanged || p2.NewChunks == 0 || p2.NewChunks >= p2.Chunks || p2.NewBytes >= p1.NewBytes/4 {
		t.Errorf("publish 2.0.0 over 1.0.0: %+v; want a few new chunks (1.0.0 wrote %d bytes)", p2, p1.NewBytes)
	}
	out2 := filepath.Join(dir, "out2")
	f2 := fetch("2.0.0", out2)
	compareTrees(t, in2, out2)
	if f2.ReleaseID != p2.ReleaseID || f2.Files != v2.files() || f2.ChunksReused == 0 ||
		f2.ChunksFetched != p2.NewChunks || f2.ChunksFetched+f2.ChunksReused != p2.Chunks ||
		f2.BytesFromCDN >= f1.BytesFromCDN/4 {
		t.Errorf("update fetch: %+v; want the %d new chunks of %d, far fewer bytes than the first fetch's %d",
			f2, p2.NewChunks, p2.Chunks, f1.BytesFromCDN)
	}
	// The highest version is the default, and an out directory that is
	// not empty is refused.
	r = mc.run(t, "fetch", "--cdn", cdnURL, "--trust", root, "--state", state, "--release", "gw", "--platform", "linux/amd64", "--out", out2)
	if r.code == 0 || !strings.Contains(r.stderr, out2) {
		t.Errorf("fetch into a full directory: exit %d, stderr %q; want a refusal naming it", r.code, r.stderr)
	}
	var f3 fetchJSON
	decodeJSON(t, mc.ok(t, "fetch", "--cdn", cdnURL, "--trust", root, "--state", state, "--release", "gw", "--platform", "linux/amd64",
		"--out", filepath.Join(dir, "out3"), "--json"), &f3)
	if f3.Release != "gw@2.0.0" || f3.ChunksFetched != 0 {
		t.Errorf("fetch of the latest release with everything in the store: %+v; want gw@2.0.0, nothing fetched", f3)
	}

	// The CDN counted what it served.
	sent, requests := cdnMetrics(t, cdnURL)
	if sent <= 0 || sent > f1.BytesFromCDN+f2.BytesFromCDN+f3.BytesFromCDN {
		t.Errorf("meshcast_cdn_bytes_sent_total = %d; want > 0 and at most the %d bytes the fetches read",
			sent, f1.BytesFromCDN+f2.BytesFromCDN+f3.BytesFromCDN)
	}
	if want := f1.Requests + f2.Requests + f3.Requests; requests < want {
		t.Errorf("meshcast_cdn_requests_total = %d; the fetches made %d", requests, want)
	}
}

func testCLIBadInput(t *testing.T, mc *meshcast) {
	dir := t.TempDir()
	keys, originDir, in := filepath.Join(dir, "keys"), filepath.Join(dir, "origin"), filepath.Join(dir, "in")
	mc.ok(t, "keys", "init", "--dir", keys)
	mc.ok(t, "repo", "init", "--repo", originDir, "--keys", keys)
	testTree{"a.txt": {data: []byte("a\n"), mode: 0o644}}.write(t, in)
	pub := []string{"publish", "--repo", originDir, "--keys", keys, "--name", "gw", "--version", "1.0.0"}

	for _, c := range []struct {
		name string
		args []string
		want []string // in stderr
		not  []string // not in stderr
	}{
		{"publish without flags", []string{"publish"}, []string{"--repo", "--keys", "--name", "--version", "--artifact"}, nil},
		{"fetch without most flags", []string{"fetch", "--cdn", "http://127.0.0.1:1"}, []string{"--trust", "--state", "--release", "--out"}, []string{"--cdn"}},
		{"keys init without --dir", []string{"keys", "init"}, []string{"--dir"}, nil},
		{"repo init without flags", []string{"repo", "init"}, []string{"--repo", "--keys"}, nil},
		{"cdn serve without --dir", []string{"cdn", "serve"}, []string{"--dir"}, nil},
		{"artifact without =", append(pub, "--artifact", "linux/amd64"), []string{"--artifact", "linux/amd64", "PLATFORM=PATH"}, nil},
		{"artifact twice", append(pub, "--artifact", "linux/amd64="+in, "--artifact", "linux/amd64="+in), []string{"linux/amd64", "twice"}, nil},
		{"waves not increasing", append(pub, "--artifact", "linux/amd64="+in, "--waves", "10,5"), []string{"wave"}, nil},
		{"waves not numbers", append(pub, "--artifact", "linux/amd64="+in, "--waves", "10,x"), []string{"--waves", `"x"`}, nil},
		{"bad chunking", append(pub, "--artifact", "linux/amd64="+in, "--chunking", "64K/16K"), []string{"--chunking"}, nil},
		{"bad version", []string{"publish", "--repo", originDir, "--keys", keys, "--name", "gw", "--version", "one", "--artifact", "linux/amd64=" + in}, []string{"one"}, nil},
		{"unknown flag", []string{"publish", "--bogus"}, []string{"unknown flag", "--bogus"}, nil},
		{"unknown command", []string{"frobnicate"}, []string{"unknown command", "frobnicate"}, nil},
		{"bad log level", []string{"--log-level", "loud", "keys", "init", "--dir", filepath.Join(dir, "k2")}, []string{"--log-level", "loud"}, nil},
		{"bad rate", []string{"cdn", "serve", "--dir", originDir, "--rate", "fast"}, []string{"--rate", "fast"}, nil},
	} {
		r := mc.run(t, c.args...)
		if r.code == 0 {
			t.Errorf("%s: meshcast %s exited 0; want an error", c.name, strings.Join(c.args, " "))
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: the error does not mention %s: %q", c.name, w, r.stderr)
			}
		}
		for _, n := range c.not {
			if strings.Contains(r.stderr, n) {
				t.Errorf("%s: the error mentions %s, which was given: %q", c.name, n, r.stderr)
			}
		}
		if strings.Contains(r.stderr, "meshcast: meshcast") {
			t.Errorf("%s: the error names the binary twice: %q", c.name, r.stderr)
		}
		if strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine ") {
			t.Errorf("%s: crashed:\n%s", c.name, r.stderr)
		}
	}
	// None of it wrote anything: the origin has no release and no pack.
	var packs []string
	for p := range snapshotDir(t, originDir) {
		if strings.HasPrefix(p, "packs/") || strings.HasPrefix(p, "targets/") {
			packs = append(packs, p)
		}
	}
	if len(packs) > 0 {
		t.Errorf("failed publishes left files in the origin: %v", packs)
	}
}

// testCLIDemo runs the demo, which must succeed, show both fetches and
// leave no work directory behind.
func testCLIDemo(t *testing.T, mc *meshcast) {
	tmp := t.TempDir()
	// Three seeders and two nodes: the whole job, at a size the race
	// detector runs in time beside the other packages on 2 cores.
	r := mc.runEnv(t, []string{"TMPDIR=" + tmp}, "demo", "--nodes", "2")
	if r.code != 0 {
		t.Fatalf("meshcast demo: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	// The summary: two releases rolled out to every member, the third
	// stopped at its canary and rolled back.
	for _, row := range []string{`1\.0\.0\s.*done, all run 1\.0\.0`, `1\.1\.0\s.*done, all run 1\.1\.0`, `1\.2\.0\s.*rolled-back, all run 1\.1\.0`} {
		if !regexp.MustCompile(`(?m)^\s*` + row + `\s*$`).MatchString(r.stdout) {
			t.Errorf("the demo's summary has no row matching %q:\n%s", row, r.stdout)
		}
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("the demo left %s behind in its temporary directory", left[0].Name())
	}
}

// meshcast is the binary under test.
type meshcast struct {
	path    string
	daemons []*daemon
}

// buildMeshcast builds cmd/meshcast into a temporary directory, with the
// race detector when this test binary has it, and the build tags given.
func buildMeshcast(t *testing.T, tags ...string) *meshcast {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "meshcast")
	args := []string{"build", "-o", bin}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	if raceEnabled() {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "./cmd/meshcast")...)
	cmd.Dir = moduleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return &meshcast{path: bin}
}

// raceEnabled reports whether this test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

type runResult struct {
	stdout, stderr string
	code           int
}

// cliTimeout bounds one command; the demo, a whole site in one process,
// gets demoTimeout: under the race detector beside the other packages on
// 2 cores it takes a minute or two.
const (
	cliTimeout  = 2 * time.Minute
	demoTimeout = 6 * time.Minute
)

func (mc *meshcast) run(t *testing.T, args ...string) runResult { return mc.runEnv(t, nil, args...) }

// runEnv runs meshcast to completion with env added to the environment.
func (mc *meshcast) runEnv(t *testing.T, env []string, args ...string) runResult {
	t.Helper()
	timeout := cliTimeout
	if len(args) > 0 && args[0] == "demo" {
		timeout = demoTimeout
	}
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, mc.path, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("meshcast %s: %.2fs", strings.Join(args, " "), time.Since(start).Seconds())
	r := runResult{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && ctx.Err() == nil:
		r.code = exit.ExitCode()
	default:
		t.Fatalf("meshcast %s: %v\nstderr:\n%s", strings.Join(args, " "), err, r.stderr)
	}
	if strings.Contains(r.stderr, "WARNING: DATA RACE") {
		t.Errorf("meshcast %s: data race:\n%s", strings.Join(args, " "), r.stderr)
	}
	return r
}

// ok runs meshcast, fails t unless it exits 0, and returns its stdout.
func (mc *meshcast) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := mc.run(t, args...)
	if r.code != 0 {
		t.Fatalf("meshcast %s: exit %d\nstderr:\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// serveCDN starts `meshcast cdn serve` on a free loopback port and returns
// its URL. Cleanup stops it with SIGTERM, waits for it, and fails t unless
// it shut down cleanly.
func (mc *meshcast) serveCDN(t *testing.T, dir string, extra ...string) string {
	t.Helper()
	cmd := exec.Command(mc.path, append([]string{"cdn", "serve", "--dir", dir, "--listen", "127.0.0.1:0"}, extra...)...)
	stdout := &firstLine{line: make(chan string, 1)}
	var stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("stop cdn serve: %v", err)
		}
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("cdn serve did not shut down cleanly on SIGTERM: %v\nstderr:\n%s", err, stderr.String())
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("cdn serve still running 30s after SIGTERM; killed it\nstderr:\n%s", stderr.String())
		}
		if s := stderr.String(); strings.Contains(s, "DATA RACE") {
			t.Errorf("cdn serve: data race:\n%s", s)
		}
	})
	var line string
	select {
	case line = <-stdout.line:
	case err := <-exited:
		exited <- err // for Cleanup
		t.Fatalf("cdn serve exited at start: %v\nstderr:\n%s", err, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("cdn serve printed no address within 30s\nstderr:\n%s", stderr.String())
	}
	m := regexp.MustCompile(`^serving (.+) on (http://127\.0\.0\.1:[1-9][0-9]*)/$`).FindStringSubmatch(line)
	if m == nil || m[1] != dir {
		t.Fatalf("cdn serve printed %q; want \"serving %s on http://127.0.0.1:PORT/\"", line, dir)
	}
	return m[2]
}

// firstLine is a Writer that hands the first line written to it to a
// channel, and discards the rest.
type firstLine struct {
	mu   sync.Mutex
	buf  []byte
	line chan string // capacity 1
	sent bool
}

func (w *firstLine) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.sent {
		w.buf = append(w.buf, p...)
		if i := bytes.IndexByte(w.buf, '\n'); i >= 0 {
			w.line <- string(w.buf[:i])
			w.sent, w.buf = true, nil
		}
	}
	return len(p), nil
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// decodeJSON decodes the one JSON object in s into v, after checking that
// it has every key in keys.
func decodeJSON(t *testing.T, s string, v any, keys ...string) {
	t.Helper()
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &fields); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, s)
	}
	for _, k := range keys {
		if _, ok := fields[k]; !ok {
			t.Errorf("JSON output has no %q: %s", k, s)
		}
	}
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("JSON output: %v\n%s", err, s)
	}
}

// snapshotDir returns every regular file below dir (dot files excluded)
// with its size and modification time.
func snapshotDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		files[filepath.ToSlash(rel)] = strconv.FormatInt(fi.Size(), 10) + " " + fi.ModTime().Format(time.RFC3339Nano)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// cdnMetrics reads the body bytes and requests the CDN counted from its
// /metrics.
func cdnMetrics(t *testing.T, base string) (bytesSent, requests int64) {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		metric, _, _ := strings.Cut(name, "{")
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Errorf("/metrics: %q: %v", line, err)
			continue
		}
		switch metric {
		case "meshcast_cdn_bytes_sent_total":
			bytesSent += int64(v)
		case "meshcast_cdn_requests_total":
			requests += int64(v)
		}
		seen[metric] = true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"meshcast_cdn_bytes_sent_total", "meshcast_cdn_requests_total"} {
		if !seen[m] {
			t.Errorf("/metrics has no %s", m)
		}
	}
	return bytesSent, requests
}
