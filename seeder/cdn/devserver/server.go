package devserver

import (
	"compress/gzip"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"
)

const (
	// minBurst is the smallest token bucket; the bucket is Rate/20 when larger.
	minBurst = 64 << 10

	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 60 * time.Second
	// shutdownGrace is how long Serve lets responses in flight finish once
	// its context is done, before it closes their connections.
	shutdownGrace = 5 * time.Second

	cacheImmutable  = "public, max-age=31536000, immutable"
	cacheRevalidate = "no-cache"
)

// ErrBadConfig is returned by New for a Config it cannot use.
var ErrBadConfig = errors.New("devserver: invalid config")

// errNotRegular marks a path that exists but is not a regular file.
var errNotRegular = errors.New("not a regular file")

// Config configures a Server. Zero values mean the default.
type Config struct {
	// Dir is the origin directory, served read-only. Required.
	Dir string
	// Rate caps the body bytes per second of all responses together, over
	// all connections. 0 means unlimited.
	Rate int64
	// Gzip compresses ".json" responses on the fly when the client accepts
	// gzip and asks for no Range, as real CDNs do.
	Gzip bool
	// ShutdownGrace is how long Serve lets responses in flight finish once
	// its context is done, before it closes their connections. Default 5 s.
	ShutdownGrace time.Duration
}

// Faults decides which failure, if any, the Server injects into a
// request: it is asked once per request (never for /metrics), with the
// request's URL path, on the request's goroutine, so it must be safe for
// concurrent use. Tests pass one to New (see cdntest.Faults); without one
// the Server injects nothing.
type Faults interface {
	Fault(urlPath string) Fault
}

// Fault is a failure the Server injects into one request. When several
// kinds are set, Status wins over Stall, and Stall over TruncateAt. The
// zero Fault injects nothing.
type Fault struct {
	// Status, if non-zero, is answered instead of the file, with no body.
	// It must be 200–599 (the request is answered 500 otherwise).
	Status int
	// TruncateAt, if > 0, closes the connection as soon as this many body
	// bytes of the response are written, so the client reads a short body
	// and an unexpected EOF. A body shorter than TruncateAt is sent whole.
	TruncateAt int64
	// Stall sends the headers and then no body byte until the client goes
	// away. A response without a body (HEAD, empty file) is not stalled.
	Stall bool
}

func (f Fault) active() bool { return f.Status != 0 || f.TruncateAt > 0 || f.Stall }

// Server is the development CDN origin. See the package doc for what it
// guarantees. Its methods are safe for concurrent use.
type Server struct {
	log     *slog.Logger
	dir     string        // absolute origin directory
	gzip    bool          // compress .json for clients that accept gzip
	limiter *rate.Limiter // shared by all responses; nil when unlimited
	metrics http.Handler  // the private registry in Prometheus text format
	grace   time.Duration // Config.ShutdownGrace
	faults  Faults        // nil: none

	sent     atomic.Int64 // body bytes written
	requests atomic.Int64 // requests answered, /metrics excluded
	codes    *prometheus.CounterVec
	ranges   prometheus.Counter
}

// New returns a Server for cfg, after checking that cfg.Dir is a directory
// it can open. A nil log discards; faults, if not nil, injects failures.
func New(cfg Config, log *slog.Logger, faults Faults) (*Server, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("%w: Dir is required", ErrBadConfig)
	}
	if cfg.Rate < 0 || cfg.ShutdownGrace < 0 {
		return nil, fmt.Errorf("%w: Rate %d or ShutdownGrace %v is negative", ErrBadConfig, cfg.Rate, cfg.ShutdownGrace)
	}
	if cfg.ShutdownGrace == 0 {
		cfg.ShutdownGrace = shutdownGrace
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("%w: Dir %q: %w", ErrBadConfig, cfg.Dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: open origin dir %q: %w", ErrBadConfig, cfg.Dir, err)
	}
	root.Close()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{log: log, dir: dir, gzip: cfg.Gzip, grace: cfg.ShutdownGrace, faults: faults}
	if cfg.Rate > 0 {
		s.limiter = rate.NewLimiter(rate.Limit(cfg.Rate), int(max(minBurst, cfg.Rate/20)))
	}
	reg := prometheus.NewRegistry()
	s.codes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshcast_cdn_requests_total",
		Help: "Requests answered by the CDN origin, by HTTP status code (/metrics excluded).",
	}, []string{"code"})
	s.ranges = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "meshcast_cdn_range_requests_total",
		Help: "Requests that carried a Range header.",
	})
	reg.MustRegister(s.codes, s.ranges, prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "meshcast_cdn_bytes_sent_total",
		Help: "Response body bytes written to clients, after compression.",
	}, func() float64 { return float64(s.sent.Load()) }))
	s.metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return s, nil
}

// BytesSent returns the body bytes written to clients so far, after
// compression, /metrics excluded.
func (s *Server) BytesSent() int64 { return s.sent.Load() }

// Requests returns the requests answered so far, /metrics excluded.
func (s *Server) Requests() int64 { return s.requests.Load() }

// fault returns the fault to inject into a request for urlPath.
func (s *Server) fault(urlPath string) Fault {
	if s.faults == nil {
		return Fault{}
	}
	f := s.faults.Fault(urlPath)
	if f.Status != 0 && (f.Status < 200 || f.Status > 599) {
		s.log.Error("devserver: a fault asked for status outside 200-599; answering 500", "status", f.Status)
		f.Status = http.StatusInternalServerError
	}
	return f
}

// Handler returns the handler that serves the origin's files and, on
// /metrics, the server's metrics (so a file named "metrics" at the top of
// Dir is not reachable).
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Serve answers HTTP on ln until ctx is done, then shuts down gracefully
// (responses in flight get a few seconds, then their connections are closed)
// and returns nil. It closes ln. When it returns, none of its handlers is
// running. Any other failure is returned.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	var (
		mu      sync.Mutex
		closing bool // guarded by mu: no handler may start any more
		active  sync.WaitGroup
	)
	if s.limiter != nil {
		if err := clampMSS(ln, wanMSS); err != nil {
			s.log.Debug("devserver: clamp segment size", "err", err)
		}
	}
	h := s.Handler()
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			if closing {
				mu.Unlock()
				http.Error(w, "shutting down", http.StatusServiceUnavailable)
				return
			}
			active.Add(1)
			mu.Unlock()
			defer active.Done()
			h.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		ConnContext:       s.connContext,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	var err error
	select {
	case err = <-errc:
		srv.Close()
		err = fmt.Errorf("devserver: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), s.grace)
		if srv.Shutdown(sctx) != nil {
			srv.Close() // the grace ran out: cut the remaining connections
		}
		cancel()
		<-errc // http.ErrServerClosed
	}
	ln.Close() // in case Shutdown won the race with srv.Serve; a double close is harmless
	mu.Lock()
	closing = true
	mu.Unlock()
	active.Wait()
	return err
}

// wanSendBuffer is the socket send buffer of a rate-capped server's
// connections (the kernel doubles it).
const wanSendBuffer = 16 << 10

// wanMSS is the segment size of a rate-capped server's connections: an
// Ethernet path's, not loopback's 64 KiB.
const wanMSS = 1448

// connContext gives each connection of a rate-capped server a small send
// buffer. The limiter paces writes into the socket, and the server counts
// a byte as sent when the socket takes it; a large buffer (megabytes on
// loopback) would count bytes that a client which stops reading, or dies,
// never receives, bytes that on a WAN would never have left the origin.
// The listener's segments are clamped to wanMSS (see Serve): with
// loopback's 64 KiB segments, a send buffer of 32 KiB holds less than
// one, the client's kernel delays its acknowledgement of a partial
// segment, and the link stalls for up to 40 ms at a time (a 12.5 MB/s
// origin delivered 4 MB/s to a site benchmark).
func (s *Server) connContext(ctx context.Context, c net.Conn) context.Context {
	if s.limiter == nil {
		return ctx
	}
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if tc, ok := c.(*net.TCPConn); ok {
		if err := tc.SetWriteBuffer(wanSendBuffer); err != nil {
			s.log.Debug("devserver: set send buffer", "err", err)
		}
	}
	return ctx
}

// serveHTTP answers one request.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/metrics" {
		s.metrics.ServeHTTP(w, r)
		return
	}
	rangeHdr := r.Header.Get("Range")
	if rangeHdr != "" {
		s.ranges.Inc()
	}
	b := &body{ResponseWriter: w, s: s, ctx: r.Context(), fault: s.fault(r.URL.Path)}
	defer func() {
		attrs := []slog.Attr{
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.String("range", rangeHdr), slog.Int("status", b.status), slog.Int64("bytes", b.n),
		}
		if b.fault.active() {
			attrs = append(attrs, slog.Any("fault", b.fault))
		}
		if b.err != nil {
			attrs = append(attrs, slog.Any("err", b.err))
		}
		s.log.LogAttrs(r.Context(), slog.LevelDebug, "cdn request", attrs...)
	}()
	switch {
	case b.fault.Status != 0:
		b.WriteHeader(b.fault.Status)
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(b, "405 method not allowed", http.StatusMethodNotAllowed)
	default:
		s.serveFile(b, r)
	}
}

// serveFile answers a GET or HEAD for a file of the origin.
func (s *Server) serveFile(b *body, r *http.Request) {
	name, ok := originName(r.URL.Path)
	if !ok {
		http.Error(b, "404 page not found", http.StatusNotFound)
		return
	}
	f, fi, err := s.open(name)
	if err != nil {
		b.err = err
		code := statusFor(err)
		http.Error(b, fmt.Sprintf("%d %s", code, http.StatusText(code)), code)
		return
	}
	defer f.Close()

	h := b.Header()
	isJSON := path.Ext(name) == ".json"
	if isJSON {
		h.Set("Content-Type", "application/json")
	} else {
		h.Set("Content-Type", "application/octet-stream")
	}
	h.Set("Cache-Control", cacheControl(name))
	if s.gzip && isJSON {
		h.Add("Vary", "Accept-Encoding")
		if r.Header.Get("Range") == "" && acceptsGzip(r.Header.Get("Accept-Encoding")) {
			b.err = s.sendGzip(b, r, f)
			return
		}
	}
	if strings.Contains(r.Header.Get("Range"), ",") {
		// Multi-range: answer 200 with the whole body (see the package doc),
		// which also keeps ServeContent from starting a multipart goroutine.
		r = r.Clone(r.Context())
		r.Header.Del("Range")
	}
	h.Set("ETag", fmt.Sprintf(`"%x-%x"`, fi.ModTime().UnixNano(), fi.Size()))
	http.ServeContent(b, r, name, fi.ModTime(), f)
}

// sendGzip answers 200 with f compressed on the fly. It handles no
// conditional request: the compressed body has no validators.
func (s *Server) sendGzip(b *body, r *http.Request, f *os.File) error {
	b.Header().Set("Content-Encoding", "gzip")
	b.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	gz, err := gzip.NewWriterLevel(b, gzip.BestSpeed)
	if err != nil {
		return fmt.Errorf("gzip %s: %w", r.URL.Path, err)
	}
	if _, err := io.Copy(gz, f); err != nil {
		return fmt.Errorf("gzip %s: %w", r.URL.Path, err)
	}
	if err := gz.Close(); err != nil {
		return fmt.Errorf("gzip %s: %w", r.URL.Path, err)
	}
	return nil
}

// open opens the regular file name inside the origin, through an os.Root
// so that nothing outside the origin can be reached.
func (s *Server) open(name string) (*os.File, fs.FileInfo, error) {
	root, err := os.OpenRoot(s.dir)
	if err != nil {
		return nil, nil, fmt.Errorf("open origin %s: %w", s.dir, err)
	}
	defer root.Close()
	// Stat first so that opening never blocks on a FIFO or a device.
	if fi, err := root.Stat(name); err != nil {
		return nil, nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("open %s: %w", name, errNotRegular)
	}
	f, err := root.Open(name)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("open %s: %w", name, errNotRegular) // replaced since the Stat
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// statusFor maps an error from open to the status answered.
func statusFor(err error) int {
	switch {
	case errors.Is(err, fs.ErrPermission):
		return http.StatusForbidden
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return http.StatusServiceUnavailable
	default: // missing, not a regular file, escapes the origin, …
		return http.StatusNotFound
	}
}

// originName returns the name inside the origin for a URL path, or false
// for a path that names nothing servable: "/", a trailing or double slash,
// a "." or ".." element, or any element that starts with ".".
func originName(urlPath string) (string, bool) {
	name, ok := strings.CutPrefix(urlPath, "/")
	if !ok || !fs.ValidPath(name) || name == "." || strings.ContainsRune(name, 0) {
		return "", false
	}
	for elem := range strings.SplitSeq(name, "/") {
		if strings.HasPrefix(elem, ".") {
			return "", false
		}
	}
	return name, true
}

// cacheControl returns the Cache-Control for a file: content-addressed
// names are immutable, the rest must be revalidated.
func cacheControl(name string) string {
	dir, base, _ := strings.Cut(name, "/")
	switch dir {
	case "packs", "chunks", "targets":
		return cacheImmutable
	case "metadata":
		// Versioned metadata, "N.role.json", never changes once published.
		if v, _, ok := strings.Cut(base, "."); ok && v != "" && strings.Trim(v, "0123456789") == "" {
			return cacheImmutable
		}
	}
	return cacheRevalidate
}

// acceptsGzip reports whether an Accept-Encoding value allows gzip.
func acceptsGzip(accept string) bool {
	for part := range strings.SplitSeq(accept, ",") {
		coding, params, _ := strings.Cut(part, ";")
		coding = strings.TrimSpace(coding)
		if !strings.EqualFold(coding, "gzip") && !strings.EqualFold(coding, "x-gzip") {
			continue
		}
		q, ok := strings.CutPrefix(strings.TrimSpace(params), "q=")
		if v, err := strconv.ParseFloat(q, 64); ok && err == nil && v == 0 {
			return false
		}
		return true
	}
	return false
}
