package rootfs

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine running: the tarball
// code copies between tar and zstd in goroutines of its own.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
