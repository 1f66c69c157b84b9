package content

// TestHooks are the DiskStore committer's test seams. Each runs on the
// committer goroutine (PutWait on the Put's, holding the store's lock) and
// must not call the store.
type TestHooks struct {
	Batch   func(ids []ChunkID) // a batch was taken, nothing written yet
	Written func(ids []ChunkID) // its temporary files are written and synced, none renamed
	Renamed func(id ChunkID)    // one chunk was renamed into place
	PutWait func()              // a Put waits for pending room
}

// WithTestHooks installs h in a DiskStore.
func WithTestHooks(h TestHooks) DiskOption {
	return withHooks(commitHooks{batch: h.Batch, written: h.Written, renamed: h.Renamed, putWait: h.PutWait})
}
