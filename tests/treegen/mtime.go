package treegen

import (
	"io/fs"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Epoch is the mtime of every entry Generate writes. Upgrade gives what it
// touches a day more than the newest mtime of the tree it upgrades, so
// that trees, and what publishing them costs now that manifests carry
// mtimes, are the same from run to run.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// newest returns the newest mtime of an entry of dir, dir included.
func newest(dir string) (time.Time, error) {
	var max time.Time
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err == nil && fi.ModTime().After(max) {
			max = fi.ModTime()
		}
		return err
	})
	return max, err
}

// pinMTimes sets to t the mtime of every entry of dir (dir included) whose
// mtime is after after, without following links.
func pinMTimes(dir string, after, t time.Time) error {
	ts := []unix.Timespec{unix.NsecToTimespec(t.UnixNano()), unix.NsecToTimespec(t.UnixNano())}
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err == nil && fi.ModTime().After(after) {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	for _, p := range paths {
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &fs.PathError{Op: "utimes", Path: p, Err: err}
		}
	}
	return nil
}
