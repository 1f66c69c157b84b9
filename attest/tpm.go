package attest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
	"github.com/google/go-tpm/tpm2/transport/tcp"
)

// DefaultDevice is the kernel's resource-managed TPM device.
const DefaultDevice = "/dev/tpmrm0"

// TPM is an open connection to one TPM: a device, swtpm over TCP or the
// simulator. It is not safe for concurrent use: a TPM runs one command at a
// time, and callers serialise.
type TPM struct {
	t    transport.TPMCloser
	name string // for errors: the device path or address
}

// Open wraps an open transport. The TPM must be started already; Close
// closes the transport.
func Open(t transport.TPMCloser, name string) *TPM {
	return &TPM{t: t, name: name}
}

// OpenDevice opens a TPM character device (DefaultDevice when path is
// empty). The kernel resource manager flushes what a closed connection left
// loaded.
func OpenDevice(path string) (*TPM, error) {
	if path == "" {
		path = DefaultDevice
	}
	t, err := linuxtpm.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open tpm %s: %w", path, err)
	}
	return Open(t, path), nil
}

// OpenTCP connects to a TPM that speaks the TCP simulator protocol (swtpm,
// the Microsoft reference simulator): commands on addr, the platform
// channel on the next port. It sends TPM2_Startup(CLEAR) and accepts a TPM
// that is started already; it sends no platform command, so the TPM must
// be powered on (swtpm: --flags not-need-init,startup-clear).
func OpenTCP(addr string) (*TPM, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("open tpm %s: %w", addr, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 || p == 65535 {
		return nil, fmt.Errorf("open tpm %s: port %q: need 1..65534 (the platform channel is the next port)", addr, port)
	}
	t, err := tcp.Open(tcp.Config{
		CommandAddress:  addr,
		PlatformAddress: net.JoinHostPort(host, strconv.FormatUint(p+1, 10)),
	})
	if err != nil {
		return nil, fmt.Errorf("open tpm %s: %w", addr, err)
	}
	tpm := Open(t, addr)
	if err := tpm.startup(); err != nil {
		t.Close()
		return nil, err
	}
	return tpm, nil
}

// startup sends TPM2_Startup(CLEAR); a TPM already started answers
// TPM_RC_INITIALIZE, which is fine.
func (t *TPM) startup() error {
	_, err := tpm2.Startup{StartupType: tpm2.TPMSUClear}.Execute(t.t)
	if err != nil && !errors.Is(err, tpm2.TPMRCInitialize) {
		return fmt.Errorf("tpm %s: startup: %w", t.name, err)
	}
	return nil
}

// Close closes the connection. Keys loaded through it are flushed by their
// own Close, or by the resource manager.
func (t *TPM) Close() error {
	if err := t.t.Close(); err != nil {
		return fmt.Errorf("close tpm %s: %w", t.name, err)
	}
	return nil
}

// String names the TPM for logs: its device path or address.
func (t *TPM) String() string { return t.name }

// ExtendPCR extends a SHA-256 PCR (0..MaxPCR) with the hash of
// measurement, as a measured-boot agent would. Tests use it to move a PCR
// off its golden value.
func (t *TPM) ExtendPCR(pcr int, measurement []byte) error {
	if pcr < 0 || pcr > MaxPCR {
		return fmt.Errorf("tpm %s: extend pcr %d: need 0..%d", t.name, pcr, MaxPCR)
	}
	d := sha256.Sum256(measurement)
	_, err := tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(pcr), Auth: tpm2.PasswordAuth(nil)},
		Digests: tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{
			{HashAlg: tpm2.TPMAlgSHA256, Digest: d[:]},
		}},
	}.Execute(t.t)
	if err != nil {
		return fmt.Errorf("tpm %s: extend pcr %d: %w", t.name, pcr, err)
	}
	return nil
}
