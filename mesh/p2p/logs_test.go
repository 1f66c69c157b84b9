package p2p_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/gologshim"

	"github.com/meshcast/meshcast/mesh/p2p"
)

// recorder is a slog.Handler that keeps records with their attributes.
type recorder struct {
	mu    *sync.Mutex
	recs  *[]slog.Record
	attrs []slog.Attr
}

func newRecorder() recorder { return recorder{mu: new(sync.Mutex), recs: new([]slog.Record)} }

func (r recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r recorder) Handle(_ context.Context, rec slog.Record) error {
	rec = rec.Clone()
	rec.AddAttrs(r.attrs...)
	r.mu.Lock()
	*r.recs = append(*r.recs, rec)
	r.mu.Unlock()
	return nil
}
func (r recorder) WithAttrs(as []slog.Attr) slog.Handler {
	r.attrs = append(r.attrs[:len(r.attrs):len(r.attrs)], as...)
	return r
}
func (r recorder) WithGroup(string) slog.Handler { return r }

func (r recorder) find(msg string) (slog.Record, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range *r.recs {
		if rec.Message == msg {
			return rec, true
		}
	}
	return slog.Record{}, false
}

// go-libp2p's package-level loggers write to the host's logger, not stderr.
func TestLibp2pLogsGoToHostLogger(t *testing.T) {
	rec := newRecorder()
	key, err := p2p.LoadIdentity(t.TempDir() + "/identity.key")
	if err != nil {
		t.Fatal(err)
	}
	h, err := p2p.New(p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}}, key, p2p.NewGater(), slog.New(rec))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()

	// A logger made the way libp2p's subsystems make theirs.
	sub := gologshim.Logger("p2ptest")
	sub.Error("something failed", "err", "boom")
	sub.Debug("chatter") // below libp2p's default level: dropped

	r, ok := rec.find("something failed")
	if !ok {
		t.Fatal("libp2p's error did not reach the host's logger")
	}
	if r.Level != slog.LevelWarn {
		t.Errorf("level %v, want WARN", r.Level)
	}
	var system string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "libp2p" {
			system = a.Value.String()
		}
		return true
	})
	if system != "p2ptest" {
		t.Errorf("libp2p attribute %q, want p2ptest", system)
	}
	if _, ok := rec.find("chatter"); ok {
		t.Error("a debug record got through at libp2p's default level")
	}
}
