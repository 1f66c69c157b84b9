package p2p

import (
	"context"
	"log/slog"
	"sync"

	"github.com/libp2p/go-libp2p/gologshim"
)

// go-libp2p logs through package-level loggers (gologshim), one per
// subsystem ("swarm", "rcmgr", ...), that write to stderr unless a process-
// wide handler is installed before their first record. They cannot follow
// one host's logger, so New installs, once per process, a handler that
// forwards libp2p's records to the logger of the most recently started host
// that is still open, and drops them while no host is open.
//
// Levels: a subsystem forwards what GOLOG_LOG_LEVEL enables for it (libp2p's
// own default: errors only), so `GOLOG_LOG_LEVEL=swarm=debug` still works;
// the host's logger then filters as usual. libp2p's errors arrive as Warn:
// they are connection-level trouble the node copes with, not something a
// person must act on. Every record carries libp2p=<subsystem>.
//
// gologshim binds each subsystem's logger to a handler at its first record,
// so a subsystem that logged before the first New in the process (some
// other libp2p user) keeps writing to stderr.
var libp2pLogs logRouter

type logRouter struct {
	install sync.Once
	mu      sync.Mutex
	sinks   []*routeSink // open hosts, oldest first
}

type routeSink struct{ h slog.Handler }

// attach routes libp2p's records to log until the returned func is called.
func (r *logRouter) attach(log *slog.Logger) (detach func()) {
	r.install.Do(func() { gologshim.SetDefaultHandler(routeHandler{r: r}) })
	s := &routeSink{h: log.Handler()}
	r.mu.Lock()
	r.sinks = append(r.sinks, s)
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		for i, x := range r.sinks {
			if x == s {
				r.sinks = append(r.sinks[:i], r.sinks[i+1:]...)
				break
			}
		}
	}
}

func (r *logRouter) current() slog.Handler {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.sinks) == 0 {
		return nil
	}
	return r.sinks[len(r.sinks)-1].h
}

// routeHandler is the slog.Handler installed in gologshim. gologshim gives
// each subsystem's logger the attribute logger=<subsystem> through WithAttrs;
// other attributes and groups are replayed, in order, onto the sink.
type routeHandler struct {
	r      *logRouter
	system string
	ops    []handlerOp
}

// handlerOp is one WithAttrs (group == "") or WithGroup call.
type handlerOp struct {
	group string
	attrs []slog.Attr
}

func (h routeHandler) Enabled(ctx context.Context, lvl slog.Level) bool {
	if lvl < gologshim.ConfigFromEnv().LevelForSystem(h.system) {
		return false
	}
	s := h.r.current()
	return s != nil && s.Enabled(ctx, min(lvl, slog.LevelWarn))
}

func (h routeHandler) Handle(ctx context.Context, rec slog.Record) error {
	s := h.r.current()
	if s == nil {
		return nil
	}
	if rec.Level > slog.LevelWarn {
		rec.Level = slog.LevelWarn
	}
	s = s.WithAttrs([]slog.Attr{slog.String("libp2p", h.system)})
	for _, op := range h.ops {
		if op.group != "" {
			s = s.WithGroup(op.group)
		} else {
			s = s.WithAttrs(op.attrs)
		}
	}
	return s.Handle(ctx, rec)
}

func (h routeHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	var rest []slog.Attr
	for _, a := range attrs {
		if a.Key == "logger" && len(h.ops) == 0 {
			h.system = a.Value.String()
			continue
		}
		rest = append(rest, a)
	}
	if len(rest) > 0 {
		h.ops = append(h.ops[:len(h.ops):len(h.ops)], handlerOp{attrs: rest})
	}
	return h
}

func (h routeHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h.ops = append(h.ops[:len(h.ops):len(h.ops)], handlerOp{group: name})
	return h
}
