package seeder

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// hclogger is the hclog.Logger that hashicorp/raft, its network transport,
// its snapshot store and raft-wal write to, forwarding to a slog.Logger
// under a "component" attribute. raft logs every state change and every
// pipeline start at INFO, which is not progress an operator cares about
// (Raft logs leadership changes itself, at INFO), and logs at ERROR what
// it retries: an RPC to a dead peer, a log entry already compacted before
// it sends a snapshot instead. So the levels map as
//
//	hclog TRACE, DEBUG, INFO   slog DEBUG
//	hclog WARN, ERROR          slog WARN
//
// What needs a person (a disk that fails the log store, a lost quorum)
// also surfaces as errors of Raft's methods and in its Stats.
//
// The Is… methods ask the slog handler, so raft does not build records that
// would be dropped.
type hclogger struct {
	base    *slog.Logger // with the implied args, without the component
	log     *slog.Logger // base with the component
	name    string
	implied []any
}

func newHclogger(l *slog.Logger, name string) *hclogger {
	return &hclogger{base: l, log: l.With("component", name), name: name}
}

var _ hclog.Logger = (*hclogger)(nil)

func slogLevel(l hclog.Level) slog.Level {
	if l >= hclog.Warn {
		return slog.LevelWarn
	}
	return slog.LevelDebug
}

func (h *hclogger) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off {
		return
	}
	h.log.Log(context.Background(), slogLevel(level), msg, args...)
}

func (h *hclogger) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *hclogger) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *hclogger) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *hclogger) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *hclogger) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *hclogger) enabled(l hclog.Level) bool {
	return h.log.Enabled(context.Background(), slogLevel(l))
}

func (h *hclogger) IsTrace() bool { return h.enabled(hclog.Trace) }
func (h *hclogger) IsDebug() bool { return h.enabled(hclog.Debug) }
func (h *hclogger) IsInfo() bool  { return h.enabled(hclog.Info) }
func (h *hclogger) IsWarn() bool  { return h.enabled(hclog.Warn) }
func (h *hclogger) IsError() bool { return h.enabled(hclog.Error) }

func (h *hclogger) ImpliedArgs() []any { return h.implied }

func (h *hclogger) With(args ...any) hclog.Logger {
	n := newHclogger(h.base.With(args...), h.name)
	n.implied = append(h.implied[:len(h.implied):len(h.implied)], args...)
	return n
}

func (h *hclogger) Name() string { return h.name }

func (h *hclogger) Named(name string) hclog.Logger {
	if h.name != "" {
		name = h.name + "." + name
	}
	return h.ResetNamed(name)
}

func (h *hclogger) ResetNamed(name string) hclog.Logger {
	n := newHclogger(h.base, name)
	n.implied = h.implied
	return n
}

func (h *hclogger) SetLevel(hclog.Level) {} // the slog handler decides
func (h *hclogger) GetLevel() hclog.Level {
	switch {
	case h.IsDebug():
		return hclog.Trace
	case h.IsWarn():
		return hclog.Warn
	}
	return hclog.Off
}

func (h *hclogger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(h.StandardWriter(opts), "", 0)
}

// StandardWriter returns a writer that logs each line written to it at
// hclog INFO (slog DEBUG), or at opts.ForceLevel.
func (h *hclogger) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	level := hclog.Info
	if opts != nil && opts.ForceLevel != hclog.NoLevel {
		level = opts.ForceLevel
	}
	return lineWriter{h, level}
}

type lineWriter struct {
	h     *hclogger
	level hclog.Level
}

func (w lineWriter) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		if line = bytes.TrimRight(line, "\r\n"); len(line) > 0 {
			w.h.Log(w.level, string(line))
		}
	}
	return len(p), nil
}
