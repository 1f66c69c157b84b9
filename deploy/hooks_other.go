//go:build !unix

package deploy

import (
	"os"
	"os/exec"
)

// ownProcessGroup does nothing where there are no process groups.
func ownProcessGroup(cmd *exec.Cmd) {}

// terminateGroup kills the hook itself where there are no process
// groups to signal.
func terminateGroup(pid int, exited <-chan error) {
	if p, err := os.FindProcess(pid); err == nil {
		p.Kill()
	}
	<-exited
}
