package tests

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine running. The
// site tests run whole sites in this process (sitetest: mesh.Nodes with
// their libp2p hosts, gossip, Raft and the development CDN), each stopped
// at its test's cleanup, so nothing of them may be left once the tests
// end; nor of the scenarios run in-process (delta), nor the goroutines
// that wait for the meshcast processes the CLI, multi-process and mDNS
// tests start. Nothing is ignored: with the options mesh/p2p sets, a
// closed host leaves no goroutine of libp2p or quic-go behind (mesh/p2p's
// main_test.go says why).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
