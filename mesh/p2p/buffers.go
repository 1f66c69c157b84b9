package p2p

import (
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
)

// wantUDPBuffer is the UDP socket buffer size, in bytes, that quic-go asks
// for (7 MiB, rounded up as quic-go's documentation does): below it QUIC
// throughput suffers on fast links. On Linux an unprivileged process gets at
// most net.core.rmem_max / wmem_max; see the package documentation.
const wantUDPBuffer = 7_500_000

var udpBufferWarning sync.Once

// warnSmallUDPBuffers logs, once per process, when the kernel caps UDP
// socket buffers below wantUDPBuffer. quic-go prints the same advice to
// stderr through the standard log package when it fails to get its buffers
// (QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING=true silences that); this puts it
// in the node's log. A process with CAP_NET_ADMIN gets the buffers anyway
// (quic-go forces them past the sysctl), so it is not warned.
func warnSmallUDPBuffers(log *slog.Logger) {
	udpBufferWarning.Do(func() {
		if hasNetAdmin() {
			return
		}
		for _, name := range []string{"rmem_max", "wmem_max"} {
			v, ok := readSysctl("/proc/sys/net/core/" + name)
			if ok && v < wantUDPBuffer {
				log.Warn("UDP socket buffers may be too small for QUIC: set sysctl net.core.rmem_max=7500000 net.core.wmem_max=7500000",
					"sysctl", "net.core."+name, "value", v, "want", wantUDPBuffer)
				return
			}
		}
	})
}

// readSysctl reads an integer from a /proc/sys file; ok is false where there
// is none (other systems, restricted containers).
func readSysctl(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return v, err == nil
}

// hasNetAdmin reports whether the process's effective capabilities include
// CAP_NET_ADMIN, which lets quic-go set socket buffers beyond
// net.core.rmem_max (SO_RCVBUFFORCE). False where /proc/self/status has no
// answer.
func hasNetAdmin() bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	const capNetAdmin = 12
	for line := range strings.Lines(string(b)) {
		hex, ok := strings.CutPrefix(line, "CapEff:")
		if !ok {
			continue
		}
		caps, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
		return err == nil && caps&(1<<capNetAdmin) != 0
	}
	return false
}
