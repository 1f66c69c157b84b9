package cdn_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine running: the
// development origins the tests serve (cdntest stops and waits for them at
// cleanup), a FetchChunks or DirectFetch worker, or a connection the
// client keeps open. Nothing is ignored.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
