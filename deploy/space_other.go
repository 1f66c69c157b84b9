//go:build !linux

package deploy

import "errors"

// freeBytes is unknown here: Install checks no room.
func freeBytes(dir string) (uint64, error) { return 0, errors.ErrUnsupported }
