package cdntest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/content/origin"
	"github.com/meshcast/meshcast/seeder/cdn"
	"github.com/meshcast/meshcast/seeder/cdn/devserver"
)

// Options configure NewOrigin. Zero values mean the defaults.
type Options struct {
	// Expiries sign the initial metadata and every publish; zero means
	// origin.DefaultExpiries().
	Expiries origin.Expiries
	// Chunking is used by every publish; zero means
	// content.DefaultChunking().
	Chunking content.Chunking
	// Now is the time the initial metadata is signed at; zero means
	// time.Now().
	Now time.Time
}

// Origin is a signed release origin in a temporary directory, with the keys
// of all four roles.
type Origin struct {
	t testing.TB

	// Dir is the origin directory that a cdn.Server serves.
	Dir string
	// KeysDir holds the role keys as origin.GenerateKeys wrote them.
	KeysDir string
	// Keys are the private keys of root, targets, snapshot and timestamp.
	Keys origin.Keys
	// RootJSON is metadata/1.root.json: the trust anchor for clients.
	RootJSON []byte

	opts Options
}

// NewOrigin generates keys and initialises an origin under t.TempDir().
func NewOrigin(t testing.TB, opts Options) *Origin {
	t.Helper()
	if opts.Expiries == (origin.Expiries{}) {
		opts.Expiries = origin.DefaultExpiries()
	}
	if opts.Chunking == (content.Chunking{}) {
		opts.Chunking = content.DefaultChunking()
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	base := t.TempDir()
	o := &Origin{t: t, Dir: filepath.Join(base, "origin"), KeysDir: filepath.Join(base, "keys"), opts: opts}
	keys, err := origin.GenerateKeys(o.KeysDir)
	if err != nil {
		t.Fatal(err)
	}
	o.Keys = keys
	if err := origin.Init(o.Dir, keys, opts.Expiries, opts.Now); err != nil {
		t.Fatal(err)
	}
	if o.RootJSON, err = os.ReadFile(filepath.Join(o.MetadataDir(), "1.root.json")); err != nil {
		t.Fatal(err)
	}
	return o
}

// MetadataDir is the directory of the signed TUF metadata.
func (o *Origin) MetadataDir() string { return filepath.Join(o.Dir, "metadata") }

// PackFile returns the path of a pack on disk.
func (o *Origin) PackFile(d content.Digest) string {
	return filepath.Join(o.Dir, filepath.FromSlash(cdn.PackPath(d)))
}

// Publish publishes artifacts (platform → directory, tar or file) as
// name@version and fails the test on error.
func (o *Origin) Publish(name, version string, artifacts map[string]string) *origin.PublishResult {
	o.t.Helper()
	res, err := o.TryPublish(origin.PublishOptions{Name: name, Version: version, Artifacts: artifacts})
	if err != nil {
		o.t.Fatal(err)
	}
	return res
}

// TryPublish publishes opt, with the origin's chunking and expiries where
// opt leaves them zero, and returns what Publish returned.
func (o *Origin) TryPublish(opt origin.PublishOptions) (*origin.PublishResult, error) {
	if opt.Chunking == (content.Chunking{}) {
		opt.Chunking = o.opts.Chunking
	}
	if opt.Expiries == (origin.Expiries{}) {
		opt.Expiries = o.opts.Expiries
	}
	var res *origin.PublishResult
	err := o.TryWithRepo(func(r *origin.Repo) error {
		var err error
		res, err = r.Publish(context.Background(), o.Keys, opt, nil)
		return err
	})
	return res, err
}

// TryWithRepo opens the origin, holding its lock while fn runs.
func (o *Origin) TryWithRepo(fn func(r *origin.Repo) error) error {
	r, err := origin.Open(o.Dir)
	if err != nil {
		return err
	}
	defer r.Close()
	return fn(r)
}

// WithRepo is TryWithRepo that fails the test on error.
func (o *Origin) WithRepo(fn func(r *origin.Repo) error) {
	o.t.Helper()
	if err := o.TryWithRepo(fn); err != nil {
		o.t.Fatal(err)
	}
}

// AddTarget signs data as the target at path (see origin.Repo.AddTarget),
// with the origin's keys and expiries.
func (o *Origin) AddTarget(path string, data []byte) {
	o.t.Helper()
	o.WithRepo(func(r *origin.Repo) error { return r.AddTarget(o.Keys, o.opts.Expiries, path, data, nil) })
}

// Refresh re-signs the metadata as of now (see origin.Repo.Refresh).
func (o *Origin) Refresh(exp origin.Expiries, now time.Time) origin.RefreshResult {
	o.t.Helper()
	var res origin.RefreshResult
	o.WithRepo(func(r *origin.Repo) error {
		var err error
		res, err = r.Refresh(o.Keys, exp, now)
		return err
	})
	return res
}

// TargetFile returns the path on disk of the target signed at path with
// the given sha256 (consistent snapshots prefix the name with it).
func (o *Origin) TargetFile(path string, sum content.Digest) string {
	dir, base := filepath.Split(filepath.FromSlash(path))
	return filepath.Join(o.Dir, "targets", dir, sum.String()+"."+base)
}

// ManifestBytes returns the manifest a publish signed.
func (o *Origin) ManifestBytes(res *origin.PublishResult) []byte {
	o.t.Helper()
	b, err := os.ReadFile(o.TargetFile(res.Target, content.Digest(res.ReleaseID)))
	if err != nil {
		o.t.Fatal(err)
	}
	return b
}

// Manifest returns the decoded manifest a publish signed.
func (o *Origin) Manifest(res *origin.PublishResult) *content.Manifest {
	o.t.Helper()
	m, err := origin.LoadManifest(o.t.Context(), filepath.Join(o.Dir, "packs"), o.ManifestBytes(res), content.DefaultLimits())
	if err != nil {
		o.t.Fatal(err)
	}
	return m
}

// WriteIndex writes files, in the order given, as a schema 2 index
// stream into a new pack on the origin, cut as a publish cuts it
// (content.IndexChunking) but stored raw and not validated, and returns
// the index: a test sets it on an artifact whose Files it clears and signs
// the manifest (AddTarget) to serve a file list a publish would refuse.
// The pack is named by its sha256 and has its .idx, as a publish writes
// them.
func (o *Origin) WriteIndex(files []content.File) *content.Index {
	o.t.Helper()
	stream, err := content.EncodeIndex(files)
	if err != nil {
		o.t.Fatal(err)
	}
	x := &content.Index{Entries: len(files), Size: int64(len(stream)), SHA256: content.Digest(sha256.Sum256(stream))}
	var pack bytes.Buffer
	w := content.NewPackWriter(&pack)
	added := map[content.ChunkID]content.ChunkRef{}
	ch := content.NewChunker(bytes.NewReader(stream), content.IndexChunking())
	for {
		data, err := ch.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			o.t.Fatal(err)
		}
		id := content.SumChunk(data)
		ref, ok := added[id]
		if !ok {
			off, err := w.Add(id, len(data), content.EncodingRaw, data)
			if err != nil {
				o.t.Fatal(err)
			}
			ref = content.ChunkRef{ID: id, Size: len(data), Stored: len(data), Enc: content.EncodingRaw, Offset: off}
			added[id] = ref
		}
		x.Chunks = append(x.Chunks, ref)
	}
	if len(x.Chunks) == 0 {
		return x
	}
	idx := w.Finish()
	if idx.Pack != content.Digest(sha256.Sum256(pack.Bytes())) {
		o.t.Fatalf("pack writer named the index pack %s, not by its sha256", idx.Pack)
	}
	for i := range x.Chunks {
		x.Chunks[i].Pack = idx.Pack
	}
	name := o.PackFile(idx.Pack)
	if err := os.WriteFile(name, pack.Bytes(), 0o644); err != nil {
		o.t.Fatal(err)
	}
	if err := os.WriteFile(strings.TrimSuffix(name, ".pack")+".idx", idx.Encode(), 0o644); err != nil {
		o.t.Fatal(err)
	}
	return x
}

// Packs returns the distinct packs that m's chunks live in: platforms in
// sorted order, files in order. A manifest names its packs only in its
// chunk references.
func Packs(m *content.Manifest) []content.Digest {
	var packs []content.Digest
	for _, p := range slices.Sorted(maps.Keys(m.Platforms)) {
		for _, c := range m.Platforms[p].Chunks() {
			if !slices.Contains(packs, c.Pack) {
				packs = append(packs, c.Pack)
			}
		}
	}
	return packs
}

// Serve serves the origin; see the package-level Serve.
func (o *Origin) Serve(t testing.TB, cfg devserver.Config) (*Server, string) {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = o.Dir
	}
	return Serve(t, cfg)
}

// Clone returns an independent copy of the origin, under t.TempDir(), with
// the same keys and trust anchor: what was published to o is published to
// the copy, without chunking it again. o must not be in use.
func (o *Origin) Clone(t testing.TB) *Origin {
	t.Helper()
	base := t.TempDir()
	c := &Origin{t: t, Dir: filepath.Join(base, "origin"), KeysDir: filepath.Join(base, "keys"), Keys: o.Keys, RootJSON: o.RootJSON, opts: o.opts}
	CopyTree(t, o.Dir, c.Dir)
	CopyTree(t, o.KeysDir, c.KeysDir)
	return c
}
