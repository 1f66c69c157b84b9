// Package content owns what a release is made of, with no knowledge of
// networks: chunk ids, content-defined chunking, the chunk codec, release
// manifests, packs, chunk stores and the assembly of a release on disk.
//
// Nouns:
//
//   - A chunk is a run of a file's bytes cut by FastCDC (16/64/256 KiB by
//     default, per file for trees, over the whole file for single-file
//     artifacts). Its ChunkID is the sha2-256 of its bytes, written as a
//     CIDv1 with the raw codec.
//   - A chunk body is the chunk as stored and sent: one zstd frame, or the
//     raw bytes where compression does not pay (Encoding).
//   - A pack is the bodies of the chunks one publish added, concatenated in
//     file order, so a fetcher covers missing chunks with few Range
//     requests; its index says where each body starts.
//   - A Manifest describes a release: name, semantic version, per platform
//     an Artifact (a single file, or a tree), and the rollout policy. A
//     tree's entries (File) are regular files with their size, sha256 and
//     chunks, directories, symlinks (targets verbatim), hard links, device
//     nodes and fifos, each with its mode (07777), owner, mtime and
//     extended attributes. Schema 2 (written) keeps them in the artifact's
//     Index, a stream cut into chunks like a file's, which Artifact.Load
//     reads; schema 1 (still read) lists them inline.
//   - A Store holds chunk bodies by id.
//
// Guarantees:
//
//   - A stored chunk's bytes always hash to its id: every Store verifies a
//     body before it keeps it, and DecodeChunk verifies before it returns.
//   - Decoders (manifests, pack indexes, chunk bodies) allocate in
//     proportion to their input and to Limits, never to what the input
//     claims, and name what was wrong in their errors.
//   - Assemble materialises an artifact completely or not at all, checks
//     every file against its sha256, and never creates anything outside
//     its destination, whatever the manifest says: no link is followed.
//     It applies owners, modes, xattrs and mtimes as far as the process
//     may, and refuses (ErrPrivilege, naming the entry) rather than
//     silently give a setuid file to the wrong owner, unless
//     AssembleOptions.DropPrivileges says to drop those bits.
package content
