//go:build unix

package deploy

import (
	"errors"
	"os/exec"
	"syscall"
	"time"
)

// ownProcessGroup makes the hook the leader of a process group of its
// own, so that whatever it starts can be signalled with it.
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// terminateGroup sends SIGTERM to the process group of the hook whose
// pid is pid, and SIGKILL killGrace later if anything in it still runs.
// It returns once the hook has exited (exited delivered) and the group
// is gone or killed.
func terminateGroup(pid int, exited <-chan error) {
	pg := -pid // the hook leads its group: the group's id is its pid
	syscall.Kill(pg, syscall.SIGTERM)
	grace := time.NewTimer(killGrace)
	defer grace.Stop()
	select {
	case <-exited:
		// The hook is gone; what it started may still be terminating.
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for groupAlive(pg) {
			select {
			case <-grace.C:
				syscall.Kill(pg, syscall.SIGKILL)
				return
			case <-tick.C:
			}
		}
	case <-grace.C:
		syscall.Kill(pg, syscall.SIGKILL)
		<-exited
	}
}

// groupAlive says whether the process group pg (negative) has a member
// that has not exited.
func groupAlive(pg int) bool {
	if alive, known := groupAliveProc(-pg); known {
		return alive
	}
	return !errors.Is(syscall.Kill(pg, 0), syscall.ESRCH)
}
