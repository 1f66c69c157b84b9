package content

import "os"

// SyncDir makes a directory's entries (a rename into it) durable: the
// step after a rename that crash safety needs, shared by the chunk store,
// the origin and the activator.
func SyncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
