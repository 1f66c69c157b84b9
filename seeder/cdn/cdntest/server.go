package cdntest

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshcast/meshcast/seeder/cdn/devserver"
)

// EventWait bounds every wait for an event in these helpers and the tests
// that use them; it only expires when something is broken.
const EventWait = 10 * time.Second

// Server is a development origin (devserver.Server) serving for a test,
// with the Faults it asks about every request (none armed at first).
type Server struct {
	*devserver.Server
	Faults *Faults
}

// Serve starts a devserver.Server for cfg on 127.0.0.1:0, logging to t,
// and returns it with its base URL. The server is stopped, and waited for,
// when the test ends.
func Serve(t testing.TB, cfg devserver.Config) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ServeListener(t, cfg, ln, Logger(t, "cdn")), "http://" + ln.Addr().String()
}

// ServeTLS is Serve over HTTPS with tlsCfg (see PKI.Server).
func ServeTLS(t testing.TB, cfg devserver.Config, tlsCfg *tls.Config) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ServeListener(t, cfg, tls.NewListener(ln, tlsCfg), Logger(t, "cdn")), "https://" + ln.Addr().String()
}

// ServeListener runs a devserver.Server for cfg on ln until the test ends;
// then it cancels Serve, waits for it to return and fails the test if
// Serve failed. A nil log discards.
func ServeListener(t testing.TB, cfg devserver.Config, ln net.Listener, log *slog.Logger) *Server {
	t.Helper()
	faults := new(Faults)
	s, err := devserver.New(cfg, log, faults)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("cdn serve: %v", err)
		}
	})
	return &Server{Server: s, Faults: faults}
}

// Logger returns a logger that writes every record, debug included, to
// t.Log with name as a prefix. It must not be used after the test ends.
func Logger(t testing.TB, name string) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t, name}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct {
	t    testing.TB
	name string
}

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(w.name + ": " + strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// Request is one request a cdn.Server answered, as it logged it.
type Request struct {
	Method, Path, Range string
	Status              int
	Bytes               int64 // body bytes written
	Err                 string
}

// RequestLog is a slog.Handler for a cdn.Server that records every
// request the server answered and passes all records on to next.
type RequestLog struct {
	next    slog.Handler
	changed chan struct{} // 1-buffered: a request was recorded

	mu   sync.Mutex
	reqs []Request // guarded by mu
}

// NewRequestLog returns a RequestLog that also logs to t.
func NewRequestLog(t testing.TB) *RequestLog {
	return &RequestLog{next: Logger(t, "cdn").Handler(), changed: make(chan struct{}, 1)}
}

// Enabled implements slog.Handler.
func (l *RequestLog) Enabled(context.Context, slog.Level) bool { return true }

// WithAttrs implements slog.Handler; the server adds none.
func (l *RequestLog) WithAttrs([]slog.Attr) slog.Handler { return l }

// WithGroup implements slog.Handler; the server adds none.
func (l *RequestLog) WithGroup(string) slog.Handler { return l }

// Handle implements slog.Handler.
func (l *RequestLog) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Message == "cdn request" {
		var r Request
		rec.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "method":
				r.Method = a.Value.String()
			case "path":
				r.Path = a.Value.String()
			case "range":
				r.Range = a.Value.String()
			case "status":
				r.Status = int(a.Value.Int64())
			case "bytes":
				r.Bytes = a.Value.Int64()
			case "err":
				r.Err = a.Value.String()
			}
			return true
		})
		l.mu.Lock()
		l.reqs = append(l.reqs, r)
		l.mu.Unlock()
		select {
		case l.changed <- struct{}{}:
		default:
		}
	}
	if l.next.Enabled(ctx, rec.Level) {
		return l.next.Handle(ctx, rec)
	}
	return nil
}

// Requests returns the requests recorded so far, in the order they ended.
func (l *RequestLog) Requests() []Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Request(nil), l.reqs...)
}

// Wait waits until at least n requests have ended (the server logs a
// request just after its response, so a client may finish first) and
// returns them.
func (l *RequestLog) Wait(t testing.TB, n int) []Request {
	t.Helper()
	deadline := time.NewTimer(EventWait)
	defer deadline.Stop()
	for {
		if reqs := l.Requests(); len(reqs) >= n {
			return reqs
		}
		select {
		case <-l.changed:
		case <-deadline.C:
			t.Fatalf("only %d of %d requests ended within %v", len(l.Requests()), n, EventWait)
		}
	}
}

// RangeStart returns the first byte a request's "bytes=a-b" Range asked
// for, or -1 for none.
func (r Request) RangeStart() int64 {
	s, ok := strings.CutPrefix(r.Range, "bytes=")
	if !ok {
		return -1
	}
	a, _, _ := strings.Cut(s, "-")
	n, err := strconv.ParseInt(a, 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// ServeRecorded is Serve with a RequestLog that records every request the
// server answers.
func ServeRecorded(t testing.TB, cfg devserver.Config) (*Server, string, *RequestLog) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reqs := NewRequestLog(t)
	return ServeListener(t, cfg, ln, slog.New(reqs)), "http://" + ln.Addr().String(), reqs
}
