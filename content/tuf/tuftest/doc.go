// Package tuftest is test support for code that refreshes TUF metadata:
// DiskSource, a tuf.Source over an origin directory on disk (what a CDN
// serving it would deliver, with no network), which a test can make fail
// or lie for a path and which records the paths asked. Production code
// must not import it.
package tuftest
