package meta

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Protocol is the libp2p protocol id.
const Protocol = "/meshcast/meta/1"

// Bounds.
const (
	MaxPath = 1024
	MaxFile = 64 << 20
	// Timeout bounds one request; files are small and peers are on the LAN.
	Timeout = 30 * time.Second
)

const (
	statusOK       = 0
	statusNotFound = 1
	statusTooLarge = 2
	statusFailed   = 3
)

// Errors a fetch returns.
var (
	ErrNotFound = errors.New("peer does not have the file")
	ErrTooLarge = errors.New("file larger than allowed")
	ErrProtocol = errors.New("bad meta message")
)

// Files is what a node serves: the bytes of a path, or an error matching
// fs.ErrNotExist.
type Files func(path string) ([]byte, error)

// Serve answers meta requests on h from files until the host closes.
func Serve(h host.Host, files Files, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h.SetStreamHandler(Protocol, func(s network.Stream) {
		defer s.Close()
		s.SetDeadline(time.Now().Add(Timeout))
		if err := serve(s, files); err != nil {
			log.Debug("meta: request failed", "peer", s.Conn().RemotePeer(), "err", err)
			s.Reset()
		}
	})
}

func serve(s io.ReadWriter, files Files) error {
	br := bufio.NewReader(io.LimitReader(s, 1+10+MaxPath+10))
	path, max, err := readRequest(br)
	if err != nil {
		return err
	}
	b, err := files(path)
	status := byte(statusOK)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		status, b = statusNotFound, nil
	case err != nil:
		status, b = statusFailed, nil
	case int64(len(b)) > max || len(b) > MaxFile:
		status, b = statusTooLarge, nil
	}
	out := binary.AppendUvarint([]byte{status}, uint64(len(b)))
	if _, err := s.Write(append(out, b...)); err != nil {
		return err
	}
	return nil
}

func readRequest(br *bufio.Reader) (string, int64, error) {
	v, err := br.ReadByte()
	if err != nil {
		return "", 0, err
	}
	if v != 1 {
		return "", 0, fmt.Errorf("%w: version %d", ErrProtocol, v)
	}
	n, err := binary.ReadUvarint(br)
	if err != nil || n == 0 || n > MaxPath {
		return "", 0, fmt.Errorf("%w: path of %d bytes", ErrProtocol, n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(br, p); err != nil {
		return "", 0, fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	max, err := binary.ReadUvarint(br)
	if err != nil || max > MaxFile {
		return "", 0, fmt.Errorf("%w: bad maximum", ErrProtocol)
	}
	return string(p), int64(max), nil
}

// Fetch asks peer p for a file of at most max bytes.
func Fetch(ctx context.Context, h host.Host, p peer.ID, path string, max int64) ([]byte, error) {
	if len(path) == 0 || len(path) > MaxPath {
		return nil, fmt.Errorf("meta fetch: path of %d bytes", len(path))
	}
	max = min(max, MaxFile)
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	s, err := h.NewStream(network.WithAllowLimitedConn(ctx, "meta"), p, Protocol)
	if err != nil {
		return nil, fmt.Errorf("meta fetch %s from %s: %w", path, p, err)
	}
	defer s.Close()
	if d, ok := ctx.Deadline(); ok {
		s.SetDeadline(d)
	}
	req := append([]byte{1}, binary.AppendUvarint(nil, uint64(len(path)))...)
	req = append(req, path...)
	req = binary.AppendUvarint(req, uint64(max))
	if _, err := s.Write(req); err != nil {
		s.Reset()
		return nil, fmt.Errorf("meta fetch %s from %s: %w", path, p, err)
	}
	s.CloseWrite()
	b, err := readResponse(bufio.NewReader(s), max)
	if err != nil {
		s.Reset()
		return nil, fmt.Errorf("meta fetch %s from %s: %w", path, p, err)
	}
	return b, nil
}

func readResponse(br *bufio.Reader, max int64) ([]byte, error) {
	status, err := br.ReadByte()
	if err != nil {
		return nil, err
	}
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, fmt.Errorf("%w: length: %v", ErrProtocol, err)
	}
	switch status {
	case statusOK:
	case statusNotFound:
		return nil, ErrNotFound
	case statusTooLarge:
		return nil, ErrTooLarge
	case statusFailed:
		return nil, errors.New("peer failed to read the file")
	default:
		return nil, fmt.Errorf("%w: status %d", ErrProtocol, status)
	}
	if max < 0 || n > uint64(max) {
		return nil, fmt.Errorf("%w: %d bytes, at most %d allowed", ErrTooLarge, n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(br, b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	return b, nil
}
