package devserver

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
)

// maxPiece is the most body bytes written at once; with a Rate each piece
// waits for its tokens first.
const maxPiece = 32 << 10

// body wraps the ResponseWriter of one request: it counts the status and
// the body bytes, paces the body through the shared limiter, and applies
// the body faults (Stall, TruncateAt).
type body struct {
	http.ResponseWriter
	s     *Server
	ctx   context.Context // the request's: done when the client goes away
	fault Fault

	status int   // the status written, 0 before
	n      int64 // body bytes written
	err    error // why the body stopped early, for the log
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (b *body) Unwrap() http.ResponseWriter { return b.ResponseWriter }

// WriteHeader counts the request before its status line is sent.
func (b *body) WriteHeader(code int) {
	if b.status == 0 && code >= 200 {
		b.status = code
		b.s.requests.Add(1)
		b.s.codes.WithLabelValues(strconv.Itoa(code)).Inc()
	}
	b.ResponseWriter.WriteHeader(code)
}

// Write sends p in pieces of at most maxPiece bytes, each after its tokens,
// counting each piece before it is handed on.
func (b *body) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.WriteHeader(http.StatusOK)
	}
	written := 0
	for len(p) > 0 {
		if b.fault.Stall {
			b.flush()
			<-b.ctx.Done()
			b.err = fmt.Errorf("stall: %w", context.Cause(b.ctx))
			return written, b.err
		}
		n := min(len(p), maxPiece)
		truncate := false
		if t := b.fault.TruncateAt; t > 0 && b.n+int64(n) >= t {
			n, truncate = int(t-b.n), true
		}
		if b.s.limiter != nil {
			if err := b.s.limiter.WaitN(b.ctx, n); err != nil {
				b.err = fmt.Errorf("wait for %d bytes of bandwidth: %w", n, err)
				return written, b.err
			}
		}
		b.s.sent.Add(int64(n))
		m, err := b.ResponseWriter.Write(p[:n])
		b.s.sent.Add(int64(m - n))
		b.n += int64(m)
		written += m
		if err != nil {
			b.err = err
			return written, err
		}
		if truncate {
			b.flush()
			b.err = fmt.Errorf("fault: truncated after %d body bytes", b.n)
			panic(http.ErrAbortHandler) // net/http closes the connection
		}
		p = p[n:]
	}
	return written, nil
}

// flush sends what is buffered, headers included, to the client.
func (b *body) flush() {
	if f, ok := b.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
