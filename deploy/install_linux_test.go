package deploy_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/deploy"
)

// A release that does not fit is refused before anything is written, with
// the figures; the running release is untouched.
func TestInstallNoRoom(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to mount a tmpfs of 2 MiB (mount -t tmpfs -o size=2m)")
	}
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=2m"); err != nil {
		t.Skipf("cannot mount a tmpfs on %s: %v", mnt, err)
	}
	t.Cleanup(func() { // before t.TempDir's removal, registered first
		if err := syscall.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	f := newFixture(t)
	f.dir = filepath.Join(mnt, "releases", "app")
	a := f.open()
	f.install(a, "1.0.0")
	f.activate(a, "1.0.0")

	big := buildArtifact(t, f.store, tree{"bin/app": "app 2.0.0\n", "share/data": strings.Repeat("x", 3<<20)})
	err := a.Install(t.Context(), "2.0.0", big, f.store, content.AssembleOptions{})
	if !errors.Is(err, deploy.ErrNoRoom) {
		t.Fatalf("Install: %v; want ErrNoRoom", err)
	}
	need := int64(3<<20+10) * 21 / 20
	for _, want := range []string{"2.0.0", f.dir, "needs " + strconv.FormatInt(need, 10) + " bytes", " free"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if a.Installed("2.0.0") {
		t.Error("2.0.0 is installed")
	}
	entries, _ := os.ReadDir(f.dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), "2.0.0") {
			t.Errorf("Install wrote %s", e.Name())
		}
	}
	f.checkRunning("1.0.0")
	// What fits still installs.
	f.install(a, "2.0.0")
	f.checkRunning("1.0.0")
}
