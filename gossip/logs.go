package gossip

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"sync"
)

// Logging. memberlist logs through a *log.Logger; memberLogWriter turns its
// lines ("[WARN] memberlist: text") into records of the injected
// slog.Logger, so that memberlist never writes to stderr. Levels: DEBUG →
// Debug, INFO → Info, WARN and ERR → Warn. memberlist logs at ERR what a
// remote peer did (a packet it could not decrypt or decode, a stream that
// broke): trouble the site copes with, not something a person must act on;
// the text names the peer's address. Records carry lib=memberlist.
//
// memberlist does not wait for its goroutines at Shutdown, and its
// suspicion timers may still fire, so memberlist and our delegates may log
// after Close returns. Every record goes through a logGate that Close shuts:
// after Close nothing reaches the injected logger (a test's logger must not
// be used after the test ends).

// logGate drops records once shut; shut waits for records being handled.
type logGate struct {
	mu   sync.RWMutex
	shut bool
}

func (g *logGate) close() {
	g.mu.Lock()
	g.shut = true
	g.mu.Unlock()
}

// gatedHandler is a slog.Handler that passes records on while its gate is
// open.
type gatedHandler struct {
	h    slog.Handler
	gate *logGate
}

func (h gatedHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

func (h gatedHandler) Handle(ctx context.Context, r slog.Record) error {
	h.gate.mu.RLock()
	defer h.gate.mu.RUnlock()
	if h.gate.shut {
		return nil
	}
	return h.h.Handle(ctx, r)
}

func (h gatedHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return gatedHandler{h.h.WithAttrs(as), h.gate}
}

func (h gatedHandler) WithGroup(name string) slog.Handler {
	return gatedHandler{h.h.WithGroup(name), h.gate}
}

// memberLogWriter is the io.Writer of memberlist's *log.Logger.
type memberLogWriter struct{ log *slog.Logger }

func newMemberlistLogger(l *slog.Logger) *log.Logger {
	return log.New(memberLogWriter{l.With("lib", "memberlist")}, "", 0)
}

var memberLogLevels = [...]struct {
	tag string
	lvl slog.Level
}{
	{"[DEBUG] ", slog.LevelDebug},
	{"[INFO] ", slog.LevelInfo},
	{"[WARN] ", slog.LevelWarn},
	{"[ERR] ", slog.LevelWarn},
	{"[ERROR] ", slog.LevelWarn},
}

func (w memberLogWriter) Write(p []byte) (int, error) {
	line := bytes.TrimRight(p, "\r\n")
	lvl := slog.LevelInfo
	for _, l := range memberLogLevels {
		if rest, ok := bytes.CutPrefix(line, []byte(l.tag)); ok {
			line, lvl = rest, l.lvl
			break
		}
	}
	ctx := context.Background()
	if w.log.Enabled(ctx, lvl) {
		line, _ = bytes.CutPrefix(line, []byte("memberlist: "))
		w.log.Log(ctx, lvl, string(line))
	}
	return len(p), nil
}
