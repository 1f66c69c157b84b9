package devserver_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshcast/meshcast/seeder/cdn/cdntest"
	"github.com/meshcast/meshcast/seeder/cdn/devserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// eventWait bounds every wait for an event; it only fails a broken server.
const eventWait = 10 * time.Second

const secret = "the secret outside the origin"

// origin is a test origin directory and what is in it.
type origin struct {
	dir  string
	pack []byte // packs/p1.pack
	json []byte // metadata/big.json, compressible
}

// newOrigin lays out an origin with content-addressed and mutable files,
// hidden files, and symlinks that stay inside or escape it.
func newOrigin(t *testing.T) origin {
	t.Helper()
	parent := t.TempDir()
	o := origin{dir: filepath.Join(parent, "origin"), pack: randomBytes(200<<10, 1)}
	var js bytes.Buffer
	for i := 0; js.Len() < 100<<10; i++ {
		fmt.Fprintf(&js, "{\"chunk\": %d, \"cid\": \"bafkrei%040d\"},\n", i, i)
	}
	o.json = js.Bytes()
	files := map[string][]byte{
		"packs/p1.pack":              o.pack,
		"metadata/big.json":          o.json,
		"metadata/3.targets.json":    []byte(`{"v":3}`),
		"metadata/1.root.json":       []byte(`{"v":1}`),
		"metadata/root.json":         []byte(`{"v":1}`),
		"metadata/timestamp.json":    []byte(`{"t":1}`),
		"targets/ab12.manifest.json": []byte(`{"m":1}`),
		"misc.bin":                   []byte("misc"),
		"empty.bin":                  nil,
		".tmp-123":                   []byte(secret),
		"packs/.tmp-x":               []byte(secret),
		".git/config":                []byte(secret),
		"../secret.txt":              []byte(secret),
	}
	for name, data := range files {
		p := filepath.Join(o.dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"escape.txt":     "../secret.txt",
		"abs-escape.txt": filepath.Join(parent, "secret.txt"),
		"escape-dir":     "..",
		"alias.pack":     "packs/p1.pack",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(o.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return o
}

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed)})
	r.Read(b)
	return b
}

// recorder is a slog.Handler that logs to t and keeps the attributes of
// every "cdn request" record, which the server logs as a handler ends.
type recorder struct {
	t       *testing.T
	changed chan struct{} // 1-buffered: a record was added

	mu   sync.Mutex
	reqs []map[string]string // guarded by mu
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	attrs := map[string]string{}
	rec.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
	r.t.Logf("%s %s %v", rec.Level, rec.Message, attrs)
	if rec.Message == "cdn request" {
		r.mu.Lock()
		r.reqs = append(r.reqs, attrs)
		r.mu.Unlock()
		select {
		case r.changed <- struct{}{}:
		default:
		}
	}
	return nil
}

// waitRequests waits until n requests have ended and returns their records.
func (r *recorder) waitRequests(n int) []map[string]string {
	r.t.Helper()
	deadline := time.After(eventWait)
	for {
		r.mu.Lock()
		reqs := append([]map[string]string(nil), r.reqs...)
		r.mu.Unlock()
		if len(reqs) >= n {
			return reqs
		}
		select {
		case <-r.changed:
		case <-deadline:
			r.t.Fatalf("only %d of %d requests ended within %v", len(reqs), n, eventWait)
		}
	}
}

// testServer is a Server running Serve on a loopback listener.
type testServer struct {
	*devserver.Server
	faults *cdntest.Faults
	rec    *recorder
	addr   string
	url    string
	stop   func() error // cancels Serve and returns what it returned
}

// start runs a Server for cfg until the test ends.
func start(t *testing.T, cfg devserver.Config) *testServer {
	t.Helper()
	rec := &recorder{t: t, changed: make(chan struct{}, 1)}
	faults := new(cdntest.Faults)
	cfg.ShutdownGrace = 100 * time.Millisecond
	s, err := devserver.New(cfg, slog.New(rec), faults)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	var once sync.Once
	var serveErr error
	ts := &testServer{Server: s, faults: faults, rec: rec, addr: ln.Addr().String(), url: "http://" + ln.Addr().String()}
	ts.stop = func() error {
		once.Do(func() { cancel(); serveErr = <-done })
		return serveErr
	}
	t.Cleanup(func() {
		if err := ts.stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ts
}

// newClient returns a client of its own; with raw, it neither asks for nor
// undoes compression.
func newClient(t *testing.T, raw bool) *http.Client {
	tr := &http.Transport{DisableCompression: raw}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// do sends a request and reads the whole body.
func do(t *testing.T, c *http.Client, method, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp, body
}

// rawGet sends target exactly as given on a fresh connection, so that no
// client cleans the path first.
func rawGet(t *testing.T, addr, target string) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: cdn\r\nConnection: close\r\n\r\n", target)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", target, err)
	}
	return resp.StatusCode, string(body)
}

func TestNewRejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]devserver.Config{
		"no dir":         {},
		"missing dir":    {Dir: filepath.Join(dir, "missing")},
		"dir is a file":  {Dir: file},
		"negative rate":  {Dir: dir, Rate: -1},
		"negative grace": {Dir: dir, ShutdownGrace: -1},
	} {
		if _, err := devserver.New(cfg, nil, nil); !errors.Is(err, devserver.ErrBadConfig) {
			t.Errorf("%s: New = %v, want devserver.ErrBadConfig", name, err)
		}
	}
	if _, err := devserver.New(devserver.Config{Dir: dir}, nil, nil); err != nil {
		t.Errorf("New with a nil logger: %v", err)
	}
}

// TestGetAndHead proves a full GET returns the file's exact bytes and
// headers, HEAD returns the headers and no body, and both are counted.
func TestGetAndHead(t *testing.T) {
	o := newOrigin(t)
	s := start(t, devserver.Config{Dir: o.dir})
	c := newClient(t, false)

	resp, body := do(t, c, "GET", s.url+"/packs/p1.pack")
	if resp.StatusCode != 200 || !bytes.Equal(body, o.pack) {
		t.Fatalf("GET: status %d, %d bytes, want 200 and the %d file bytes", resp.StatusCode, len(body), len(o.pack))
	}
	if got := resp.Header.Get("Accept-Ranges"); got != "bytes" {
		t.Errorf("Accept-Ranges = %q", got)
	}
	resp, body = do(t, c, "HEAD", s.url+"/packs/p1.pack")
	if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != int64(len(o.pack)) {
		t.Fatalf("HEAD: status %d, %d body bytes, Content-Length %d", resp.StatusCode, len(body), resp.ContentLength)
	}
	if got := s.BytesSent(); got != int64(len(o.pack)) {
		t.Errorf("BytesSent = %d, want %d", got, len(o.pack))
	}
	if got := s.Requests(); got != 2 {
		t.Errorf("Requests = %d, want 2", got)
	}
	resp, body = do(t, c, "GET", s.url+"/alias.pack") // a symlink inside the origin
	if resp.StatusCode != 200 || !bytes.Equal(body, o.pack) {
		t.Errorf("GET through an inner symlink: status %d, %d bytes", resp.StatusCode, len(body))
	}
}

// TestRanges proves each single-range form returns exactly the asked bytes
// with Content-Range, unsatisfiable ranges get 416, and a multi-range
// request gets the whole body.
func TestRanges(t *testing.T) {
	o := newOrigin(t)
	s := start(t, devserver.Config{Dir: o.dir})
	c := newClient(t, false)
	n := len(o.pack)
	for _, tc := range []struct {
		rng, contentRange string
		status            int
		want              []byte
	}{
		{"bytes=0-9", "bytes 0-9/" + strconv.Itoa(n), 206, o.pack[:10]},
		{"bytes=1000-1999", fmt.Sprintf("bytes 1000-1999/%d", n), 206, o.pack[1000:2000]},
		{"bytes=100-", fmt.Sprintf("bytes 100-%d/%d", n-1, n), 206, o.pack[100:]},
		{"bytes=-50", fmt.Sprintf("bytes %d-%d/%d", n-50, n-1, n), 206, o.pack[n-50:]},
		{"bytes=10-99999999", fmt.Sprintf("bytes 10-%d/%d", n-1, n), 206, o.pack[10:]},
		{fmt.Sprintf("bytes=%d-", n), fmt.Sprintf("bytes */%d", n), 416, nil},
		{"bytes=0-1,5-6", "", 200, o.pack},
	} {
		resp, body := do(t, c, "GET", s.url+"/packs/p1.pack", "Range", tc.rng)
		if resp.StatusCode != tc.status || resp.Header.Get("Content-Range") != tc.contentRange {
			t.Errorf("%s: status %d Content-Range %q, want %d %q", tc.rng, resp.StatusCode,
				resp.Header.Get("Content-Range"), tc.status, tc.contentRange)
			continue
		}
		if tc.want != nil && !bytes.Equal(body, tc.want) {
			t.Errorf("%s: got %d bytes, want %d bytes %x…", tc.rng, len(body), len(tc.want), tc.want[:4])
		}
		if tc.status == 416 && resp.Header.Get("Cache-Control") != "" {
			t.Errorf("%s: a 416 carries Cache-Control %q", tc.rng, resp.Header.Get("Cache-Control"))
		}
	}

	// Resuming with If-Range: the range only while the file is unchanged.
	head, _ := do(t, c, "HEAD", s.url+"/packs/p1.pack")
	etag := head.Header.Get("ETag")
	if resp, body := do(t, c, "GET", s.url+"/packs/p1.pack", "Range", "bytes=10-19", "If-Range", etag); resp.StatusCode != 206 || !bytes.Equal(body, o.pack[10:20]) {
		t.Errorf("If-Range with the current ETag %s: status %d, %d bytes", etag, resp.StatusCode, len(body))
	}
	if resp, body := do(t, c, "GET", s.url+"/packs/p1.pack", "Range", "bytes=10-19", "If-Range", `"stale"`); resp.StatusCode != 200 || !bytes.Equal(body, o.pack) {
		t.Errorf("If-Range with a stale ETag: status %d, %d bytes", resp.StatusCode, len(body))
	}
	if resp, _ := do(t, c, "GET", s.url+"/packs/p1.pack", "If-None-Match", etag); resp.StatusCode != 304 {
		t.Errorf("If-None-Match with the current ETag: status %d, want 304", resp.StatusCode)
	}
	if resp, body := do(t, c, "GET", s.url+"/empty.bin", "Range", "bytes=0-9"); resp.StatusCode != 200 || len(body) != 0 {
		t.Errorf("range of an empty file: status %d, %d bytes, want 200 and none", resp.StatusCode, len(body))
	}
}

// TestHeaders proves the Content-Type and Cache-Control of each kind of name.
func TestHeaders(t *testing.T) {
	o := newOrigin(t)
	s := start(t, devserver.Config{Dir: o.dir})
	c := newClient(t, false)
	const immutable, revalidate = "public, max-age=31536000, immutable", "no-cache"
	for _, tc := range []struct{ path, ctype, cache string }{
		{"/packs/p1.pack", "application/octet-stream", immutable},
		{"/metadata/3.targets.json", "application/json", immutable},
		{"/metadata/1.root.json", "application/json", immutable},
		{"/metadata/root.json", "application/json", revalidate},
		{"/metadata/timestamp.json", "application/json", revalidate},
		{"/targets/ab12.manifest.json", "application/json", immutable},
		{"/misc.bin", "application/octet-stream", revalidate},
	} {
		resp, _ := do(t, c, "HEAD", s.url+tc.path)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tc.ctype || resp.Header.Get("Cache-Control") != tc.cache {
			t.Errorf("%s: %d %q %q, want 200 %q %q", tc.path, resp.StatusCode,
				resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"), tc.ctype, tc.cache)
		}
	}
}

// TestNeverOutsideOrigin proves no path, however spelled, and no symlink
// reaches a file outside the origin.
func TestNeverOutsideOrigin(t *testing.T) {
	o := newOrigin(t)
	s := start(t, devserver.Config{Dir: o.dir})
	for _, target := range []string{
		"/../secret.txt",
		"/%2e%2e/secret.txt",
		"/%2E%2E%2Fsecret.txt",
		"/packs/../../secret.txt",
		"/packs/..%2f..%2fsecret.txt",
		"/escape.txt",
		"/abs-escape.txt",
		"/escape-dir/secret.txt",
		"/escape-dir/origin/packs/p1.pack",
	} {
		code, body := rawGet(t, s.addr, target)
		if (code != 404 && code != 403) || strings.Contains(body, secret) {
			t.Errorf("GET %s: status %d body %q, want 404 or 403 without the secret", target, code, body)
		}
	}
}

// TestHiddenAndDirectories proves dot files, dot directories, directories
// and other methods are refused.
func TestHiddenAndDirectories(t *testing.T) {
	o := newOrigin(t)
	s := start(t, devserver.Config{Dir: o.dir})
	for _, target := range []string{"/.tmp-123", "/packs/.tmp-x", "/.git/config", "/packs", "/packs/", "/", "//packs/p1.pack"} {
		if code, body := rawGet(t, s.addr, target); code != 404 || strings.Contains(body, secret) {
			t.Errorf("GET %s: status %d body %q, want 404", target, code, body)
		}
	}
	resp, _ := do(t, newClient(t, false), "POST", s.url+"/packs/p1.pack")
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: status %d Allow %q, want 405 %q", resp.StatusCode, resp.Header.Get("Allow"), "GET, HEAD")
	}
}

// TestGzip proves .json is compressed exactly when the client accepts gzip
// and asks for no range, and that BytesSent counts the compressed bytes.
func TestGzip(t *testing.T) {
	o := newOrigin(t)
	s := start(t, devserver.Config{Dir: o.dir, Gzip: true})
	raw := newClient(t, true)
	url := s.url + "/metadata/big.json"

	before := s.BytesSent()
	resp, body := do(t, raw, "GET", url, "Accept-Encoding", "gzip")
	if resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Vary") != "Accept-Encoding" {
		t.Fatalf("Accept-Encoding gzip: Content-Encoding %q Vary %q", resp.Header.Get("Content-Encoding"), resp.Header.Get("Vary"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(plain, o.json) {
		t.Fatalf("gunzip: %d bytes, %v; want the %d file bytes", len(plain), err, len(o.json))
	}
	if sent := s.BytesSent() - before; sent != int64(len(body)) || sent >= int64(len(o.json)) {
		t.Errorf("BytesSent grew by %d, want the %d compressed bytes (< %d)", sent, len(body), len(o.json))
	}

	identity := []struct {
		name, url string
		hdr       []string
		status    int
	}{
		{"no Accept-Encoding", url, nil, 200},
		{"gzip;q=0", url, []string{"Accept-Encoding", "gzip;q=0"}, 200},
		{"range", url, []string{"Accept-Encoding", "gzip", "Range", "bytes=0-9"}, 206},
		{"not json", s.url + "/packs/p1.pack", []string{"Accept-Encoding", "gzip"}, 200},
	}
	for _, tc := range identity {
		resp, body := do(t, raw, "GET", tc.url, tc.hdr...)
		if resp.StatusCode != tc.status || resp.Header.Get("Content-Encoding") != "" || int64(len(body)) != resp.ContentLength {
			t.Errorf("%s: status %d Content-Encoding %q, %d bytes of %d", tc.name, resp.StatusCode,
				resp.Header.Get("Content-Encoding"), len(body), resp.ContentLength)
		}
	}

	resp, body = do(t, raw, "HEAD", url, "Accept-Encoding", "gzip")
	if resp.Header.Get("Content-Encoding") != "gzip" || len(body) != 0 {
		t.Errorf("HEAD gzip: Content-Encoding %q, %d body bytes", resp.Header.Get("Content-Encoding"), len(body))
	}
	resp, body = do(t, newClient(t, false), "GET", url) // Go's client asks and decompresses
	if !resp.Uncompressed || !bytes.Equal(body, o.json) {
		t.Errorf("default client: Uncompressed %v, %d bytes", resp.Uncompressed, len(body))
	}

	off := start(t, devserver.Config{Dir: o.dir})
	resp, _ = do(t, raw, "GET", off.url+"/metadata/big.json", "Accept-Encoding", "gzip")
	if resp.Header.Get("Content-Encoding") != "" || resp.Header.Get("Vary") != "" {
		t.Errorf("Gzip off: Content-Encoding %q Vary %q", resp.Header.Get("Content-Encoding"), resp.Header.Get("Vary"))
	}
}

// TestMetrics proves /metrics reports the counters after known requests
// and is itself neither counted nor logged as a request.
func TestMetrics(t *testing.T) {
	o := newOrigin(t)
	s := start(t, devserver.Config{Dir: o.dir})
	c := newClient(t, false)
	var got int
	for _, r := range []struct{ method, path, rng string }{
		{"GET", "/packs/p1.pack", ""},
		{"GET", "/packs/p1.pack", "bytes=0-99"},
		{"GET", "/missing", ""},
		{"HEAD", "/packs/p1.pack", ""},
	} {
		var hdr []string
		if r.rng != "" {
			hdr = []string{"Range", r.rng}
		}
		_, body := do(t, c, r.method, s.url+r.path, hdr...)
		got += len(body)
	}
	want := map[string]float64{
		`meshcast_cdn_requests_total{code="200"}`: 2,
		`meshcast_cdn_requests_total{code="206"}`: 1,
		`meshcast_cdn_requests_total{code="404"}`: 1,
		`meshcast_cdn_range_requests_total`:       1,
		`meshcast_cdn_bytes_sent_total`:           float64(got),
	}
	for range 2 { // the second scrape proves the first was not counted
		_, text := do(t, c, "GET", s.url+"/metrics")
		values := map[string]float64{}
		for line := range strings.Lines(string(text)) {
			i := strings.LastIndexByte(line, ' ')
			if strings.HasPrefix(line, "#") || i < 0 {
				continue
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(line[i+1:]), 64)
			if err != nil {
				t.Fatalf("metrics line %q: %v", line, err)
			}
			values[line[:i]] = v
		}
		for k, v := range want {
			if values[k] != v {
				t.Errorf("%s = %v, want %v", k, values[k], v)
			}
		}
		if !strings.Contains(string(text), "# TYPE meshcast_cdn_bytes_sent_total counter") {
			t.Errorf("bytes sent is not a counter:\n%s", text)
		}
	}
	if s.Requests() != 4 || s.BytesSent() != int64(got) {
		t.Errorf("Requests %d BytesSent %d, want 4 and %d", s.Requests(), s.BytesSent(), got)
	}
	if n := len(s.rec.waitRequests(4)); n != 4 {
		t.Errorf("%d request log records, want 4", n)
	}
}

// TestRateCapsAllConnections proves the cap is one budget for all
// connections, with a bound that cannot flake: by any moment the server can
// have written at most burst + Rate*elapsed body bytes, however fast or slow
// the machine. Without a shared cap, four clients on loopback would fetch
// all 4×4 MiB long before their deadline.
func TestRateCapsAllConnections(t *testing.T) {
	o := newOrigin(t)
	big := randomBytes(4<<20, 2)
	if err := os.WriteFile(filepath.Join(o.dir, "packs/big.pack"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	const rateBps, burst = 256 << 10, 64 << 10 // burst: max(64 KiB, Rate/20)
	begin := time.Now()                        // before the bucket exists
	s := start(t, devserver.Config{Dir: o.dir, Rate: rateBps})
	c := newClient(t, false)

	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	read := make([]int64, 4)
	for i := range read {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, "GET", s.url+"/packs/big.pack", nil)
			resp, err := c.Do(req)
			if err != nil {
				return // the deadline came before the headers
			}
			defer resp.Body.Close()
			read[i], _ = io.Copy(io.Discard, resp.Body)
		})
	}
	wg.Wait()
	sent := s.BytesSent()
	elapsed := time.Since(begin)
	// 1 KiB of slack covers x/time/rate's float rounding (< 1 ns per wait).
	bound := burst + rateBps*elapsed.Seconds() + 1024
	t.Logf("sent %d bytes in %v (bound %.0f), clients read %v", sent, elapsed, bound, read)
	if float64(sent) > bound {
		t.Errorf("sent %d bytes in %v, more than burst + Rate*elapsed = %.0f", sent, elapsed, bound)
	}
	if sent == 0 {
		t.Error("sent nothing")
	}
}

// TestClientCancelStopsResponse proves a rate-limited response stops as
// soon as its client goes away: the handler ends long before the file could
// have been sent (64 s at this rate), having sent only part of it, and no
// goroutine is left behind.
func TestClientCancelStopsResponse(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // runs last, after the server stopped
	o := newOrigin(t)
	big := randomBytes(4<<20, 3)
	if err := os.WriteFile(filepath.Join(o.dir, "packs/big.pack"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	s := start(t, devserver.Config{Dir: o.dir, Rate: 64 << 10})
	c := newClient(t, false)

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", s.url+"/packs/big.pack", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 16<<10)); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	rec := s.rec.waitRequests(1)[0]
	if n, _ := strconv.Atoi(rec["bytes"]); n >= len(big) || n < 16<<10 {
		t.Errorf("handler ended after %d bytes, want between 16 KiB and %d", n, len(big))
	}
	if rec["err"] == "" {
		t.Errorf("handler ended without an error: %v", rec)
	}
}

// TestFaultStatus proves a Status fault answers only its path, with an
// empty body, exactly as many times as armed even under concurrent
// requests; that a fault for every path spares /metrics; and that a status
// that is not one is answered 500.
func TestFaultStatus(t *testing.T) {
	o := newOrigin(t)
	s := start(t, devserver.Config{Dir: o.dir})
	c := newClient(t, false)

	s.faults.Set("/metadata/timestamp.json", devserver.Fault{Status: 503}, 3)
	if resp, _ := do(t, c, "GET", s.url+"/packs/p1.pack"); resp.StatusCode != 200 {
		t.Errorf("other path: status %d, want 200", resp.StatusCode)
	}
	codes := make(chan int, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			resp, err := c.Get(s.url + "/metadata/timestamp.json")
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			if body, err := io.ReadAll(resp.Body); err != nil || (resp.StatusCode == 503 && len(body) != 0) {
				t.Errorf("%d with a %d byte body, %v", resp.StatusCode, len(body), err)
			}
			codes <- resp.StatusCode
		})
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for code := range codes {
		count[code]++
	}
	if count[503] != 3 || count[200] != 5 {
		t.Errorf("statuses %v, want 3×503 and 5×200", count)
	}

	s.faults.Set("", devserver.Fault{Status: 500}, 0)
	for _, m := range []string{"GET", "HEAD"} {
		for _, p := range []string{"/packs/p1.pack", "/missing"} {
			if resp, _ := do(t, c, m, s.url+p); resp.StatusCode != 500 {
				t.Errorf("%s %s under a fault for every path: %d, want 500", m, p, resp.StatusCode)
			}
		}
	}
	if resp, _ := do(t, c, "GET", s.url+"/metrics"); resp.StatusCode != 200 {
		t.Errorf("/metrics under a fault: %d", resp.StatusCode)
	}
	s.faults.Set("", devserver.Fault{}, 0)
	if resp, _ := do(t, c, "GET", s.url+"/missing"); resp.StatusCode != 404 {
		t.Errorf("after clearing: %d, want 404", resp.StatusCode)
	}

	// A status that is not one is answered 500, not sent.
	s.faults.Set("", devserver.Fault{Status: 42}, 0)
	if resp, _ := do(t, c, "GET", s.url+"/packs/p1.pack"); resp.StatusCode != 500 {
		t.Errorf("a fault of status 42: %d, want 500", resp.StatusCode)
	}
}

// TestFaultTruncate proves the client sees exactly TruncateAt correct bytes
// and then an unexpected EOF, for a plain and a compressed body, and that
// the fault ends after the requests it was armed for.
func TestFaultTruncate(t *testing.T) {
	o := newOrigin(t)
	s := start(t, devserver.Config{Dir: o.dir, Gzip: true})
	c := newClient(t, true)

	for _, tc := range []struct{ path, enc string }{{"/packs/p1.pack", ""}, {"/metadata/big.json", "gzip"}} {
		s.faults.Set(tc.path, devserver.Fault{TruncateAt: 1000}, 1)
		before := s.BytesSent()
		req, _ := http.NewRequest("GET", s.url+tc.path, nil)
		if tc.enc != "" {
			req.Header.Set("Accept-Encoding", tc.enc)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !errors.Is(err, io.ErrUnexpectedEOF) || len(body) != 1000 {
			t.Errorf("%s: read %d bytes, %v; want 1000 and an unexpected EOF", tc.path, len(body), err)
		}
		if tc.enc == "" && !bytes.Equal(body, o.pack[:len(body)]) {
			t.Errorf("%s: the bytes before the cut are wrong", tc.path)
		}
		if sent := s.BytesSent() - before; sent != 1000 {
			t.Errorf("%s: BytesSent grew by %d, want 1000", tc.path, sent)
		}
		if resp, body := do(t, c, "GET", s.url+tc.path); resp.StatusCode != 200 || int64(len(body)) != resp.ContentLength {
			t.Errorf("%s after the fault: status %d, %d bytes of %d", tc.path, resp.StatusCode, len(body), resp.ContentLength)
		}
	}
}

// TestFaultStall proves a stalled response sends its headers and no body
// byte until the client goes away, and then its handler ends.
func TestFaultStall(t *testing.T) {
	o := newOrigin(t)
	s := start(t, devserver.Config{Dir: o.dir})
	s.faults.Set("", devserver.Fault{Stall: true}, 0)
	c := newClient(t, false)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.url+"/packs/p1.pack", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != int64(len(o.pack)) {
		t.Fatalf("stalled headers: status %d Content-Length %d", resp.StatusCode, resp.ContentLength)
	}
	cancel()
	if body, err := io.ReadAll(resp.Body); err == nil || len(body) != 0 {
		t.Errorf("stalled body: %d bytes, %v; want none and an error", len(body), err)
	}
	rec := s.rec.waitRequests(1)[0]
	if rec["bytes"] != "0" || !strings.Contains(rec["err"], "stall") {
		t.Errorf("stalled handler ended with %v", rec)
	}
	if s.BytesSent() != 0 {
		t.Errorf("BytesSent = %d, want 0", s.BytesSent())
	}
}

// TestServeShutsDown proves Serve returns nil when its context ends, cuts a
// response still in flight once the grace is over, and returns only after
// that handler ended; and that it reports a listener that fails.
func TestServeShutsDown(t *testing.T) {
	o := newOrigin(t)
	s := start(t, devserver.Config{Dir: o.dir})
	s.faults.Set("", devserver.Fault{Stall: true}, 0)
	c := newClient(t, false)

	resp, err := c.Get(s.url + "/packs/p1.pack")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := s.stop(); err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
	s.rec.mu.Lock()
	ended := len(s.rec.reqs)
	s.rec.mu.Unlock()
	if ended != 1 {
		t.Errorf("Serve returned with %d of 1 handlers ended", ended)
	}
	if body, err := io.ReadAll(resp.Body); err == nil {
		t.Errorf("the cut response read %d bytes without error", len(body))
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if err := s.Serve(context.Background(), ln); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Serve on a closed listener = %v, want net.ErrClosed", err)
	}
}
