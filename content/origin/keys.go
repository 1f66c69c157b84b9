package origin

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Roles are the four top-level TUF roles, in the order keys are made.
var Roles = []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP}

// Keys holds the private keys of the top-level roles that a command needs;
// a role may be missing (the root key is kept offline after init).
type Keys map[string]ed25519.PrivateKey

// KeyFile returns the path of a role's key in dir.
func KeyFile(dir, role string) string { return filepath.Join(dir, role+".key") }

// GenerateKeys writes a fresh ed25519 key for every role into dir as PKCS#8
// PEM files with mode 0600. It refuses to overwrite an existing key.
func GenerateKeys(dir string) (Keys, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("keys init: %w", err)
	}
	for _, role := range Roles {
		if _, err := os.Lstat(KeyFile(dir, role)); err == nil {
			return nil, fmt.Errorf("keys init: %s exists; refusing to overwrite a signing key", KeyFile(dir, role))
		}
	}
	keys := Keys{}
	for _, role := range Roles {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("keys init: %w", err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, fmt.Errorf("keys init: %w", err)
		}
		b := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		f, err := os.OpenFile(KeyFile(dir, role), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("keys init: %w", err)
		}
		_, err = f.Write(b)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("keys init: write %s: %w", KeyFile(dir, role), err)
		}
		keys[role] = priv
	}
	return keys, nil
}

// LoadKeys reads the keys of roles from dir. Keys readable by group or
// others are refused.
func LoadKeys(dir string, roles ...string) (Keys, error) {
	keys := Keys{}
	for _, role := range roles {
		p := KeyFile(dir, role)
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("load %s key: %s does not exist (run meshcast keys init)", role, p)
		}
		if err != nil {
			return nil, fmt.Errorf("load %s key: %w", role, err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("load %s key: %s has mode %04o; a signing key must be 0600", role, p, fi.Mode().Perm())
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("load %s key: %w", role, err)
		}
		blk, _ := pem.Decode(b)
		if blk == nil || blk.Type != "PRIVATE KEY" {
			return nil, fmt.Errorf("load %s key: %s is not a PEM private key", role, p)
		}
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("load %s key: %s: %w", role, p, err)
		}
		ek, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("load %s key: %s is a %T, want ed25519", role, p, k)
		}
		keys[role] = ek
	}
	return keys, nil
}

func (k Keys) signer(role string) (signature.Signer, error) {
	priv, ok := k[role]
	if !ok {
		return nil, fmt.Errorf("no %s key loaded", role)
	}
	return signature.LoadSigner(priv, crypto.Hash(0))
}

// keyID returns the TUF key id of a role's public key.
func (k Keys) keyID(role string) (string, error) {
	priv, ok := k[role]
	if !ok {
		return "", fmt.Errorf("no %s key loaded", role)
	}
	key, err := metadata.KeyFromPublicKey(priv.Public())
	if err != nil {
		return "", err
	}
	return key.ID()
}
