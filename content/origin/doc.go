// Package origin is the publish side of meshcast: the signing keys, and
// the origin directory that a CDN serves, holding TUF metadata (root,
// targets, snapshot, timestamp; consistent snapshots), release manifests
// as TUF targets, and chunk packs.
//
// Guarantees:
//
//   - A publish writes only the chunks the origin lacks, as one new pack,
//     and commits by renaming timestamp.json last: a CDN reading the
//     directory at any moment sees a complete, consistent repository.
//   - A version is immutable: publishing it again with identical content
//     changes nothing; with other content it fails and writes nothing.
//   - One publish or refresh runs at a time per origin (a lock file).
package origin
