//go:build crashpoints

package main

import (
	"fmt"
	"os"
	"syscall"

	"github.com/meshcast/meshcast/mesh"
)

// crashOptions, in a build with the crashpoints tag, kill the process
// with SIGKILL right after the activation step named by MESHCAST_CRASH_AT
// ("switched", say) is durable, once: MESHCAST_CRASH_ONCE names a file
// created at the crash, and no crash happens while it exists. The
// multi-process tests build this way to kill -9 a node at each step.
func crashOptions() []mesh.Option {
	step := os.Getenv("MESHCAST_CRASH_AT")
	if step == "" {
		return nil
	}
	once := os.Getenv("MESHCAST_CRASH_ONCE")
	return []mesh.Option{mesh.ActivatorCrashHook(func(s string) {
		if s != step {
			return
		}
		if once != "" {
			f, err := os.OpenFile(once, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				return // crashed here before
			}
			f.Close()
		}
		fmt.Fprintf(os.Stderr, "crashpoints: SIGKILL at %s\n", s)
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	})}
}
