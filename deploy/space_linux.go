package deploy

import "golang.org/x/sys/unix"

// freeBytes is the room on dir's filesystem for an unprivileged writer
// (f_bavail).
func freeBytes(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}
