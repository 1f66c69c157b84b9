package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/meshcast/meshcast/content"
)

// ErrNoRoom means the filesystem of the releases directory lacks the
// room a release needs; Install refuses before it writes anything.
var ErrNoRoom = errors.New("not enough room for the release")

// roomMargin is the share of a release's bytes that Install wants free
// beyond them: directories, inodes, the filesystem's own reserve.
const roomMargin = 20 // 1/20: 5 %

// Install assembles a release into Dir/<version> (content.Assemble),
// with the running release as opt.Prev when opt.Prev is nil, so that its
// unchanged files are hard-linked. It refuses, before it writes anything,
// when the filesystem lacks room (free bytes below the artifact's bytes
// plus 5 %; a conservative figure, since hard-linked files cost
// nothing): ErrNoRoom, naming the version, the bytes needed and free,
// and the directory. It removes the leftovers of interrupted assemblies
// first. Installing an installed version does nothing. The directory
// exists only complete, so a crash leaves the release installed or not.
func (a *Activator) Install(ctx context.Context, version string, art *content.Artifact, store content.Store, opt content.AssembleOptions) error {
	fail := func(err error) error { return fmt.Errorf("install %s %s: %w", a.cfg.Name, version, err) }
	if _, err := content.ParseVersion(version); err != nil {
		return fail(err)
	}
	if art == nil {
		return fail(errors.New("no artifact"))
	}
	a.install.Lock()
	defer a.install.Unlock()
	if a.Installed(version) {
		return nil
	}
	removeAssemblies(a.cfg.Dir, a.log)
	if err := checkRoom(a.cfg.Dir, art); err != nil {
		return fail(err)
	}
	if opt.Prev == nil {
		opt.Prev = a.runningInstalled()
	}
	st, err := content.Assemble(ctx, art, store, a.releaseDir(version), opt)
	if err != nil {
		return fail(err)
	}
	a.saveArtifact(version, art)
	a.log.Info("installed", "version", version, "files", st.Files, "written", st.WrittenBytes,
		"reused_files", st.ReusedFiles, "reused_bytes", st.ReusedBytes)
	return nil
}

// artifactBytes is the bytes of an artifact's regular files.
func artifactBytes(art *content.Artifact) int64 {
	var n int64
	for i := range art.Files {
		if art.Files[i].Type == content.TypeFile {
			n += art.Files[i].Size
		}
	}
	return n
}

// checkRoom refuses an artifact that does not fit in dir's filesystem.
func checkRoom(dir string, art *content.Artifact) error {
	free, err := freeBytes(dir)
	if errors.Is(err, errors.ErrUnsupported) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("free space of %s: %w", dir, err)
	}
	size := artifactBytes(art)
	need := size + size/roomMargin
	if uint64(need) > free {
		return fmt.Errorf("%w: it needs %d bytes (%d and a 5%% margin), %s has %d free", ErrNoRoom, need, size, dir, free)
	}
	return nil
}

// runningInstalled is the running release with its artifact, nil when
// nothing runs or its artifact is unknown.
func (a *Activator) runningInstalled() *content.Installed {
	a.mu.Lock()
	running := a.running
	art := a.arts[running]
	a.mu.Unlock()
	if running == "" {
		return nil
	}
	if art == nil {
		art = a.loadArtifact(running)
	}
	if art == nil {
		return nil
	}
	return &content.Installed{Dir: a.releaseDir(running), Artifact: art}
}

// saveArtifact keeps a version's artifact, in memory and in
// .artifacts/<version>.json, for the Install after it. It is a cache: a
// file that is lost or damaged costs the next Install its hard links,
// never its correctness, since content.Assemble checks the bytes of
// every file it reuses.
func (a *Activator) saveArtifact(version string, art *content.Artifact) {
	a.mu.Lock()
	a.arts[version] = art
	a.mu.Unlock()
	b, err := json.Marshal(art)
	if err == nil {
		err = os.MkdirAll(filepath.Join(a.cfg.Dir, artifactsDir), 0o755)
	}
	if err == nil {
		err = writeFileAtomic(a.artifactPath(version), b, 0o644, false)
	}
	if err != nil {
		a.log.Warn("cannot keep the file list of a release; the next install will not reuse its files", "version", version, "err", err)
	}
}

func (a *Activator) loadArtifact(version string) *content.Artifact {
	b, err := os.ReadFile(a.artifactPath(version))
	if err != nil {
		return nil
	}
	var art content.Artifact
	if err := json.Unmarshal(b, &art); err != nil {
		a.log.Warn("cannot read the file list of the running release", "version", version, "err", err)
		return nil
	}
	a.mu.Lock()
	a.arts[version] = &art
	a.mu.Unlock()
	return &art
}

func (a *Activator) artifactPath(version string) string {
	return filepath.Join(a.cfg.Dir, artifactsDir, version+".json")
}

// Prune removes the installed releases other than the one that runs, the
// one before it (what a rollback returns to), a pending one and keep: a
// node keeps at most those on disk. It returns the versions it removed.
// A release is removed by renaming it to a hidden partial name first, so
// that a crash in the middle leaves a leftover Install removes, never a
// half release under its version. Call it from the goroutine that calls
// Install and Activate, not beside them: a version installed for an
// activation not yet begun is not kept unless it is in keep.
func (a *Activator) Prune(keep ...string) ([]string, error) {
	a.install.Lock()
	defer a.install.Unlock()
	st := a.Status()
	keep = append(keep, st.Running, st.Previous, st.Pending)
	entries, err := os.ReadDir(a.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("prune %s: %w", a.cfg.Dir, err)
	}
	var removed []string
	for _, e := range entries {
		v := e.Name()
		if !e.IsDir() || slices.Contains(keep, v) {
			continue
		}
		if _, err := content.ParseVersion(v); err != nil {
			continue
		}
		tmp := filepath.Join(a.cfg.Dir, "."+v+partialInfix+"pruned")
		if err := os.Rename(a.releaseDir(v), tmp); err != nil {
			return removed, fmt.Errorf("prune %s %s: %w", a.cfg.Name, v, err)
		}
		os.Remove(a.artifactPath(v))
		if err := os.RemoveAll(tmp); err != nil {
			return removed, fmt.Errorf("prune %s %s: %w", a.cfg.Name, v, err)
		}
		removed = append(removed, v)
	}
	return removed, content.SyncDir(a.cfg.Dir)
}
