package meta

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/meshcast/meshcast/tests/golden"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// wait bounds every wait in these tests.
const wait = 10 * time.Second

// errDisk is the error of a file that exists but cannot be read.
var errDisk = errors.New("read metadata/snapshot.json: input/output error")

// timestamp is a small file of the kind peers serve.
const timestamp = `{"signed":{"_type":"timestamp","version":7}}`

// fileSet serves files from a map, and a path the map lacks as missing.
// The path "metadata/snapshot.json" fails to read.
func fileSet(files map[string]string) Files {
	return func(path string) ([]byte, error) {
		if path == "metadata/snapshot.json" {
			return nil, errDisk
		}
		b, ok := files[path]
		if !ok {
			return nil, fmt.Errorf("open %s: %w", path, fs.ErrNotExist)
		}
		return []byte(b), nil
	}
}

// goldenFiles is what the peer of the golden exchanges serves.
var goldenFiles = fileSet(map[string]string{
	"metadata/timestamp.json": timestamp,
	"metadata/1.root.json":    `{"signed":{"_type":"root","version":1}}`,
})

// exchangeCases are one request of the protocol and its answer, one of each
// status. The golden file holds the bytes Fetch writes and serve answers.
var exchangeCases = []struct {
	name    string
	path    string
	max     int64
	want    []byte // the file, for status ok
	wantErr error  // what Fetch and readResponse return; errDisk: any error but the sentinels
}{
	{"ok", "metadata/timestamp.json", 16 << 10, []byte(timestamp), nil},
	{"not-found", "targets/releases/gateway/2.4.0.json", MaxFile, nil, ErrNotFound},
	{"too-large", "metadata/1.root.json", 16, nil, ErrTooLarge},
	{"failed", "metadata/snapshot.json", 1 << 20, nil, errDisk},
}

// checkFetchErr reports how err differs from want, an exchangeCases wantErr.
func checkFetchErr(err, want error) error {
	switch {
	case want == nil && err != nil:
		return fmt.Errorf("error %v; want none", err)
	case want == nil:
		return nil
	case want == errDisk:
		// The failed status has no sentinel: it is an error that is none of
		// the others.
		if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrTooLarge) || errors.Is(err, ErrProtocol) ||
			!strings.Contains(err.Error(), "peer failed to read the file") {
			return fmt.Errorf("error %v; want the peer's failure", err)
		}
	case !errors.Is(err, want):
		return fmt.Errorf("error %v; want %v", err, want)
	}
	return nil
}

// pipeHost is a host.Host whose only working method is NewStream: every
// stream it opens is answered by serve(files) on a goroutine of its own,
// over in-memory pipes with the half-close a libp2p stream has. It lets
// Fetch run without a network, and records what crosses.
type pipeHost struct {
	host.Host // nil: any other method panics
	t         testing.TB
	files     Files
	wg        sync.WaitGroup

	mu       sync.Mutex
	sent     []byte // what the last stream's client wrote
	answered []byte // what the last stream's server wrote
}

func newPipeHost(t testing.TB, files Files) *pipeHost {
	h := &pipeHost{t: t, files: files}
	t.Cleanup(h.wg.Wait)
	return h
}

func (h *pipeHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	if len(pids) != 1 || pids[0] != Protocol {
		h.t.Errorf("NewStream(%v); want %s", pids, Protocol)
	}
	h.mu.Lock()
	h.sent, h.answered = nil, nil
	h.mu.Unlock()
	up, upW := io.Pipe()     // client → server
	downR, down := io.Pipe() // server → client
	s := &pipeStream{h: h, r: downR, w: upW}
	h.wg.Go(func() {
		var out bytes.Buffer
		err := serve(struct {
			io.Reader
			io.Writer
		}{up, io.MultiWriter(down, &out)}, h.files)
		h.mu.Lock()
		h.answered = out.Bytes()
		h.mu.Unlock()
		up.Close() // a client still writing gets an error, as on a reset stream
		down.CloseWithError(err)
	})
	return s, nil
}

// sentAndAnswered returns the bytes of the last exchange.
func (h *pipeHost) sentAndAnswered() (sent, answered []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sent, h.answered
}

// pipeStream is the client end of a pipeHost stream. Its network.Stream is
// nil: Fetch may use only the methods below.
type pipeStream struct {
	network.Stream
	h *pipeHost
	r *io.PipeReader
	w *io.PipeWriter
}

var errReset = errors.New("stream reset")

func (s *pipeStream) Read(p []byte) (int, error) { return s.r.Read(p) }
func (s *pipeStream) Write(p []byte) (int, error) {
	s.h.mu.Lock()
	s.h.sent = append(s.h.sent, p...)
	s.h.mu.Unlock()
	return s.w.Write(p)
}
func (s *pipeStream) CloseWrite() error           { return s.w.Close() }
func (s *pipeStream) Close() error                { s.w.Close(); return s.r.Close() }
func (s *pipeStream) Reset() error                { s.w.CloseWithError(errReset); return s.r.CloseWithError(errReset) }
func (s *pipeStream) SetDeadline(time.Time) error { return nil }

var goldenPath = filepath.Join("testdata", "exchanges_v1.golden")

// TestGolden pins /meshcast/meta/1: the request Fetch writes and the answer
// serve gives, for one exchange of each status; and reads every golden
// frame back. Nodes of a site are upgraded one at a time, so a node must
// read what the previous version wrote. Run with -update only for a new
// protocol version.
func TestGolden(t *testing.T) {
	var out bytes.Buffer
	out.WriteString("# " + Protocol + ": <case>.request and <case>.response <hex>, one stream each.\n")
	out.WriteString("# Generated by TestGolden -update from Fetch and serve; never edit for version 1.\n")
	got := map[string][]byte{}
	for _, c := range exchangeCases {
		h := newPipeHost(t, goldenFiles)
		b, err := Fetch(context.Background(), h, "peer", c.path, c.max)
		if err := checkFetchErr(err, c.wantErr); err != nil {
			t.Errorf("%s: Fetch: %v", c.name, err)
		}
		if !bytes.Equal(b, c.want) {
			t.Errorf("%s: Fetch = %q; want %q", c.name, b, c.want)
		}
		h.wg.Wait()
		got[c.name+".request"], got[c.name+".response"] = h.sentAndAnswered()
		fmt.Fprintf(&out, "%s.request %x\n%s.response %x\n", c.name, got[c.name+".request"], c.name, got[c.name+".response"])
	}
	if *update {
		if err := os.WriteFile(goldenPath, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden := golden.ReadHex(t, goldenPath)
	if len(golden) != len(got) {
		t.Errorf("%s has %d frames; the test makes %d", goldenPath, len(golden), len(got))
	}
	for _, c := range exchangeCases {
		for _, name := range []string{c.name + ".request", c.name + ".response"} {
			b := got[name]
			if want, ok := golden[name]; !ok {
				t.Errorf("%s: no golden frame %s", goldenPath, name)
			} else if !bytes.Equal(b, want) {
				t.Errorf("%s: %x\n\twant %x (%s); a change here breaks mixed-version sites", name, b, want, goldenPath)
			}
		}
	}

	// The golden frames read back to the values they were made from.
	for _, c := range exchangeCases {
		path, max, err := readRequest(bufio.NewReader(bytes.NewReader(golden[c.name+".request"])))
		if err != nil || path != c.path || max != c.max {
			t.Errorf("%s: readRequest(golden) = %q, %d, %v; want %q, %d", c.name, path, max, err, c.path, c.max)
		}
		b, err := readResponse(bufio.NewReader(bytes.NewReader(golden[c.name+".response"])), c.max)
		if err := checkFetchErr(err, c.wantErr); err != nil {
			t.Errorf("%s: readResponse(golden): %v", c.name, err)
		}
		if !bytes.Equal(b, c.want) {
			t.Errorf("%s: readResponse(golden) = %q; want %q", c.name, b, c.want)
		}
	}
}

// servePipe runs serve(files) on one end of a net.Pipe and writes req on
// the other, then ends the request as Fetch does with CloseWrite (net.Pipe
// has no half-close, so serve reads the pipe through a reader that ends
// after len(req) bytes). It returns what serve answered and its error.
func servePipe(t *testing.T, files Files, req []byte) ([]byte, error) {
	t.Helper()
	client, server := net.Pipe()
	defer client.Close()
	done := make(chan error, 1)
	go func() {
		err := serve(struct {
			io.Reader
			io.Writer
		}{io.LimitReader(server, int64(len(req))), server}, files)
		server.Close()
		done <- err
	}()
	client.SetDeadline(time.Now().Add(wait))
	// A refused request may be closed before serve has read all of it.
	if _, err := client.Write(req); err != nil && !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("write request: %v", err)
	}
	resp, err := io.ReadAll(client)
	if err != nil {
		t.Errorf("read response: %v", err)
	}
	return resp, <-done
}

// request is the encoding of a request, per the package comment; the
// golden test checks Fetch writes the same.
func request(version byte, path string, max uint64) []byte {
	b := binary.AppendUvarint([]byte{version}, uint64(len(path)))
	b = append(b, path...)
	return binary.AppendUvarint(b, max)
}

// response is the encoding of an answer, per the package comment.
func response(status byte, body []byte) []byte {
	return append(binary.AppendUvarint([]byte{status}, uint64(len(body))), body...)
}

func TestServeAnswers(t *testing.T) {
	calls := 0
	files := func(path string) ([]byte, error) {
		calls++
		switch path {
		case "ok":
			return []byte("0123456789"), nil
		case "huge":
			return make([]byte, MaxFile+1), nil
		case "gone":
			return nil, fmt.Errorf("stat %s: %w", path, fs.ErrNotExist)
		case "broken":
			return nil, errDisk
		}
		t.Errorf("files(%q)", path)
		return nil, fs.ErrNotExist
	}
	for _, c := range []struct {
		name string
		path string
		max  uint64
		want []byte
	}{
		{"found", "ok", 100, response(statusOK, []byte("0123456789"))},
		{"found at exactly max", "ok", 10, response(statusOK, []byte("0123456789"))},
		{"larger than max", "ok", 9, response(statusTooLarge, nil)},
		{"max 0", "ok", 0, response(statusTooLarge, nil)},
		{"larger than MaxFile", "huge", MaxFile, response(statusTooLarge, nil)},
		{"missing", "gone", 100, response(statusNotFound, nil)},
		{"failed", "broken", 100, response(statusFailed, nil)},
		{"path of MaxPath bytes", strings.Repeat("a", MaxPath), 100, response(statusNotFound, nil)},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := files
			if c.name == "path of MaxPath bytes" {
				f = fileSet(nil)
			}
			got, err := servePipe(t, f, request(1, c.path, c.max))
			if err != nil {
				t.Fatalf("serve: %v", err)
			}
			if !bytes.Equal(got, c.want) {
				t.Errorf("answered %x; want %x", got, c.want)
			}
		})
	}
	if calls != 7 {
		t.Errorf("files called %d times; want 7", calls)
	}
}

// badRequests are requests serve refuses, closing the stream without an
// answer. They also seed FuzzReadRequest.
var badRequests = []struct {
	name string
	req  []byte
}{
	{"version 0", request(0, "metadata/timestamp.json", 100)},
	{"version 2", request(2, "metadata/timestamp.json", 100)},
	{"empty path", request(1, "", 100)},
	{"path over MaxPath", request(1, strings.Repeat("a", MaxPath+1), 100)},
	{"path length overflows", append([]byte{1}, bytes.Repeat([]byte{0xff}, 11)...)},
	{"path cut short", []byte{1, 10, 'm', 'e', 't', 'a'}},
	{"no max", request(1, "metadata/timestamp.json", 0)[:1+1+len("metadata/timestamp.json")]},
	{"max cut short", append(request(1, "m", 0)[:3], 0x80)},
	{"max over MaxFile", request(1, "metadata/timestamp.json", MaxFile+1)},
	{"max 2^64-1", request(1, "metadata/timestamp.json", ^uint64(0))},
}

func TestServeRefusesBadRequests(t *testing.T) {
	files := func(path string) ([]byte, error) {
		t.Errorf("files(%q) called for a bad request", path)
		return nil, fs.ErrNotExist
	}
	for _, c := range badRequests {
		t.Run(c.name, func(t *testing.T) {
			got, err := servePipe(t, files, c.req)
			if !errors.Is(err, ErrProtocol) {
				t.Errorf("serve error %v; want ErrProtocol", err)
			}
			if len(got) != 0 {
				t.Errorf("answered %x; want nothing", got)
			}
		})
	}
	// An empty stream is not a request at all.
	if _, err := servePipe(t, files, nil); err == nil {
		t.Error("serve accepted an empty stream")
	}
}

// shortReader holds a few bytes and counts what is read of it.
type shortReader struct {
	b    []byte
	read int
}

func (r *shortReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	r.read += n
	return n, nil
}

// allocated returns the bytes f allocates (on this goroutine, give or take
// what the runtime does meanwhile).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestReadResponseBoundsLengthBeforeAllocating(t *testing.T) {
	for _, c := range []struct {
		name string
		n    uint64
		max  int64
	}{
		{"2^40 bytes, max 16 KiB", 1 << 40, 16 << 10},
		{"2^40 bytes, max MaxFile", 1 << 40, MaxFile},
		{"one more than max", 16<<10 + 1, 16 << 10},
		{"MaxFile+1, max MaxFile", MaxFile + 1, MaxFile},
		{"2^63-1", 1<<63 - 1, MaxFile},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := &shortReader{b: append(binary.AppendUvarint([]byte{statusOK}, c.n), "abc"...)}
			var err error
			if n := allocated(func() { _, err = readResponse(bufio.NewReader(r), c.max) }); n > 64<<10 {
				t.Errorf("readResponse allocated %d bytes", n)
			}
			if !errors.Is(err, ErrTooLarge) {
				t.Errorf("error %v; want ErrTooLarge", err)
			}
		})
	}
	// A length within max is read as far as the stream goes.
	r := &shortReader{b: append(binary.AppendUvarint([]byte{statusOK}, 10), "abc"...)}
	if b, err := readResponse(bufio.NewReader(r), 16); !errors.Is(err, ErrProtocol) || b != nil {
		t.Errorf("cut answer: %q, %v; want ErrProtocol", b, err)
	}
}

// badResponses are answers readResponse refuses. They also seed
// FuzzReadResponse.
var badResponses = []struct {
	name string
	resp []byte
	want error // nil: any error
}{
	{"empty", nil, nil},
	{"no length", []byte{statusOK}, ErrProtocol},
	{"length overflows", append([]byte{statusOK}, bytes.Repeat([]byte{0xff}, 11)...), ErrProtocol},
	{"unknown status", response(4, nil), ErrProtocol},
	{"status 255", response(255, []byte("x")), ErrProtocol},
	{"cut body", response(statusOK, []byte("0123456789"))[:5], ErrProtocol},
	{"over max", response(statusOK, make([]byte, 17)), ErrTooLarge},
}

// A peer's answer whose length is 2^63 or more used to pass readResponse's
// bound check (int64(n) was negative) and reach make([]byte, n), which
// panicked: any peer could crash a node that fetched a file from it.
func TestReadResponseRefusesLengthAboveInt64(t *testing.T) {
	for _, n := range []uint64{1 << 63, ^uint64(0)} {
		resp := append(binary.AppendUvarint([]byte{statusOK}, n), "abc"...)
		b, err := readResponse(bufio.NewReader(bytes.NewReader(resp)), MaxFile)
		if !errors.Is(err, ErrTooLarge) || b != nil {
			t.Errorf("length %d: %d bytes, %v; want ErrTooLarge", n, len(b), err)
		}
	}
}

func TestReadResponseRefuses(t *testing.T) {
	for _, c := range badResponses {
		b, err := readResponse(bufio.NewReader(bytes.NewReader(c.resp)), 16)
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) || b != nil {
			t.Errorf("%s: %q, %v; want no bytes and %v", c.name, b, err, c.want)
		}
	}
}

func TestFetchRefusesBadPathsLocally(t *testing.T) {
	h := newPipeHost(t, goldenFiles) // NewStream is not called: it would answer
	for _, p := range []string{"", strings.Repeat("a", MaxPath+1)} {
		if _, err := Fetch(context.Background(), h, "peer", p, 100); err == nil {
			t.Errorf("Fetch of a %d-byte path: no error", len(p))
		}
	}
	if sent, _ := h.sentAndAnswered(); sent != nil {
		t.Errorf("sent %x", sent)
	}
}

// TestFetchAsksAtMostMaxFile: a larger maximum is asked as MaxFile, which
// serve accepts.
func TestFetchAsksAtMostMaxFile(t *testing.T) {
	h := newPipeHost(t, goldenFiles)
	b, err := Fetch(context.Background(), h, "peer", "metadata/timestamp.json", 1<<40)
	if err != nil || string(b) != timestamp {
		t.Fatalf("Fetch = %q, %v", b, err)
	}
	h.wg.Wait()
	if sent, _ := h.sentAndAnswered(); !bytes.Equal(sent, request(1, "metadata/timestamp.json", MaxFile)) {
		t.Errorf("sent %x; want a maximum of MaxFile", sent)
	}
}

// goldenSeeds returns the golden frames whose name ends in suffix.
func goldenSeeds(f *testing.F, suffix string) [][]byte {
	var seeds [][]byte
	for name, b := range golden.ReadHex(f, goldenPath) {
		if strings.HasSuffix(name, suffix) {
			seeds = append(seeds, b)
		}
	}
	if len(seeds) == 0 {
		f.Fatalf("no golden %s frames", suffix)
	}
	return seeds
}

// FuzzReadRequest: readRequest never panics, refuses with ErrProtocol
// (io.EOF for an empty stream), and what it accepts is within the bounds
// and encodes back to a request that reads the same.
func FuzzReadRequest(f *testing.F) {
	for _, b := range goldenSeeds(f, ".request") {
		f.Add(b)
	}
	for _, c := range badRequests {
		f.Add(c.req)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		path, max, err := readRequest(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			if !errors.Is(err, ErrProtocol) && !(len(b) == 0 && err == io.EOF) {
				t.Fatalf("error %v is not ErrProtocol", err)
			}
			return
		}
		if len(path) == 0 || len(path) > MaxPath || max < 0 || max > MaxFile {
			t.Fatalf("accepted a path of %d bytes and a maximum of %d", len(path), max)
		}
		p2, max2, err := readRequest(bufio.NewReader(bytes.NewReader(request(1, path, uint64(max)))))
		if err != nil || p2 != path || max2 != max {
			t.Fatalf("%q, %d encodes to a request that reads as %q, %d, %v", path, max, p2, max2, err)
		}
	})
}

// FuzzReadResponse: readResponse never panics, allocates no more than the
// asked maximum (plus its buffer), and returns at most that many bytes.
func FuzzReadResponse(f *testing.F) {
	for _, b := range goldenSeeds(f, ".response") {
		f.Add(b, uint32(16<<10))
	}
	for _, c := range badResponses {
		f.Add(c.resp, uint32(16))
	}
	f.Fuzz(func(t *testing.T, b []byte, m uint32) {
		// Up to 1 MiB, so that an accepted length costs little to allocate.
		max := int64(m % (1<<20 + 1))
		var got []byte
		var err error
		if n := allocated(func() { got, err = readResponse(bufio.NewReader(bytes.NewReader(b)), max) }); n > uint64(max)+64<<10 {
			t.Fatalf("allocated %d bytes for a maximum of %d", n, max)
		}
		if err != nil {
			if got != nil {
				t.Fatalf("%d bytes with error %v", len(got), err)
			}
			return
		}
		if int64(len(got)) > max {
			t.Fatalf("%d bytes for a maximum of %d", len(got), max)
		}
		// The bytes are the body of an ok answer (whose length may have a
		// longer varint than the writer's).
		n, k := binary.Uvarint(b[1:])
		if b[0] != statusOK || k <= 0 || n != uint64(len(got)) || !bytes.Equal(b[1+k:1+k+len(got)], got) {
			t.Fatalf("returned %q from %x", got, b)
		}
	})
}
