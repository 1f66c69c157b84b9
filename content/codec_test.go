package content_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/klauspost/compress/zstd"
	"github.com/multiformats/go-multihash"

	"github.com/meshcast/meshcast/content"
)

// compressible returns n bytes of text-like data that zstd shrinks well.
func compressible(n int) []byte {
	words := []string{"meshcast ", "chunk ", "release ", "wave ", "seeder ", "gateway\n"}
	var b []byte
	s := splitmix64(99)
	for len(b) < n {
		b = append(b, words[s.next()%uint64(len(words))]...)
	}
	return b[:n]
}

func newCompressor(tb testing.TB, level int) *content.Compressor {
	tb.Helper()
	c, err := content.NewCompressor(level)
	if err != nil {
		tb.Fatalf("NewCompressor(%d): %v", level, err)
	}
	return c
}

// wantChunkError checks that err names id and wraps sentinel.
func wantChunkError(tb testing.TB, err error, id content.ChunkID, sentinel error) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("got no error, want one wrapping %v", sentinel)
	}
	if !errors.Is(err, sentinel) {
		tb.Fatalf("error %q does not wrap %q", err, sentinel)
	}
	var ce *content.ChunkError
	if !errors.As(err, &ce) {
		tb.Fatalf("error %q is not a *ChunkError", err)
	}
	if ce.ID != id {
		tb.Fatalf("ChunkError names %s, want %s", ce.ID, id)
	}
	if !strings.Contains(err.Error(), id.String()) {
		tb.Fatalf("error %q does not contain the chunk id %s", err, id)
	}
}

func TestCompressorRoundTrip(t *testing.T) {
	t.Parallel()
	inputs := map[string][]byte{
		"text":   compressible(50_000),
		"random": randomBytes(7, 100_000),
		"zeros":  make([]byte, 256<<10),
		"tiny":   []byte("x"),
	}
	for _, level := range []int{1, content.DefaultLevel, 9, 19, 22} {
		c := newCompressor(t, level)
		for name, data := range inputs {
			enc, body := c.Encode(nil, data)
			id := content.SumChunk(data)
			got, err := content.DecodeChunk(nil, id, len(data), enc, body)
			if err != nil {
				t.Fatalf("level %d %s (%s): %v", level, name, enc, err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("level %d %s: round trip changed the bytes", level, name)
			}
			if err := content.VerifyChunk(id, len(data), enc, body); err != nil {
				t.Fatalf("level %d %s: VerifyChunk: %v", level, name, err)
			}
		}
	}
}

func TestCompressorLevels(t *testing.T) {
	for _, level := range []int{0, -1, 23} {
		if _, err := content.NewCompressor(level); err == nil {
			t.Errorf("NewCompressor(%d) succeeded, want an out-of-range error", level)
		}
	}
}

func TestCompressorChoosesEncoding(t *testing.T) {
	c := newCompressor(t, content.DefaultLevel)

	random := randomBytes(8, 64<<10)
	enc, body := c.Encode(nil, random)
	if enc != content.EncodingRaw || !bytes.Equal(body, random) {
		t.Fatalf("random data: got %s with %d bytes, want raw and the input itself", enc, len(body))
	}

	text := compressible(64 << 10)
	enc, body = c.Encode(nil, text)
	if enc != content.EncodingZstd {
		t.Fatalf("compressible data: got %s, want zstd", enc)
	}
	if len(body) >= len(text)/2 {
		t.Fatalf("compressible data: %d bytes compressed to %d", len(text), len(body))
	}

	// Encode appends to dst and leaves what was there.
	prefix := []byte("prefix")
	enc, body = c.Encode(append([]byte(nil), prefix...), text)
	if !bytes.HasPrefix(body, prefix) || enc != content.EncodingZstd {
		t.Fatalf("Encode did not append to dst")
	}
	if _, err := content.DecodeChunk(nil, content.SumChunk(text), len(text), enc, body[len(prefix):]); err != nil {
		t.Fatal(err)
	}
}

func TestCompressorConcurrent(t *testing.T) {
	t.Parallel()
	c := newCompressor(t, content.DefaultLevel)
	done := make(chan error)
	for g := range 8 {
		go func() {
			data := append(compressible(50_000), byte(g))
			for range 20 {
				enc, body := c.Encode(nil, data)
				if _, err := content.DecodeChunk(nil, content.SumChunk(data), len(data), enc, body); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func TestDecodeChunkRejects(t *testing.T) {
	c := newCompressor(t, content.DefaultLevel)
	data := compressible(10_000)
	id := content.SumChunk(data)
	_, zbody := c.Encode(nil, data)
	other := append([]byte(nil), data...)
	other[5000] ^= 1

	tests := []struct {
		name     string
		size     int
		enc      content.Encoding
		body     []byte
		sentinel error
	}{
		{"raw short", len(data), content.EncodingRaw, data[:len(data)-1], content.ErrChunkCorrupt},
		{"raw long", len(data) - 1, content.EncodingRaw, data, content.ErrChunkCorrupt},
		{"raw wrong bytes", len(data), content.EncodingRaw, other, content.ErrChunkCorrupt},
		{"zstd wrong size", len(data) + 1, content.EncodingZstd, zbody, content.ErrChunkCorrupt},
		{"zstd smaller size", len(data) - 1, content.EncodingZstd, zbody, content.ErrChunkEncoding},
		{"zstd wrong bytes", len(other), content.EncodingZstd, zstdFrame(t, other), content.ErrChunkCorrupt},
		{"zstd garbage", len(data), content.EncodingZstd, []byte("this is not a zstd frame at all"), content.ErrChunkEncoding},
		{"zstd truncated", len(data), content.EncodingZstd, zbody[:len(zbody)/2], content.ErrChunkEncoding},
		{"zstd empty", len(data), content.EncodingZstd, nil, content.ErrChunkCorrupt},
		{"unknown encoding", len(data), content.Encoding(2), data, content.ErrChunkEncoding},
		{"unknown encoding 255", len(data), content.Encoding(255), data, content.ErrChunkEncoding},
		{"negative size", -1, content.EncodingRaw, data, content.ErrChunkEncoding},
		{"size zero", 0, content.EncodingRaw, nil, content.ErrChunkEncoding},
		{"size zero zstd", 0, content.EncodingZstd, zstdFrame(t, nil), content.ErrChunkEncoding},
		{"size above format", content.MaxChunkSize + 1, content.EncodingZstd, zbody, content.ErrChunkEncoding},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := content.DecodeChunk(nil, id, tt.size, tt.enc, tt.body)
			if got != nil {
				t.Errorf("DecodeChunk returned %d bytes along with its error", len(got))
			}
			wantChunkError(t, err, id, tt.sentinel)
			wantChunkError(t, content.VerifyChunk(id, tt.size, tt.enc, tt.body), id, tt.sentinel)
			wantChunkError(t, content.Chunk{ID: id, Size: tt.size, Enc: tt.enc, Body: tt.body}.Verify(), id, tt.sentinel)
		})
	}
}

func TestDecodeChunkWrongHashMessage(t *testing.T) {
	data := []byte("hello")
	id := content.SumChunk([]byte("jello"))
	_, err := content.DecodeChunk(nil, id, len(data), content.EncodingRaw, data)
	wantChunkError(t, err, id, content.ErrChunkCorrupt)
	if errors.Is(err, content.ErrChunkEncoding) {
		t.Fatalf("a hash mismatch also claims to be an encoding error: %v", err)
	}
}

func TestDecodeChunkUsesDst(t *testing.T) {
	data := compressible(1 << 20)
	id := content.SumChunk(data)
	_, body := newCompressor(t, 3).Encode(nil, data)
	dst := make([]byte, 0, content.MaxChunkSize)
	got, err := content.DecodeChunk(dst, id, len(data), content.EncodingZstd, body)
	if err != nil {
		t.Fatal(err)
	}
	if &got[0] != &dst[:1][0] {
		t.Fatal("DecodeChunk allocated although dst had room")
	}
	// Bytes, not allocation counts: the race detector makes sync.Pool drop
	// items at random, which costs a few small allocations.
	const runs = 5
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		if _, err := content.DecodeChunk(dst, id, len(data), content.EncodingZstd, body); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if perRun := (after.TotalAlloc - before.TotalAlloc) / runs; perRun > uint64(len(data))/4 {
		t.Fatalf("%d bytes allocated per decode of %d bytes into a large enough dst", perRun, len(data))
	}
}

func zstdFrame(tb testing.TB, data []byte, opts ...zstd.EOption) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// TestDecodeChunkBomb feeds frames of 64 MiB of zeros for a chunk that
// claims 1000 bytes: decoding must stop at the claimed size instead of
// inflating the frame.
func TestDecodeChunkBomb(t *testing.T) {
	zeros := make([]byte, 64<<20)
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	bombs := map[string][]byte{
		// One segment with a content size: refused by the window limit.
		"single segment": enc.EncodeAll(zeros, nil),
		// A streamed frame with a 1 MiB window and no content size:
		// refused only by the output cap.
		"streamed": zstdFrame(t, zeros, zstd.WithWindowSize(1<<20)),
	}
	zeros = nil
	id := content.SumChunk(make([]byte, 1000))
	for name, body := range bombs {
		t.Run(name, func(t *testing.T) {
			// Warm the shared decoders so their one-time buffers do not
			// count.
			for range runtime.GOMAXPROCS(0) + 1 {
				content.DecodeChunk(nil, id, 1000, content.EncodingZstd, body)
			}
			const runs = 10
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			for range runs {
				_, err := content.DecodeChunk(nil, id, 1000, content.EncodingZstd, body)
				wantChunkError(t, err, id, content.ErrChunkEncoding)
			}
			runtime.ReadMemStats(&after)
			perRun := (after.TotalAlloc - before.TotalAlloc) / runs
			t.Logf("%d-byte bomb: %d bytes allocated per decode", len(body), perRun)
			if perRun > 2<<20 {
				t.Fatalf("decoding a bomb for a 1000-byte chunk allocated %d bytes", perRun)
			}
		})
	}
}

func TestEncodingText(t *testing.T) {
	for _, e := range []content.Encoding{content.EncodingRaw, content.EncodingZstd} {
		b, err := e.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var got content.Encoding = 77
		if err := got.UnmarshalText(b); err != nil || got != e {
			t.Fatalf("%s: round trip gave %v, %v", e, got, err)
		}
		if string(b) != e.String() {
			t.Fatalf("text %q differs from String %q", b, e.String())
		}
	}
	if b, _ := json.Marshal(struct{ E content.Encoding }{content.EncodingZstd}); string(b) != `{"E":"zstd"}` {
		t.Fatalf("JSON form %s", b)
	}
	if _, err := content.Encoding(2).MarshalText(); err == nil {
		t.Fatal("MarshalText of an unknown encoding succeeded")
	}
	if content.Encoding(2).Valid() || !content.EncodingZstd.Valid() {
		t.Fatal("Valid is wrong")
	}
	for _, s := range []string{"", "gzip", "RAW", "zstd ", "1"} {
		e := content.EncodingZstd
		if err := e.UnmarshalText([]byte(s)); err == nil {
			t.Errorf("UnmarshalText(%q) succeeded", s)
		}
	}
	var v struct{ E content.Encoding }
	if err := json.Unmarshal([]byte(`{"E":1}`), &v); err == nil {
		t.Error("a number decoded as an encoding")
	}
}

// helloCID is the CIDv1 raw sha2-256 of "hello", as IPFS prints it.
const helloCID = "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"

func TestChunkIDKnownVector(t *testing.T) {
	// Independently of ChunkID: go-cid's own encoding of the same bytes.
	mh, err := multihash.Sum([]byte("hello"), multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	if ref := cid.NewCidV1(cid.Raw, mh).String(); ref != helloCID {
		t.Fatalf("go-cid says %s; the vector in this test is wrong", ref)
	}

	id := content.SumChunk([]byte("hello"))
	if got := id.String(); got != helloCID {
		t.Fatalf("String() = %s, want %s", got, helloCID)
	}
	if got := id.CID().String(); got != helloCID {
		t.Fatalf("CID() = %s, want %s", got, helloCID)
	}
	if !id.CID().Equals(cid.NewCidV1(cid.Raw, mh)) {
		t.Fatal("CID() differs from go-cid's")
	}
	sum := sha256.Sum256([]byte("hello"))
	if id != content.ChunkID(sum) {
		t.Fatal("SumChunk is not sha256")
	}
	if got, want := id.Hex(), "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"; got != want {
		t.Fatalf("Hex() = %s, want %s", got, want)
	}
	if got := id.Short(); got != "2cf24dba5fb0" {
		t.Fatalf("Short() = %s", got)
	}
	parsed, err := content.ParseChunkID(helloCID)
	if err != nil || parsed != id {
		t.Fatalf("ParseChunkID(%s) = %s, %v", helloCID, parsed, err)
	}
}

func TestChunkIDRoundTrip(t *testing.T) {
	t.Parallel()
	for i := range 200 {
		id := content.SumChunk(randomBytes(uint64(i), i))
		s := id.String()
		if !strings.HasPrefix(s, "bafkrei") || s != strings.ToLower(s) {
			t.Fatalf("%s is not a lower-case base32 CIDv1 raw", s)
		}
		got, err := content.ParseChunkID(s)
		if err != nil || got != id {
			t.Fatalf("ParseChunkID(%s) = %x, %v; want %x", s, got, err, id)
		}
		c, err := cid.Decode(s)
		if err != nil || !c.Equals(id.CID()) {
			t.Fatalf("go-cid reads %s as %v, %v", s, c, err)
		}
	}
	// Through JSON, as manifests carry it.
	id := content.SumChunk([]byte("json"))
	b, err := json.Marshal(map[string]content.ChunkID{"id": id})
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]content.ChunkID
	if err := json.Unmarshal(b, &back); err != nil || back["id"] != id {
		t.Fatalf("JSON round trip: %s → %v, %v", b, back, err)
	}
	if (content.ChunkID{}).IsZero() != true || id.IsZero() {
		t.Fatal("IsZero is wrong")
	}
}

func TestParseChunkIDErrors(t *testing.T) {
	hello := []byte("hello")
	mh256, _ := multihash.Sum(hello, multihash.SHA2_256, -1)
	mh512, _ := multihash.Sum(hello, multihash.SHA2_512, -1)
	sha512 := sha512.Sum512(hello)
	mhTrunc, _ := multihash.Encode(sha512[:32], multihash.SHA2_512) // sha2-512 code with 32 bytes
	mhIdentity, _ := multihash.Sum(hello, multihash.IDENTITY, -1)
	mhShort, _ := multihash.Encode(mh256[2:18], multihash.SHA2_256) // sha2-256 code, 16-byte digest

	tests := map[string]string{
		"CIDv0":              cid.NewCidV0(mh256).String(),
		"dag-pb v1":          cid.NewCidV1(cid.DagProtobuf, mh256).String(),
		"dag-cbor v1":        cid.NewCidV1(cid.DagCBOR, mh256).String(),
		"sha2-512":           cid.NewCidV1(cid.Raw, mh512).String(),
		"sha2-512 32 bytes":  cid.NewCidV1(cid.Raw, mhTrunc).String(),
		"identity":           cid.NewCidV1(cid.Raw, mhIdentity).String(),
		"short sha2-256":     cid.NewCidV1(cid.Raw, mhShort).String(),
		"empty":              "",
		"garbage":            "not a cid",
		"hex digest":         content.SumChunk(hello).Hex(),
		"truncated":          helloCID[:len(helloCID)-3],
		"extra character":    helloCID + "a",
		"bad base32":         "bafkrei!m6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq",
		"multibase only":     "b",
		"long garbage input": strings.Repeat("z", 500),
	}
	for name, s := range tests {
		t.Run(name, func(t *testing.T) {
			id, err := content.ParseChunkID(s)
			if err == nil {
				t.Fatalf("ParseChunkID(%q) = %s, want an error", s, id)
			}
			if !errors.Is(err, content.ErrBadChunkID) {
				t.Fatalf("error %q does not wrap ErrBadChunkID", err)
			}
			if len(err.Error()) > 300 {
				t.Fatalf("error echoes unbounded input: %d bytes", len(err.Error()))
			}
			var u content.ChunkID
			if err := u.UnmarshalText([]byte(s)); err == nil || !u.IsZero() {
				t.Fatalf("UnmarshalText(%q) = %v and set %s", s, err, u)
			}
		})
	}
}

func TestDigestText(t *testing.T) {
	d := content.Digest(sha256.Sum256([]byte("pack")))
	s := d.String()
	got, err := content.ParseDigest(s)
	if err != nil || got != d {
		t.Fatalf("ParseDigest(%s) = %v, %v", s, got, err)
	}
	if d.Short() != s[:12] {
		t.Fatalf("Short() = %s", d.Short())
	}
	r := content.ReleaseID(d)
	b, err := r.MarshalText()
	if err != nil || string(b) != s || r.String() != s || r.Short() != s[:12] {
		t.Fatalf("ReleaseID text %q, %v", b, err)
	}
	var r2 content.ReleaseID
	if err := r2.UnmarshalText(b); err != nil || r2 != r {
		t.Fatalf("ReleaseID round trip: %v, %v", r2, err)
	}
	for _, bad := range []string{"", s[:63], s + "0", "zz" + s[2:], strings.ToUpper(s[:2]) + "g" + s[3:]} {
		if _, err := content.ParseDigest(bad); err == nil {
			t.Errorf("ParseDigest(%q) succeeded", bad)
		}
	}
}

// FuzzDecodeChunk checks that DecodeChunk never panics, that success means
// the bytes have the claimed size and hash to the id, and that it never
// hands back more capacity than the claimed size.
func FuzzDecodeChunk(f *testing.F) {
	c, err := content.NewCompressor(content.DefaultLevel)
	if err != nil {
		f.Fatal(err)
	}
	for _, data := range [][]byte{nil, []byte("hello"), compressible(5000), randomBytes(3, 300), make([]byte, 4096)} {
		enc, body := c.Encode(nil, data)
		id := content.SumChunk(data)
		f.Add(id[:], len(data), uint8(enc), body)
		f.Add(id[:], len(data), uint8(content.EncodingRaw), data)
		f.Add(id[:], len(data)+1, uint8(enc), body)
		f.Add(id[:], len(data), uint8(2), body)
	}
	f.Add(make([]byte, 32), 1000, uint8(content.EncodingZstd), zstdFrame(f, make([]byte, 100_000), zstd.WithWindowSize(1<<16)))
	f.Add(make([]byte, 32), 10, uint8(content.EncodingZstd), []byte("\x28\xb5\x2f\xfd garbage"))
	f.Fuzz(func(t *testing.T, idb []byte, size int, enc uint8, body []byte) {
		if size > 1<<20 && size <= content.MaxChunkSize {
			t.Skip("large valid sizes only cost allocation time")
		}
		var id content.ChunkID
		copy(id[:], idb)
		data, err := content.DecodeChunk(nil, id, size, content.Encoding(enc), body)
		if err != nil {
			var ce *content.ChunkError
			if !errors.As(err, &ce) || ce.ID != id {
				t.Fatalf("error %v does not name the chunk", err)
			}
			if !errors.Is(err, content.ErrChunkCorrupt) && !errors.Is(err, content.ErrChunkEncoding) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			return
		}
		if len(data) != size {
			t.Fatalf("decoded %d bytes, size says %d", len(data), size)
		}
		if content.SumChunk(data) != id {
			t.Fatalf("decoded bytes hash to %s, not %s", content.SumChunk(data), id)
		}
		if enc == uint8(content.EncodingZstd) && cap(data) > size {
			t.Fatalf("zstd decode kept a %d-byte buffer for %d bytes", cap(data), size)
		}
		if err := content.VerifyChunk(id, size, content.Encoding(enc), body); err != nil {
			t.Fatalf("DecodeChunk accepts what VerifyChunk refuses: %v", err)
		}
	})
}
