package tuf_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/meshcast/meshcast/content/tuf"
	"github.com/meshcast/meshcast/content/tuf/tuftest"
)

// TestDiskSource checks the test Source itself, which every other test
// relies on to be an honest origin unless told otherwise.
func TestDiskSource(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "metadata"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "metadata", "timestamp.json"), []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s := tuftest.NewDiskSource(dir)
	if b, err := s.Fetch(ctx, "metadata/timestamp.json", 10); err != nil || string(b) != "0123456789" {
		t.Errorf("Fetch of a file at its length: %q, %v", b, err)
	}
	var lm *metadata.ErrDownloadLengthMismatch
	if _, err := s.Fetch(ctx, "metadata/timestamp.json", 9); !errors.As(err, &lm) {
		t.Errorf("Fetch of a file over the limit: %v, want ErrDownloadLengthMismatch", err)
	}
	if _, err := s.Fetch(ctx, "metadata/2.root.json", 10); !errors.Is(err, tuf.ErrNotFound) {
		t.Errorf("Fetch of a missing file: %v, want ErrNotFound", err)
	}
	if _, err := s.Fetch(ctx, "../"+filepath.Base(dir)+"/metadata/timestamp.json", 10); err == nil {
		t.Error("Fetch outside the origin succeeded")
	}
	s.Serve("metadata/timestamp.json", []byte("other"))
	if b, err := s.Fetch(ctx, "metadata/timestamp.json", 10); err != nil || string(b) != "other" {
		t.Errorf("Fetch of an overridden file: %q, %v", b, err)
	}
	broken := errors.New("connection reset")
	s.Fail("metadata/timestamp.json", broken)
	if _, err := s.Fetch(ctx, "metadata/timestamp.json", 10); !errors.Is(err, broken) {
		t.Errorf("Fetch of a failing file: %v, want %v", err, broken)
	}
	s.Restore("metadata/timestamp.json")
	if b, err := s.Fetch(ctx, "metadata/timestamp.json", 10); err != nil || string(b) != "0123456789" {
		t.Errorf("Fetch of a restored file: %q, %v", b, err)
	}
	want := []string{"metadata/timestamp.json", "metadata/timestamp.json", "metadata/2.root.json", "../" + filepath.Base(dir) + "/metadata/timestamp.json",
		"metadata/timestamp.json", "metadata/timestamp.json", "metadata/timestamp.json"}
	if got := s.Take(); !slices.Equal(got, want) {
		t.Errorf("asked %q, want %q", got, want)
	}
	if got := s.Take(); len(got) != 0 {
		t.Errorf("asked %q after a take, want nothing", got)
	}
}
