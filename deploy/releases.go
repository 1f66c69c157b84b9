package deploy

import (
	"crypto/rand"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/meshcast/meshcast/content"
)

// The releases directory of one release name (ActivatorConfig.Dir):
//
//	<version>/        a release, complete: content.Assemble builds it in a
//	                  hidden sibling (.<version>.partial-…) and renames it
//	current           a relative symlink to the <version> that runs
//	journal           the activation journal (see journal.go)
//	.artifacts/       the file list of each installed version, so that the
//	                  next Install hard-links the unchanged files of the
//	                  running release after a restart
//
// and, after a crash, the leftovers OpenActivator and Install remove:
// current.tmp-… (a switch), journal.tmp-… (a compaction), .<version>.partial-…
// (an assembly).
const (
	currentName  = "current"
	journalName  = "journal"
	artifactsDir = ".artifacts"
	partialInfix = ".partial-" // content.Assemble's temporary trees: "." + version + partialInfix + …
)

// switchCurrent points dir/current at version atomically: a new symlink
// renamed over it, then the directory synced. version "" removes it.
func switchCurrent(dir, version string) error {
	link := filepath.Join(dir, currentName)
	if version == "" {
		if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return content.SyncDir(dir)
	}
	tmp := filepath.Join(dir, currentName+tmpInfix+rand.Text())
	if err := os.Symlink(version, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return err
	}
	return content.SyncDir(dir)
}

// linkState is what dir/current is.
type linkState int

const (
	linkMissing linkState = iota
	linkValid             // a symlink to the directory of a version
	linkBroken            // anything else
)

// readCurrent returns the version dir/current points at.
func readCurrent(dir string) (string, linkState) {
	target, err := os.Readlink(filepath.Join(dir, currentName))
	if errors.Is(err, fs.ErrNotExist) {
		return "", linkMissing
	}
	if err != nil || strings.Contains(target, "/") {
		return "", linkBroken
	}
	if _, err := content.ParseVersion(target); err != nil || !isDir(filepath.Join(dir, target)) {
		return "", linkBroken
	}
	return target, linkValid
}

func isDir(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.IsDir()
}

// removeLeftovers removes what a crash left of a switch, a compaction or
// an assembly in dir.
func removeLeftovers(dir string, log *slog.Logger) {
	removeMatching(dir, log, func(name string) bool {
		return strings.HasPrefix(name, currentName+tmpInfix) || strings.HasPrefix(name, journalName+tmpInfix)
	})
	removeMatching(filepath.Join(dir, artifactsDir), log, func(name string) bool { return strings.Contains(name, tmpInfix) })
	removeAssemblies(dir, log)
}

// removeAssemblies removes the temporary trees of interrupted assemblies.
func removeAssemblies(dir string, log *slog.Logger) {
	removeMatching(dir, log, func(name string) bool {
		return strings.HasPrefix(name, ".") && strings.Contains(name, partialInfix)
	})
}

func removeMatching(dir string, log *slog.Logger, match func(name string) bool) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !match(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := removeTree(p); err != nil {
			log.Warn("cannot remove a leftover", "path", p, "err", err)
			continue
		}
		log.Info("removed a leftover of an interrupted operation", "path", p)
	}
}

// removeTree removes p, whose directories may have modes that leave
// their owner no access (an assembly gives them their modes last).
func removeTree(p string) error {
	if os.RemoveAll(p) == nil {
		return nil
	}
	filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(q, 0o700)
		}
		return nil
	})
	return os.RemoveAll(p)
}
