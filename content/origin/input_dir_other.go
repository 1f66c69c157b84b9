//go:build !linux

package origin

import (
	"fmt"

	"github.com/meshcast/meshcast/content"
)

// newDirSource is Linux only: the walk relies on openat2, fstatat and
// Linux extended attributes to never follow a link and to record every
// inode field. Publish a tar of the tree elsewhere.
func newDirSource(root string, _ *int64, _ content.Limits) (source, error) {
	return nil, fmt.Errorf("%s: publishing a directory needs Linux; publish a tar of it instead", root)
}
