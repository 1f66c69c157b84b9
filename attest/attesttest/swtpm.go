package attesttest

import (
	"net"
	"os"
	"os/exec"
	"testing"
	"time"
)

// StartSwtpm runs swtpm on two consecutive free ports of 127.0.0.1 (the
// command channel and, next, the control channel, as OpenTCP expects),
// waits until both accept connections, and returns the command address.
// Its state lives in a temporary directory; the process is killed and
// reaped when the test ends.
func StartSwtpm(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("swtpm")
	if err != nil {
		t.Skip("swtpm not installed (Debian: apt-get install swtpm); skipping the swtpm test (.ci/run installs it)")
	}
	cmdL, ctrlL := consecutiveListeners(t)
	addrs := []string{cmdL.Addr().String(), ctrlL.Addr().String()}
	// swtpm's --server fd= wants a connected socket, not a listening one,
	// so the ports are handed over by number: a small window in which
	// another process could take one, which the dial below would notice.
	cmdL.Close()
	ctrlL.Close()
	cmd := exec.Command(bin, "socket", "--tpm2",
		"--server", "type=tcp,port="+port(addrs[0]), "--ctrl", "type=tcp,port="+port(addrs[1]),
		"--tpmstate", "dir="+t.TempDir(),
		"--flags", "not-need-init,startup-clear")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start swtpm: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	for _, a := range addrs {
		waitListening(t, a, exited)
	}
	return addrs[0]
}

// waitListening waits until addr accepts a connection, swtpm exits, or 10
// seconds pass.
func waitListening(t testing.TB, addr string, exited <-chan error) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		select {
		case err := <-exited:
			t.Fatalf("swtpm exited before listening on %s: %v", addr, err)
		case <-deadline:
			t.Fatalf("swtpm not listening on %s after 10s", addr)
		case <-tick.C:
		}
	}
}

// consecutiveListeners listens on ports p and p+1 of 127.0.0.1.
func consecutiveListeners(t testing.TB) (*net.TCPListener, *net.TCPListener) {
	t.Helper()
	for range 20 {
		a, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		p := a.Addr().(*net.TCPAddr).Port
		b, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p + 1})
		if err == nil {
			return a, b
		}
		a.Close()
	}
	t.Fatal("no two consecutive free ports on 127.0.0.1")
	return nil, nil
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}
