package treegen

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine running: the
// generators fan work out to goroutines of their own.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
