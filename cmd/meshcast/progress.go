package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progress draws one self-updating line on a terminal; elsewhere it draws
// nothing.
type progress struct {
	w     io.Writer
	label string
	on    bool
	start time.Time

	mu   sync.Mutex
	last time.Time
	drew bool
}

func newProgress(w io.Writer, label string) *progress {
	return &progress{w: w, label: label, on: isTerminal(w), start: time.Now()}
}

// update redraws at most ten times a second.
func (p *progress) update(done, total int64) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.Sub(p.last) < 100*time.Millisecond && done < total {
		return
	}
	p.last = now
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(done) / float64(total)
	}
	const width = 30
	fill := int(pct / 100 * width)
	bar := make([]byte, width)
	for i := range bar {
		bar[i] = ' '
		if i < fill {
			bar[i] = '='
		}
	}
	rate := float64(done) / now.Sub(p.start).Seconds() / 1e6
	fmt.Fprintf(p.w, "\r%s [%s] %5.1f%% %s/%s %.0f MB/s ", p.label, bar, pct, humanBytes(done), humanBytes(total), rate)
	p.drew = true
}

// done ends the line.
func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drew {
		fmt.Fprintln(p.w)
		p.drew = false
	}
}
