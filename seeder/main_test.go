package seeder_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine running: Raft.Close
// must stop everything it started, hashicorp/raft's goroutines and its
// transport's stream handlers included. Nothing is ignored.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
