package rootfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"golang.org/x/sys/unix"
)

// offline matches what apt prints when it cannot reach a mirror.
var offline = regexp.MustCompile(`Temporary failure resolving|Could not resolve|Failed to fetch|Unable to connect|` +
	`Network is unreachable|Connection timed out|Connection refused|No route to host|Could not connect`)

// aptEnv is the environment of apt, dpkg and mmdebstrap: the caller's
// (its proxy settings, say) without prompts and in the C locale.
func aptEnv() []string {
	return append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C.UTF-8", "LANGUAGE=")
}

// ensureMmdebstrap finds mmdebstrap, installing it with apt-get when it
// is missing.
func ensureMmdebstrap() error {
	if _, err := exec.LookPath("mmdebstrap"); err == nil {
		return nil
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return skipf("mmdebstrap is not installed and there is no apt-get to install it: install mmdebstrap")
	}
	var out bytes.Buffer
	for _, args := range [][]string{{"update", "-q"}, {"install", "-y", "-q", "--no-install-recommends", "mmdebstrap"}} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env, cmd.Stdout, cmd.Stderr = aptEnv(), &out, &out
		if err := cmd.Run(); err != nil {
			return skipf("mmdebstrap is not installed and apt-get %s failed (%v): install mmdebstrap "+
				"(apt-get install mmdebstrap, as .ci/run does)\n%s", args[0], err, tail(out.String(), 15))
		}
	}
	return nil
}

// mmdebstrap builds the tree of spec into dir (which must not exist),
// logging to logFile.
func mmdebstrap(spec Spec, dir, logFile string) error {
	if err := ensureMmdebstrap(); err != nil {
		return err
	}
	args := []string{
		"--mode=root", "--variant=minbase", "--format=directory",
		`--aptopt=Acquire::Retries "3"`,
		"--include=" + strings.Join(spec.Include, ","),
		spec.Suite, dir,
	}
	args = append(args, mirrors(spec.Suite, "")...)
	var out bytes.Buffer
	cmd := exec.Command("mmdebstrap", args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = aptEnv(), &out, &out
	err := cmd.Run()
	os.WriteFile(logFile, out.Bytes(), 0o600)
	switch {
	case err == nil:
		return nil
	case offline.Match(out.Bytes()):
		return skipf("mmdebstrap cannot download from the Debian mirror (deb.debian.org): "+
			"run with network access to it, or with a cache (%s) that has the tree\n%s", CacheEnv, tail(out.String(), 10))
	}
	return fmt.Errorf("mmdebstrap %s: %v\n%s", strings.Join(args, " "), err, tail(out.String(), 30))
}

// extrasDir holds what addExtras makes that no package does.
const extrasDir = "var/lib/meshcast-rootfs"

// netRawCap is the security.capability value of "cap_net_raw=ep": a
// VFS_CAP_REVISION_2 header with the effective flag, then the permitted
// and inheritable words of capabilities 0–31 and 32–63.
var netRawCap = func() []byte {
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], 0x02000000|0x1)
	binary.LittleEndian.PutUint32(b[4:], 1<<unix.CAP_NET_RAW)
	return b
}()

// addExtras adds to a built tree what Debian's packages leave out, so
// that the tree has one of everything List reports, and says what it did:
//   - usr/bin/ping gets cap_net_raw=ep if its postinst did not set it
//     (it does when setcap, from libcap2-bin, is there), and a user.*
//     xattr beside it;
//   - var/lib/meshcast-rootfs/ holds a fifo, a block device (7,7 like
//     /dev/loop7, group disk) and a file owned by 1000:1000, a user and
//     group that the tree does not name, with a user.* xattr.
//
// Sockets are not added: tar cannot keep them.
func addExtras(dir string) ([]string, error) {
	var notes []string
	ping := filepath.Join(dir, "usr/bin/ping")
	if _, err := unix.Lgetxattr(ping, "security.capability", nil); errors.Is(err, unix.ENODATA) {
		if err := unix.Lsetxattr(ping, "security.capability", netRawCap, 0); err != nil {
			return nil, fmt.Errorf("setting cap_net_raw on %s: %w", ping, err)
		}
		notes = append(notes, "usr/bin/ping had no file capability: set cap_net_raw=ep")
	} else if err != nil {
		return nil, fmt.Errorf("reading the capability of %s: %w", ping, err)
	}
	x := filepath.Join(dir, extrasDir)
	readme := "Made by meshcast's tests/rootfs, not by a Debian package: things the packages have none of.\n"
	steps := []func() error{
		func() error { return unix.Lsetxattr(ping, "user.meshcast.note", []byte("added by tests/rootfs"), 0) },
		func() error { return os.Mkdir(x, 0o755) },
		func() error { return os.WriteFile(filepath.Join(x, "README"), []byte(readme), 0o644) },
		func() error { return unix.Mkfifo(filepath.Join(x, "fifo"), 0o620) },
		func() error { return unix.Mknod(filepath.Join(x, "loop7"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 7))) },
		func() error { return os.Lchown(filepath.Join(x, "loop7"), 0, 6) },
		func() error { return os.WriteFile(filepath.Join(x, "owned"), []byte("uid 1000, gid 1000\n"), 0o640) },
		func() error { return os.Lchown(filepath.Join(x, "owned"), 1000, 1000) },
		func() error {
			return unix.Lsetxattr(filepath.Join(x, "owned"), "user.meshcast.note", []byte{0, 1, 2, 0xff}, 0)
		},
		// Past the umask:
		func() error { return unix.Chmod(filepath.Join(x, "fifo"), 0o620) },
		func() error { return unix.Chmod(filepath.Join(x, "loop7"), 0o660) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, fmt.Errorf("adding the extras: %w", err)
		}
	}
	return append(notes, "added "+extrasDir+" (fifo, block device, file of 1000:1000 with a user.* xattr) and a user.* xattr on usr/bin/ping"), nil
}
