package tuf

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// CachedFile returns a file of the origin, by its path below the origin,
// from what refreshes into dir verified and kept: the current timestamp,
// snapshot and targets metadata, every root version seen, and the release
// manifests downloaded. A node serves these to its site peers so that
// they need not ask the CDN; the peers verify them as they would the
// CDN's. Anything else is fs.ErrNotExist.
func CachedFile(dir, path string) ([]byte, error) {
	notExist := fmt.Errorf("%s: %w", path, fs.ErrNotExist)
	if strings.Contains(path, "..") || strings.HasPrefix(path, "/") {
		return nil, notExist
	}
	if name, ok := strings.CutPrefix(path, "metadata/"); ok {
		if name == "timestamp.json" {
			return os.ReadFile(filepath.Join(dir, "timestamp.json"))
		}
		ver, role, ok := strings.Cut(strings.TrimSuffix(name, ".json"), ".")
		n, err := strconv.ParseInt(ver, 10, 64)
		// Only the origin's spelling of a version: "5", not "05" or "+5".
		if !ok || err != nil || n < 1 || strconv.FormatInt(n, 10) != ver || !strings.HasSuffix(name, ".json") {
			return nil, notExist
		}
		switch role {
		case "root":
			if b, err := os.ReadFile(filepath.Join(dir, "roots", strconv.FormatInt(n, 10)+".root.json")); err == nil {
				return b, nil
			}
			fallthrough
		case "snapshot", "targets":
			b, err := os.ReadFile(filepath.Join(dir, role+".json"))
			if err != nil || metaVersion(b) != n {
				return nil, notExist
			}
			return b, nil
		}
		return nil, notExist
	}
	if rest, ok := strings.CutPrefix(path, "targets/"); ok {
		d, file := "", rest
		if i := strings.LastIndexByte(rest, '/'); i >= 0 {
			d, file = rest[:i+1], rest[i+1:]
		}
		hash, base, ok := strings.Cut(file, ".")
		want, err := hex.DecodeString(hash)
		if !ok || err != nil || len(want) != sha256.Size {
			return nil, notExist
		}
		b, err := os.ReadFile(filepath.Join(dir, "targets", url.PathEscape(d+base)))
		if err != nil {
			return nil, notExist
		}
		if sum := sha256.Sum256(b); string(sum[:]) != string(want) {
			return nil, notExist
		}
		return b, nil
	}
	return nil, notExist
}

// metaVersion reads signed.version of TUF metadata; 0 if it has none.
func metaVersion(b []byte) int64 {
	var m struct {
		Signed struct {
			Version int64 `json:"version"`
		} `json:"signed"`
	}
	if json.Unmarshal(b, &m) != nil {
		return 0
	}
	return m.Signed.Version
}
