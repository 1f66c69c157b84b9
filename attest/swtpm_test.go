package attest

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"
)

// startSwtpm runs swtpm on two consecutive free ports of 127.0.0.1 (the
// command channel and, next, the control channel, as OpenTCP expects),
// waits until both accept connections, and returns the command address.
// Its state lives in a temporary directory; the process is killed and
// reaped when the test ends.
func startSwtpm(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("swtpm")
	if err != nil {
		t.Skip("swtpm not installed (Debian: apt-get install swtpm); skipping the swtpm test")
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
func waitListening(t *testing.T, addr string, exited <-chan error) {
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
func consecutiveListeners(t *testing.T) (*net.TCPListener, *net.TCPListener) {
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

func TestSwtpmQuoteVerifies(t *testing.T) {
	addr := startSwtpm(t)
	tpm, err := OpenTCP(addr)
	if err != nil {
		t.Fatalf("OpenTCP(%s): %v", addr, err)
	}
	defer tpm.Close()
	for pcr, m := range map[int]string{0: "firmware 1.0", 7: "secure boot on"} {
		if err := tpm.ExtendPCR(pcr, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	ak, err := LoadAK(tpm)
	if err != nil {
		t.Fatal(err)
	}
	defer ak.Close()
	values, err := ReadPCRs(tpm, testSel)
	if err != nil {
		t.Fatal(err)
	}
	p := mustPolicy(t, policyYAML(testSel, values, map[string]string{"seeder-1": string(ak.PEM())}))
	c := NewChallenge()
	q, err := ak.Quote(testSel, c, peerA)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Verify(p, q, c, peerA, nil)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !res.Seeder || res.AK != "seeder-1" {
		t.Errorf("Result = %+v", res)
	}
	if _, err := Verify(p, q, c, peerB, nil); !errors.Is(err, ErrNonce) {
		t.Errorf("Verify as peer B = %v, want ErrNonce", err)
	}
	// A second connection to the same swtpm: OpenTCP's Startup meets a
	// started TPM, and the AK is the same key.
	tpm.Close()
	tpm2, err := OpenTCP(addr)
	if err != nil {
		t.Fatalf("OpenTCP again: %v", err)
	}
	defer tpm2.Close()
	ak2, err := LoadAK(tpm2)
	if err != nil {
		t.Fatal(err)
	}
	defer ak2.Close()
	if ak2.Fingerprint() != ak.Fingerprint() {
		t.Errorf("AK after reconnect %s, want %s", ak2.Fingerprint(), ak.Fingerprint())
	}
}

// ReadPCRs checks its selection, and ExtendPCR its index, before asking
// the TPM; an extended PCR reads differently.
func TestSwtpmReadExtendPCRs(t *testing.T) {
	tpm, err := OpenTCP(startSwtpm(t))
	if err != nil {
		t.Fatal(err)
	}
	defer tpm.Close()
	for _, sel := range []PCRSelection{nil, {24}, {3, 3}} {
		if _, err := ReadPCRs(tpm, sel); err == nil {
			t.Errorf("ReadPCRs(%v): no error", sel)
		}
	}
	if err := tpm.ExtendPCR(24, []byte("x")); err == nil {
		t.Error("ExtendPCR(24): no error")
	}
	sel := PCRSelection{0, 1, 2, 3, 4, 5, 6, 7, 8, 16}
	before, err := ReadPCRs(tpm, sel)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != len(sel) {
		t.Fatalf("ReadPCRs: %d values, want %d", len(before), len(sel))
	}
	if err := tpm.ExtendPCR(16, []byte("debug")); err != nil {
		t.Fatal(err)
	}
	after, err := ReadPCRs(tpm, sel)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range sel {
		if changed := string(before[p]) != string(after[p]); changed != (p == 16) {
			t.Errorf("pcr %d: changed %v after extending pcr 16", p, changed)
		}
	}
}
