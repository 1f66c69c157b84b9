package control

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine running: a Serve
// handler, a raw handler of the misbehaving peer, a Seeders.State asker or
// anything of the libp2p hosts. No goroutine is ignored; mesh/p2p's
// main_test.go says why a closed host leaves none behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
