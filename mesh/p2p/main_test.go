package p2p_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine running.
//
// No goroutine is ignored. With the options New sets (no metrics, no
// connection manager, no AutoNAT probing, no relay, no hole punching),
// host.Close leaves nothing of go-libp2p or quic-go behind: dumped right
// after Close, the only goroutines left are the event bus's subscription
// drainers (eventbus.(*sub).Close.func1), which exit within milliseconds,
// well inside goleak's retries. There is no process-wide goroutine to
// ignore, such as go-flow-metrics' sweeper, which only a bandwidth reporter
// would start. If a libp2p upgrade adds one, ignore it here by its top
// function and say why.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
