package content

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/Masterminds/semver/v3"
)

// ManifestSchema is the manifest format this code writes. It reads it,
// ManifestSchemaV2 and ManifestSchemaV1.
//
// Schema 3 adds to the rollout policy the soak time and waves given as
// absolute node counts (Rollout.Soak, Rollout.Counts); its artifacts are
// schema 2's.
//
// Schema 2 carries a tree with full fidelity (owners, all of 07777,
// extended attributes, hard links, device nodes and fifos, mtimes, link
// targets verbatim) and moves the file list out of the manifest into an
// index (see Index), stored as content-defined chunks like any file, so
// that a node fetches only the parts of it that changed since the release
// it holds. Schema 1 lists files inline, with permission bits only and
// symlinks that must resolve inside the tree.
const ManifestSchema = 3

// ManifestSchemaV2 is the second manifest format, still read: schema 3
// without Rollout.Soak and Rollout.Counts.
const ManifestSchemaV2 = 2

// ManifestSchemaV1 is the first manifest format, still read.
const ManifestSchemaV1 = 1

// Manifest describes one release: what to materialise on each platform,
// where each chunk lives on the origin, and how the rollout proceeds. Its
// bytes are a TUF target; see ReleaseID.
//
// The encoding is compact JSON laid out so that an entry that did not
// change between two releases has the same bytes in both: files carry
// their chunks inline, each naming its pack by digest, with no table
// indexes that an insertion would shift. That keeps manifest patches (see
// MakeManifestPatch) and, in schema 2, the changed chunks of the index
// proportional to what changed.
type Manifest struct {
	Schema    int                  `json:"schema"`
	Name      string               `json:"name"`
	Version   string               `json:"version"`
	Chunking  Chunking             `json:"chunking"`
	Rollout   Rollout              `json:"rollout"`
	Platforms map[string]*Artifact `json:"platforms"`
}

// Rollout is the policy a site follows when it activates the release.
type Rollout struct {
	// Waves are cumulative percentages of a site's nodes that run the
	// release after each wave; the last is 100. Empty when Counts is set.
	Waves []int `json:"waves"`
	// Counts (schema 3) are cumulative numbers of nodes that run the
	// release after each wave but the last, which takes every node: {1, 5}
	// is a canary of one node, then five, then everyone. Set instead of
	// Waves.
	Counts []int `json:"counts,omitempty"`
	// Soak (schema 3) is how long a node of a wave must stay healthy,
	// checked repeatedly, before the wave's gate passes; 0 checks once.
	Soak Duration `json:"soak,omitempty"`
	// HealthTimeout is how long a node has to report healthy after it
	// activates.
	HealthTimeout Duration `json:"health_timeout"`
	// FailureThreshold is the fraction of a wave that may fail before the
	// site rolls the release back.
	FailureThreshold float64 `json:"failure_threshold"`
	// SecurityFloor, if set, is the lowest version a node may run once it
	// has seen this release, even by rollback.
	SecurityFloor string `json:"security_floor,omitempty"`
}

// DefaultRollout is a canary of 1 %, then 10 %, 50 % and everyone, each
// node healthy for a minute.
func DefaultRollout() Rollout {
	return Rollout{Waves: []int{1, 10, 50, 100}, HealthTimeout: Duration(5 * time.Minute), FailureThreshold: 0.1, Soak: Duration(time.Minute)}
}

// ArtifactKind says whether an artifact is one file or a tree.
type ArtifactKind string

const (
	// KindFile is a single file such as a disk image, chunked whole.
	KindFile ArtifactKind = "file"
	// KindTree is a directory tree (from a directory or a tar), chunked
	// file by file.
	KindTree ArtifactKind = "tree"
)

// Artifact is what one platform receives.
type Artifact struct {
	Kind ArtifactKind `json:"kind"`
	// Files are sorted by path; a kind "file" artifact has exactly one.
	// Schema 1 lists them in the manifest; schema 2 in the Index, and
	// they are nil until Load reads it.
	Files []File `json:"files,omitempty"`
	// Index holds the files of a schema 2 artifact.
	Index *Index `json:"index,omitempty"`
	// Schema is the schema of the manifest the artifact came from
	// (DecodeManifest sets it); zero means ManifestSchema. Assembly
	// applies owners, extended attributes and mtimes from schema 2 on.
	Schema int `json:"-"`
}

func (a *Artifact) schema() int {
	if a.Schema == 0 {
		return ManifestSchema
	}
	return a.Schema
}

// validateLoaded checks an artifact whose files are present, as assembly
// needs them.
func (a *Artifact) validateLoaded(l Limits) error {
	if a.Files == nil && a.Index != nil {
		return badf("the index is not loaded")
	}
	if err := a.validateKind(false); err != nil {
		return err
	}
	return validateFiles(a.Files, a.schema(), l)
}

// Chunks returns the artifact's distinct chunks: those of its index
// first, then those of its files in file order. The index's chunks are
// part of the release like the files': a node keeps them, so that the
// next release's index costs only the chunks that changed, and serves
// them to its peers.
func (a *Artifact) Chunks() []ChunkRef {
	seen := make(map[ChunkID]struct{})
	var out []ChunkRef
	if a.Index != nil {
		for _, c := range a.Index.Chunks {
			if _, dup := seen[c.ID]; !dup {
				seen[c.ID] = struct{}{}
				out = append(out, c)
			}
		}
	}
	for i := range a.Files {
		for _, c := range a.Files[i].Chunks {
			if _, dup := seen[c.ID]; !dup {
				seen[c.ID] = struct{}{}
				out = append(out, c)
			}
		}
	}
	return out
}

// FileType is the type of a tree entry. Sockets cannot be expressed;
// schema 1 has only files, directories and symlinks.
type FileType string

const (
	TypeFile    FileType = "file"
	TypeDir     FileType = "dir"
	TypeSymlink FileType = "symlink"
	// TypeLink is a hard link to a regular file listed before it (its
	// Link): the same inode, stored and counted once.
	TypeLink  FileType = "link"
	TypeChar  FileType = "char"
	TypeBlock FileType = "block"
	TypeFifo  FileType = "fifo"
)

// File is one entry of an artifact.
//
// The owner, mode, extended attributes and mtime belong to the inode: a
// hard link (TypeLink) has none of its own.
type File struct {
	Path string   `json:"path"` // slash separated, relative, clean
	Type FileType `json:"type"`
	Mode Mode     `json:"mode,omitzero"` // all of 07777; not for symlinks
	// Owner, numeric; the names are informative, as in tar (schema 2).
	UID   uint32 `json:"uid,omitzero"`
	GID   uint32 `json:"gid,omitzero"`
	User  string `json:"user,omitempty"`
	Group string `json:"group,omitempty"`
	// MTime is the modification time in nanoseconds since the Unix
	// epoch (schema 2; schema 1 has none and leaves the assembly time).
	MTime  int64      `json:"mtime,omitzero"`
	Xattrs Xattrs     `json:"xattrs,omitempty"` // schema 2
	Size   int64      `json:"size,omitzero"`    // regular files
	SHA256 Digest     `json:"sha256,omitzero"`  // regular files
	Chunks []ChunkRef `json:"chunks,omitempty"` // regular files, in order
	// Target is a symlink's target, verbatim: absolute or relative, it is
	// data and never followed (schema 1: relative, inside the tree).
	Target string `json:"target,omitempty"`
	Link   string `json:"link,omitempty"` // hard links: the regular file's path
	Major  uint32 `json:"major,omitzero"` // char and block devices
	Minor  uint32 `json:"minor,omitzero"` // char and block devices
}

// RootPath is the path of a schema 2 tree's first entry when it describes
// the tree's own directory (mode, owner, xattrs, mtime), as "./" does in a
// tar. It is the only path that may be "." and sorts first whatever the
// other paths are.
const RootPath = "."

// Xattrs are extended attributes by name; the values are written in
// base64. Only the security, trusted and user namespaces are carried.
type Xattrs map[string][]byte

// ChunkRef says what a chunk is and where its body lives on the origin.
type ChunkRef struct {
	ID     ChunkID  `json:"id"`
	Size   int      `json:"size"`   // uncompressed bytes
	Stored int      `json:"stored"` // body bytes
	Enc    Encoding `json:"enc"`
	Pack   Digest   `json:"pack"`   // the pack holding the body
	Offset int64    `json:"offset"` // body offset in the pack
}

// Mode holds permission bits (including setuid, setgid and sticky); it is
// written as an octal string such as "0755".
type Mode uint32

// MarshalText implements encoding.TextMarshaler.
func (m Mode) MarshalText() ([]byte, error) {
	return []byte(fmt.Sprintf("%04o", uint32(m))), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := strconv.ParseUint(string(b), 8, 32)
	if err != nil || v > 0o7777 {
		return fmt.Errorf("mode %q is not octal permission bits", truncate(string(b), 20))
	}
	*m = Mode(v)
	return nil
}

// Duration is a time.Duration written as text ("5m0s").
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: %w", truncate(string(b), 40), err)
	}
	*d = Duration(v)
	return nil
}

// ErrBadManifest wraps every validation and decoding error of a manifest.
var ErrBadManifest = errors.New("bad manifest")

func badf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadManifest}, args...)...)
}

// ReleaseTarget is the TUF target path of a release manifest.
func ReleaseTarget(name, version string) string {
	return "releases/" + name + "/" + version + ".json"
}

// Encode validates m and returns its canonical bytes. A schema 2
// artifact's files are not part of them: its Index is.
func (m *Manifest) Encode() ([]byte, error) {
	if err := m.Validate(DefaultLimits()); err != nil {
		return nil, err
	}
	out := m
	if m.Schema >= 2 {
		c := *m
		c.Platforms = make(map[string]*Artifact, len(m.Platforms))
		for p, a := range m.Platforms {
			c.Platforms[p] = &Artifact{Kind: a.Kind, Index: a.Index}
		}
		out = &c
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode manifest %s@%s: %w", m.Name, m.Version, err)
	}
	return append(b, '\n'), nil
}

// ID returns the release id of encoded manifest bytes.
func ManifestID(encoded []byte) ReleaseID { return ReleaseID(sha256.Sum256(encoded)) }

// DecodeManifest parses and validates manifest bytes of schema 1 or 2.
// Unknown fields are errors; a newer schema is refused by name. The files
// of a schema 2 artifact are in its index: see Artifact.Load.
func DecodeManifest(b []byte, l Limits) (*Manifest, error) {
	if int64(len(b)) > l.ManifestBytes {
		return nil, badf("%d bytes exceeds the limit of %d", len(b), l.ManifestBytes)
	}
	var head struct {
		Schema int `json:"schema"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, badf("%v", err)
	}
	if err := checkSchema(head.Schema); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, badf("%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badf("trailing data after the manifest object")
	}
	if m.Schema >= 2 {
		for p, a := range m.Platforms {
			if a != nil && a.Files != nil {
				return nil, badf("platform %s: a schema %d manifest lists its files in an index, not inline", p, m.Schema)
			}
		}
	}
	if err := m.Validate(l); err != nil {
		return nil, err
	}
	return &m, nil
}

func checkSchema(s int) error {
	if s < ManifestSchemaV1 || s > ManifestSchema {
		return badf("schema %d is not supported (this meshcast reads schemas %d to %d)", s, ManifestSchemaV1, ManifestSchema)
	}
	return nil
}

var (
	nameRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`)
	platformRE = regexp.MustCompile(`^[a-z0-9]{1,16}/[a-z0-9_]{1,16}(/v[0-9]{1,2})?$`)
)

// ValidateName checks a release name: lower-case letters, digits, '.', '_'
// and '-', starting with a letter or digit, at most 128 bytes.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return badf("release name %q must match %s", truncate(name, 140), nameRE)
	}
	return nil
}

// ParseVersion parses a semantic version in its canonical form (no "v").
func ParseVersion(v string) (*semver.Version, error) {
	sv, err := semver.StrictNewVersion(v)
	if err != nil {
		return nil, badf("version %q is not a semantic version: %v", truncate(v, 80), err)
	}
	return sv, nil
}

// ValidatePlatform checks a platform key such as "linux/arm64" or
// "linux/arm/v7".
func ValidatePlatform(p string) error {
	if !platformRE.MatchString(p) {
		return badf("platform %q is not of the form os/arch[/variant]", truncate(p, 60))
	}
	return nil
}

// Validate checks every field against the format and l. The error names the
// first offending field. A schema 2 artifact's files are checked when
// they are present (before Encode, after Load).
func (m *Manifest) Validate(l Limits) error {
	if err := checkSchema(m.Schema); err != nil {
		return err
	}
	if err := ValidateName(m.Name); err != nil {
		return err
	}
	ver, err := ParseVersion(m.Version)
	if err != nil {
		return err
	}
	if err := m.Chunking.Validate(); err != nil {
		return badf("%v", err)
	}
	if err := m.Rollout.validate(m.Schema, ver); err != nil {
		return err
	}
	if len(m.Platforms) == 0 {
		return badf("no platforms")
	}
	if len(m.Platforms) > l.Platforms {
		return badf("%d platforms exceed the limit of %d", len(m.Platforms), l.Platforms)
	}
	for p, a := range m.Platforms {
		if err := ValidatePlatform(p); err != nil {
			return err
		}
		if a == nil {
			return badf("platform %s: null artifact", p)
		}
		if err := a.validate(m.Schema, l); err != nil {
			return fmt.Errorf("platform %s: %w", p, err)
		}
		a.Schema = m.Schema
	}
	return nil
}

func (r *Rollout) validate(schema int, ver *semver.Version) error {
	if schema < ManifestSchema && (r.Counts != nil || r.Soak != 0) {
		return badf("rollout: a schema %d manifest has no counts or soak (schema %d has)", schema, ManifestSchema)
	}
	if err := r.validateWaves(); err != nil {
		return err
	}
	if d := time.Duration(r.Soak); d < 0 || d > 24*time.Hour {
		return badf("rollout: soak %s out of range [0, 24h]", d)
	}
	if d := time.Duration(r.HealthTimeout); d <= 0 || d > 24*time.Hour {
		return badf("rollout: health timeout %s out of range (0, 24h]", d)
	}
	if !(r.FailureThreshold >= 0 && r.FailureThreshold <= 1) {
		return badf("rollout: failure threshold %v out of range [0, 1]", r.FailureThreshold)
	}
	if r.SecurityFloor != "" {
		floor, err := ParseVersion(r.SecurityFloor)
		if err != nil {
			return badf("rollout: security floor: %v", err)
		}
		if floor.GreaterThan(ver) {
			return badf("rollout: security floor %s is above the release version %s", floor, ver)
		}
	}
	return nil
}

// maxWaveCount bounds Rollout.Counts, far above a site's size.
const maxWaveCount = 1 << 20

func (r *Rollout) validateWaves() error {
	switch {
	case len(r.Waves) > 0 && len(r.Counts) > 0:
		return badf("rollout: waves given both as percentages and as counts; give one")
	case len(r.Counts) > 19:
		return badf("rollout: want at most 19 counted waves before the last, got %d", len(r.Counts))
	case len(r.Counts) > 0:
		prev := 0
		for i, c := range r.Counts {
			if c <= prev || c > maxWaveCount {
				return badf("rollout: wave %d is %d nodes; counts must increase within 1..%d", i, c, maxWaveCount)
			}
			prev = c
		}
		return nil
	case len(r.Waves) == 0 || len(r.Waves) > 20:
		return badf("rollout: want 1 to 20 waves, got %d", len(r.Waves))
	}
	prev := 0
	for i, w := range r.Waves {
		if w <= prev || w > 100 {
			return badf("rollout: wave %d is %d%%; waves must increase within 1..100", i, w)
		}
		prev = w
	}
	if prev != 100 {
		return badf("rollout: the last wave is %d%%, want 100", prev)
	}
	return nil
}

// validateKind checks the kind, and that a file artifact has its one
// file, unless its files are in an index not loaded yet (unloaded).
func (a *Artifact) validateKind(unloaded bool) error {
	switch a.Kind {
	case KindFile:
		if !unloaded && (len(a.Files) != 1 || a.Files[0].Type != TypeFile || strings.Contains(a.Files[0].Path, "/")) {
			return badf("a file artifact has exactly one regular file at the top level")
		}
	case KindTree:
	default:
		return badf("artifact kind %q is not file or tree", truncate(string(a.Kind), 20))
	}
	return nil
}

func (a *Artifact) validate(schema int, l Limits) error {
	if err := a.validateKind(schema >= 2 && a.Files == nil); err != nil {
		return err
	}
	switch {
	case schema == ManifestSchemaV1 && a.Index != nil:
		return badf("a schema %d manifest has no index", schema)
	case schema >= 2 && a.Index == nil:
		return badf("no index")
	case schema >= 2:
		if err := a.Index.validate(l); err != nil {
			return fmt.Errorf("index: %w", err)
		}
		if a.Files == nil {
			return nil // not loaded yet; Load checks them
		}
		if len(a.Files) != a.Index.Entries {
			return badf("index: %d entries, the index says %d", len(a.Files), a.Index.Entries)
		}
	}
	return validateFiles(a.Files, schema, l)
}

// validateFiles checks a sorted file list: paths, types, no entry below a
// non-directory, hard links to earlier regular files, chunk references
// that agree, and the bounds of l.
func validateFiles(files []File, schema int, l Limits) error {
	if len(files) > l.Files {
		return badf("%d files exceed the limit of %d", len(files), l.Files)
	}
	// A chunk that several files share must be described the same way
	// by each.
	seen := make(map[ChunkID]ChunkRef)
	refs := 0
	nonDir := make(map[string]FileType)
	var total int64
	for i := range files {
		f := &files[i]
		if f.Path == RootPath && i == 0 && schema >= 2 {
			// The tree's own directory: its mode, owner, xattrs and
			// mtime.
			if f.Type != TypeDir {
				return badf("file 0 %q: the root of the tree is a directory, not a %s", f.Path, truncate(string(f.Type), 20))
			}
		} else if err := ValidatePath(f.Path, l.PathBytes); err != nil {
			return fmt.Errorf("file %d: %w", i, err)
		}
		if i > 0 && f.Path <= files[i-1].Path && files[i-1].Path != RootPath {
			return badf("file %d %q: paths must be unique and sorted", i, f.Path)
		}
		for dir := f.Path; ; {
			j := strings.LastIndexByte(dir, '/')
			if j < 0 {
				break
			}
			dir = dir[:j]
			if t, bad := nonDir[dir]; bad {
				return badf("file %d %q: parent %q is not a directory (it is a %s)", i, f.Path, dir, t)
			}
		}
		if refs += len(f.Chunks); refs > l.Chunks {
			return badf("more than %d chunk references", l.Chunks)
		}
		if err := f.validate(schema, l, seen); err != nil {
			return fmt.Errorf("file %d %q: %w", i, f.Path, err)
		}
		if f.Type == TypeLink {
			if t := nonDir[f.Link]; t != TypeFile {
				return fmt.Errorf("file %d %q: %w", i, f.Path, badf("hard link to %q, which is not a regular file listed before it", truncate(f.Link, 60)))
			}
		}
		if f.Type != TypeDir {
			nonDir[f.Path] = f.Type
		}
		total += f.Size
		if total > l.TotalSize {
			return badf("total size exceeds the limit of %d bytes", l.TotalSize)
		}
	}
	return nil
}

func (c *ChunkRef) validate() error {
	if c.Size <= 0 || c.Size > MaxChunkSize {
		return badf("size %d out of range 1..%d", c.Size, MaxChunkSize)
	}
	switch c.Enc {
	case EncodingRaw:
		if c.Stored != c.Size {
			return badf("raw body of %d bytes for a chunk of %d", c.Stored, c.Size)
		}
	case EncodingZstd:
		if c.Stored <= 0 || c.Stored > c.Size {
			return badf("zstd body of %d bytes for a chunk of %d", c.Stored, c.Size)
		}
	default:
		return badf("unknown encoding %d", c.Enc)
	}
	if c.Pack.isZero() {
		return badf("no pack")
	}
	if c.Offset < 0 || c.Offset > 1<<50 {
		return badf("offset %d out of range", c.Offset)
	}
	return nil
}

func (f *File) validate(schema int, l Limits, seen map[ChunkID]ChunkRef) error {
	if err := f.validateCommon(schema, l); err != nil {
		return err
	}
	noData := f.Size == 0 && len(f.Chunks) == 0 && f.SHA256.isZero()
	switch f.Type {
	case TypeFile:
		if f.Target != "" || f.Link != "" || f.Major != 0 || f.Minor != 0 {
			return badf("a regular file has no link target or device numbers")
		}
		return f.validateChunks(l, seen)
	case TypeDir, TypeFifo:
		if !noData || f.Target != "" || f.Link != "" || f.Major != 0 || f.Minor != 0 {
			return badf("a %s has no size, chunks, digest, target or device numbers", f.Type.noun())
		}
	case TypeChar, TypeBlock:
		if !noData || f.Target != "" || f.Link != "" {
			return badf("a device has no size, chunks, digest or target")
		}
	case TypeSymlink:
		if !noData || f.Mode != 0 || f.Link != "" || f.Major != 0 || f.Minor != 0 {
			return badf("a symlink has only a target (no mode, size, chunks, digest or device numbers)")
		}
		if schema == ManifestSchemaV1 {
			return validateLinkTarget(f.Path, f.Target, l.PathBytes)
		}
		return ValidateTarget(f.Target, l.PathBytes)
	case TypeLink:
		if !noData || f.Mode != 0 || f.Target != "" || f.Major != 0 || f.Minor != 0 ||
			f.UID != 0 || f.GID != 0 || f.User != "" || f.Group != "" || f.MTime != 0 || f.Xattrs != nil {
			return badf("a hard link has only the path of its file; the inode's fields are on that entry")
		}
		return ValidatePath(f.Link, l.PathBytes)
	default:
		return badf("type %q is not file, dir, symlink, link, char, block or fifo", truncate(string(f.Type), 20))
	}
	return nil
}

// validateCommon checks what every type may carry: mode, owner names,
// extended attributes, and that schema 1 has only its own fields.
func (f *File) validateCommon(schema int, l Limits) error {
	if f.Mode > 0o7777 {
		return badf("mode %o has bits beyond 07777", uint32(f.Mode))
	}
	if schema == ManifestSchemaV1 {
		if f.UID != 0 || f.GID != 0 || f.User != "" || f.Group != "" || f.MTime != 0 || f.Xattrs != nil ||
			f.Link != "" || f.Major != 0 || f.Minor != 0 {
			return badf("owner, mtime, xattrs, hard links and device numbers need schema 2")
		}
		switch f.Type {
		case TypeFile, TypeDir, TypeSymlink:
		default:
			return badf("type %q is not file, dir or symlink", truncate(string(f.Type), 20))
		}
		return nil
	}
	if err := ValidateOwner(f.UID, f.GID); err != nil {
		return err
	}
	for _, n := range []string{f.User, f.Group} {
		if err := ValidateOwnerName(n); err != nil {
			return err
		}
	}
	return ValidateXattrs(f.Xattrs, l)
}

// ValidateOwner refuses the owner 4294967295, which chown(2) takes for
// "no change".
func ValidateOwner(uid, gid uint32) error {
	if uid == 1<<32-1 || gid == 1<<32-1 {
		return badf("owner %d:%d: 4294967295 means \"no change\" to chown(2), not an owner", uid, gid)
	}
	return nil
}

// ValidateOwnerName checks an informative user or group name ("" for
// none).
func ValidateOwnerName(n string) error {
	if len(n) > 32 || !utf8.ValidString(n) || strings.ContainsAny(n, "/:\x00\n") {
		return badf("owner name %q is not a user or group name of at most 32 bytes", truncate(n, 40))
	}
	return nil
}

// ValidateXattrs checks extended attributes against the namespaces
// carried and the bounds of l.
func ValidateXattrs(x Xattrs, l Limits) error {
	if x == nil {
		return nil
	}
	if len(x) == 0 || len(x) > l.Xattrs {
		return badf("%d extended attributes; want 1 to %d (omit the field for none)", len(x), l.Xattrs)
	}
	for name, v := range x {
		if !XattrCarried(name) {
			return badf("extended attribute %q is not in the security, trusted or user namespace", truncate(name, 60))
		}
		if err := ValidateXattr(name, len(v), l); err != nil {
			return err
		}
	}
	return nil
}

// XattrCarried reports whether an extended attribute's namespace is one a
// manifest carries: security (SELinux labels, file capabilities), trusted
// and user. The system namespace (POSIX and NFSv4 ACLs) is not: it is how
// the kernel exposes ACLs, which a node could not apply as bytes on every
// file system.
func XattrCarried(name string) bool {
	ns, rest, _ := strings.Cut(name, ".")
	return rest != "" && (ns == "security" || ns == "trusted" || ns == "user")
}

// ValidateXattr checks one extended attribute's name and the size of its
// value against l.
func ValidateXattr(name string, size int, l Limits) error {
	switch {
	case len(name) > 255 || !utf8.ValidString(name) || strings.IndexByte(name, 0) >= 0:
		return badf("extended attribute name %q is not valid UTF-8 of at most 255 bytes", truncate(name, 60))
	case size > l.XattrBytes:
		return badf("extended attribute %s of %d bytes exceeds the limit of %d", truncate(name, 60), size, l.XattrBytes)
	}
	return nil
}

func (f *File) validateChunks(l Limits, seen map[ChunkID]ChunkRef) error {
	if f.Size < 0 || f.Size > l.FileSize {
		return badf("size %d out of range 0..%d", f.Size, l.FileSize)
	}
	if f.Size > 0 && len(f.Chunks) == 0 {
		return badf("size %d but no chunks", f.Size)
	}
	var sum int64
	for i := range f.Chunks {
		c := &f.Chunks[i]
		if prev, ok := seen[c.ID]; ok {
			if prev != *c {
				return badf("chunk %d (%s) is described differently by another file", i, c.ID)
			}
		} else {
			if err := c.validate(); err != nil {
				return fmt.Errorf("chunk %d (%s): %w", i, c.ID, err)
			}
			seen[c.ID] = *c
		}
		sum += int64(c.Size)
		if sum > f.Size {
			break
		}
	}
	if sum != f.Size {
		return badf("chunks add up to %d bytes, size says %d", sum, f.Size)
	}
	return nil
}

func (d Digest) isZero() bool { return d == Digest{} }

// ErrPathOutside is the ValidatePath error of a path that is absolute or
// climbs out of the tree with "..".
var ErrPathOutside = errors.New("leaves the tree")

// ValidatePath checks that p is a clean, relative, slash-separated path that
// stays inside the tree.
func ValidatePath(p string, maxBytes int) error {
	switch {
	case p == "":
		return badf("empty path")
	case len(p) > maxBytes:
		return badf("path %q is longer than %d bytes", truncate(p, 60), maxBytes)
	case strings.IndexByte(p, 0) >= 0:
		return badf("path %q contains NUL", truncate(p, 60))
	case !utf8.ValidString(p):
		return badf("path %q is not valid UTF-8", truncate(p, 60))
	case p[0] == '/':
		return badf("path %q is absolute: it %w", truncate(p, 60), ErrPathOutside)
	}
	for _, el := range strings.Split(p, "/") {
		switch {
		case el == "" || el == ".":
			return badf("path %q is not clean", truncate(p, 60))
		case el == "..":
			return badf("path %q %w", truncate(p, 60), ErrPathOutside)
		case len(el) > 255:
			return badf("path %q has a component longer than 255 bytes", truncate(p, 60))
		}
	}
	return nil
}

// ValidateTarget checks a schema 2 symlink target: any path, absolute or
// relative, since assembly never follows it; only its size and bytes are
// bounded.
func ValidateTarget(target string, maxBytes int) error {
	switch {
	case target == "":
		return badf("symlink with an empty target")
	case len(target) > maxBytes:
		return badf("link target longer than %d bytes", maxBytes)
	case strings.IndexByte(target, 0) >= 0:
		return badf("link target contains NUL")
	case !utf8.ValidString(target):
		return badf("link target %q is not valid UTF-8", truncate(target, 60))
	}
	return nil
}

// validateLinkTarget checks that a schema 1 symlink at p pointing to target resolves
// inside the tree. Assembly also refuses to follow links out of the tree
// whatever they say.
//
// A lexical check alone is not enough: with "d" -> "." in the tree,
// "d/d/../.." is lexically the top of the tree but the kernel resolves it
// to the tree's parent, because ".." applies to where a link points, not to
// the link. So ".." elements may only lead the target: they climb real
// directories (a link's parents are never links, see Artifact validation),
// and everything after them only descends, through links that are checked
// the same way.
func validateLinkTarget(p, target string, maxBytes int) error {
	if err := ValidateTarget(target, maxBytes); err != nil {
		return err
	}
	if target[0] == '/' {
		return badf("link target %q is absolute", truncate(target, 60))
	}
	depth := strings.Count(p, "/") // directories above the link inside the tree
	descended := false
	for _, el := range strings.Split(target, "/") {
		switch el {
		case "", ".":
		case "..":
			if descended {
				return badf("link target %q climbs with \"..\" after descending; only leading \"..\" elements are allowed", truncate(target, 60))
			}
			depth--
			if depth < 0 {
				return badf("link target %q leaves the tree", truncate(target, 60))
			}
		default:
			descended = true
		}
	}
	return nil
}
