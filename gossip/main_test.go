package gossip

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine running: every
// goroutine of Gossip, and memberlist's, must be gone once the members are
// closed.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
