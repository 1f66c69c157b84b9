// Package tuf is the verify side of the release origin's TUF metadata: a
// node's trusted view of which releases are signed, and the verified
// manifests of those releases. It knows no network: it fetches the files
// of an origin through a Source, which the CDN client (seeder/cdn) and the
// site's peers (mesh/meta) implement.
//
// Nouns:
//   - Source: delivers an origin's files by path ("metadata/timestamp.json",
//     "targets/releases/<name>/<sha256>.<version>.json"), trusted for
//     availability only. A missing file matches ErrNotFound.
//   - Trusted: the result of Refresh, a TUF client update (go-tuf's
//     updater) from a Source, starting from the metadata a node keeps in
//     its state directory (tuf/) or from its configured root.json. It lists
//     the signed releases (Releases, Find) and hands out their manifests
//     (Manifest).
//   - Target: a release as the targets metadata signs it: the
//     content.Release (whose id is the sha256 its manifest must have), the
//     target path and the manifest's length.
//   - CachedFile: the files a node verified, by origin path, for it to
//     serve to its peers so that they need not ask the CDN.
//
// Guarantees:
//   - Expired, rolled-back, mix-and-matched or wrongly signed metadata
//     fails Refresh, and what the state directory trusts never moves
//     backwards: a newer timestamp or snapshot that verified before a
//     failure is kept, while the trusted targets, and so the list of
//     releases, change only when a whole refresh verified.
//   - Manifest returns only a manifest whose bytes have the signed length
//     and hash, that decodes and validates within the given content.Limits,
//     and that names the release it is signed as. A manifest patch is used
//     only when its result hashes to the signed manifest; otherwise the
//     whole manifest is fetched.
//   - CachedFile hands out only what a refresh verified and kept, and a
//     target only when its bytes still hash to the name it is asked by.
package tuf
