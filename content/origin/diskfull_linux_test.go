package origin_test

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/meshcast/meshcast/content/origin"
)

// TestPublishDiskFull runs a publish out of space while it writes the new
// pack: the error must say so (not "context canceled"), and the origin
// must be as it was, with no temporary pack left behind.
func TestPublishDiskFull(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs to fill a disk needs root")
	}
	o := newTestOrigin(t)
	packs := filepath.Join(o.dir, "packs")
	if err := unix.Mount("tmpfs", packs, "tmpfs", 0, "size=256k"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(packs, 0); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	// 3 MiB that does not compress: the pack overflows the disk while
	// chunks are still being collected, not only when it is flushed.
	tree := filepath.Join(t.TempDir(), "tree")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(9, 9))
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	if err := os.WriteFile(filepath.Join(tree, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	before := state(t, o.dir)
	_, err := o.publish(t, origin.PublishOptions{Name: "app", Version: "1.0.0", Artifacts: map[string]string{"linux/amd64": tree}})
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "write pack") {
		t.Fatalf("publish onto a full disk: %v, want ENOSPC writing the pack", err)
	}
	requireSameState(t, before, state(t, o.dir))
}
