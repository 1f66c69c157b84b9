package meta

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/meshcast/meshcast/mesh/p2p/p2ptest"

	"github.com/meshcast/meshcast/mesh/p2p"
)

// TestServeFetchOverLibp2p: Fetch from one real host, Serve on another.
func TestServeFetchOverLibp2p(t *testing.T) {
	server, client := p2ptest.NewHost(t, "server"), p2ptest.NewHost(t, "client")
	big := bytes.Repeat([]byte("x"), 100<<10) // more than a QUIC packet or a bufio buffer
	Serve(server, fileSet(map[string]string{
		"metadata/timestamp.json": timestamp,
		"targets/big":             string(big),
	}), p2ptest.Log(t, "server", slog.LevelDebug))
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
