package exchange

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// frames encodes one of each message for the tests and the fuzz seeds.
func frames(t testing.TB) []byte {
	var buf bytes.Buffer
	w := newWriter(&buf)
	s := SwarmID{1, 2, 3}
	bits := newBitset(70)
	bits.set(0)
	bits.set(69)
	for _, err := range []error{
		w.hello(),
		w.bitfield(s, 70, bits.bytes(70)),
		w.indexes(msgHave, s, []int{1, 2, 300}),
		w.indexes(msgRequest, s, []int{5}),
		w.indexes(msgCancel, s, []int{5}),
		w.indexes(msgReject, s, []int{7, 8}),
		w.piece(s, 9, []byte("chunk body")),
		w.flush(),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestWireRoundTrip(t *testing.T) {
	r := newReader(bytes.NewReader(frames(t)))
	want := []byte{msgHello, msgBitfield, msgHave, msgRequest, msgCancel, msgReject, msgPiece}
	for i, typ := range want {
		m, err := r.next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if m.typ != typ {
			t.Fatalf("frame %d: type %d, want %d", i, m.typ, typ)
		}
		switch typ {
		case msgBitfield:
			b, ok := bitsetFrom(m.bits, m.count)
			if !ok || m.count != 70 || !b.has(0) || !b.has(69) || b.count() != 2 {
				t.Fatalf("bitfield: %v %d", m.bits, m.count)
			}
		case msgHave:
			if len(m.indexes) != 3 || m.indexes[2] != 300 {
				t.Fatalf("have: %v", m.indexes)
			}
		case msgPiece:
			if m.indexes[0] != 9 || string(m.body) != "chunk body" {
				t.Fatalf("piece: %v %q", m.indexes, m.body)
			}
		}
	}
	if _, err := r.next(); err != io.EOF {
		t.Fatalf("after the last frame: %v, want EOF", err)
	}
}

func TestWireRefusesBadInput(t *testing.T) {
	s := make([]byte, 32)
	for name, frame := range map[string][]byte{
		"empty frame":         {0},
		"huge frame":          {0xff, 0xff, 0xff, 0xff, 0x7f},
		"unknown type":        append([]byte{34, 99}, s...),
		"short swarm":         {3, msgHave, 1, 2},
		"hello version 2":     {5, msgHello, 'M', 'C', 'X', 2},
		"zero indexes":        append(append([]byte{34, msgHave}, s...), 0),
		"too many indexes":    append(append([]byte{36, msgHave}, s...), 0xff, 0xff, 0x03),
		"index out of range":  append(append([]byte{39, msgRequest}, s...), 1, 0xff, 0xff, 0xff, 0x7f),
		"trailing bytes":      append(append([]byte{36, msgHave}, s...), 1, 1, 1),
		"bitfield short":      append(append([]byte{35, msgBitfield}, s...), 64, 1),
		"truncated frame":     {10, msgHello},
		"bad varint in index": append(append([]byte{35, msgHave}, s...), 1, 0x80),
	} {
		r := newReader(bytes.NewReader(frame))
		_, err := r.next()
		if err == nil || (!errors.Is(err, ErrWire) && err != io.EOF) {
			t.Errorf("%s: err %v, want ErrWire", name, err)
		}
	}
}

func TestBitsetRefusesBitsPastCount(t *testing.T) {
	if _, ok := bitsetFrom([]byte{0xff}, 3); ok {
		t.Fatal("accepted bits past the count")
	}
	if b, ok := bitsetFrom([]byte{0x07}, 3); !ok || b.count() != 3 {
		t.Fatal("refused a valid bitfield")
	}
}

func FuzzWireDecode(f *testing.F) {
	f.Add(frames(f))
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := newReader(bytes.NewReader(data))
		for i := 0; i < 64; i++ {
			m, err := r.next()
			if err != nil {
				return
			}
			if m.typ == msgBitfield {
				if len(m.bits) != (m.count+7)/8 || m.count > MaxSwarmChunks {
					t.Fatalf("bitfield of %d bits in %d bytes", m.count, len(m.bits))
				}
				bitsetFrom(m.bits, m.count)
			}
			for _, i := range m.indexes {
				if i < 0 || i >= MaxSwarmChunks {
					t.Fatalf("index %d", i)
				}
			}
			if len(m.indexes) > maxIndexes {
				t.Fatalf("%d indexes", len(m.indexes))
			}
		}
	})
}
