package p2p

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// rawProtocolPrefix names the temporary protocols of RawStreamThroughput.
const rawProtocolPrefix = "/meshcast/bench/raw/1/"

// rawChunk is the size of each write of RawStreamThroughput, and of the
// receiver's reads.
const rawChunk = 1 << 20

var rawSeq atomic.Uint64

// RawStreamThroughput measures the plain libp2p stream from a to b: it
// connects a to b if they are not connected, opens one stream, writes n bytes
// on it in 1 MiB writes, and returns n divided by the time from the first
// write until b's side has read all n bytes. It is the ceiling any protocol
// over libp2p streams between these hosts can reach, and the baseline the
// chunk-exchange benchmarks compare with.
//
// It registers a handler for a protocol of its own on b for the duration of
// the call (each call a new protocol id, so calls may overlap) and removes it
// before returning. b's gater must allow a, and a's must allow b. Cancelling
// ctx resets the stream and returns ctx's error.
func RawStreamThroughput(ctx context.Context, a, b host.Host, n int64) (bytesPerSec float64, err error) {
	if n <= 0 {
		return 0, fmt.Errorf("raw stream throughput: %d bytes to send", n)
	}
	proto := protocol.ID(fmt.Sprintf("%s%d", rawProtocolPrefix, rawSeq.Add(1)))
	type result struct {
		read int64
		end  time.Time
		err  error
	}
	done := make(chan result, 1)
	var claimed atomic.Bool
	b.SetStreamHandler(proto, func(s network.Stream) {
		// Only the first stream from a is ours.
		if s.Conn().RemotePeer() != a.ID() || !claimed.CompareAndSwap(false, true) {
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
		done <- result{read, end, err}
	})
	defer b.RemoveStreamHandler(proto)

	if err := a.Connect(ctx, AddrInfo(b)); err != nil {
		return 0, fmt.Errorf("raw stream throughput: connect %s to %s: %w", a.ID(), b.ID(), err)
	}
	s, err := a.NewStream(ctx, b.ID(), proto)
	if err != nil {
		return 0, fmt.Errorf("raw stream throughput: open stream %s to %s: %w", a.ID(), b.ID(), err)
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()

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
	return float64(r.read) / r.end.Sub(start).Seconds(), nil
}

// rawErr prefers ctx's error: a reset caused by cancelling ctx is reported
// as the cancellation.
func rawErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		err = errors.Join(ctx.Err(), err)
	}
	return fmt.Errorf("raw stream throughput: %w", err)
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
