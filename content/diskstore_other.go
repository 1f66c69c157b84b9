//go:build !linux

package content

import "errors"

// haveSyncfs says whether syncfs works here: it does not, so commits fsync
// each file and directory.
const haveSyncfs = false

func syncfs(string) error { return errors.ErrUnsupported }
