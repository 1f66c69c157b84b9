// Package devserver is the development origin: a static HTTP server over
// one directory that stands in for a real CDN in development and tests
// (`meshcast cdn serve`), with an optional bandwidth cap that stands in for
// a site's WAN link, and failures injected through a Faults hook for the
// tests of clients.
//
// Server guarantees:
//
//   - Only regular files under Config.Dir are served, read-only, with
//     GET and HEAD. Paths are opened through an os.Root, so neither ".." (plain
//     or percent-encoded) nor a symlink pointing outside Dir reaches a file
//     outside it. Relative symlinks that stay inside are followed; absolute
//     ones are refused even when they point inside (os.Root's rule).
//     Directories (no listings) and any path with an element starting with
//     "." (the publisher's ".tmp-*" files, dot directories) are 404 Not Found.
//   - Single byte ranges (bytes=a-b, bytes=a-, bytes=-n) are answered 206 with
//     Content-Range, unsatisfiable ones 416 (except on an empty file, which
//     answers 200). A multi-range request is answered 200 with the whole
//     body: the Range header is ignored, as RFC 9110 allows. If-Range,
//     If-None-Match and If-Modified-Since work against the file's ETag and
//     modification time.
//   - ".json" files are application/json, all others application/octet-stream.
//     Content-addressed names (everything under packs/, chunks/ and targets/,
//     and versioned metadata such as metadata/3.targets.json) are
//     "public, max-age=31536000, immutable"; all other names (timestamp.json,
//     an unversioned root.json, …) are "no-cache".
//   - With Config.Gzip, a ".json" response is gzip-compressed on the fly
//     when the client accepts gzip and asks for no Range. A compressed
//     response has no validators (ETag, Last-Modified) and ignores
//     conditional headers; an identity one has both.
//   - With Config.Rate, all response bodies together, over every
//     connection, draw from one token bucket: over any interval of length t
//     the server writes at most Rate*t + burst body bytes, where burst is
//     64 KiB or Rate/20, whichever is larger. A client that goes away stops
//     its response at once.
//   - Counters (BytesSent, Requests, and the same numbers on GET /metrics) are
//     updated before the bytes they count are handed to the connection, so a
//     client that has read a response finds it already counted. /metrics
//     itself is neither counted nor rate limited nor faulted (a file named
//     "metrics" at the top of Dir is therefore not reachable).
//   - Serve owns every goroutine it starts: when it returns, no handler of
//     that server is still running.
//
// A Faults passed to New is asked about every request (never /metrics) and
// may have it fail: an error status, a truncated body, a stalled body.
package devserver
