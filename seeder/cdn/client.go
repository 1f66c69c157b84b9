package cdn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/content/tuf"
)

// ClientConfig configures a Client. Zero values mean the documented
// defaults; Validate is called by NewClient.
type ClientConfig struct {
	// URL is the origin's base URL; metadata/ and targets/ and packs/ are
	// below it.
	URL string
	// TLS, if set, configures HTTPS: a custom CA pool and client
	// certificates.
	TLS *tls.Config
	// IdleTimeout aborts a request when no byte arrives for this long;
	// there is no wall-clock limit on a request that makes progress.
	// Default 30 s.
	IdleTimeout time.Duration
	// Attempts is how often a request is tried before it fails; an attempt
	// that delivered verified chunks does not count. Default 8.
	Attempts int
	// BackoffMin and BackoffMax bound the exponential backoff between
	// attempts (full jitter). Defaults 250 ms and 30 s.
	BackoffMin, BackoffMax time.Duration
	// Parallel is the number of Range requests in flight. Default 4.
	Parallel int
	// MaxGap is the largest run of unwanted bytes between two wanted chunk
	// bodies that a Range request spans rather than being split in two.
	// Default 64 KiB.
	MaxGap int64
	// MaxRange caps one Range request. Default 16 MiB.
	MaxRange int64
	// UserAgent is sent with every request. Default "meshcast".
	UserAgent string
}

func (c ClientConfig) withDefaults() ClientConfig {
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 30 * time.Second
	}
	if c.Attempts == 0 {
		c.Attempts = 8
	}
	if c.BackoffMin == 0 {
		c.BackoffMin = 250 * time.Millisecond
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = 30 * time.Second
	}
	if c.Parallel == 0 {
		c.Parallel = 4
	}
	if c.MaxGap == 0 {
		c.MaxGap = 64 << 10
	}
	if c.MaxRange == 0 {
		c.MaxRange = 16 << 20
	}
	if c.UserAgent == "" {
		c.UserAgent = "meshcast"
	}
	return c
}

// Validate checks the configuration after defaults are applied.
func (c ClientConfig) Validate() error {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("cdn url %q: want http(s)://host[:port][/path]", c.URL)
	}
	switch {
	case c.IdleTimeout < 0, c.BackoffMin < 0, c.BackoffMax < c.BackoffMin:
		return fmt.Errorf("cdn client: timeouts must be positive and backoff min ≤ max")
	case c.Attempts < 1 || c.Parallel < 1 || c.Parallel > 64:
		return fmt.Errorf("cdn client: attempts %d, parallel %d out of range", c.Attempts, c.Parallel)
	case c.MaxGap < 0 || c.MaxRange < content.MaxChunkSize:
		return fmt.Errorf("cdn client: max gap %d must be ≥ 0 and max range %d ≥ %d", c.MaxGap, c.MaxRange, content.MaxChunkSize)
	}
	return nil
}

// Client talks to one origin. It is safe for concurrent use.
type Client struct {
	cfg  ClientConfig
	base *url.URL
	hc   *http.Client
	log  *slog.Logger

	bytesIn   atomic.Int64 // bytes read from CDN connections
	requests  atomic.Int64
	certAsked atomic.Bool // the origin asked for a client certificate we do not have
}

// NewClient returns a client for cfg.URL.
func NewClient(cfg ClientConfig, log *slog.Logger) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	base, _ := url.Parse(strings.TrimSuffix(cfg.URL, "/") + "/")
	c := &Client{cfg: cfg, base: base, log: log}
	dialer := &net.Dialer{Timeout: cfg.IdleTimeout, KeepAlive: 30 * time.Second}
	tlsCfg := cfg.TLS
	if tlsCfg != nil && len(tlsCfg.Certificates) == 0 && tlsCfg.GetClientCertificate == nil {
		// An origin that requires a client certificate rejects us only
		// after a TLS 1.3 handshake, and over HTTP/2 net/http then reports
		// just "client conn could not be established". Note the request
		// so that a failure can say what is missing.
		tlsCfg = tlsCfg.Clone()
		tlsCfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c.certAsked.Store(true)
			return &tls.Certificate{}, nil // send none, as without the hook
		}
	}
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &countingConn{Conn: conn, n: &c.bytesIn}, nil
		},
		TLSClientConfig:       tlsCfg,
		ForceAttemptHTTP2:     cfg.TLS != nil,
		MaxIdleConnsPerHost:   cfg.Parallel + 2,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   cfg.IdleTimeout,
		ResponseHeaderTimeout: cfg.IdleTimeout,
	}
	c.hc = &http.Client{Transport: tr}
	return c, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// BytesFromCDN returns the bytes read from the origin's connections so far,
// headers and all.
func (c *Client) BytesFromCDN() int64 { return c.bytesIn.Load() }

// Requests returns the HTTP requests made so far, retries included.
func (c *Client) Requests() int64 { return c.requests.Load() }

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// Typed errors a caller may act on.
var (
	// ErrNotOnOrigin means the origin answered 404 or 410 for a file the
	// signed metadata says exists.
	ErrNotOnOrigin = errors.New("not on the origin")
	// ErrGaveUp means every attempt of a request failed.
	ErrGaveUp = errors.New("gave up after retries")
)

// HTTPError is a response status that is not a success.
type HTTPError struct {
	URL    string
	Status int
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("GET %s: %d %s", e.URL, e.Status, http.StatusText(e.Status))
}

// Is makes a 404 or 410 match ErrNotOnOrigin, and tuf.ErrNotFound (the
// Client is a tuf.Source).
func (e *HTTPError) Is(target error) bool {
	return (target == ErrNotOnOrigin || target == tuf.ErrNotFound) && (e.Status == http.StatusNotFound || e.Status == http.StatusGone)
}

// retryable reports whether a failed attempt may succeed when repeated.
func retryable(err error) bool {
	var he *HTTPError
	if errors.As(err, &he) {
		return he.Status >= 500 || he.Status == http.StatusRequestTimeout || he.Status == http.StatusTooManyRequests
	}
	var ce *content.ChunkError
	if errors.As(err, &ce) {
		return true // a corrupting proxy or a torn cache entry; bounded by Attempts
	}
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) {
		return false // a wrong CA or name: asking again gets the same certificate
	}
	// Transport errors, idle timeouts and truncated bodies.
	return true
}

// backoff waits before attempt n (1-based), with full jitter.
func (c *Client) backoff(ctx context.Context, n int) error {
	d := c.cfg.BackoffMin << min(n-1, 20)
	if d > c.cfg.BackoffMax || d <= 0 {
		d = c.cfg.BackoffMax
	}
	d = time.Duration(rand.Int64N(int64(d)) + 1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// resolve returns the absolute URL of a path below the origin.
func (c *Client) resolve(path string) string {
	return c.base.ResolveReference(&url.URL{Path: path}).String()
}

// response is an open response body guarded by an idle timer: when no byte
// arrives for IdleTimeout the request is cancelled and Read fails.
type response struct {
	body   io.ReadCloser
	timer  *time.Timer
	idle   time.Duration
	cancel context.CancelFunc
	status int
	header http.Header
}

func (r *response) Read(p []byte) (int, error) {
	n, err := r.body.Read(p)
	if n > 0 {
		r.timer.Reset(r.idle)
	}
	return n, err
}

func (r *response) Close() error {
	r.timer.Stop()
	err := r.body.Close()
	r.cancel()
	return err
}

// open sends one GET (with a byte range if end > 0: bytes start..end-1)
// and returns the body once the status is acceptable. It makes one
// attempt; callers retry.
func (c *Client) open(ctx context.Context, u string, start, end int64) (*response, error) {
	ctx, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(c.cfg.IdleTimeout, cancel)
	fail := func(err error) (*response, error) {
		timer.Stop()
		cancel()
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fail(err)
	}
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	if end > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", start, end-1))
	}
	c.requests.Add(1)
	res, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil && context.Cause(ctx) == context.Canceled {
			err = fmt.Errorf("GET %s: no response within %s: %w", u, c.cfg.IdleTimeout, err)
		} else if c.certAsked.Load() {
			err = fmt.Errorf("%w (the origin asked for a client certificate, and none is configured)", err)
		}
		return fail(err)
	}
	ok := res.StatusCode == http.StatusOK || (end > 0 && res.StatusCode == http.StatusPartialContent)
	if !ok {
		io.Copy(io.Discard, io.LimitReader(res.Body, 4096))
		res.Body.Close()
		return fail(&HTTPError{URL: u, Status: res.StatusCode})
	}
	timer.Reset(c.cfg.IdleTimeout)
	return &response{body: res.Body, timer: timer, idle: c.cfg.IdleTimeout, cancel: cancel, status: res.StatusCode, header: res.Header}, nil
}

// rangeBody positions a response at start: a 206 must say it begins at
// start; a 200 (a server that ignores Range) is skipped forward.
func rangeBody(r *response, start, end int64) error {
	if r.status == http.StatusPartialContent {
		cr := r.header.Get("Content-Range")
		var a, b int64
		if _, err := fmt.Sscanf(cr, "bytes %d-%d/", &a, &b); err != nil || a != start || b != end-1 {
			return fmt.Errorf("asked for bytes %d-%d, got Content-Range %q", start, end-1, cr)
		}
		return nil
	}
	if _, err := io.CopyN(io.Discard, r, start); err != nil {
		return fmt.Errorf("skip to byte %d of a full response: %w", start, err)
	}
	return nil
}

// Fetch returns the file at path below the origin (such as
// "metadata/timestamp.json"), at most maxLength bytes, retrying transient
// failures with backoff. A missing file is an error matching
// ErrNotOnOrigin (and tuf.ErrNotFound). Client is the tuf.Source of a
// seeder and of meshcast fetch.
func (c *Client) Fetch(ctx context.Context, path string, maxLength int64) ([]byte, error) {
	u := c.resolve(path)
	var last error
	for attempt := 1; attempt <= c.cfg.Attempts; attempt++ {
		if attempt > 1 {
			if err := c.backoff(ctx, attempt-1); err != nil {
				return nil, err
			}
		}
		b, err := c.fetchOnce(ctx, u, maxLength)
		if err == nil {
			return b, nil
		}
		var he *HTTPError
		if errors.As(err, &he) && !retryable(err) {
			return nil, &tufHTTPError{he}
		}
		var lm *metadata.ErrDownloadLengthMismatch
		if errors.As(err, &lm) || ctx.Err() != nil || !retryable(err) {
			return nil, err
		}
		last = err
		c.log.Warn("cdn metadata request failed; retrying", "url", u, "attempt", attempt, "err", err)
	}
	return nil, fmt.Errorf("%w: %w", ErrGaveUp, last)
}

// tufHTTPError is a final HTTP status as go-tuf expects it, a
// *metadata.ErrDownloadHTTP (a 404 on N+1.root.json means "no newer
// root"), that still is the *HTTPError, so that a manifest missing from
// the origin matches ErrNotOnOrigin as a missing pack does.
type tufHTTPError struct{ he *HTTPError }

func (e *tufHTTPError) Error() string { return e.he.Error() }
func (e *tufHTTPError) Unwrap() []error {
	return []error{e.he, &metadata.ErrDownloadHTTP{StatusCode: e.he.Status, URL: e.he.URL}}
}

func (c *Client) fetchOnce(ctx context.Context, u string, maxLength int64) ([]byte, error) {
	r, err := c.open(ctx, u, 0, 0)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if cl := r.header.Get("Content-Length"); cl != "" && r.header.Get("Content-Encoding") == "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n > maxLength {
			return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s is %d bytes, more than the %d allowed", u, n, maxLength)}
		}
	}
	b, err := io.ReadAll(io.LimitReader(r, maxLength+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if int64(len(b)) > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s is more than the %d bytes allowed", u, maxLength)}
	}
	return b, nil
}
