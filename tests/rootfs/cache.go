package rootfs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// CacheEnv names the environment variable that overrides the cache
// directory.
const CacheEnv = "MESHCAST_ROOTFS_CACHE"

// pruneAfter is how long a cached tree is kept without being used.
const pruneAfter = 30 * 24 * time.Hour

// cache is the directory of built trees: for each key a zstd-compressed
// POSIX tarball (KEY.tar.zst) and its record (KEY.json: what it is and
// the listing of the tree it was made from), written in that order, so a
// tarball that exists is complete. Builds hold lock, an flock.
type cache struct{ dir string }

// record is what the cache knows about one tree beside its tarball.
type record struct {
	Description string
	Built       time.Time
	BuildTime   time.Duration // building the tree, not counting the tarball
	Listing     []Entry
}

// cacheDir is $MESHCAST_ROOTFS_CACHE, or meshcast/rootfs in the user's
// cache directory ($XDG_CACHE_HOME, else ~/.cache).
func cacheDir() (string, error) {
	if d := os.Getenv(CacheEnv); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory (%v): set %s", err, CacheEnv)
	}
	return filepath.Join(d, "meshcast", "rootfs"), nil
}

func openCache() (*cache, error) {
	dir, err := cacheDir()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &cache{dir: dir}, nil
}

// lock takes the cache's lock, waiting for another process's build.
func (c *cache) lock() (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(c.dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

func (c *cache) tarball(key string) string { return filepath.Join(c.dir, key+".tar.zst") }
func (c *cache) record(key string) string  { return filepath.Join(c.dir, key+".json") }

func (c *cache) has(key string) bool {
	_, err := os.Stat(c.tarball(key))
	return err == nil
}

// workDir is a fresh directory for building, on the cache's filesystem.
// Only the holder of the lock builds, so what a crashed build left there
// is removed first.
func (c *cache) workDir() (string, error) {
	w := filepath.Join(c.dir, "work")
	if err := os.RemoveAll(w); err != nil {
		return "", err
	}
	return w, os.MkdirAll(w, 0o700)
}

// store lists the tree at dir and puts it in the cache under key.
func (c *cache) store(key, dir string, rec record) error {
	var err error
	if rec.Listing, err = List(dir); err != nil {
		return err
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	tmpRec, tmpTar := c.record(key)+".tmp", c.tarball(key)+".tmp"
	if err := os.WriteFile(tmpRec, b, 0o600); err != nil {
		return err
	}
	if err := packTar(dir, tmpTar); err != nil {
		os.Remove(tmpRec)
		os.Remove(tmpTar)
		return err
	}
	if err := os.Rename(tmpRec, c.record(key)); err != nil {
		return err
	}
	return os.Rename(tmpTar, c.tarball(key))
}

// load reads the record of key, and marks the tree used.
func (c *cache) load(key string) (record, error) {
	var rec record
	b, err := os.ReadFile(c.record(key))
	if err != nil {
		return rec, err
	}
	now := time.Now()
	os.Chtimes(c.tarball(key), now, now)
	return rec, json.Unmarshal(b, &rec)
}

// extract writes the tree of key into dst, which must not exist, and
// checks that it lists exactly as the tree it was made from.
func (c *cache) extract(key, dst string) error {
	rec, err := c.load(key)
	if err != nil {
		return err
	}
	if err := os.Mkdir(dst, 0o700); err != nil {
		return err
	}
	if err := unpackTar(c.tarball(key), dst); err != nil {
		return err
	}
	got, err := List(dst)
	if err != nil {
		return err
	}
	if d := Diff(rec.Listing, got, 0); d != "" {
		return fmt.Errorf("the copy of %s in %s is not the tree that was cached (a: cached, b: copy):\n%s", key, dst, d)
	}
	return nil
}

// prune removes the trees not used for pruneAfter.
func (c *cache) prune() {
	matches, _ := filepath.Glob(filepath.Join(c.dir, "*.tar.zst"))
	for _, m := range matches {
		if fi, err := os.Stat(m); err == nil && time.Since(fi.ModTime()) > pruneAfter {
			os.Remove(m)
			os.Remove(strings.TrimSuffix(m, ".tar.zst") + ".json")
		}
	}
}

// tarFlags keep everything List sees: owners by number, all 07777 bits,
// every xattr (security.capability included) and ACL, hard links, and
// nanosecond mtimes (the POSIX format; without it GNU tar keeps seconds).
var tarFlags = []string{"--xattrs", "--xattrs-include=*", "--acls", "--numeric-owner"}

// packTar writes the tree at dir as a zstd-compressed tarball to file.
func packTar(dir, file string) (err error) {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	enc, err := zstd.NewWriter(f, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return err
	}
	args := append([]string{"--create", "--file=-", "--directory=" + dir, "--format=posix",
		"--pax-option=delete=atime,delete=ctime", "--sort=name"}, tarFlags...)
	cmd := exec.Command("tar", append(args, ".")...)
	cmd.Stdout = enc
	if err := run(cmd); err != nil {
		enc.Close()
		return err
	}
	return enc.Close()
}

// unpackTar extracts the zstd-compressed tarball file into dir, as the
// owner and with the modes the tarball records.
func unpackTar(file, dir string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	dec, err := zstd.NewReader(f)
	if err != nil {
		return err
	}
	defer dec.Close()
	args := append([]string{"--extract", "--file=-", "--directory=" + dir,
		"--preserve-permissions", "--same-owner"}, tarFlags...)
	cmd := exec.Command("tar", args...)
	cmd.Stdin = io.NopCloser(dec)
	return run(cmd)
}

// run runs cmd and makes its error say what it printed on stderr.
func run(cmd *exec.Cmd) error {
	var stderr strings.Builder
	if cmd.Stderr == nil {
		cmd.Stderr = &stderr
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, tail(stderr.String(), 40))
	}
	return nil
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"…"}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
