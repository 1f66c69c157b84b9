package mesh

import (
	"context"
	"io"

	"golang.org/x/time/rate"
)

// A node's LAN caps: one token bucket per direction, shared by all its
// peer streams. Bursts are small so that the cap holds over short spans.

func newLimiter(bytesPerSec int64) *rate.Limiter {
	if bytesPerSec <= 0 {
		return nil
	}
	burst := max(64<<10, int(bytesPerSec/50))
	return rate.NewLimiter(rate.Limit(bytesPerSec), burst)
}

type limitedWriter struct {
	ctx context.Context
	w   io.WriteCloser
	l   *rate.Limiter
}

func (lw limitedWriter) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		n := min(len(p)-done, lw.l.Burst())
		if err := lw.l.WaitN(lw.ctx, n); err != nil {
			return done, err
		}
		m, err := lw.w.Write(p[done : done+n])
		done += m
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

func (lw limitedWriter) Close() error { return lw.w.Close() }

type limitedReader struct {
	ctx context.Context
	r   io.ReadCloser
	l   *rate.Limiter
}

func (lr limitedReader) Read(p []byte) (int, error) {
	if len(p) > lr.l.Burst() {
		p = p[:lr.l.Burst()]
	}
	n, err := lr.r.Read(p)
	if n > 0 {
		if werr := lr.l.WaitN(lr.ctx, n); werr != nil && err == nil {
			err = werr
		}
	}
	return n, err
}

func (lr limitedReader) Close() error { return lr.r.Close() }
