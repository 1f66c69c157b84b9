package cdn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/meshcast/meshcast/content"
)

// span is one Range request: a run of chunk bodies in one pack.
type span struct {
	pack       content.Digest
	start, end int64 // bytes start..end-1 of the pack
	refs       []content.ChunkRef
}

// PackPath returns the origin path of a pack.
func PackPath(d content.Digest) string { return "packs/" + d.String() + ".pack" }

// plan groups refs into Range requests: by pack (in the order packs first
// appear in refs), in offset order, joining bodies whose gap is at most
// MaxGap while a request stays within MaxRange. Duplicate ids are fetched
// once.
func (c *Client) plan(refs []content.ChunkRef) ([]span, error) {
	byPack := map[content.Digest][]content.ChunkRef{}
	var order []content.Digest
	seen := map[content.ChunkID]struct{}{}
	for _, r := range refs {
		if _, dup := seen[r.ID]; dup {
			continue
		}
		seen[r.ID] = struct{}{}
		if r.Pack == (content.Digest{}) {
			return nil, fmt.Errorf("chunk %s: no pack", r.ID)
		}
		// A validated manifest never has these; refs from elsewhere must
		// not make streamSpan slice past its buffer.
		if r.Stored <= 0 || r.Stored > content.MaxChunkSize || r.Offset < 0 {
			return nil, fmt.Errorf("chunk %s: body of %d bytes at offset %d out of range", r.ID, r.Stored, r.Offset)
		}
		if _, ok := byPack[r.Pack]; !ok {
			order = append(order, r.Pack)
		}
		byPack[r.Pack] = append(byPack[r.Pack], r)
	}
	var spans []span
	for _, pack := range order {
		rs := byPack[pack]
		sort.Slice(rs, func(i, j int) bool { return rs[i].Offset < rs[j].Offset })
		var cur *span
		for _, r := range rs {
			end := r.Offset + int64(r.Stored)
			if cur != nil && r.Offset >= cur.end && r.Offset-cur.end <= c.cfg.MaxGap && end-cur.start <= c.cfg.MaxRange {
				cur.end = end
				cur.refs = append(cur.refs, r)
				continue
			}
			spans = append(spans, span{pack: pack, start: r.Offset, end: end, refs: []content.ChunkRef{r}})
			cur = &spans[len(spans)-1]
		}
	}
	return spans, nil
}

// corruptAttempts bounds the attempts at a chunk whose bytes do not verify.
const corruptAttempts = 3

// SinkError marks an error of the caller's sink (a full disk, say): it is
// never retried.
type SinkError struct{ Err error }

func (e *SinkError) Error() string { return e.Err.Error() }
func (e *SinkError) Unwrap() error { return e.Err }

// bodyPool holds the buffers chunk bodies are read into, each grown to the
// largest body it has held (not MaxChunkSize: a seeder keeps one per
// request in flight).
var bodyPool = sync.Pool{New: func() any { return new([]byte) }}

// FetchChunks fetches the bodies of refs from their packs with coalesced
// Range requests, verifies each body
// against its id, and passes it to sink as soon as it verifies; the body
// is only valid during the call. sink runs on up to Parallel goroutines at
// once. A failed request is retried with backoff and resumes after the
// last chunk delivered; the first error that retries do not cure, or any
// sink error, stops the fetch.
func (c *Client) FetchChunks(ctx context.Context, refs []content.ChunkRef, sink func(content.Chunk) error) error {
	spans, err := c.plan(refs)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	work := make(chan *span)
	g.Go(func() error {
		defer close(work)
		for i := range spans {
			select {
			case work <- &spans[i]:
			case <-gctx.Done():
				return nil
			}
		}
		return nil
	})
	for range min(c.cfg.Parallel, len(spans)) {
		g.Go(func() error {
			for s := range work {
				if err := c.fetchSpan(gctx, s, sink); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// fetchSpan fetches one span, retrying from the first undelivered chunk.
func (c *Client) fetchSpan(ctx context.Context, s *span, sink func(content.Chunk) error) error {
	u := c.resolve(PackPath(s.pack))
	next, failures, corrupt := 0, 0, 0
	for {
		before := next
		err := c.streamSpan(ctx, u, s, &next, sink)
		if err == nil {
			return nil
		}
		var se *SinkError
		if ctx.Err() != nil || errors.As(err, &se) || !retryable(err) {
			return err
		}
		if next > before {
			failures = 0 // progress: only consecutive fruitless attempts count
		}
		failures++
		if errors.Is(err, content.ErrChunkCorrupt) || errors.Is(err, content.ErrChunkEncoding) {
			// A torn cache entry heals on a retry; a tampered origin
			// does not, so bad bytes get few attempts.
			if corrupt++; corrupt >= corruptAttempts {
				return err
			}
		}
		if failures >= c.cfg.Attempts {
			return fmt.Errorf("%w: %w", ErrGaveUp, err)
		}
		c.log.Warn("cdn range request failed; retrying", "pack", s.pack.Short(), "delivered", next, "of", len(s.refs), "attempt", failures, "err", err)
		if err := c.backoff(ctx, failures); err != nil {
			return err
		}
	}
}

// streamSpan makes one Range request for the undelivered part of s and
// delivers chunks until the span is done or something fails.
func (c *Client) streamSpan(ctx context.Context, u string, s *span, next *int, sink func(content.Chunk) error) error {
	start := s.refs[*next].Offset
	r, err := c.open(ctx, u, start, s.end)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := rangeBody(r, start, s.end); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	bp := bodyPool.Get().(*[]byte)
	defer bodyPool.Put(bp)
	pos := start
	for *next < len(s.refs) {
		ref := s.refs[*next]
		if gap := ref.Offset - pos; gap > 0 {
			if _, err := io.CopyN(io.Discard, r, gap); err != nil {
				return fmt.Errorf("GET %s: at byte %d: %w", u, pos, unexpected(err))
			}
		}
		if cap(*bp) < ref.Stored {
			*bp = make([]byte, ref.Stored)
		}
		body := (*bp)[:ref.Stored]
		if _, err := io.ReadFull(r, body); err != nil {
			return fmt.Errorf("GET %s: chunk %s at byte %d: %w", u, ref.ID, ref.Offset, unexpected(err))
		}
		pos = ref.Offset + int64(ref.Stored)
		ch := content.Chunk{ID: ref.ID, Size: ref.Size, Enc: ref.Enc, Body: body}
		if err := ch.Verify(); err != nil {
			return fmt.Errorf("pack %s at byte %d: %w", s.pack.Short(), ref.Offset, err)
		}
		if err := sink(ch); err != nil {
			return &SinkError{fmt.Errorf("chunk %s: %w", ref.ID, err)}
		}
		*next++
	}
	return nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
