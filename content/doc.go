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
//     an Artifact (a file or a tree of files, directories and symlinks, each
//     file with its mode, size, sha256 and chunks), and the rollout policy.
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
//     its destination, whatever the manifest says.
package content
