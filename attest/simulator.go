//go:build tpmsim

package attest

import (
	"fmt"

	"github.com/google/go-tpm-tools/simulator"
	"github.com/google/go-tpm/tpm2/transport"
)

// OpenSimulator starts the in-process Microsoft reference TPM (go-tpm-tools,
// cgo), freshly manufactured: its endorsement seed, and so its AK, differ
// each time. Only one simulator runs per process; a second OpenSimulator
// waits until the first is closed. Built only with the tpmsim tag.
func OpenSimulator() (*TPM, error) {
	s, err := simulator.Get()
	if err != nil {
		return nil, fmt.Errorf("open tpm simulator: %w", err)
	}
	return Open(transport.FromReadWriteCloser(s), "simulator"), nil
}

// OpenSimulatorSeed is OpenSimulator with every hierarchy seed derived from
// seed, so the AK is the same on each run: for golden files and tests only,
// since anyone knowing the seed knows the keys.
func OpenSimulatorSeed(seed int64) (*TPM, error) {
	s, err := simulator.GetWithFixedSeedInsecure(seed)
	if err != nil {
		return nil, fmt.Errorf("open tpm simulator: %w", err)
	}
	return Open(transport.FromReadWriteCloser(s), fmt.Sprintf("simulator(seed %d)", seed)), nil
}
