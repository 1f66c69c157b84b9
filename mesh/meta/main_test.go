package meta

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine running: a serve
// goroutine of the pipe tests, a Serve handler or anything of the libp2p
// hosts of the end-to-end test. No goroutine is ignored; mesh/p2p's
// main_test.go says why a closed host leaves none behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
