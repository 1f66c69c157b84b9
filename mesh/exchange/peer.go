package exchange

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/meshcast/meshcast/content"
)

// wop is a control message queued for a peer.
type wop struct {
	typ   byte
	swarm SwarmID
	idx   []int
	bits  []byte
	count int
}

// pieceOp is a chunk queued for a peer.
type pieceOp struct {
	swarm  SwarmID
	index  int
	id     content.ChunkID
	pushed bool
}

// peerWriter owns the stream we write to one peer. The engine queues
// messages without blocking; the writer goroutine sends control messages
// first and pieces one at a time between them, so a request is never
// stuck behind a long queue of pieces.
type peerWriter struct {
	e  *Engine
	id peer.ID
	w  io.WriteCloser

	wake chan struct{} // 1-buffered

	mu      sync.Mutex
	ops     []wop
	rejects int // indexes of the reject ops in ops
	pieces  []pieceOp
	closed  bool
}

func newPeerWriter(e *Engine, id peer.ID, w io.WriteCloser) *peerWriter {
	return &peerWriter{e: e, id: id, w: w, wake: make(chan struct{}, 1)}
}

func (pw *peerWriter) start() {
	pw.e.wg.Add(1)
	go func() {
		defer pw.e.wg.Done()
		if err := pw.run(); err != nil && !errors.Is(err, errWriterClosed) {
			pw.e.log.Debug("exchange: write to peer failed", "peer", pw.id, "err", err)
		}
		pw.w.Close()
		pw.e.send(evPeerDown{id: pw.id, w: pw})
	}()
}

func (pw *peerWriter) signal() {
	select {
	case pw.wake <- struct{}{}:
	default:
	}
}

func (pw *peerWriter) queue(op wop) {
	pw.mu.Lock()
	pw.ops = append(pw.ops, op)
	pw.mu.Unlock()
	pw.signal()
}

// queueReject queues a reject of indexes of swarm s, unless the rejects
// already waiting and these would be more than maxQueuedRejects: then it
// queues nothing and reports false (the peer asks without reading).
func (pw *peerWriter) queueReject(s SwarmID, indexes []int) bool {
	pw.mu.Lock()
	if pw.rejects+len(indexes) > maxQueuedRejects {
		pw.mu.Unlock()
		return false
	}
	pw.rejects += len(indexes)
	pw.ops = append(pw.ops, wop{typ: msgReject, swarm: s, idx: indexes})
	pw.mu.Unlock()
	pw.signal()
	return true
}

func (pw *peerWriter) queuePiece(p pieceOp) {
	pw.mu.Lock()
	pw.pieces = append(pw.pieces, p)
	pw.mu.Unlock()
	pw.signal()
}

// drop removes from the queue the pieces of swarm s at the indexes given
// and returns them. A piece the writer already took is not among them: it
// is sent, and before anything queued after this call.
func (pw *peerWriter) drop(s SwarmID, indexes []int) []pieceOp {
	want := make(map[int]bool, len(indexes))
	for _, i := range indexes {
		want[i] = true
	}
	pw.mu.Lock()
	defer pw.mu.Unlock()
	var dropped []pieceOp
	kept := pw.pieces[:0]
	for _, p := range pw.pieces {
		if p.swarm == s && want[p.index] {
			dropped = append(dropped, p)
		} else {
			kept = append(kept, p)
		}
	}
	clear(pw.pieces[len(kept):])
	pw.pieces = kept
	return dropped
}

func (pw *peerWriter) close() {
	pw.mu.Lock()
	pw.closed = true
	pw.mu.Unlock()
	pw.w.Close()
	pw.signal()
}

var errWriterClosed = errors.New("writer closed")

func (pw *peerWriter) run() error {
	w := newWriter(pw.w)
	if err := w.hello(); err != nil {
		return err
	}
	if err := w.flush(); err != nil {
		return err
	}
	for {
		select {
		case <-pw.wake:
		case <-pw.e.quit:
			return errWriterClosed
		}
		for {
			pw.mu.Lock()
			if pw.closed {
				pw.mu.Unlock()
				return errWriterClosed
			}
			ops := pw.ops
			pw.ops, pw.rejects = nil, 0
			var p *pieceOp
			if len(pw.pieces) > 0 {
				next := pw.pieces[0]
				pw.pieces = pw.pieces[1:]
				p = &next
			}
			pw.mu.Unlock()
			if len(ops) == 0 && p == nil {
				break
			}
			for _, op := range ops {
				var err error
				if op.typ == msgBitfield {
					err = w.bitfield(op.swarm, op.count, op.bits)
				} else {
					err = w.indexes(op.typ, op.swarm, op.idx)
				}
				if err != nil {
					return err
				}
			}
			// Control messages are latency-critical: a request must not wait
			// in the buffer behind pieces.
			if len(ops) > 0 && p != nil {
				if err := w.flush(); err != nil {
					return err
				}
			}
			if p != nil {
				n, err := pw.writePiece(w, p)
				if err != nil {
					return err
				}
				pw.e.served.Add(int64(n))
				pw.e.servedN.Add(1)
				if p.pushed {
					pw.e.pushed.Add(int64(n))
				}
				pw.e.send(evSent{id: pw.id, w: pw, swarm: p.swarm, index: p.index, pushed: p.pushed})
			}
		}
		if err := w.flush(); err != nil {
			return err
		}
	}
}

// writePiece sends a chunk read from the store; a chunk the store lost is
// skipped (the requester will time out and ask elsewhere).
func (pw *peerWriter) writePiece(w *writer, p *pieceOp) (int, error) {
	c, err := pw.e.store.Get(p.id)
	if err != nil {
		pw.e.log.Warn("exchange: chunk to serve is not in the store", "chunk", p.id.Short(), "err", err)
		return 0, nil
	}
	return len(c.Body), w.piece(p.swarm, p.index, c.Body)
}

// pieceResult is what a reader found of a piece.
type pieceResult uint8

const (
	pieceOK        pieceResult = iota // verified and stored
	pieceDuplicate                    // already held
	pieceBad                          // did not verify
	pieceUnwanted                     // for a swarm or index we do not know
	pieceStoreFail                    // verified, but the store refused it
)

// HandleInbound reads the stream a peer writes to us until it ends or
// the engine stops. It verifies and stores pieces itself and reports
// everything else to the engine. It is meant to be the libp2p stream
// handler's body.
func (e *Engine) HandleInbound(id peer.ID, r io.ReadCloser) {
	select {
	case <-e.quit:
		r.Close()
		return
	default:
	}
	e.wg.Add(1)
	defer e.wg.Done()
	done := make(chan struct{})
	defer close(done)
	go func() { // close the stream when the engine stops
		select {
		case <-e.quit:
			r.Close()
		case <-done:
		}
	}()
	defer r.Close()
	if err := e.readPeer(id, r); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, ErrStopped) {
		e.log.Debug("exchange: read from peer failed", "peer", id, "err", err)
		if errors.Is(err, ErrWire) {
			e.send(evProtocolError{id: id, err: err})
		}
	}
}

// progressReader notes when bytes last arrived from a peer: one in the
// middle of a long piece is slow, not gone (see Engine.timeouts).
type progressReader struct {
	r  io.Reader
	at *atomic.Int64
}

func (p progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.at.Store(time.Now().UnixNano())
	}
	return n, err
}

// lastRead returns when bytes from id were last read; zero if never.
func (e *Engine) lastRead(id peer.ID) time.Time {
	if v, ok := e.reads.Load(id); ok {
		if ns := v.(*atomic.Int64).Load(); ns != 0 {
			return time.Unix(0, ns)
		}
	}
	return time.Time{}
}

func (e *Engine) readPeer(id peer.ID, r io.Reader) error {
	v, _ := e.reads.LoadOrStore(id, new(atomic.Int64))
	rd := newReader(progressReader{r, v.(*atomic.Int64)})
	m, err := rd.next()
	if err != nil {
		return err
	}
	if m.typ != msgHello {
		return fmt.Errorf("%w: first message is type %d, not hello", ErrWire, m.typ)
	}
	for {
		m, err := rd.next()
		if err != nil {
			return err
		}
		switch m.typ {
		case msgHello:
			return fmt.Errorf("%w: second hello", ErrWire)
		case msgPiece:
			if err := e.readPiece(id, m); err != nil {
				return err
			}
		default:
			ev := evMsg{id: id, typ: m.typ, swarm: m.swarm, count: m.count}
			if m.typ == msgBitfield {
				ev.bits = append([]byte(nil), m.bits...)
			} else {
				ev.indexes = append([]int(nil), m.indexes...)
			}
			if err := e.send(ev); err != nil {
				return err
			}
		}
	}
}

func (e *Engine) readPiece(id peer.ID, m msg) error {
	ev := evPiece{id: id, swarm: m.swarm, index: m.indexes[0]}
	v, ok := e.lists.Load(m.swarm)
	if !ok {
		ev.result = pieceUnwanted
		return e.send(ev)
	}
	list := v.([]content.ChunkRef)
	if ev.index >= len(list) {
		ev.result, ev.err = pieceBad, fmt.Errorf("%w: piece index %d of a swarm of %d", ErrWire, ev.index, len(list))
		e.bad.Add(int64(len(m.body)))
		return e.send(ev)
	}
	ref := list[ev.index]
	ev.bytes = len(m.body)
	switch {
	case e.store.Has(ref.ID):
		ev.result = pieceDuplicate
		e.dup.Add(int64(len(m.body)))
	default:
		c := content.Chunk{ID: ref.ID, Size: ref.Size, Enc: ref.Enc, Body: m.body}
		// Put verifies the chunk (the Store contract) and refuses a bad one
		// with ErrChunkCorrupt or ErrChunkEncoding: hashing it here as
		// well would double the CPU a piece costs.
		if len(m.body) != ref.Stored {
			ev.result, ev.err = pieceBad, &content.ChunkError{ID: ref.ID, Err: fmt.Errorf("%w: %d body bytes, the manifest says %d", content.ErrChunkCorrupt, len(m.body), ref.Stored)}
		} else if err := e.store.Put(c); errors.Is(err, content.ErrChunkCorrupt) || errors.Is(err, content.ErrChunkEncoding) {
			ev.result, ev.err = pieceBad, err
		} else if err != nil {
			ev.result, ev.err = pieceStoreFail, err
		}
		switch ev.result {
		case pieceOK:
			e.received.Add(int64(len(m.body)))
			e.receivedN.Add(1)
		case pieceBad:
			e.bad.Add(int64(len(m.body)))
		}
	}
	return e.send(ev)
}
