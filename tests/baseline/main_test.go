package baseline_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine running; the
// tests also check after every run (goleak.VerifyNone), so a leak is blamed
// on the run that caused it.
//
// No goroutine is ignored. Dumped right after Bitswap returns, the only
// goroutines left of it are go-libp2p's event-bus subscription drainers
// (eventbus.(*sub).Close.func1, as in mesh/p2p's tests), which exit within
// milliseconds, well inside goleak's retries: closing the blockservice
// closes bitswap, whose server waits for its workers, and whose client and
// network goroutines end with it or with the hosts. boxo starts no
// process-wide goroutine with the options Bitswap uses (no content routing,
// hence no provider query manager; metrics are go-metrics-interface's
// no-op).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
