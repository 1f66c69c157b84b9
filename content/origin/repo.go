package origin

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"golang.org/x/sys/unix"

	"github.com/meshcast/meshcast/content"
)

// Expiries are how long each role's metadata stays valid after signing.
type Expiries struct {
	Root, Targets, Snapshot, Timestamp time.Duration
}

// DefaultExpiries: root a year, targets three months, snapshot a week,
// timestamp a day.
func DefaultExpiries() Expiries {
	return Expiries{Root: 365 * 24 * time.Hour, Targets: 90 * 24 * time.Hour, Snapshot: 7 * 24 * time.Hour, Timestamp: 24 * time.Hour}
}

// Validate checks that every period is positive and that the order root ≥
// targets ≥ snapshot ≥ timestamp holds.
func (e Expiries) Validate() error {
	if e.Timestamp <= 0 || e.Snapshot < e.Timestamp || e.Targets < e.Snapshot || e.Root < e.Targets {
		return fmt.Errorf("expiries: want 0 < timestamp ≤ snapshot ≤ targets ≤ root, got %s/%s/%s/%s",
			e.Timestamp, e.Snapshot, e.Targets, e.Root)
	}
	return nil
}

// Repo is an origin directory: signed TUF metadata under metadata/
// (consistent snapshots: N.root.json, N.targets.json, N.snapshot.json and
// timestamp.json), release manifests under targets/ with their sha256 as a
// file name prefix, and chunk packs with their indexes under packs/. Every
// file is written to a dot-named temporary file, synced and renamed, and
// timestamp.json is renamed last, so a reader (the CDN) only ever sees a
// consistent repository.
type Repo struct {
	dir       string
	root      *metadata.Metadata[metadata.RootType]
	targets   *metadata.Metadata[metadata.TargetsType]
	snapshot  *metadata.Metadata[metadata.SnapshotType]
	timestamp *metadata.Metadata[metadata.TimestampType]
	lock      *os.File
}

func (r *Repo) metaDir() string { return filepath.Join(r.dir, "metadata") }

// PacksDir returns the directory holding packs and their indexes.
func (r *Repo) PacksDir() string { return filepath.Join(r.dir, "packs") }

// TargetsDir returns the directory holding target files.
func (r *Repo) TargetsDir() string { return filepath.Join(r.dir, "targets") }

// Init creates the metadata of a new origin in dir, signed with keys (all
// four roles), and writes nothing if dir already holds a root.
func Init(dir string, keys Keys, exp Expiries, now time.Time) error {
	if err := exp.Validate(); err != nil {
		return fmt.Errorf("repo init: %w", err)
	}
	r := &Repo{dir: dir}
	if _, err := os.Stat(filepath.Join(r.metaDir(), "1.root.json")); err == nil {
		return fmt.Errorf("repo init: %s already holds a repository", dir)
	}
	for _, d := range []string{r.metaDir(), r.TargetsDir(), r.PacksDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("repo init: %w", err)
		}
	}
	if err := r.acquire(); err != nil {
		return fmt.Errorf("repo init: %w", err)
	}
	defer r.Close()
	now = now.UTC()
	r.root = metadata.Root(now.Add(exp.Root))
	r.root.Signed.ConsistentSnapshot = true
	for _, role := range Roles {
		priv, ok := keys[role]
		if !ok {
			return fmt.Errorf("repo init: no %s key", role)
		}
		key, err := metadata.KeyFromPublicKey(priv.Public())
		if err != nil {
			return fmt.Errorf("repo init: %s key: %w", role, err)
		}
		if err := r.root.Signed.AddKey(key, role); err != nil {
			return fmt.Errorf("repo init: %s key: %w", role, err)
		}
	}
	if err := sign(r.root, keys, metadata.ROOT); err != nil {
		return fmt.Errorf("repo init: %w", err)
	}
	if err := writeMeta(r.root, filepath.Join(r.metaDir(), "1.root.json")); err != nil {
		return fmt.Errorf("repo init: %w", err)
	}
	r.targets = metadata.Targets(now.Add(exp.Targets))
	r.targets.Signed.Version = 0 // commit bumps it to 1
	r.snapshot = metadata.Snapshot(now.Add(exp.Snapshot))
	r.snapshot.Signed.Version = 0
	r.timestamp = metadata.Timestamp(now.Add(exp.Timestamp))
	r.timestamp.Signed.Version = 0
	if err := r.commit(keys, exp, now, true, true); err != nil {
		return fmt.Errorf("repo init: %w", err)
	}
	return nil
}

// ErrNoRepo means a directory holds no origin metadata.
var ErrNoRepo = errors.New("not a meshcast origin (no metadata/1.root.json; run meshcast repo init)")

// Open loads the current metadata of the origin in dir and takes its lock,
// so that one publish or refresh runs at a time. Close releases it.
func Open(dir string) (*Repo, error) {
	r := &Repo{dir: dir}
	if _, err := os.Stat(filepath.Join(r.metaDir(), "1.root.json")); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open origin %s: %w", dir, ErrNoRepo)
	}
	if err := r.acquire(); err != nil {
		return nil, fmt.Errorf("open origin %s: %w", dir, err)
	}
	if err := r.load(); err != nil {
		r.Close()
		return nil, fmt.Errorf("open origin %s: %w", dir, err)
	}
	return r, nil
}

// Close releases the origin's lock.
func (r *Repo) Close() error {
	if r.lock == nil {
		return nil
	}
	err := r.lock.Close() // closing drops the flock
	r.lock = nil
	return err
}

// lockPatience is how long acquire retries a lock that is held. A flock
// belongs to an open file description, which a child forked by another
// goroutine of this process (an exec.Command) shares until it execs: a
// lock file opened and closed again meanwhile stays locked for that child's
// few milliseconds. A publish or refresh holds it for as long as it runs.
const lockPatience = 2 * time.Second

func (r *Repo) acquire() error {
	f, err := os.OpenFile(filepath.Join(r.dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(lockPatience)
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("another publish or refresh holds %s: %w", f.Name(), err)
	}
	r.lock = f
	return nil
}

func (r *Repo) load() error {
	var err error
	for v := 1; ; v++ {
		p := filepath.Join(r.metaDir(), strconv.Itoa(v)+".root.json")
		if _, serr := os.Stat(p); serr != nil {
			if v == 1 {
				return serr
			}
			break
		}
		if r.root, err = metadata.Root().FromFile(p); err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
	}
	if r.timestamp, err = metadata.Timestamp().FromFile(filepath.Join(r.metaDir(), "timestamp.json")); err != nil {
		return fmt.Errorf("read timestamp.json: %w", err)
	}
	sm, ok := r.timestamp.Signed.Meta["snapshot.json"]
	if !ok {
		return errors.New("timestamp.json lists no snapshot")
	}
	if r.snapshot, err = metadata.Snapshot().FromFile(filepath.Join(r.metaDir(), fmt.Sprintf("%d.snapshot.json", sm.Version))); err != nil {
		return fmt.Errorf("read snapshot %d: %w", sm.Version, err)
	}
	tm, ok := r.snapshot.Signed.Meta["targets.json"]
	if !ok {
		return errors.New("snapshot lists no targets")
	}
	if r.targets, err = metadata.Targets().FromFile(filepath.Join(r.metaDir(), fmt.Sprintf("%d.targets.json", tm.Version))); err != nil {
		return fmt.Errorf("read targets %d: %w", tm.Version, err)
	}
	return nil
}

// checkKeys makes sure the loaded keys are the ones root trusts for roles.
func (r *Repo) checkKeys(keys Keys, roles ...string) error {
	for _, role := range roles {
		id, err := keys.keyID(role)
		if err != nil {
			return err
		}
		rr := r.root.Signed.Roles[role]
		if rr == nil || !slices.Contains(rr.KeyIDs, id) {
			return fmt.Errorf("the %s key given is not a %s key of this origin's root (key id %.12s…)", role, role, id)
		}
	}
	return nil
}

// commit re-signs and writes metadata: targets if changed, snapshot if
// changed or targets changed, and always the timestamp, which it renames
// into place last.
func (r *Repo) commit(keys Keys, exp Expiries, now time.Time, newTargets, newSnapshot bool) error {
	now = now.UTC()
	if newTargets {
		r.targets.Signed.Version++
		r.targets.Signed.Expires = now.Add(exp.Targets)
		if err := sign(r.targets, keys, metadata.TARGETS); err != nil {
			return err
		}
		if err := writeMeta(r.targets, filepath.Join(r.metaDir(), fmt.Sprintf("%d.targets.json", r.targets.Signed.Version))); err != nil {
			return err
		}
		newSnapshot = true
	}
	if newSnapshot {
		r.snapshot.Signed.Version++
		r.snapshot.Signed.Expires = now.Add(exp.Snapshot)
		r.snapshot.Signed.Meta = map[string]*metadata.MetaFiles{"targets.json": metadata.MetaFile(r.targets.Signed.Version)}
		if err := sign(r.snapshot, keys, metadata.SNAPSHOT); err != nil {
			return err
		}
		if err := writeMeta(r.snapshot, filepath.Join(r.metaDir(), fmt.Sprintf("%d.snapshot.json", r.snapshot.Signed.Version))); err != nil {
			return err
		}
	}
	r.timestamp.Signed.Version++
	r.timestamp.Signed.Expires = now.Add(exp.Timestamp)
	r.timestamp.Signed.Meta = map[string]*metadata.MetaFiles{"snapshot.json": metadata.MetaFile(r.snapshot.Signed.Version)}
	if err := sign(r.timestamp, keys, metadata.TIMESTAMP); err != nil {
		return err
	}
	return writeMeta(r.timestamp, filepath.Join(r.metaDir(), "timestamp.json"))
}

func sign[T metadata.Roles](m *metadata.Metadata[T], keys Keys, role string) error {
	s, err := keys.signer(role)
	if err != nil {
		return err
	}
	m.ClearSignatures()
	if _, err := m.Sign(s); err != nil {
		return fmt.Errorf("sign %s: %w", role, err)
	}
	return nil
}

func writeMeta[T metadata.Roles](m *metadata.Metadata[T], path string) error {
	b, err := m.ToBytes(true)
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	return writeFileAtomic(path, b, 0o644)
}

// writeFileAtomic writes b to a dot-named temporary file next to path,
// syncs it, renames it over path and syncs the directory.
func writeFileAtomic(path string, b []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(b); err != nil {
		return err
	}
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	return content.SyncDir(dir)
}

// RefreshResult says what Refresh re-signed.
type RefreshResult struct {
	Resigned          []string  `json:"resigned"`
	TimestampExpires  time.Time `json:"timestamp_expires"`
	SnapshotExpires   time.Time `json:"snapshot_expires"`
	TargetsExpires    time.Time `json:"targets_expires"`
	RootExpires       time.Time `json:"root_expires"`
	RootExpiresWithin bool      `json:"root_expires_soon"`
}

// Refresh re-signs the timestamp, and the snapshot (and targets, if its key
// is loaded) when less than half of their period is left or they would
// expire before the new timestamp. It is meant for a cron job.
func (r *Repo) Refresh(keys Keys, exp Expiries, now time.Time) (RefreshResult, error) {
	var res RefreshResult
	if err := exp.Validate(); err != nil {
		return res, fmt.Errorf("refresh: %w", err)
	}
	roles := []string{metadata.SNAPSHOT, metadata.TIMESTAMP}
	if _, ok := keys[metadata.TARGETS]; ok {
		roles = append(roles, metadata.TARGETS)
	}
	if err := r.checkKeys(keys, roles...); err != nil {
		return res, fmt.Errorf("refresh: %w", err)
	}
	now = now.UTC()
	stale := func(expires time.Time, period time.Duration) bool {
		return expires.Sub(now) < period/2 || expires.Before(now.Add(exp.Timestamp))
	}
	newTargets := keys[metadata.TARGETS] != nil && stale(r.targets.Signed.Expires, exp.Targets)
	newSnapshot := newTargets || stale(r.snapshot.Signed.Expires, exp.Snapshot)
	if newTargets {
		res.Resigned = append(res.Resigned, metadata.TARGETS)
	}
	if newSnapshot {
		res.Resigned = append(res.Resigned, metadata.SNAPSHOT)
	}
	res.Resigned = append(res.Resigned, metadata.TIMESTAMP)
	if err := r.commit(keys, exp, now, newTargets, newSnapshot); err != nil {
		return res, fmt.Errorf("refresh: %w", err)
	}
	res.TimestampExpires = r.timestamp.Signed.Expires
	res.SnapshotExpires = r.snapshot.Signed.Expires
	res.TargetsExpires = r.targets.Signed.Expires
	res.RootExpires = r.root.Signed.Expires
	res.RootExpiresWithin = r.root.Signed.Expires.Sub(now) < 30*24*time.Hour
	return res, nil
}
