package attest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// MaxQuoteSize bounds an encoded quote; UnmarshalQuote refuses more.
const MaxQuoteSize = 16 << 10

// quoteMagic opens every encoded quote; its last byte is the version.
var quoteMagic = []byte{'M', 'C', 'Q', 1}

// Marshal encodes q, version 1:
//
//	"MCQ" 0x01
//	u16 len, AK (PKIX DER)
//	u16 len, TPMS_ATTEST
//	u16 len, TPMT_SIGNATURE
//	u8 n, then n times: u8 pcr, 32-byte SHA-256 value (ascending pcr)
//
// Integers are big-endian. The encoding of a quote is unique, so equal
// quotes encode to equal bytes.
func (q *Quote) Marshal() ([]byte, error) {
	var b bytes.Buffer
	b.Write(quoteMagic)
	for _, f := range [][]byte{q.AK, q.Attest, q.Signature} {
		if len(f) == 0 || len(f) > MaxQuoteSize {
			return nil, fmt.Errorf("marshal quote: field of %d bytes", len(f))
		}
		b.Write(binary.BigEndian.AppendUint16(nil, uint16(len(f))))
		b.Write(f)
	}
	if len(q.PCRs) > MaxPCR+1 {
		return nil, fmt.Errorf("marshal quote: %d pcrs", len(q.PCRs))
	}
	b.WriteByte(byte(len(q.PCRs)))
	for _, pcr := range slices.Sorted(maps.Keys(q.PCRs)) {
		if pcr < 0 || pcr > MaxPCR || len(q.PCRs[pcr]) != sha256.Size {
			return nil, fmt.Errorf("marshal quote: pcr %d: %d-byte value", pcr, len(q.PCRs[pcr]))
		}
		b.WriteByte(byte(pcr))
		b.Write(q.PCRs[pcr])
	}
	if b.Len() > MaxQuoteSize {
		return nil, fmt.Errorf("marshal quote: %d bytes, limit %d", b.Len(), MaxQuoteSize)
	}
	return b.Bytes(), nil
}

// UnmarshalQuote decodes a quote Marshal encoded. It is strict: a wrong
// version, a field too short or too long, PCRs out of order or repeated,
// or a trailing byte are ErrMalformed. It checks no signature: that is
// Verify's work.
func UnmarshalQuote(b []byte) (*Quote, error) {
	if len(b) > MaxQuoteSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformed, len(b), MaxQuoteSize)
	}
	r := wireReader{b: b}
	if magic := r.take(len(quoteMagic)); !bytes.Equal(magic, quoteMagic) {
		return nil, fmt.Errorf("%w: not a version 1 quote (starts %x)", ErrMalformed, magic)
	}
	q := &Quote{AK: r.field("ak"), Attest: r.field("attest"), Signature: r.field("signature")}
	n := int(r.byte("pcr count"))
	if r.err == nil && n > MaxPCR+1 {
		r.err = fmt.Errorf("%d pcrs", n)
	}
	q.PCRs = make(map[int][]byte, n)
	last := -1
	for i := 0; i < n && r.err == nil; i++ {
		pcr := int(r.byte("pcr index"))
		v := r.take(sha256.Size)
		if r.err == nil && (pcr > MaxPCR || pcr <= last) {
			r.err = fmt.Errorf("pcr %d after %d: out of range or order", pcr, last)
		}
		q.PCRs[pcr], last = v, pcr
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, r.err)
	}
	return q, nil
}

// wireReader reads the quote encoding; the first error sticks.
type wireReader struct {
	b   []byte
	err error
}

func (r *wireReader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.err = errors.New("truncated")
		return nil
	}
	v := bytes.Clone(r.b[:n])
	r.b = r.b[n:]
	return v
}

func (r *wireReader) byte(what string) byte {
	v := r.take(1)
	if r.err != nil {
		r.err = fmt.Errorf("%s: %w", what, r.err)
		return 0
	}
	return v[0]
}

// field reads a u16-length-prefixed, non-empty field.
func (r *wireReader) field(what string) []byte {
	l := r.take(2)
	if r.err != nil {
		return nil
	}
	n := int(binary.BigEndian.Uint16(l))
	if n == 0 {
		r.err = fmt.Errorf("%s: empty", what)
		return nil
	}
	v := r.take(n)
	if r.err != nil {
		r.err = fmt.Errorf("%s: %w", what, r.err)
	}
	return v
}
