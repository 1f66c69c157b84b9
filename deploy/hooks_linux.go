package deploy

import (
	"bytes"
	"os"
	"strconv"
)

// groupAliveProc says whether process group pgid has a member that is
// not a zombie, from /proc: kill(2) counts zombies, and an exited
// member of a hook's group stays one for as long as nothing reaps it
// (a container's init may never), which would hold every timed-out hook
// for its whole grace period. known is false when /proc cannot be read.
func groupAliveProc(pgid int) (alive, known bool) {
	d, err := os.Open("/proc")
	if err != nil {
		return false, false
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return false, false
	}
	for _, name := range names {
		if _, err := strconv.Atoi(name); err != nil {
			continue
		}
		state, pg, ok := procStat(name)
		if ok && pg == pgid && state != 'Z' && state != 'X' {
			return true, true
		}
	}
	return false, true
}

// procStat reads the state and the process group of a process from
// /proc/<pid>/stat: "pid (comm) state ppid pgrp …", where comm may hold
// spaces and parentheses.
func procStat(pid string) (state byte, pgrp int, ok bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 3 || len(f[0]) != 1 {
		return 0, 0, false
	}
	pgrp, err = strconv.Atoi(string(f[2]))
	return f[0][0], pgrp, err == nil
}
