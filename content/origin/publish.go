package origin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"golang.org/x/sync/errgroup"

	"github.com/meshcast/meshcast/content"
)

// PublishOptions describe one release to publish.
type PublishOptions struct {
	Name    string
	Version string
	// Artifacts maps a platform ("linux/arm64") to a directory, a tar
	// (.tar, .tar.gz, .tgz, .tar.zst) or a single file.
	Artifacts map[string]string
	Rollout   content.Rollout
	Chunking  content.Chunking // zero: content.DefaultChunking()
	Level     int              // zstd level; zero: content.DefaultLevel
	Expiries  Expiries         // zero: DefaultExpiries()
	// MTime, if set, replaces the mtime of every entry of every artifact
	// (files, directories, symlinks, devices, fifos), so that a tree
	// built twice publishes the same manifest, as SOURCE_DATE_EPOCH does
	// for a build; nil keeps each entry's own mtime. It must be within
	// the years 1678 to 2262, which nanoseconds since the epoch hold.
	MTime *time.Time
	// Progress, if set, is called from the publishing goroutines with the
	// input bytes consumed so far and the total; it must be quick.
	Progress func(done, total int64)
}

// PublishResult reports a publish; it is also the --json output.
type PublishResult struct {
	Release    string            `json:"release"`
	ReleaseID  content.ReleaseID `json:"release_id"`
	Target     string            `json:"target"`
	Unchanged  bool              `json:"unchanged"` // identical re-publish: nothing written
	Chunks     int               `json:"chunks"`    // distinct chunks over all platforms
	NewChunks  int               `json:"new_chunks"`
	InputBytes int64             `json:"input_bytes"`
	NewBytes   int64             `json:"new_bytes"` // chunk bytes written to the origin
	Pack       string            `json:"pack,omitempty"`
	// The index streams of the platforms (content.Index): their bytes,
	// and the pack holding their chunks the origin lacked, of
	// IndexNewBytes (counted in NewBytes too).
	IndexBytes    int64   `json:"index_bytes"`
	IndexPack     string  `json:"index_pack,omitempty"`
	IndexNewBytes int64   `json:"index_new_bytes"`
	Seconds       float64 `json:"seconds"`
}

// ErrVersionExists means the origin already holds the release's version
// with other content; versions are immutable.
var ErrVersionExists = errors.New("this version is already published with other content")

// location is where a chunk body lives on the origin.
type location struct {
	pack   content.Digest // zero for the pack this publish writes
	offset int64
	stored int
	size   int
	enc    content.Encoding
}

// Publish chunks the artifacts, writes the chunks the origin lacks as one
// new pack, writes the manifest as a TUF target and re-signs targets,
// snapshot and timestamp with keys. Publishing a version again with
// identical content changes nothing; with other content it fails with
// ErrVersionExists and writes nothing.
func (r *Repo) Publish(ctx context.Context, keys Keys, opt PublishOptions, log *slog.Logger) (*PublishResult, error) {
	start := time.Now()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opt = opt.withDefaults()
	release := opt.Name + "@" + opt.Version
	fail := func(err error) (*PublishResult, error) { return nil, fmt.Errorf("publish %s: %w", release, err) }
	if err := opt.validate(); err != nil {
		return fail(err)
	}
	if err := r.checkKeys(keys, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP); err != nil {
		return fail(err)
	}
	p, err := r.newPublisher(opt, log)
	if err != nil {
		return fail(err)
	}
	defer p.pack.discard()

	platforms, arts, err := p.collectArtifacts(ctx, opt)
	if err != nil {
		return fail(err)
	}
	newPack, err := p.pack.finish()
	if err != nil {
		return fail(err)
	}
	m, res := p.manifest(opt, platforms, arts, newPack)
	// The indexes name the new pack, so their chunks go to a second one.
	ipack, err := newPendingPack(r.PacksDir())
	if err != nil {
		return fail(err)
	}
	defer ipack.discard()
	indexPack, err := p.writeIndexes(m, platforms, newPack, ipack, res)
	if err != nil {
		return fail(err)
	}
	encoded, err := m.Encode()
	if err != nil {
		return fail(err)
	}
	id := content.ManifestID(encoded)
	res.Release, res.ReleaseID = release, id
	res.Target = content.ReleaseTarget(opt.Name, opt.Version)

	unchanged, err := r.republished(res.Target, id)
	if err != nil {
		return fail(err)
	}
	if unchanged {
		res.Unchanged, res.NewChunks, res.NewBytes, res.IndexNewBytes = true, 0, 0, 0
		res.Seconds = time.Since(start).Seconds()
		return res, nil
	}

	if newPack != nil {
		if err := p.pack.commit(newPack); err != nil {
			return fail(err)
		}
		res.Pack = newPack.Pack.String()
	}
	if indexPack != nil {
		if err := ipack.commit(indexPack); err != nil {
			return fail(err)
		}
		res.IndexPack = indexPack.Pack.String()
	}
	if err := r.addRelease(keys, opt, res.Target, id, encoded, log); err != nil {
		return fail(err)
	}
	res.Seconds = time.Since(start).Seconds()
	log.Info("published", "release", release, "id", id.Short(), "chunks", res.Chunks, "new_chunks", res.NewChunks,
		"input_bytes", res.InputBytes, "new_bytes", res.NewBytes, "seconds", res.Seconds)
	return res, nil
}

// withDefaults fills the zero fields of o with their documented defaults.
func (o PublishOptions) withDefaults() PublishOptions {
	if o.Chunking == (content.Chunking{}) {
		o.Chunking = content.DefaultChunking()
	}
	if o.Level == 0 {
		o.Level = content.DefaultLevel
	}
	if o.Expiries == (Expiries{}) {
		o.Expiries = DefaultExpiries()
	}
	if len(o.Rollout.Waves) == 0 && len(o.Rollout.Counts) == 0 && o.Rollout.HealthTimeout == 0 {
		o.Rollout = content.DefaultRollout()
	}
	return o
}

// validate checks o (defaults applied), naming the first thing wrong.
func (o PublishOptions) validate() error {
	if err := content.ValidateName(o.Name); err != nil {
		return err
	}
	if _, err := content.ParseVersion(o.Version); err != nil {
		return err
	}
	if err := o.Chunking.Validate(); err != nil {
		return err
	}
	if err := o.Expiries.Validate(); err != nil {
		return err
	}
	if len(o.Artifacts) == 0 {
		return errors.New("no artifacts")
	}
	if o.MTime != nil {
		if _, err := unixNano(*o.MTime); err != nil {
			return err
		}
	}
	for p := range o.Artifacts {
		if err := content.ValidatePlatform(p); err != nil {
			return err
		}
	}
	return nil
}

// newPublisher returns a publisher that knows the chunks the origin holds
// and writes new ones to a pending pack; the caller discards that pack
// unless it commits it.
func (r *Repo) newPublisher(opt PublishOptions, log *slog.Logger) (*publisher, error) {
	comp, err := content.NewCompressor(opt.Level)
	if err != nil {
		return nil, err
	}
	known, err := loadChunkIndex(r.PacksDir(), log)
	if err != nil {
		return nil, err
	}
	pw, err := newPendingPack(r.PacksDir())
	if err != nil {
		return nil, err
	}
	p := &publisher{known: known, added: map[content.ChunkID]location{}, comp: comp, chunking: opt.Chunking, pack: pw}
	if opt.MTime != nil {
		ns := opt.MTime.UnixNano()
		p.mtime = &ns
	}
	return p, nil
}

// collectArtifacts opens every platform's artifact, then runs them
// through the pipeline one after the other in platform order, reporting
// progress over all of them. It returns the platforms in that order.
func (p *publisher) collectArtifacts(ctx context.Context, opt PublishOptions) ([]string, map[string]*collected, error) {
	platforms := make([]string, 0, len(opt.Artifacts))
	for pl := range opt.Artifacts {
		platforms = append(platforms, pl)
	}
	sort.Strings(platforms)
	var consumed, total atomic.Int64
	srcs := make([]source, len(platforms))
	var counters = make([]int64, len(platforms))
	for i, pl := range platforms {
		s, err := openSource(opt.Artifacts[pl], &counters[i])
		if err != nil {
			for _, o := range srcs[:i] {
				o.close()
			}
			return nil, nil, fmt.Errorf("artifact %s: %w", pl, err)
		}
		srcs[i] = s
		total.Add(s.total())
	}
	arts := make(map[string]*collected, len(platforms))
	for i, pl := range platforms {
		progress := func() {}
		if opt.Progress != nil {
			base := consumed.Load()
			progress = func() { opt.Progress(base+counters[i], total.Load()) }
		}
		a, err := p.artifact(ctx, srcs[i], progress)
		srcs[i].close()
		if err != nil {
			for _, o := range srcs[i+1:] {
				o.close()
			}
			return nil, nil, fmt.Errorf("artifact %s (%s): %w", pl, opt.Artifacts[pl], err)
		}
		consumed.Add(counters[i])
		arts[pl] = a
	}
	if opt.Progress != nil {
		opt.Progress(total.Load(), total.Load())
	}
	return platforms, arts, nil
}

// republished reports whether the origin already lists target as release
// id: an identical re-publish. A target there with another id fails with
// ErrVersionExists, since versions are immutable.
func (r *Repo) republished(target string, id content.ReleaseID) (bool, error) {
	old, ok := r.targets.Signed.Targets[target]
	if !ok {
		return false, nil
	}
	if h := old.Hashes["sha256"]; len(h) == sha256.Size && [sha256.Size]byte(h) == id {
		return true, nil
	}
	return false, fmt.Errorf("%w (origin has release id %x, this content is %s)", ErrVersionExists, []byte(old.Hashes["sha256"]), id)
}

// addRelease writes the manifest patches to release id and its encoded
// manifest as target, listing the patches in the target's custom
// metadata, and re-signs targets, snapshot and timestamp.
func (r *Repo) addRelease(keys Keys, opt PublishOptions, target string, id content.ReleaseID, encoded []byte, log *slog.Logger) error {
	patches, err := r.writePatches(opt.Name, opt.Version, target, id, encoded, log)
	if err != nil {
		return err
	}
	info := content.TargetInfo{Name: opt.Name, Version: opt.Version, Patches: patches}
	custom, err := json.Marshal(content.TargetCustom{Meshcast: info})
	if err != nil {
		return err
	}
	return r.AddTarget(keys, opt.Expiries, target, encoded, custom)
}

// patchBases is how many earlier versions of a release get a manifest
// patch to a new one: a node that is that many versions behind still
// fetches a patch rather than the whole manifest.
const patchBases = 3

// writePatches writes manifest patches to the new release from the
// highest earlier versions of the same name, where a patch is less than
// half the manifest, and returns their lengths by base id.
func (r *Repo) writePatches(name, version, target string, id content.ReleaseID, encoded []byte, log *slog.Logger) (map[string]int64, error) {
	ver, err := content.ParseVersion(version)
	if err != nil {
		return nil, err
	}
	type base struct {
		v  *semver.Version
		tf *metadata.TargetFiles
	}
	var bases []base
	prefix := "releases/" + name + "/"
	for path, tf := range r.targets.Signed.Targets {
		rest, ok := strings.CutPrefix(path, prefix)
		if !ok || strings.Contains(rest, "/") || !strings.HasSuffix(rest, ".json") {
			continue
		}
		if v, err := semver.StrictNewVersion(strings.TrimSuffix(rest, ".json")); err == nil && v.LessThan(ver) {
			bases = append(bases, base{v, tf})
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[j].v.LessThan(bases[i].v) })
	patches := map[string]int64{}
	for _, b := range bases[:min(len(bases), patchBases)] {
		h := b.tf.Hashes["sha256"]
		if len(h) != sha256.Size {
			continue
		}
		from := content.ReleaseID(h)
		dir, file := filepath.Split(b.tf.Path)
		old, err := os.ReadFile(filepath.Join(r.TargetsDir(), filepath.FromSlash(dir), from.String()+"."+file))
		if err != nil || content.ManifestID(old) != from {
			log.Warn("no manifest patch from a release whose manifest is missing or damaged on the origin", "release", name+"@"+b.v.String(), "err", err)
			continue
		}
		patch, err := content.MakeManifestPatch(old, encoded)
		if err != nil {
			return nil, err
		}
		if len(patch) > len(encoded)/2 {
			continue
		}
		p := filepath.Join(r.TargetsDir(), filepath.FromSlash(content.ManifestPatchPath(target, id, from)))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		if err := writeFileAtomic(p, patch, 0o644); err != nil {
			return nil, fmt.Errorf("write manifest patch: %w", err)
		}
		patches[from.String()] = int64(len(patch))
	}
	return patches, nil
}

// AddTarget writes data as the target file at path (with its sha256 as a
// file name prefix, for consistent snapshots), lists it in the targets
// metadata with custom, and re-signs targets, snapshot and timestamp. It
// replaces a target already at path; Publish guards release versions.
func (r *Repo) AddTarget(keys Keys, exp Expiries, path string, data []byte, custom json.RawMessage) error {
	if err := r.checkKeys(keys, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP); err != nil {
		return err
	}
	if err := content.ValidatePath(path, content.DefaultLimits().PathBytes); err != nil {
		return fmt.Errorf("target path: %w", err)
	}
	sum := sha256.Sum256(data)
	dir, base := filepath.Split(path)
	file := filepath.Join(r.TargetsDir(), filepath.FromSlash(dir), fmt.Sprintf("%x.%s", sum, base))
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	if err := writeFileAtomic(file, data, 0o644); err != nil {
		return fmt.Errorf("write target %s: %w", path, err)
	}
	tf, err := metadata.TargetFile().FromBytes(path, data, "sha256")
	if err != nil {
		return err
	}
	if custom != nil {
		tf.Custom = &custom
	}
	r.targets.Signed.Targets[path] = tf
	return r.commit(keys, exp, time.Now(), true, true)
}

// loadChunkIndex reads every pack index of the origin: the chunks a
// publish need not write again.
func loadChunkIndex(dir string, log *slog.Logger) (map[content.ChunkID]location, error) {
	known := map[content.ChunkID]location{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read packs: %w", err)
	}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".idx")
		if !ok || strings.HasPrefix(name, ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read pack index: %w", err)
		}
		x, err := content.DecodePackIndex(b)
		if err != nil {
			return nil, fmt.Errorf("pack index %s: %w", e.Name(), err)
		}
		if x.Pack.String() != name {
			return nil, fmt.Errorf("pack index %s describes pack %s", e.Name(), x.Pack)
		}
		if fi, err := os.Stat(filepath.Join(dir, name+".pack")); err != nil || fi.Size() != x.Size {
			log.Warn("pack index without its pack; its chunks will be written again", "pack", name)
			continue
		}
		for _, pe := range x.Entries {
			known[pe.ID] = location{pack: x.Pack, offset: pe.Offset, stored: pe.Stored, size: pe.Size, enc: pe.Enc}
		}
	}
	return known, nil
}

// pendingPack is the pack a publish writes, in a temporary file until the
// publish commits.
type pendingPack struct {
	dir string
	f   *os.File
	bw  *bufio.Writer
	w   *content.PackWriter
}

func newPendingPack(dir string) (*pendingPack, error) {
	f, err := os.CreateTemp(dir, ".tmp-pack-*")
	if err != nil {
		return nil, err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	return &pendingPack{dir: dir, f: f, bw: bw, w: content.NewPackWriter(bw)}, nil
}

// finish flushes and syncs the pack; it returns nil if nothing was added.
func (p *pendingPack) finish() (*content.PackIndex, error) {
	if p.w.Count() == 0 {
		return nil, nil
	}
	if err := p.bw.Flush(); err != nil {
		return nil, fmt.Errorf("write pack: %w", err)
	}
	if err := p.f.Sync(); err != nil {
		return nil, fmt.Errorf("write pack: %w", err)
	}
	return p.w.Finish(), nil
}

// commit renames the pack into place and writes its index.
func (p *pendingPack) commit(x *content.PackIndex) error {
	name := filepath.Join(p.dir, x.Pack.String())
	if err := p.f.Chmod(0o644); err != nil {
		return err
	}
	if err := p.f.Close(); err != nil {
		return err
	}
	if err := os.Rename(p.f.Name(), name+".pack"); err != nil {
		return err
	}
	p.f = nil
	if err := content.SyncDir(p.dir); err != nil {
		return err
	}
	return writeFileAtomic(name+".idx", x.Encode(), 0o644)
}

func (p *pendingPack) discard() {
	if p.f != nil {
		p.f.Close()
		os.Remove(p.f.Name())
		p.f = nil
	}
}

// publisher turns sources into collected artifacts, writing new chunks to
// the pending pack.
type publisher struct {
	known    map[content.ChunkID]location // on the origin before this publish; read-only
	comp     *content.Compressor
	chunking content.Chunking
	pack     *pendingPack
	mtime    *int64 // PublishOptions.MTime in ns, if set

	// Owned by the collecting goroutine.
	added      map[content.ChunkID]location
	inputBytes int64
}

// collected is one platform's artifact before the new pack is named: its
// chunks in that pack have a zero Pack.
type collected struct {
	kind  content.ArtifactKind
	files []content.File
}

// item flows through the pipeline: an entry, or one chunk of the current
// regular file, or the end of that file.
type item struct {
	seq   int
	e     *entry // an entry starts
	data  []byte // a chunk
	bp    *[]byte
	id    content.ChunkID
	enc   content.Encoding
	body  []byte
	bodyP *[]byte
	known bool
	end   bool // the current file ends
	sum   [sha256.Size]byte
	size  int64
}

var (
	dataPool = sync.Pool{New: func() any { b := make([]byte, 0, 256<<10); return &b }}
	bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 256<<10+1024); return &b }}
)

// artifact runs one source through the pipeline: a reader goroutine cuts
// chunks and hashes whole files, workers hash and compress chunks the
// origin lacks, and this goroutine puts them in order into the pack and
// the manifest. A fixed number of tokens bounds the items in flight.
func (p *publisher) artifact(ctx context.Context, src source, progress func()) (*collected, error) {
	workers := runtime.GOMAXPROCS(0)
	inflight := 8 * workers
	tokens := make(chan struct{}, inflight)
	jobs := make(chan *item, inflight)
	results := make(chan *item, inflight)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)

	g.Go(func() error { return p.read(gctx, src, tokens, jobs, progress) })
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		g.Go(func() error {
			defer wg.Done()
			return p.encode(gctx, jobs, results)
		})
	}
	go func() { wg.Wait(); close(results) }()

	c := &collected{kind: src.kind()}
	collectErr := p.collectInOrder(c, results, tokens, cancel)
	// A collect error cancelled the reader and the workers, so g.Wait
	// reports only that cancellation: the collect error is the cause.
	err := g.Wait()
	if collectErr != nil {
		return nil, collectErr
	}
	if err != nil {
		return nil, err
	}
	if err := c.settleLinks(); err != nil {
		return nil, err
	}
	sort.Slice(c.files, func(i, j int) bool { return pathLess(c.files[i].Path, c.files[j].Path) })
	return c, nil
}

// read is the reader of the pipeline: it sends each entry of src, and
// each regular file's chunks and its end, as items numbered in input
// order, taking a token for each. It closes jobs when it returns.
func (p *publisher) read(ctx context.Context, src source, tokens chan<- struct{}, jobs chan<- *item, progress func()) error {
	defer close(jobs)
	seq := 0
	send := func(it *item) error {
		select {
		case tokens <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		it.seq = seq
		seq++
		jobs <- it
		return nil
	}
	for {
		e, err := src.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := send(&item{e: e}); err != nil {
			return err
		}
		if e.Type != content.TypeFile || e.Link != "" {
			continue
		}
		if err := p.readFile(e, send, progress); err != nil {
			return err
		}
	}
}

// readFile cuts the regular file e into chunks and sends each, then, if
// it read the size the source announced, an end item with the file's
// size and sha256.
func (p *publisher) readFile(e *entry, send func(*item) error, progress func()) error {
	h := sha256.New()
	ch := content.NewChunker(e.r, p.chunking)
	var n int64
	for {
		b, err := ch.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", e.Path, err)
		}
		h.Write(b)
		n += int64(len(b))
		bp := dataPool.Get().(*[]byte)
		data := append((*bp)[:0], b...)
		if err := send(&item{data: data, bp: bp}); err != nil {
			return err
		}
		progress()
	}
	if n != e.Size {
		return fmt.Errorf("%s: read %d bytes, expected %d", e.Path, n, e.Size)
	}
	it := &item{end: true, size: n}
	h.Sum(it.sum[:0])
	return send(it)
}

// encode is a worker of the pipeline: it hashes each chunk of jobs and
// compresses those the origin lacks, passing every item on to results.
func (p *publisher) encode(ctx context.Context, jobs <-chan *item, results chan<- *item) error {
	for it := range jobs {
		if it.data != nil {
			it.id = content.SumChunk(it.data)
			if _, it.known = p.known[it.id]; !it.known {
				it.bodyP = bodyPool.Get().(*[]byte)
				it.enc, it.body = p.comp.Encode((*it.bodyP)[:0], it.data)
			}
		}
		select {
		case results <- it:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// collectInOrder collects the items of results into c in input order,
// returning a token for each. After the first collect error it cancels
// the pipeline and drains results, releasing what arrives, and returns
// that error once results is closed.
func (p *publisher) collectInOrder(c *collected, results <-chan *item, tokens <-chan struct{}, cancel context.CancelFunc) error {
	cur := -1 // index in c.files of the file whose chunks arrive
	pending := map[int]*item{}
	next := 0
	var collectErr error
	for it := range results {
		if collectErr != nil {
			p.release(it)
			continue
		}
		pending[it.seq] = it
		for {
			it, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			if err := p.collect(c, it, &cur); err != nil && collectErr == nil {
				collectErr = err
				cancel() // stop the reader and the workers; keep draining
			}
			p.release(it)
			<-tokens
		}
	}
	for _, it := range pending {
		p.release(it)
	}
	return collectErr
}

func (p *publisher) release(it *item) {
	if it.bp != nil {
		dataPool.Put(it.bp)
		it.bp, it.data = nil, nil
	}
	if it.bodyP != nil {
		*it.bodyP = it.body[:0]
		bodyPool.Put(it.bodyP)
		it.bodyP, it.body = nil, nil
	}
}

// collect handles one item in input order. It runs on one goroutine only.
// An entry becomes a file of c with its inode fields (the mtime replaced
// if the publish normalises it); a hard link (TypeLink) has none and no
// data: its file's size and chunks are counted and stored once.
func (p *publisher) collect(c *collected, it *item, cur *int) error {
	switch {
	case it.e != nil:
		f := it.e.file()
		if p.mtime != nil && f.Type != content.TypeLink {
			f.MTime = *p.mtime
		}
		c.files = append(c.files, f)
		*cur = -1
		if f.Type == content.TypeFile {
			*cur = len(c.files) - 1
		}
	case it.end:
		c.files[*cur].Size, c.files[*cur].SHA256 = it.size, content.Digest(it.sum)
		p.inputBytes += it.size
		*cur = -1
	default:
		loc, ok := p.known[it.id]
		if !ok {
			loc, ok = p.added[it.id]
		}
		if !ok {
			off, err := p.pack.w.Add(it.id, len(it.data), it.enc, it.body)
			if err != nil {
				return err
			}
			loc = location{offset: off, stored: len(it.body), size: len(it.data), enc: it.enc}
			p.added[it.id] = loc
		}
		ref := content.ChunkRef{ID: it.id, Size: loc.size, Stored: loc.stored, Enc: loc.enc, Pack: loc.pack, Offset: loc.offset}
		c.files[*cur].Chunks = append(c.files[*cur].Chunks, ref)
	}
	return nil
}

// pathLess orders a manifest's paths: the tree's own directory
// (content.RootPath) first, then bytewise.
func pathLess(a, b string) bool {
	if a == content.RootPath || b == content.RootPath {
		return a == content.RootPath && b != content.RootPath
	}
	return a < b
}

// settleLinks gives each hard link group's data and inode fields to its
// lexically first path, as a manifest lists them: a source names the
// first path it read (the first in a tar, the first walked in a
// directory), which sorts after another of the group when, say, "a/x"
// and "a.b" are linked. The others become links to that path. It runs
// once the artifact is complete, before it is sorted.
func (c *collected) settleLinks() error {
	groups := map[string][]int{} // the file holding the data: its links
	for i := range c.files {
		if f := &c.files[i]; f.Type == content.TypeLink {
			groups[f.Link] = append(groups[f.Link], i)
		}
	}
	if len(groups) == 0 {
		return nil
	}
	for i := range c.files {
		f := &c.files[i]
		links, ok := groups[f.Path]
		if !ok || f.Type != content.TypeFile {
			continue
		}
		delete(groups, f.Path)
		first := i
		for _, j := range links {
			if c.files[j].Path < c.files[first].Path {
				first = j
			}
		}
		if first == i {
			continue
		}
		to := c.files[first].Path
		c.files[first] = *f
		c.files[first].Path = to
		c.files[i] = content.File{Path: f.Path, Type: content.TypeLink, Link: to}
		for _, j := range links {
			if j != first {
				c.files[j].Link = to
			}
		}
	}
	for holder := range groups {
		return fmt.Errorf("hard link to %q, which is not a regular file of the artifact", holder)
	}
	return nil
}

// manifest assembles the release manifest now that the new pack's name
// is known, and the figures of the result.
func (p *publisher) manifest(opt PublishOptions, platforms []string, arts map[string]*collected, newPack *content.PackIndex) (*content.Manifest, *PublishResult) {
	m := &content.Manifest{
		Schema: content.ManifestSchema, Name: opt.Name, Version: opt.Version,
		Chunking: opt.Chunking, Rollout: opt.Rollout, Platforms: map[string]*content.Artifact{},
	}
	res := &PublishResult{InputBytes: p.inputBytes}
	distinct := map[content.ChunkID]struct{}{}
	for _, pl := range platforms {
		c := arts[pl]
		for i := range c.files {
			for j := range c.files[i].Chunks {
				ref := &c.files[i].Chunks[j]
				if ref.Pack == (content.Digest{}) {
					ref.Pack = newPack.Pack
				}
				distinct[ref.ID] = struct{}{}
			}
		}
		m.Platforms[pl] = &content.Artifact{Kind: c.kind, Files: c.files}
	}
	res.Chunks = len(distinct)
	if newPack != nil {
		res.NewChunks, res.NewBytes = len(newPack.Entries), newPack.Size
	}
	return m, res
}

// writeIndexes encodes each platform's files as its index stream, cuts it
// with content.IndexChunking and writes the chunks the origin lacks to
// pack, which must be a pack other than the one the files' chunks went to
// (dataPack, nil if none), since the stream names that one. It sets each
// artifact's Index and adds the new chunks to res, and returns pack's
// index, or nil if nothing was new.
func (p *publisher) writeIndexes(m *content.Manifest, platforms []string, dataPack *content.PackIndex, pack *pendingPack, res *PublishResult) (*content.PackIndex, error) {
	added := map[content.ChunkID]location{}
	var body []byte
	for _, pl := range platforms {
		a := m.Platforms[pl]
		stream, err := content.EncodeIndex(a.Files)
		if err != nil {
			return nil, fmt.Errorf("artifact %s: %w", pl, err)
		}
		x := &content.Index{Entries: len(a.Files), Size: int64(len(stream)), SHA256: content.Digest(sha256.Sum256(stream))}
		ch := content.NewChunker(bytes.NewReader(stream), content.IndexChunking())
		for {
			data, err := ch.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("artifact %s: index: %w", pl, err)
			}
			id := content.SumChunk(data)
			loc, ok := p.known[id]
			if !ok {
				if loc, ok = p.added[id]; ok {
					loc.pack = dataPack.Pack // the data pack holds it
				}
			}
			if !ok {
				if loc, ok = added[id]; !ok {
					var enc content.Encoding
					enc, body = p.comp.Encode(body[:0], data)
					off, err := pack.w.Add(id, len(data), enc, body)
					if err != nil {
						return nil, err
					}
					loc = location{offset: off, stored: len(body), size: len(data), enc: enc}
					added[id] = loc
				}
			}
			x.Chunks = append(x.Chunks, content.ChunkRef{ID: id, Size: loc.size, Stored: loc.stored, Enc: loc.enc, Pack: loc.pack, Offset: loc.offset})
		}
		a.Index = x
		res.IndexBytes += x.Size
	}
	distinct := map[content.ChunkID]struct{}{}
	for _, a := range m.Platforms {
		for _, c := range a.Chunks() {
			distinct[c.ID] = struct{}{}
		}
	}
	res.Chunks = len(distinct)
	indexPack, err := pack.finish()
	if err != nil || indexPack == nil {
		return nil, err
	}
	for _, a := range m.Platforms {
		for i := range a.Index.Chunks {
			if c := &a.Index.Chunks[i]; c.Pack == (content.Digest{}) {
				c.Pack = indexPack.Pack
			}
		}
	}
	res.NewChunks += len(indexPack.Entries)
	res.NewBytes += indexPack.Size
	res.IndexNewBytes = indexPack.Size
	return indexPack, nil
}
