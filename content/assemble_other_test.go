//go:build !linux

package content_test

import (
	"fmt"
	"io/fs"
	"os"
	"testing"
)

// checkInode checks nothing more outside Linux, where assembly gives
// only modes and the mtimes of files and directories.
func checkInode(tb testing.TB, rel, p string, fi fs.FileInfo, e entry, skipTime bool) {}

func inodeState(tb testing.TB, p string) string {
	tb.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		tb.Fatal(err)
	}
	return fmt.Sprintf("%v %d %v", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
}
