//go:build !linux

package cdntest

import "testing"

// Tmpfs is a size-limited tmpfs mounted for one test, to run a disk full.
type Tmpfs struct {
	t   testing.TB
	Dir string
}

// MountTmpfs skips the test: tmpfs mounts are a Linux feature.
func MountTmpfs(t testing.TB, dir string, size int64) *Tmpfs {
	t.Skip("tmpfs mounts need Linux")
	return nil
}

// Resize changes the size of the mounted tmpfs.
func (m *Tmpfs) Resize(size int64) {}
