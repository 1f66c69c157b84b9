package gossip

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/hashicorp/memberlist"
)

// The keyring. memberlist's keyring is local to a member; the package
// documentation describes how a site rotates its key with these methods.

// KeyFingerprint returns a short, non-secret name of a gossip key for logs
// and for comparing keyrings: 16 hex digits of a hash of the key.
func KeyFingerprint(k []byte) string {
	h := sha256.Sum256(append([]byte("meshcast gossip key\x00"), k...))
	return hex.EncodeToString(h[:8])
}

// Keys returns the fingerprints of the keyring's keys, the primary first;
// nil for an unencrypted member.
func (g *Gossip) Keys() []string {
	if g.keyring == nil {
		return nil
	}
	g.keyMu.Lock()
	defer g.keyMu.Unlock()
	var out []string
	for _, k := range g.keyring.GetKeys() {
		out = append(out, KeyFingerprint(k))
	}
	return out
}

// InstallKey adds k to this member's keyring: it then also decrypts what
// is encrypted with k. Installing a key already there does nothing. See
// the package documentation for rotating keys across a site.
func (g *Gossip) InstallKey(k []byte) error {
	if err := g.keyCheck(k); err != nil {
		return err
	}
	g.keyMu.Lock()
	defer g.keyMu.Unlock()
	if g.hasKeyLocked(k) {
		return nil
	}
	if err := g.keyring.AddKey(bytes.Clone(k)); err != nil {
		return fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	g.log.Info("gossip: key installed", "key", KeyFingerprint(k))
	return nil
}

// UseKey makes k, which must be installed, the primary key: this member
// encrypts with it from now on.
func (g *Gossip) UseKey(k []byte) error {
	if err := g.keyCheck(k); err != nil {
		return err
	}
	g.keyMu.Lock()
	defer g.keyMu.Unlock()
	if !g.hasKeyLocked(k) {
		return fmt.Errorf("%w: %s", ErrKeyNotInstalled, KeyFingerprint(k))
	}
	// memberlist keeps the slice it is given: give it one of ours.
	if err := g.keyring.UseKey(bytes.Clone(k)); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrKeyNotInstalled, KeyFingerprint(k), err)
	}
	g.log.Info("gossip: primary key switched", "key", KeyFingerprint(k))
	return nil
}

// RemoveKey removes k from this member's keyring: what is encrypted with
// k is refused from now on. k may not be the primary key. Removing a key
// that is not installed does nothing.
func (g *Gossip) RemoveKey(k []byte) error {
	if err := g.keyCheck(k); err != nil {
		return err
	}
	g.keyMu.Lock()
	defer g.keyMu.Unlock()
	if bytes.Equal(g.keyring.GetPrimaryKey(), k) {
		return fmt.Errorf("%w: %s", ErrPrimaryKey, KeyFingerprint(k))
	}
	if !g.hasKeyLocked(k) {
		return nil
	}
	if err := g.keyring.RemoveKey(k); err != nil {
		return fmt.Errorf("gossip: remove key %s: %w", KeyFingerprint(k), err)
	}
	g.log.Info("gossip: key removed", "key", KeyFingerprint(k))
	return nil
}

func (g *Gossip) keyCheck(k []byte) error {
	if g.keyring == nil {
		return ErrInsecure
	}
	if err := memberlist.ValidateKey(k); err != nil {
		return fmt.Errorf("%w: %d bytes; want 16, 24 or 32 (AES-128, -192 or -256)", ErrBadKey, len(k))
	}
	return nil
}

func (g *Gossip) hasKeyLocked(k []byte) bool {
	return slices.ContainsFunc(g.keyring.GetKeys(), func(x []byte) bool { return bytes.Equal(x, k) })
}
