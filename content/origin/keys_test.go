package origin_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshcast/meshcast/content/origin"
)

func TestGenerateKeys(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "keys")
	keys, err := origin.GenerateKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != len(origin.Roles) {
		t.Fatalf("%d keys, want %d", len(keys), len(origin.Roles))
	}
	seen := map[string]string{}
	for _, role := range origin.Roles {
		fi, err := os.Stat(origin.KeyFile(dir, role))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s key has mode %04o, want 0600", role, fi.Mode().Perm())
		}
		if other, dup := seen[string(keys[role])]; dup {
			t.Errorf("%s and %s have the same key", role, other)
		}
		seen[string(keys[role])] = role
	}
	loaded, err := origin.LoadKeys(dir, origin.Roles...)
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range origin.Roles {
		if !loaded[role].Equal(keys[role]) {
			t.Errorf("loaded %s key differs from the generated one", role)
		}
	}
	only, err := origin.LoadKeys(dir, "timestamp")
	if err != nil || len(only) != 1 || only["timestamp"] == nil {
		t.Errorf("LoadKeys(timestamp) = %d keys, %v; want the timestamp key only", len(only), err)
	}
}

func TestGenerateKeysRefusesOverwrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := origin.GenerateKeys(dir); err != nil {
		t.Fatal(err)
	}
	// One key left: it alone must stop the whole generation, before any
	// other key file is written.
	for _, role := range origin.Roles[1:] {
		if err := os.Remove(origin.KeyFile(dir, role)); err != nil {
			t.Fatal(err)
		}
	}
	kept, err := os.ReadFile(origin.KeyFile(dir, origin.Roles[0]))
	if err != nil {
		t.Fatal(err)
	}
	_, err = origin.GenerateKeys(dir)
	if err == nil || !strings.Contains(err.Error(), "refusing to overwrite") || !strings.Contains(err.Error(), origin.KeyFile(dir, origin.Roles[0])) {
		t.Fatalf("GenerateKeys over an existing key: %v, want a refusal naming it", err)
	}
	if b, _ := os.ReadFile(origin.KeyFile(dir, origin.Roles[0])); string(b) != string(kept) {
		t.Error("the existing key was changed")
	}
	for _, role := range origin.Roles[1:] {
		if _, err := os.Stat(origin.KeyFile(dir, role)); !os.IsNotExist(err) {
			t.Errorf("%s key written by a refused generation", role)
		}
	}
}

func TestLoadKeysRefuses(t *testing.T) {
	t.Parallel()
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte // nil: keep the generated key
		mode os.FileMode
		want string
	}{
		{"readable by others", nil, 0o644, "must be 0600"},
		{"readable by group", nil, 0o640, "must be 0600"},
		{"garbage", []byte("not a key at all\n"), 0o600, "not a PEM private key"},
		{"other PEM type", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}), 0o600, "not a PEM private key"},
		{"PEM with garbage inside", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("garbage")}), 0o600, "targets.key"},
		{"ecdsa key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}), 0o600, "want ed25519"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := origin.GenerateKeys(dir); err != nil {
				t.Fatal(err)
			}
			p := origin.KeyFile(dir, "targets")
			if tt.data != nil {
				if err := os.WriteFile(p, tt.data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(p, tt.mode); err != nil {
				t.Fatal(err)
			}
			keys, err := origin.LoadKeys(dir, "timestamp", "targets")
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "targets") {
				t.Fatalf("LoadKeys: %v, want an error about the targets key saying %q", err, tt.want)
			}
			if keys != nil {
				t.Errorf("LoadKeys returned %d keys with its error", len(keys))
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		dir := t.TempDir()
		_, err := origin.LoadKeys(dir, "snapshot")
		if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), origin.KeyFile(dir, "snapshot")) {
			t.Fatalf("LoadKeys of a missing key: %v", err)
		}
	})
}
