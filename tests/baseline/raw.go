package baseline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// rawProtocol is the protocol RawStream's receiving host serves.
const rawProtocol = protocol.ID("/meshcast/bench/raw/1")

// rawChunk is the size of each write of RawStream, and of the receiver's
// reads.
const rawChunk = 1 << 20

// RawStream measures the plain libp2p stream between two hosts: it starts
// two hosts the way Bitswap does (mesh/p2p.New on loopback QUIC, open
// gater), connects them, opens one stream from the first to the second,
// writes n bytes on it in 1 MiB writes, and returns n divided by the time
// from the first write until the second host has read all n bytes. It is
// the ceiling any protocol over libp2p streams between such hosts can
// reach, and the baseline that Bitswap's goodput and the chunk-exchange
// benchmarks compare with.
//
// Cancelling ctx resets the stream and returns an error wrapping ctx's
// error. RawStream closes both hosts before returning, whether it succeeds
// or fails.
func RawStream(ctx context.Context, n int64, log *slog.Logger) (bytesPerSec float64, err error) {
	if n <= 0 {
		return 0, fmt.Errorf("raw stream baseline: %d bytes to send", n)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hosts, err := startHosts(2, func(i int) string { return fmt.Sprintf("raw%d", i) }, log)
	if err != nil {
		return 0, fmt.Errorf("raw stream baseline: %w", err)
	}
	defer func() {
		if cerr := closeHosts(hosts); cerr != nil {
			err = errors.Join(err, fmt.Errorf("raw stream baseline: %w", cerr))
		}
	}()
	a, b := hosts[0], hosts[1]

	type result struct {
		read int64
		end  time.Time
		err  error
	}
	done := make(chan result, 1)
	b.SetStreamHandler(rawProtocol, func(s network.Stream) {
		// Only a stream from a is ours; the gater is open, so another
		// process on loopback could dial b.
		if s.Conn().RemotePeer() != a.ID() {
			_ = s.Reset()
			return
		}
		stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
		defer stop()
		read, err := drain(s, n)
		end := time.Now()
		if err == nil {
			// Wait for the writer's end of stream before closing: closing
			// our read side earlier would cancel its CloseWrite.
			if k, rerr := s.Read(make([]byte, 1)); k > 0 {
				err = fmt.Errorf("more than the %d bytes expected", n)
			} else if rerr != io.EOF {
				err = fmt.Errorf("waiting for end of stream: %w", rerr)
			}
		}
		if err != nil {
			_ = s.Reset()
		} else {
			_ = s.Close()
		}
		select {
		case done <- result{read, end, err}:
		default: // a second stream from a: not ours to report
		}
	})

	if err := connectAll(ctx, hosts); err != nil {
		return 0, rawErr(ctx, err)
	}
	s, err := a.NewStream(ctx, b.ID(), rawProtocol)
	if err != nil {
		return 0, rawErr(ctx, fmt.Errorf("open stream %s to %s: %w", a.ID(), b.ID(), err))
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()

	log.Info("raw stream baseline: sending", "bytes", n)
	buf := make([]byte, rawChunk)
	start := time.Now()
	for left := n; left > 0; {
		w := buf[:min(left, int64(len(buf)))]
		if _, err := s.Write(w); err != nil {
			return 0, rawErr(ctx, fmt.Errorf("write: %w", err))
		}
		left -= int64(len(w))
	}
	if err := s.CloseWrite(); err != nil {
		return 0, rawErr(ctx, fmt.Errorf("close write: %w", err))
	}
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		return 0, rawErr(ctx, ctx.Err())
	}
	if r.err != nil {
		return 0, rawErr(ctx, fmt.Errorf("receiver: %w", r.err))
	}
	bytesPerSec = float64(r.read) / r.end.Sub(start).Seconds()
	log.Info("raw stream baseline: done", "bytes", n, "MBps", bytesPerSec/1e6)
	return bytesPerSec, nil
}

// rawErr prefers ctx's error: a reset caused by cancelling ctx is reported
// as the cancellation.
func rawErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		err = errors.Join(ctx.Err(), err)
	}
	return fmt.Errorf("raw stream baseline: %w", err)
}

// drain reads and discards n bytes from r in reads of up to rawChunk bytes.
func drain(r io.Reader, n int64) (int64, error) {
	buf := make([]byte, rawChunk)
	var read int64
	for read < n {
		k, err := r.Read(buf[:min(n-read, int64(len(buf)))])
		read += int64(k)
		if err == io.EOF && read < n {
			return read, fmt.Errorf("stream ended after %d of %d bytes", read, n)
		}
		if err != nil && err != io.EOF {
			return read, err
		}
	}
	return read, nil
}
