package content

import (
	"os"

	"golang.org/x/sys/unix"
)

// haveSyncfs says whether syncfs works here.
const haveSyncfs = true

// syncfs makes everything written to the file system that holds dir
// durable with one syncfs(2).
func syncfs(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}
