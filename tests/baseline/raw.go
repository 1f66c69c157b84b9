package baseline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/meshcast/meshcast/mesh/p2p"
)

// RawStream starts two hosts the way Bitswap does and measures
// p2p.RawStreamThroughput from the first to the second with n bytes: the
// ceiling of any exchange over these hosts, for comparing Bitswap's
// goodput with in the same run. It closes both hosts before returning.
func RawStream(ctx context.Context, n int64, log *slog.Logger) (bytesPerSec float64, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hosts, err := startHosts(2, func(i int) string { return fmt.Sprintf("raw%d", i) }, log)
	if err != nil {
		return 0, fmt.Errorf("raw stream baseline: %w", err)
	}
	defer func() {
		if cerr := closeHosts(hosts); cerr != nil {
			err = errors.Join(err, fmt.Errorf("raw stream baseline: %w", cerr))
		}
	}()
	if err := connectAll(ctx, hosts); err != nil {
		return 0, fmt.Errorf("raw stream baseline: %w", err)
	}
	return p2p.RawStreamThroughput(ctx, hosts[0], hosts[1], n)
}
