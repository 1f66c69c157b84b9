package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshcast/meshcast/content/origin"
	"github.com/meshcast/meshcast/seeder/cdn/devserver"
)

// tufJSVersion is the tuf-js that tests/tufjs/package.json pins. Later
// versions need Node 22.
const tufJSVersion = "3.1.0"

// TestTufJSVerifiesOrigin checks DESIGN.md's promise that "any standard TUF
// client must be able to verify" an origin: tuf-js, a TUF client written
// independently of go-tuf, refreshes an origin that content/origin wrote and
// downloads a release manifest through the development CDN; then it must
// refuse the same origin with a tampered manifest or a forged targets
// signature.
func TestTufJSVerifiesOrigin(t *testing.T) {
	node, script := tufJS(t)
	dir := t.TempDir()
	keys, err := origin.GenerateKeys(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	originDir := filepath.Join(dir, "origin")
	if err := origin.Init(originDir, keys, origin.DefaultExpiries(), time.Now()); err != nil {
		t.Fatal(err)
	}
	in1, in2 := filepath.Join(dir, "in1"), filepath.Join(dir, "in2")
	tr := newTestTree()
	tr.write(t, in1)
	tr.upgrade().write(t, in2)
	repo, err := origin.Open(originDir)
	if err != nil {
		t.Fatal(err)
	}
	// Two releases, so that the metadata tuf-js walks is past version 1.
	var res *origin.PublishResult
	for _, rel := range []struct{ version, in string }{{"1.0.0", in1}, {"1.1.0", in2}} {
		res, err = repo.Publish(t.Context(), keys, origin.PublishOptions{
			Name: "interop", Version: rel.version, Artifacts: map[string]string{"linux/arm64": rel.in},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	repo.Close()
	manifest, err := os.ReadFile(filepath.Join(originDir, "targets", "releases", "interop", res.ReleaseID.String()+".1.1.0.json"))
	if err != nil {
		t.Fatalf("the manifest is not at its hash-prefixed name: %v", err)
	}
	root := filepath.Join(originDir, "metadata", "1.root.json")

	t.Run("verifies", func(t *testing.T) {
		o := serveOrigin(t, originDir)
		out, stderr, err := runTufJS(t, node, script, o.url, root, res.Target)
		if err != nil {
			t.Fatalf("tuf-js refused the origin: %v\n%s", err, stderr)
		}
		var got struct {
			Target string `json:"target"`
			SHA256 string `json:"sha256"`
			Length int    `json:"length"`
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("verify.mjs printed %q: %v", out, err)
		}
		if got.Target != res.Target || got.SHA256 != res.ReleaseID.String() || got.Length != len(manifest) {
			t.Errorf("tuf-js verified %+v; want target %s, sha256 %s (the release id), length %d",
				got, res.Target, res.ReleaseID, len(manifest))
		}
		// It walked the consistent snapshot the way the spec says: numbered
		// metadata, and the target under its hash-prefixed name.
		paths := o.paths()
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`^/metadata/2\.root\.json$`), // looks for a newer root: 404
			regexp.MustCompile(`^/metadata/timestamp\.json$`),
			regexp.MustCompile(`^/metadata/[0-9]+\.snapshot\.json$`),
			regexp.MustCompile(`^/metadata/[0-9]+\.targets\.json$`),
			regexp.MustCompile(`^/targets/releases/interop/` + res.ReleaseID.String() + `\.1\.1\.0\.json$`),
		} {
			if !slices.ContainsFunc(paths, want.MatchString) {
				t.Errorf("tuf-js never requested %s; it requested %q", want, paths)
			}
		}
	})

	// tamper copies the origin, lets edit change the copy, and returns it.
	tamper := func(t *testing.T, edit func(t *testing.T, dir string)) string {
		t.Helper()
		bad := filepath.Join(t.TempDir(), "origin")
		if err := os.CopyFS(bad, os.DirFS(originDir)); err != nil {
			t.Fatal(err)
		}
		edit(t, bad)
		return bad
	}
	for _, c := range []struct {
		name string
		edit func(t *testing.T, dir string)
		want string // in tuf-js's complaint
	}{
		{"manifest bytes changed", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "targets", "releases", "interop", res.ReleaseID.String()+".1.1.0.json")
			b := bytes.Replace(manifest, []byte(`"interop"`), []byte(`"intErop"`), 1) // same length
			if bytes.Equal(b, manifest) {
				t.Fatal("the manifest does not hold its name")
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "hash"},
		{"targets signature forged", func(t *testing.T, dir string) {
			files, _ := filepath.Glob(filepath.Join(dir, "metadata", "*.targets.json"))
			if len(files) == 0 {
				t.Fatal("no targets metadata")
			}
			for _, p := range files {
				forgeSignature(t, p)
			}
		}, "targets"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := serveOrigin(t, tamper(t, c.edit))
			out, stderr, err := runTufJS(t, node, script, o.url, root, res.Target)
			if err == nil {
				t.Fatalf("tuf-js accepted a tampered origin: %s", out)
			}
			if !strings.Contains(strings.ToLower(string(stderr)), c.want) {
				t.Errorf("tuf-js failed, but not over the %s: %s", c.want, stderr)
			}
			t.Logf("tuf-js refused it: %s", bytes.TrimSpace(stderr))
		})
	}
}

// tufJS returns the node binary and verify.mjs, and fails t if either
// Node.js or the pinned tuf-js is missing: CI installs them, and a skipped
// interop test would prove nothing.
func tufJS(t *testing.T) (node, script string) {
	t.Helper()
	const install = "install Node.js (18.17+ or 20.5+) and npm, then run `npm ci --prefix tests/tufjs` from the repository root (.ci/run does both)"
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node not found (%v): the TUF interop test runs tuf-js; %s", err, install)
	}
	dir := filepath.Join(moduleRoot(t), "tests", "tufjs")
	b, err := os.ReadFile(filepath.Join(dir, "node_modules", "tuf-js", "package.json"))
	if err != nil {
		t.Fatalf("tuf-js is not installed in tests/tufjs/node_modules (%v): %s", err, install)
	}
	var pkg struct{ Version string }
	if err := json.Unmarshal(b, &pkg); err != nil || pkg.Version != tufJSVersion {
		t.Fatalf("tests/tufjs/node_modules holds tuf-js %q, want %s: run `npm ci --prefix tests/tufjs`", pkg.Version, tufJSVersion)
	}
	return node, filepath.Join(dir, "verify.mjs")
}

// runTufJS runs verify.mjs against the origin at base and returns its
// stdout and stderr.
func runTufJS(t *testing.T, node, script, base, root, target string) (stdout, stderr []byte, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script, base+"/metadata", base+"/targets", root, target, t.TempDir())
	// make-fetch-happen honours proxy variables even for loopback.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasSuffix(strings.ToLower(k), "_proxy") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("verify.mjs did not finish within a minute\n%s", se.Bytes())
	}
	return so.Bytes(), se.Bytes(), err
}

// servedOrigin is an origin served by devserver.Server on loopback, with the
// paths it was asked for.
type servedOrigin struct {
	url string
	mu  sync.Mutex
	got []string
}

func (o *servedOrigin) paths() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.got)
}

func serveOrigin(t *testing.T, dir string) *servedOrigin {
	t.Helper()
	srv, err := devserver.New(devserver.Config{Dir: dir, Gzip: true}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := &servedOrigin{}
	h := srv.Handler()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.got = append(o.got, r.URL.Path)
		o.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	o.url = hs.URL
	return o
}

// forgeSignature changes one hex digit of every signature in a metadata
// file, leaving the signed part as it was.
func forgeSignature(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var md struct {
		Signatures []struct {
			Sig string `json:"sig"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(b, &md); err != nil || len(md.Signatures) == 0 {
		t.Fatalf("%s: no signatures (%v)", path, err)
	}
	for _, s := range md.Signatures {
		forged := []byte(s.Sig)
		if forged[10] == '0' {
			forged[10] = '1'
		} else {
			forged[10] = '0'
		}
		b = bytes.Replace(b, []byte(s.Sig), forged, 1)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
