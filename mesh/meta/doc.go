// Package meta serves small signed files between site peers: the TUF
// metadata and release manifests that a node verified, and the chunks of
// release indexes (content.Index), so that the other nodes of a site can
// verify them too without asking the CDN. Peers are trusted for
// availability only; whoever fetches a file verifies it.
//
// Protocol /meshcast/meta/1, one request per stream:
//
//	request  = version u8 (1) | len uvarint | path | max uvarint
//	response = status u8 | len uvarint | bytes      (status 0 ok, 1 not found, 2 too large, 3 failed)
//
// Nouns:
//   - Files: what a node serves, the bytes of a path (mesh hands it
//     content/tuf's CachedFile: only what a refresh verified).
//   - Serve: answers requests on a host from Files; Fetch: asks one peer
//     for one file.
//   - WithChunks: Files that also serve a store's chunks, decoded, at
//     ChunkPath ("chunks/<cid>"); Peers.FetchChunks asks the peers for
//     chunks in turn until one sends bytes the store accepts (Put
//     verifies them against the id).
//   - Peers: a content/tuf Source over the node's connected peers. The
//     freshest timestamp among up to eight peers wins; any other file
//     comes from the first peer that has it.
//
// Guarantees:
//   - Nothing a peer sends makes either side allocate past the bounds:
//     paths are at most MaxPath (1 KiB) and answers at most the smaller of
//     the asked maximum and MaxFile, checked before the bytes are read.
//   - Both ends give each stream of the protocol a deadline of Timeout.
//   - meta verifies nothing: a file is as good as the peer that sent it
//     until content/tuf has verified it against the node's own root.
package meta
