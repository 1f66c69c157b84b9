package devserver

import (
	"net"

	"golang.org/x/sys/unix"
)

// clampMSS sets the segment size of the connections a TCP listener
// accepts.
func clampMSS(ln net.Listener, mss int) error {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return nil
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_MAXSEG, mss)
	}); err != nil {
		return err
	}
	return serr
}
