package p2p

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	cryptopb "github.com/libp2p/go-libp2p/core/crypto/pb"
)

// keyFileMode is the mode LoadIdentity creates the key file with, and the
// most it accepts: any permission for group or others is refused.
const keyFileMode fs.FileMode = 0o600

// LoadIdentity reads the node's libp2p identity, an ed25519 private key, from
// the file at path, or creates one there if the file does not exist.
//
// The file holds the key in libp2p's protobuf encoding
// (crypto.MarshalPrivateKey), the format go-libp2p tools read. A new key is
// written to a temporary file in the same directory, synced, and linked into
// place, so a crash never leaves a partial key at path and two processes
// racing to create it end up with the same key. A missing parent directory is
// created with mode 0700; an existing one is left as it is.
//
// A key file that group or others may access (any of mode 0077), that is not
// a regular file, that does not decode, or that holds a key of another type
// than ed25519 is an error naming the file: the peer id is derived from the
// key, so a node never silently replaces its identity.
func LoadIdentity(path string) (crypto.PrivKey, error) {
	key, err := readIdentity(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if err := createIdentity(path); err != nil {
		return nil, err
	}
	return readIdentity(path)
}

// readIdentity reads and checks an existing key file. An error that wraps
// fs.ErrNotExist means there is no file at path.
func readIdentity(path string) (crypto.PrivKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("identity key %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("identity key %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("identity key %s: not a regular file (%s)", path, fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm&^keyFileMode != 0 {
		return nil, fmt.Errorf("identity key %s: mode %04o lets group or others access it; it must be %04o (chmod 600 %s)",
			path, perm, keyFileMode, path)
	}
	// An ed25519 key is 68 bytes in this encoding; anything much larger is
	// not a key file.
	const maxKeyFile = 64 << 10
	if fi.Size() > maxKeyFile {
		return nil, fmt.Errorf("identity key %s: %d bytes, not a libp2p private key", path, fi.Size())
	}
	b := make([]byte, fi.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("identity key %s: %w", path, err)
	}
	key, err := crypto.UnmarshalPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("identity key %s: not a libp2p private key: %w", path, err)
	}
	if t := key.Type(); t != cryptopb.KeyType_Ed25519 {
		return nil, fmt.Errorf("identity key %s: a %s key; meshcast identities are ed25519", path, t)
	}
	return key, nil
}

// createIdentity writes a fresh ed25519 key to path unless a file appears
// there first.
func createIdentity(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("identity key %s: create directory: %w", path, err)
	}
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return fmt.Errorf("identity key %s: generate: %w", path, err)
	}
	b, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return fmt.Errorf("identity key %s: encode: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, ".identity-*.tmp") // mode 0600
	if err != nil {
		return fmt.Errorf("identity key %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(keyFileMode); err != nil {
		tmp.Close()
		return fmt.Errorf("identity key %s: %w", path, err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("identity key %s: write: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("identity key %s: sync: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("identity key %s: %w", path, err)
	}
	// Link, unlike rename, fails if path exists: whoever links first wins
	// and everyone reads the winner's key.
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("identity key %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the new name durable; best effort
		d.Close()
	}
	return nil
}
