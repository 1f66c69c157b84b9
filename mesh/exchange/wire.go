package exchange

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/meshcast/meshcast/content"
)

// Wire format of /meshcast/chunks/1. Each peer opens one stream to each
// other peer and only writes on it; a stream carries frames:
//
//	frame   = uvarint(len(body)) body
//	body    = type u8 | payload
//	hello   = "MCX" | version u8                      (first frame, both ways)
//	bitfield= swarm [32] | count uvarint | bits        (count bits, LSB first)
//	have    = swarm [32] | n uvarint | n × index uvarint
//	request = swarm [32] | n uvarint | n × index uvarint
//	cancel  = swarm [32] | n uvarint | n × index uvarint
//	reject  = swarm [32] | n uvarint | n × index uvarint
//	piece   = swarm [32] | index uvarint | chunk body (the rest of the frame)
//
// A cancel asks a peer to drop requests it has not started to answer; it
// answers with a reject of those it dropped, written after any piece of
// the others, so that the requester knows what will not come and may ask
// for it elsewhere without getting it twice.
//
// A swarm is the ordered list of distinct chunks of one release for one
// platform; both sides derive it from the same signed manifest, so an
// index names a chunk. Every count and length is bounded before anything
// is allocated for it.

// Protocol is the libp2p protocol id of the chunk exchange.
const Protocol = "/meshcast/chunks/1"

// wireVersion is the version in the hello frame.
const wireVersion = 1

// Message types.
const (
	msgHello    = 1
	msgBitfield = 2
	msgHave     = 3
	msgRequest  = 4
	msgCancel   = 5
	msgReject   = 6
	msgPiece    = 7
)

// Bounds of the wire format.
const (
	// MaxSwarmChunks is the largest swarm a bitfield may describe.
	MaxSwarmChunks = content.DefaultChunksLimit
	// maxIndexes bounds the indexes of one have, request, cancel or reject.
	maxIndexes = 4096
	// maxQueuedRejects bounds the requests of one peer we have rejected and
	// not yet written: an honest peer has a few dozen requests out with us
	// at most, and waits for their answers; one with more is asking
	// without reading, and is dropped.
	maxQueuedRejects = maxIndexes
	// maxControlFrame bounds every frame but a piece or a bitfield.
	maxControlFrame = 1 + 32 + 10 + maxIndexes*10
	// maxFrame bounds every frame: a bitfield of the largest swarm, or a
	// piece of the largest chunk.
	maxFrame = 1 + 32 + 10 + content.MaxChunkSize
)

// SwarmID names a swarm.
type SwarmID [32]byte

// Short returns a prefix for logs.
func (s SwarmID) Short() string { return fmt.Sprintf("%x", s[:6]) }

// ErrWire wraps every decoding error: the peer sent something this
// version cannot read, and the stream is closed.
var ErrWire = errors.New("bad exchange message")

func wiref(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrWire}, args...)...)
}

// msg is one decoded frame. For a piece, body aliases the reader's
// buffer until the next read.
type msg struct {
	typ     byte
	swarm   SwarmID
	indexes []int // have, request, cancel, reject; the piece's index
	bits    []byte
	count   int // bitfield
	body    []byte
}

// writer encodes frames onto a buffered stream.
type writer struct {
	w   *bufio.Writer
	tmp []byte
}

// newWriter buffers 64 KiB: control messages are small, and a piece
// larger than what is free goes to the stream directly. A member keeps
// one per peer, so the buffer is per-peer memory.
func newWriter(w io.Writer) *writer { return &writer{w: bufio.NewWriterSize(w, 64<<10)} }

func (w *writer) frame(body []byte) error {
	var hdr [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(hdr[:], uint64(len(body)))
	if _, err := w.w.Write(hdr[:n]); err != nil {
		return err
	}
	_, err := w.w.Write(body)
	return err
}

func (w *writer) hello() error {
	return w.frame([]byte{msgHello, 'M', 'C', 'X', wireVersion})
}

func (w *writer) indexes(typ byte, s SwarmID, idx []int) error {
	for len(idx) > 0 {
		n := min(len(idx), maxIndexes)
		b := append(w.tmp[:0], typ)
		b = append(b, s[:]...)
		b = binary.AppendUvarint(b, uint64(n))
		for _, i := range idx[:n] {
			b = binary.AppendUvarint(b, uint64(i))
		}
		w.tmp = b
		if err := w.frame(b); err != nil {
			return err
		}
		idx = idx[n:]
	}
	return nil
}

func (w *writer) bitfield(s SwarmID, count int, bits []byte) error {
	b := append(w.tmp[:0], msgBitfield)
	b = append(b, s[:]...)
	b = binary.AppendUvarint(b, uint64(count))
	b = append(b, bits[:(count+7)/8]...)
	w.tmp = b
	return w.frame(b)
}

func (w *writer) piece(s SwarmID, index int, body []byte) error {
	var hdr [1 + 32 + binary.MaxVarintLen64]byte
	hdr[0] = msgPiece
	copy(hdr[1:], s[:])
	n := 33 + binary.PutUvarint(hdr[33:], uint64(index))
	var lenb [binary.MaxVarintLen64]byte
	ln := binary.PutUvarint(lenb[:], uint64(n+len(body)))
	if _, err := w.w.Write(lenb[:ln]); err != nil {
		return err
	}
	if _, err := w.w.Write(hdr[:n]); err != nil {
		return err
	}
	_, err := w.w.Write(body)
	return err
}

func (w *writer) flush() error { return w.w.Flush() }

// reader decodes frames from a buffered stream.
type reader struct {
	r   *bufio.Reader
	buf []byte
	idx []int
}

func newReader(r io.Reader) *reader { return &reader{r: bufio.NewReaderSize(r, 64<<10)} }

// next reads one frame. The returned msg's slices are valid until the next
// call.
func (r *reader) next() (msg, error) {
	var m msg
	n, err := binary.ReadUvarint(r.r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return m, io.EOF
		}
		return m, wiref("frame length: %v", err)
	}
	if n == 0 || n > maxFrame {
		return m, wiref("frame of %d bytes", n)
	}
	if cap(r.buf) < int(n) {
		r.buf = make([]byte, n, max(n, 64<<10))
	}
	b := r.buf[:n]
	if _, err := io.ReadFull(r.r, b); err != nil {
		return m, wiref("frame of %d bytes: %v", n, unexpectedEOF(err))
	}
	return r.decode(b)
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// decode parses one frame body; it is separate from next for the fuzzer.
func (r *reader) decode(b []byte) (msg, error) {
	m := msg{typ: b[0]}
	b = b[1:]
	if m.typ == msgHello {
		if len(b) != 4 || string(b[:3]) != "MCX" {
			return m, wiref("hello %q", b)
		}
		if b[3] != wireVersion {
			return m, wiref("peer speaks version %d, this node %d", b[3], wireVersion)
		}
		return m, nil
	}
	if m.typ < msgBitfield || m.typ > msgPiece {
		return m, wiref("unknown message type %d", m.typ)
	}
	if len(b) < 32 {
		return m, wiref("message type %d: %d bytes", m.typ, len(b))
	}
	copy(m.swarm[:], b[:32])
	b = b[32:]
	if m.typ != msgPiece && m.typ != msgBitfield && len(b) > maxControlFrame {
		return m, wiref("message type %d of %d bytes", m.typ, len(b))
	}
	u, k := binary.Uvarint(b)
	if k <= 0 {
		return m, wiref("message type %d: bad varint", m.typ)
	}
	b = b[k:]
	switch m.typ {
	case msgPiece:
		if u >= MaxSwarmChunks {
			return m, wiref("piece index %d", u)
		}
		r.idx = append(r.idx[:0], int(u))
		m.indexes, m.body = r.idx, b
	case msgBitfield:
		if u > MaxSwarmChunks || len(b) != int((u+7)/8) {
			return m, wiref("bitfield of %d chunks in %d bytes", u, len(b))
		}
		m.count, m.bits = int(u), b
	default:
		if u == 0 || u > maxIndexes {
			return m, wiref("message type %d with %d indexes", m.typ, u)
		}
		r.idx = r.idx[:0]
		for range u {
			v, k := binary.Uvarint(b)
			if k <= 0 || v >= MaxSwarmChunks {
				return m, wiref("message type %d: bad index", m.typ)
			}
			r.idx = append(r.idx, int(v))
			b = b[k:]
		}
		if len(b) != 0 {
			return m, wiref("message type %d: %d trailing bytes", m.typ, len(b))
		}
		m.indexes = r.idx
	}
	return m, nil
}
