package meta

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/host"

	"github.com/meshcast/meshcast/mesh/p2p"
)

// testLog is a slog.Logger writing records from level up to t.Log,
// prefixed with name, until the test's cleanups are done: a Serve handler
// may return (and log) a moment after a closing host reset its stream.
func testLog(t testing.TB, name string, level slog.Level) *slog.Logger {
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

// newHost starts a libp2p host on 127.0.0.1 (QUIC) whose gater admits
// every peer, closed when the test ends.
func newHost(t *testing.T, name string) host.Host {
	t.Helper()
	key, err := p2p.LoadIdentity(t.TempDir() + "/identity.key")
	if err != nil {
		t.Fatal(err)
	}
	g := p2p.NewGater()
	g.SetOpen(true)
	cfg := p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}}
	h, err := p2p.New(cfg, key, g, testLog(t, name, slog.LevelInfo))
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

// TestServeFetchOverLibp2p: Fetch from one real host, Serve on another.
func TestServeFetchOverLibp2p(t *testing.T) {
	server, client := newHost(t, "server"), newHost(t, "client")
	big := bytes.Repeat([]byte("x"), 100<<10) // more than a QUIC packet or a bufio buffer
	Serve(server, fileSet(map[string]string{
		"metadata/timestamp.json": timestamp,
		"targets/big":             string(big),
	}), testLog(t, "server", slog.LevelDebug))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := client.Connect(ctx, p2p.AddrInfo(server)); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name    string
		path    string
		max     int64
		want    []byte
		wantErr error
	}{
		{"found", "metadata/timestamp.json", 16 << 10, []byte(timestamp), nil},
		{"found, 100 KiB", "targets/big", MaxFile, big, nil},
		{"missing", "metadata/2.root.json", 16 << 10, nil, ErrNotFound},
		{"too large", "targets/big", 100<<10 - 1, nil, ErrTooLarge},
		{"failed", "metadata/snapshot.json", 16 << 10, nil, errDisk},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := Fetch(ctx, client, server.ID(), c.path, c.max)
			if err := checkFetchErr(err, c.wantErr); err != nil {
				t.Error(err)
			}
			if !bytes.Equal(b, c.want) {
				t.Errorf("Fetch = %d bytes; want %d", len(b), len(c.want))
			}
			if err != nil && (!strings.Contains(err.Error(), c.path) || !strings.Contains(err.Error(), server.ID().String())) {
				t.Errorf("error %q names neither the path nor the peer", err)
			}
		})
	}

	// A peer that does not serve the protocol.
	if _, err := Fetch(ctx, server, client.ID(), "metadata/timestamp.json", 16<<10); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("Fetch from a peer without Serve: %v; want a stream error", err)
	}
}
