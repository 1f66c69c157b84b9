package origin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"

	"github.com/meshcast/meshcast/content"
	"github.com/meshcast/meshcast/content/origin"
)

// within reports whether got is at most d away from want.
func within(got, want time.Time, d time.Duration) bool {
	diff := got.Sub(want)
	return diff <= d && diff >= -d
}

func TestInit(t *testing.T) {
	t.Parallel()
	o := newTestOrigin(t)
	now := time.Now()
	exp := origin.DefaultExpiries()
	for _, d := range []string{"metadata", "targets", "packs"} {
		if fi, err := os.Stat(filepath.Join(o.dir, d)); err != nil || !fi.IsDir() {
			t.Errorf("%s: %v, want a directory", d, err)
		}
	}
	ents, err := os.ReadDir(filepath.Join(o.dir, "metadata"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{"1.root.json", "1.snapshot.json", "1.targets.json", "timestamp.json"}; !slices.Equal(names, want) {
		t.Errorf("metadata holds %q, want %q", names, want)
	}

	root, err := metadata.Root().FromFile(o.metaFile("1.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !root.Signed.ConsistentSnapshot {
		t.Error("consistent_snapshot is false")
	}
	if root.Signed.Version != 1 {
		t.Errorf("root version %d, want 1", root.Signed.Version)
	}
	for _, role := range origin.Roles {
		key, err := metadata.KeyFromPublicKey(o.keys[role].Public())
		if err != nil {
			t.Fatal(err)
		}
		id, _ := key.ID()
		rr := root.Signed.Roles[role]
		if rr == nil || rr.Threshold != 1 || !slices.Equal(rr.KeyIDs, []string{id}) {
			t.Errorf("root role %s = %+v, want threshold 1 and key %s", role, rr, id)
		}
	}
	if err := root.VerifyDelegate(metadata.ROOT, root); err != nil {
		t.Errorf("root is not signed by itself: %v", err)
	}
	targets, err := metadata.Targets().FromFile(o.metaFile("1.targets.json"))
	if err != nil {
		t.Fatal(err)
	}
	snapshot, err := metadata.Snapshot().FromFile(o.metaFile("1.snapshot.json"))
	if err != nil {
		t.Fatal(err)
	}
	timestamp, err := metadata.Timestamp().FromFile(o.metaFile("timestamp.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(targets.Signed.Targets) != 0 || targets.Signed.Version != 1 {
		t.Errorf("targets version %d with %d targets, want version 1 and none", targets.Signed.Version, len(targets.Signed.Targets))
	}
	if v := snapshot.Signed.Meta["targets.json"]; snapshot.Signed.Version != 1 || v == nil || v.Version != 1 {
		t.Errorf("snapshot version %d lists targets %+v, want 1 and 1", snapshot.Signed.Version, v)
	}
	if v := timestamp.Signed.Meta["snapshot.json"]; timestamp.Signed.Version != 1 || v == nil || v.Version != 1 {
		t.Errorf("timestamp version %d lists snapshot %+v, want 1 and 1", timestamp.Signed.Version, v)
	}
	for _, e := range []struct {
		role    string
		expires time.Time
		period  time.Duration
	}{
		{"root", root.Signed.Expires, exp.Root},
		{"targets", targets.Signed.Expires, exp.Targets},
		{"snapshot", snapshot.Signed.Expires, exp.Snapshot},
		{"timestamp", timestamp.Signed.Expires, exp.Timestamp},
	} {
		if !within(e.expires, now.Add(e.period), time.Minute) {
			t.Errorf("%s expires %s, want about %s", e.role, e.expires, now.Add(e.period))
		}
	}
}

func TestInitRefusesExistingRepo(t *testing.T) {
	t.Parallel()
	o := newTestOrigin(t)
	before := state(t, o.dir)
	err := origin.Init(o.dir, o.keys, origin.DefaultExpiries(), time.Now())
	if err == nil || !strings.Contains(err.Error(), "already holds a repository") {
		t.Fatalf("second Init: %v", err)
	}
	requireSameState(t, before, state(t, o.dir))
}

func TestInitNeedsEveryKey(t *testing.T) {
	t.Parallel()
	keys, err := origin.GenerateKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "origin")
	partial := origin.Keys{}
	for _, role := range origin.Roles[:3] {
		partial[role] = keys[role]
	}
	err = origin.Init(dir, partial, origin.DefaultExpiries(), time.Now())
	if err == nil || !strings.Contains(err.Error(), "no "+origin.Roles[3]+" key") {
		t.Fatalf("Init without the %s key: %v", origin.Roles[3], err)
	}
	if _, err := os.Stat(filepath.Join(dir, "metadata", "1.root.json")); !os.IsNotExist(err) {
		t.Fatalf("a failed Init left a root behind (%v)", err)
	}
	// Nothing that blocks a retry was left.
	if err := origin.Init(dir, keys, origin.DefaultExpiries(), time.Now()); err != nil {
		t.Fatalf("Init after a failed one: %v", err)
	}
}

func TestExpiriesValidate(t *testing.T) {
	t.Parallel()
	h := time.Hour
	good := []origin.Expiries{
		origin.DefaultExpiries(),
		{Root: h, Targets: h, Snapshot: h, Timestamp: h},
	}
	for _, e := range good {
		if err := e.Validate(); err != nil {
			t.Errorf("%+v: %v", e, err)
		}
	}
	bad := []origin.Expiries{
		{},
		{Root: h, Targets: h, Snapshot: h, Timestamp: 0},
		{Root: h, Targets: h, Snapshot: h, Timestamp: -h},
		{Root: h, Targets: h, Snapshot: h, Timestamp: 2 * h},
		{Root: h, Targets: h, Snapshot: 2 * h, Timestamp: h},
		{Root: h, Targets: 2 * h, Snapshot: h, Timestamp: h},
	}
	for _, e := range bad {
		if err := e.Validate(); err == nil {
			t.Errorf("%+v: valid, want an error", e)
		}
	}
	// Every entry point checks them before writing anything.
	keys, err := origin.GenerateKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "origin")
	if err := origin.Init(dir, keys, bad[3], time.Now()); err == nil || !strings.Contains(err.Error(), "expiries") {
		t.Errorf("Init with bad expiries: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("Init with bad expiries created %s", dir)
	}
	o := newTestOrigin(t)
	before := state(t, o.dir)
	r := o.open(t)
	if _, err := r.Refresh(o.keys, bad[4], time.Now()); err == nil || !strings.Contains(err.Error(), "expiries") {
		t.Errorf("Refresh with bad expiries: %v", err)
	}
	tree := filepath.Join(t.TempDir(), "tree")
	writeTree(t, tree, 1)
	if _, err := r.Publish(context.Background(), o.keys, origin.PublishOptions{Name: "app", Version: "1.0.0", Artifacts: map[string]string{"linux/amd64": tree}, Expiries: bad[5]}, nil); err == nil || !strings.Contains(err.Error(), "expiries") {
		t.Errorf("Publish with bad expiries: %v", err)
	}
	requireSameState(t, before, state(t, o.dir))
}

func TestOpen(t *testing.T) {
	t.Parallel()
	_, err := origin.Open(t.TempDir())
	if !errors.Is(err, origin.ErrNoRepo) {
		t.Errorf("Open of an empty directory: %v, want ErrNoRepo", err)
	}
	o := newTestOrigin(t)
	r1, err := origin.Open(o.dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = origin.Open(o.dir)
	if !errors.Is(err, syscall.EWOULDBLOCK) || !strings.Contains(err.Error(), "another publish or refresh holds") {
		t.Errorf("second Open: %v, want a lock error", err)
	}
	if err := r1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r1.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	r2, err := origin.Open(o.dir)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	r2.Close()
}

// A lock held for a moment from another open file description, as a
// child forked by another goroutine holds it until it execs (TestDelta
// failed so while zstd ran in a parallel subtest), does not fail Open:
// it waits the moment out.
func TestOpenWaitsOutABriefLock(t *testing.T) {
	t.Parallel()
	o := newTestOrigin(t)
	f, err := os.OpenFile(filepath.Join(o.dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	time.AfterFunc(20*time.Millisecond, func() { f.Close(); close(released) })
	r, err := origin.Open(o.dir)
	<-released
	if err != nil {
		t.Fatalf("Open while another description held the lock for 20 ms: %v", err)
	}
	r.Close()
}

// TestConcurrentPublishLocked holds a publish in the middle of its work
// and tries to open the origin meanwhile.
func TestConcurrentPublishLocked(t *testing.T) {
	t.Parallel()
	o := newTestOrigin(t)
	tree := filepath.Join(t.TempDir(), "tree")
	writeTree(t, tree, 1)
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	opt := origin.PublishOptions{Name: "app", Version: "1.0.0", Artifacts: map[string]string{"linux/amd64": tree},
		Progress: func(done, total int64) {
			once.Do(func() {
				close(started)
				<-release
			})
		}}
	errc := make(chan error, 1)
	go func() {
		_, err := o.publish(t, opt)
		errc <- err
	}()
	select {
	case <-started:
	case err := <-errc:
		t.Fatalf("publish ended before it reported progress: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("publish reported no progress")
	}
	_, err := origin.Open(o.dir)
	close(release)
	if err := <-errc; err != nil {
		t.Fatalf("the first publish: %v", err)
	}
	if !errors.Is(err, syscall.EWOULDBLOCK) || !strings.Contains(err.Error(), "another publish or refresh holds") || !strings.Contains(err.Error(), o.dir) {
		t.Fatalf("Open during a publish: %v, want a lock error naming the origin", err)
	}
}

func readTimestamp(t *testing.T, o *testOrigin) *metadata.Metadata[metadata.TimestampType] {
	t.Helper()
	ts, err := metadata.Timestamp().FromFile(o.metaFile("timestamp.json"))
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestRefresh(t *testing.T) {
	t.Parallel()
	o := newTestOrigin(t)
	tree := filepath.Join(t.TempDir(), "tree")
	writeTree(t, tree, 1)
	o.mustPublish(t, "app", "1.0.0", map[string]string{"linux/amd64": tree})
	exp := origin.DefaultExpiries()
	online, err := origin.LoadKeys(o.keysDir, metadata.SNAPSHOT, metadata.TIMESTAMP)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Truncate(time.Second)
	r := o.open(t)

	ts0 := readTimestamp(t, o)
	snap0 := ts0.Signed.Meta["snapshot.json"].Version
	steps := []struct {
		name  string
		keys  origin.Keys
		now   time.Time
		want  []string
		snap  int64 // snapshot version the timestamp lists after
		rootS bool  // root expires within 30 days
	}{
		{"fresh: timestamp only", online, start, []string{"timestamp"}, snap0, false},
		// Five days on, a week-long snapshot has less than half left.
		{"snapshot due", online, start.Add(5 * 24 * time.Hour), []string{"snapshot", "timestamp"}, snap0 + 1, false},
		// Sixty days on, targets (90 days) is due, but without its key
		// it is left alone.
		{"targets due, no key", online, start.Add(60 * 24 * time.Hour), []string{"snapshot", "timestamp"}, snap0 + 2, false},
		{"targets due", o.keys, start.Add(60 * 24 * time.Hour), []string{"targets", "snapshot", "timestamp"}, snap0 + 3, false},
		{"root nearly expired", o.keys, start.Add(340 * 24 * time.Hour), []string{"targets", "snapshot", "timestamp"}, snap0 + 4, true},
	}
	version := ts0.Signed.Version
	for _, s := range steps {
		res, err := r.Refresh(s.keys, exp, s.now)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if !slices.Equal(res.Resigned, s.want) {
			t.Errorf("%s: re-signed %q, want %q", s.name, res.Resigned, s.want)
		}
		version++
		ts := readTimestamp(t, o)
		if ts.Signed.Version != version || ts.Signed.Meta["snapshot.json"].Version != s.snap {
			t.Errorf("%s: timestamp version %d lists snapshot %d, want %d and %d", s.name, ts.Signed.Version, ts.Signed.Meta["snapshot.json"].Version, version, s.snap)
		}
		if !ts.Signed.Expires.Equal(s.now.Add(exp.Timestamp)) || !res.TimestampExpires.Equal(s.now.Add(exp.Timestamp)) {
			t.Errorf("%s: timestamp expires %s (result %s), want %s", s.name, ts.Signed.Expires, res.TimestampExpires, s.now.Add(exp.Timestamp))
		}
		if slices.Contains(s.want, "snapshot") && !res.SnapshotExpires.Equal(s.now.Add(exp.Snapshot)) {
			t.Errorf("%s: snapshot expires %s, want %s", s.name, res.SnapshotExpires, s.now.Add(exp.Snapshot))
		}
		if slices.Contains(s.want, "targets") && !res.TargetsExpires.Equal(s.now.Add(exp.Targets)) {
			t.Errorf("%s: targets expires %s, want %s", s.name, res.TargetsExpires, s.now.Add(exp.Targets))
		}
		if res.RootExpiresWithin != s.rootS {
			t.Errorf("%s: root expires soon = %v, want %v", s.name, res.RootExpiresWithin, s.rootS)
		}
	}
	// The last state verifies as a whole at the time it was signed for.
	verifyWithGoTUF(t, o, start.Add(340*24*time.Hour))
}

func TestRefreshWrongKey(t *testing.T) {
	t.Parallel()
	o := newTestOrigin(t)
	other, err := origin.GenerateKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	before := state(t, o.dir)
	keys := origin.Keys{metadata.SNAPSHOT: o.keys[metadata.SNAPSHOT], metadata.TIMESTAMP: other[metadata.TIMESTAMP]}
	_, err = o.open(t).Refresh(keys, origin.DefaultExpiries(), time.Now())
	if err == nil || !strings.Contains(err.Error(), "timestamp key") {
		t.Fatalf("Refresh with a foreign timestamp key: %v, want an error naming the role", err)
	}
	requireSameState(t, before, state(t, o.dir))
}

// verifyWithGoTUF runs go-tuf's own trusted-metadata checks over the
// files on disk, as any TUF client would, independently of seeder/cdn:
// root → timestamp → the snapshot it lists → the targets that lists →
// every target file against its signed length and hashes.
func verifyWithGoTUF(t *testing.T, o *testOrigin, at time.Time) *metadata.Metadata[metadata.TargetsType] {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(o.metaFile(name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tm, err := trustedmetadata.New(read("1.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	tm.RefTime = at
	for v := 2; ; v++ {
		b, err := os.ReadFile(o.metaFile(fmt.Sprintf("%d.root.json", v)))
		if os.IsNotExist(err) {
			break
		}
		if _, err := tm.UpdateRoot(b); err != nil {
			t.Fatalf("root %d: %v", v, err)
		}
	}
	ts, err := tm.UpdateTimestamp(read("timestamp.json"))
	if err != nil {
		t.Fatalf("timestamp: %v", err)
	}
	sv := ts.Signed.Meta["snapshot.json"].Version
	sn, err := tm.UpdateSnapshot(read(fmt.Sprintf("%d.snapshot.json", sv)), false)
	if err != nil {
		t.Fatalf("snapshot %d: %v", sv, err)
	}
	tv := sn.Signed.Meta["targets.json"].Version
	tg, err := tm.UpdateDelegatedTargets(read(fmt.Sprintf("%d.targets.json", tv)), metadata.TARGETS, metadata.ROOT)
	if err != nil {
		t.Fatalf("targets %d: %v", tv, err)
	}
	for path, tf := range tg.Signed.Targets {
		dir, base := filepath.Split(path)
		for alg, sum := range tf.Hashes {
			if alg != "sha256" {
				continue
			}
			b, err := os.ReadFile(filepath.Join(o.dir, "targets", dir, fmt.Sprintf("%x.%s", []byte(sum), base)))
			if err != nil {
				t.Fatalf("target %s: %v", path, err)
			}
			if err := tf.VerifyLengthHashes(b); err != nil {
				t.Errorf("target %s: %v", path, err)
			}
		}
	}
	return tg
}

func TestMetadataVerifiesWithGoTUF(t *testing.T) {
	t.Parallel()
	o := newTestOrigin(t)
	verifyWithGoTUF(t, o, time.Now())
	tree := filepath.Join(t.TempDir(), "tree")
	writeTree(t, tree, 1)
	res1 := o.mustPublish(t, "app", "1.0.0", map[string]string{"linux/amd64": tree})
	res2 := o.mustPublish(t, "app", "1.1.0", map[string]string{"linux/amd64": tree, "linux/arm64": tree})
	tg := verifyWithGoTUF(t, o, time.Now())
	for _, res := range []*origin.PublishResult{res1, res2} {
		tf := tg.Signed.Targets[res.Target]
		if tf == nil {
			t.Fatalf("%s is not a signed target", res.Target)
		}
		if got := tf.Hashes["sha256"]; content.ReleaseID(got) != res.ReleaseID {
			t.Errorf("%s signed with sha256 %x, want the release id %s", res.Target, []byte(got), res.ReleaseID)
		}
		var custom struct {
			Meshcast struct{ Name, Version string } `json:"meshcast"`
		}
		if tf.Custom == nil || json.Unmarshal(*tf.Custom, &custom) != nil || custom.Meshcast.Name+"@"+custom.Meshcast.Version != res.Release {
			t.Errorf("%s custom %+v, want the release %s", res.Target, custom, res.Release)
		}
	}
}
