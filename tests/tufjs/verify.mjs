// Verifies one target of a TUF repository with tuf-js, a TUF client
// written independently of go-tuf, and prints what it downloaded as one JSON
// line: {"target": PATH, "sha256": HEX, "length": BYTES}.
//
//   node verify.mjs METADATA_URL TARGETS_URL TRUSTED_ROOT_JSON TARGET CACHE_DIR
//
// It runs the TUF client workflow from TRUSTED_ROOT_JSON (root rotation,
// timestamp, snapshot, targets: signatures, versions, expiry, lengths,
// hashes), looks TARGET up in the signed targets, and downloads it; tuf-js
// checks its length and hashes. With consistent snapshots it asks for
// metadata as N.ROLE.json and for the target as HASH.NAME (its
// prefixTargetsWithHash option, on by default). CACHE_DIR should be empty:
// it receives the trusted metadata (metadata/) and the target (targets/).
//
// Exit status: 0 when the target verified, 1 when anything failed (the
// reason goes to stderr), 2 on bad usage. Used by tests/tufjs_test.go;
// install with `npm ci --prefix tests/tufjs`.

import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Updater } from 'tuf-js';

const [metadataBaseUrl, targetBaseUrl, trustedRoot, target, cacheDir] = process.argv.slice(2);
if (!cacheDir) {
  console.error('usage: node verify.mjs METADATA_URL TARGETS_URL TRUSTED_ROOT_JSON TARGET CACHE_DIR');
  process.exit(2);
}

try {
  const metadataDir = join(cacheDir, 'metadata');
  const targetDir = join(cacheDir, 'targets');
  mkdirSync(metadataDir, { recursive: true });
  mkdirSync(targetDir, { recursive: true });
  // tuf-js starts from metadataDir/root.json: the root this client trusts.
  copyFileSync(trustedRoot, join(metadataDir, 'root.json'));

  const updater = new Updater({
    metadataBaseUrl,
    targetBaseUrl,
    metadataDir,
    targetDir,
    config: { prefixTargetsWithHash: true, fetchTimeout: 30000, fetchRetry: 0 },
  });
  await updater.refresh();
  const info = await updater.getTargetInfo(target);
  if (!info) {
    throw new Error(`target ${target} is not in the signed targets metadata`);
  }
  const file = await updater.downloadTarget(info);
  const data = readFileSync(file);
  const sha256 = createHash('sha256').update(data).digest('hex');
  if (data.length !== info.length || sha256 !== info.hashes.sha256) {
    // tuf-js checked this already; a second look costs nothing.
    throw new Error(`downloaded ${data.length} bytes with sha256 ${sha256}; metadata says ${info.length} bytes, sha256 ${info.hashes.sha256}`);
  }
  console.log(JSON.stringify({ target, sha256, length: data.length }));
} catch (err) {
  console.error(`tuf-js: ${err?.constructor?.name ?? 'Error'}: ${err?.message ?? err}`);
  process.exit(1);
}
