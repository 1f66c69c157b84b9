// Package cdn is a seeder's client of the release origin: the CDN (or
// S3-compatible store) that a publish writes to. It fetches the origin's
// files for TUF (Client is a content/tuf Source), covers the chunks a site
// lacks with few coalesced Range requests over the packs (FetchChunks),
// retries with backoff and jitter, resumes after a cut, and fetches a
// release directly, without the mesh (DirectFetch, `meshcast fetch`). The
// development origin server is package seeder/cdn/devserver.
//
// Guarantees:
//   - Every chunk handed to a FetchChunks sink verified against its id; a
//     chunk that does not is fetched again, a bounded number of times.
//   - No request has a wall-clock limit: a request fails when no byte
//     arrives for ClientConfig.IdleTimeout, so a slow link is not a
//     failure. An attempt that delivered verified chunks does not count
//     against ClientConfig.Attempts.
//   - A file missing from the origin (404, 410) matches ErrNotOnOrigin and
//     tuf.ErrNotFound, and is not retried.
//   - DirectFetch assembles a release only after every chunk verified, and
//     resumes without fetching again what its store holds.
package cdn
