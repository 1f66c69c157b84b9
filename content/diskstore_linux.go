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

// startWriteback starts writing f's dirty pages to disk without waiting,
// so that a batch's data is on its way while the next files are written
// and the syncfs that follows has less to wait for.
func startWriteback(f *os.File) {
	unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
}
