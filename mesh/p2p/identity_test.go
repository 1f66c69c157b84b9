package p2p_test

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshcast/meshcast/mesh/p2p"
)

func TestLoadIdentityCreatesPrivateKeyAndReloadsIt(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(dir, "identity.key")

	key, err := p2p.LoadIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	if key.Type() != crypto.Ed25519 {
		t.Fatalf("new key is %v, want ed25519", key.Type())
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %04o, want 0600", perm)
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := di.Mode().Perm(); perm != 0o700 {
		t.Errorf("created directory mode %04o, want 0700", perm)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("state dir holds %d entries, want only the key (no temporary file left)", len(ents))
	}

	again, err := p2p.LoadIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	if !key.Equals(again) {
		t.Fatal("reloaded key differs from the created one")
	}
	id1, _ := peer.IDFromPrivateKey(key)
	id2, _ := peer.IDFromPrivateKey(again)
	if id1 != id2 {
		t.Fatalf("peer id changed across reload: %s then %s", id1, id2)
	}
}

func TestLoadIdentityRefusesKeyReadableByOthers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity.key")
	if _, err := p2p.LoadIdentity(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := p2p.LoadIdentity(path)
	if err == nil {
		t.Fatal("a 0644 key file was accepted")
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error does not name the file: %v", err)
	}
	t.Log(err)
}

func TestLoadIdentityRefusesOtherKeys(t *testing.T) {
	ecdsa, _, err := crypto.GenerateECDSAKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecdsaBytes, err := crypto.MarshalPrivateKey(ecdsa)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"ecdsa", ecdsaBytes, "ECDSA"},
		{"garbage", []byte("not a key\n"), "not a libp2p private key"},
		{"empty", nil, "not a libp2p private key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "identity.key")
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := p2p.LoadIdentity(path)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q should name %s and say %q", err, path, tc.want)
			}
			// The refused file is left as it was.
			if b, _ := os.ReadFile(path); string(b) != string(tc.data) {
				t.Error("the refused key file was changed")
			}
		})
	}
}
