package content

import (
	"errors"
	"fmt"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// A manifest patch turns the bytes of one manifest (the base, which a node
// already holds) into those of another: a zstd frame compressed with the
// base as a raw dictionary. A release's manifest is large (every file and
// chunk of the tree) while an update changes a few entries, so a node that
// holds the previous release fetches a patch of a few KiB instead of the
// whole manifest. A patch is not trusted: the result must hash to the
// signed manifest's id.

// ErrBadPatch wraps every error of applying a manifest patch.
var ErrBadPatch = errors.New("bad manifest patch")

// patchDictID is the dictionary id both sides register the base under.
const patchDictID = 0x6d63 // "mc"

// MakeManifestPatch returns the patch from base to target.
func MakeManifestPatch(base, target []byte) ([]byte, error) {
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderDictRaw(patchDictID, base),
		zstd.WithEncoderLevel(zstd.SpeedBestCompression),
		zstd.WithWindowSize(patchWindow(len(base)+len(target))),
		zstd.WithEncoderConcurrency(1),
	)
	if err != nil {
		return nil, fmt.Errorf("manifest patch: %w", err)
	}
	defer enc.Close()
	return enc.EncodeAll(target, nil), nil
}

// ApplyManifestPatch returns the bytes patch makes of base. It never
// produces (or allocates for) more than maxLen bytes, whatever the patch
// claims; the caller checks the result against the signed hash.
func ApplyManifestPatch(base, patch []byte, maxLen int64) ([]byte, error) {
	if maxLen <= 0 || maxLen > DefaultLimits().ManifestBytes {
		return nil, fmt.Errorf("%w: length bound %d out of range", ErrBadPatch, maxLen)
	}
	// The output is bounded by maxLen (the cap below); the window by
	// what base and output span.
	window := uint64(patchWindow(len(base) + int(maxLen)))
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderDictRaw(patchDictID, base),
		zstd.WithDecoderMaxMemory(max(uint64(maxLen), window)),
		zstd.WithDecoderMaxWindow(window),
		zstd.WithDecodeAllCapLimit(true),
		zstd.WithDecoderConcurrency(1),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadPatch, err)
	}
	defer dec.Close()
	out, err := dec.DecodeAll(patch, make([]byte, 0, maxLen))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadPatch, err)
	}
	return out, nil
}

// patchWindow is a window that spans the dictionary and the output, as
// zstd's --patch-from does, within the encoder's limits, and at least
// 64 KiB: the encoder writes a larger window than asked for inputs of a
// few hundred bytes, as schema 2 manifests are.
func patchWindow(n int) int {
	w := 64 << 10
	for w < n && w < zstd.MaxWindowSize {
		w <<= 1
	}
	return w
}

// TargetCustom is the "custom" field of a release's TUF target: who it is,
// and which manifest patches the origin holds for it, by base release id
// (hex) and length in bytes.
type TargetCustom struct {
	Meshcast TargetInfo `json:"meshcast"`
}

// TargetInfo is the meshcast part of TargetCustom.
type TargetInfo struct {
	Name    string           `json:"name"`
	Version string           `json:"version"`
	Patches map[string]int64 `json:"patches,omitempty"`
}

// ManifestPatchPath is where, below the origin's targets/, the patch from
// the manifest with id from to the release target (with id to) lives.
func ManifestPatchPath(target string, to, from ReleaseID) string {
	dir := target[:strings.LastIndexByte(target, '/')+1]
	return dir + to.String() + ".from-" + from.String() + ".patch"
}
