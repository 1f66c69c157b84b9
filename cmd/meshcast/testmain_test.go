package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine running: a
// subcommand the tests run in-process must stop everything it started
// before it returns. Nothing is ignored.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
