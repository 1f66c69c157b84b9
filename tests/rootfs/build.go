package rootfs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Spec says which Debian tree to build: mmdebstrap's minbase variant of
// Suite, plus Include.
type Spec struct {
	// Suite is a Debian stable release's code name ("bookworm"): the
	// release, its -updates and its security suite, on deb.debian.org,
	// are the mirrors.
	Suite string
	// Include are packages beyond minbase, "name" (the newest version the
	// mirrors have) or "name=version" (exactly that one).
	Include []string
}

// Bookworm is a Debian 12 tree of about 200 MB: minbase, Python, curl,
// openssl and ping (whose file capability libcap2-bin's setcap sets).
var Bookworm = Spec{
	Suite:   "bookworm",
	Include: []string{"curl", "iputils-ping", "libcap2-bin", "openssl", "python3-minimal"},
}

// builderVersion changes whenever the same Spec would build a different
// tree (mmdebstrap's options, the extras): it is part of every key.
const builderVersion = "meshcast-rootfs 2"

// key names the tree of s on this architecture in the cache.
func (s Spec) key(arch string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\nsuite %s\narch %s\n", builderVersion, s.Suite, arch)
	for _, p := range slices.Sorted(slices.Values(s.Include)) {
		fmt.Fprintf(h, "include %s\n", p)
	}
	return s.Suite + "-" + hex.EncodeToString(h.Sum(nil))[:16]
}

func (s Spec) String() string {
	return fmt.Sprintf("Debian %s minbase + %s", s.Suite, strings.Join(s.Include, ", "))
}

// Build returns a fresh copy of the tree of spec in a directory of
// t.TempDir(), building it first when the cache does not have it yet.
// The copy is checked against the listing of the tree as it was built:
// owners, modes, xattrs, hard links, devices and mtimes included. Build
// skips the test when the tree cannot be had here (see the package doc)
// and fails it when building goes wrong in any other way.
func Build(t testing.TB, spec Spec) string {
	t.Helper()
	b := newBuilder(t)
	key, err := b.ensureSpec(spec)
	b.release()
	if err != nil {
		fail(t, err)
	}
	return b.copyOut(key)
}

// A skip is a reason the tree cannot be had on this machine: not a bug,
// so Build skips rather than fails.
type skip struct{ why string }

func (s *skip) Error() string { return s.why }

func skipf(format string, args ...any) error { return &skip{fmt.Sprintf(format, args...)} }

// fail skips t for a skip and fails it for any other error.
func fail(t testing.TB, err error) {
	t.Helper()
	if s := (*skip)(nil); errors.As(err, &s) {
		t.Skip("rootfs: " + s.why)
	}
	t.Fatalf("rootfs: %v", err)
}

// builder is one Build's or Series.Tree's hold on the cache.
type builder struct {
	t      testing.TB
	cache  *cache
	arch   string
	unlock func()
}

// newBuilder checks that a tree can be had here at all, opens the cache
// and takes its lock.
func newBuilder(t testing.TB) *builder {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("rootfs: a Debian tree keeps root's owners, setuid bits, devices and capabilities, " +
			"which only root can write: run the tests as root (sudo -E go test ./...)")
	}
	arch, err := exec.Command("dpkg", "--print-architecture").Output()
	if err != nil {
		t.Skip("rootfs: not a Debian machine (dpkg --print-architecture: " + err.Error() + "): the trees are built with mmdebstrap and apt")
	}
	c, err := openCache()
	if err != nil {
		fail(t, err)
	}
	unlock, err := c.lock()
	if err != nil {
		fail(t, err)
	}
	c.prune()
	return &builder{t: t, cache: c, arch: strings.TrimSpace(string(arch)), unlock: unlock}
}

func (b *builder) release() {
	if b.unlock != nil {
		b.unlock()
		b.unlock = nil
	}
}

// copyOut extracts the cached tree key into a fresh directory.
func (b *builder) copyOut(key string) string {
	b.t.Helper()
	start := time.Now()
	dst := filepath.Join(b.t.TempDir(), "rootfs")
	if err := b.cache.extract(key, dst); err != nil {
		fail(b.t, err)
	}
	b.t.Logf("rootfs: %s copied from the cache in %v", key, time.Since(start).Round(time.Millisecond))
	return dst
}

// ensureSpec builds the tree of spec unless the cache has it, and returns
// its key.
func (b *builder) ensureSpec(spec Spec) (string, error) {
	key := spec.key(b.arch)
	if b.cache.has(key) {
		return key, nil
	}
	if testing.Short() {
		return "", skipf("-short: %s is not in the cache (%s) and takes a minute and a download to build", spec, b.cache.dir)
	}
	work, err := b.cache.workDir()
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	start := time.Now()
	dir := filepath.Join(work, "rootfs")
	if err := mmdebstrap(spec, dir, filepath.Join(work, "mmdebstrap.log")); err != nil {
		return "", err
	}
	notes, err := addExtras(dir)
	if err != nil {
		return "", err
	}
	took := time.Since(start)
	for _, n := range notes {
		b.t.Logf("rootfs: %s: %s", key, n)
	}
	b.t.Logf("rootfs: built %s (%s) in %v", key, spec, took.Round(time.Millisecond))
	rec := record{Description: spec.String(), Built: time.Now().UTC(), BuildTime: took}
	return key, b.cache.store(key, dir, rec)
}
