package p2ptest

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/host"

	"github.com/meshcast/meshcast/mesh/p2p"
)

// Log is a slog.Logger writing records from level up to t.Log, prefixed
// with name, until the test's cleanups are done: a stream handler may
// return (and log) a moment after a closing host reset its stream.
func Log(t testing.TB, name string, level slog.Level) *slog.Logger {
	w := &tWriter{t: t, name: name}
	t.Cleanup(func() {
		w.mu.Lock()
		w.stopped = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type tWriter struct {
	t    testing.TB
	name string

	mu      sync.Mutex
	stopped bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.t.Log(w.name + ": " + strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// NewHost starts a libp2p host on 127.0.0.1 (QUIC) whose gater admits
// every peer, closed when the test ends.
func NewHost(t testing.TB, name string) host.Host {
	t.Helper()
	key, err := p2p.LoadIdentity(filepath.Join(t.TempDir(), "identity.key"))
	if err != nil {
		t.Fatal(err)
	}
	g := p2p.NewGater()
	g.SetOpen(true)
	cfg := p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}}
	h, err := p2p.New(cfg, key, g, Log(t, name, slog.LevelInfo))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("close %s: %v", name, err)
		}
	})
	return h
}

// Connect connects from to to, failing the test if it cannot.
func Connect(ctx context.Context, t testing.TB, from, to host.Host) {
	t.Helper()
	if err := from.Connect(ctx, p2p.AddrInfo(to)); err != nil {
		t.Fatal(err)
	}
}
