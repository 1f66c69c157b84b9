package treegen

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Options size a generated tree. Zero fields take their defaults.
type Options struct {
	Seed  uint64
	Files int   // approximate number of regular files (default 3000)
	Bytes int64 // approximate total bytes of regular files (default 300 MiB)
}

// Defaults for Options.
const (
	DefaultFiles = 3000
	DefaultBytes = 300 << 20
)

func (o Options) withDefaults() Options {
	if o.Files <= 0 {
		o.Files = DefaultFiles
	}
	if o.Bytes <= 0 {
		o.Bytes = DefaultBytes
	}
	return o
}

// Tree describes a generated tree.
type Tree struct {
	Dir        string
	Entries    []Entry // every directory, file and symlink under Dir, sorted by Path
	Packages   []Package
	Files      int              // regular files
	Bytes      int64            // bytes of regular files
	ModelBytes [numModels]int64 // bytes of regular files, indexed by Model
}

// Entry is one path of a tree.
type Entry struct {
	Path    string      // slash-separated, relative to the tree
	Type    fs.FileMode // 0 (regular), fs.ModeDir or fs.ModeSymlink
	Perm    fs.FileMode
	Size    int64
	Target  string // symlink target, relative
	Model   Model
	Package string // owning package, "" if none
}

// Package is a group of related files, as dpkg records it.
type Package struct {
	Name    string
	Version string
	Paths   []string // its files and symlinks
}

// ErrNotEmpty is returned when the destination of Generate or Upgrade exists
// and is not an empty directory.
var ErrNotEmpty = errors.New("destination exists and is not an empty directory")

// prepareDir creates dir, or accepts it if it is an empty directory.
func prepareDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return os.MkdirAll(dir, 0o755)
	case err != nil:
		return err
	case len(entries) > 0:
		return fmt.Errorf("%s: %w", dir, ErrNotEmpty)
	}
	return nil
}

// Generate writes a v1 tree into dir (which must not exist or be empty) and
// returns its description.
func Generate(dir string, opt Options) (*Tree, error) {
	opt = opt.withDefaults()
	if err := prepareDir(dir); err != nil {
		return nil, fmt.Errorf("generate tree: %w", err)
	}
	p := newPlan(opt)
	if err := p.write(dir); err != nil {
		return nil, fmt.Errorf("generate tree in %s: %w", dir, err)
	}
	if err := pinMTimes(dir, time.Time{}, Epoch); err != nil {
		return nil, fmt.Errorf("generate tree in %s: %w", dir, err)
	}
	return p.describe(dir), nil
}

// write creates the plan's directories, then its files on all CPUs (each
// file's bytes depend only on the seed and its path), then its symlinks.
func (p *plan) write(dir string) error {
	var files []*node
	for _, n := range p.nodes {
		switch n.typ {
		case fs.ModeDir:
			if err := os.Mkdir(filepath.Join(dir, n.path), 0o755); err != nil {
				return err
			}
		case 0:
			files = append(files, n)
		}
	}
	// biggest first, for balance
	slices.SortStableFunc(files, func(a, b *node) int { return cmp.Compare(b.size, a.size) })
	if err := p.forEach(files, func(g *gen, n *node, buf []byte) ([]byte, error) {
		g.reset(seedOf(p.seed, n.path))
		buf = g.content(buf[:0], n, p)
		n.wrote = int64(len(buf))
		return buf, writeFile(filepath.Join(dir, n.path), buf, n.perm)
	}); err != nil {
		return err
	}
	for _, n := range p.nodes {
		switch n.typ {
		case fs.ModeSymlink:
			if err := os.Symlink(n.target, filepath.Join(dir, n.path)); err != nil {
				return err
			}
		case fs.ModeDir:
			if err := os.Chmod(filepath.Join(dir, n.path), n.perm); err != nil {
				return err
			}
		}
	}
	return nil
}

// forEach runs fn for every node on GOMAXPROCS workers, each with its own
// generator and buffer, and waits for all of them.
func (p *plan) forEach(nodes []*node, fn func(g *gen, n *node, buf []byte) ([]byte, error)) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, runtime.GOMAXPROCS(0))
	for w := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := newGen()
			var buf []byte
			for {
				i := int(next.Add(1) - 1)
				if i >= len(nodes) || errs[w] != nil {
					return
				}
				buf, errs[w] = fn(g, nodes[i], buf)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// writeFile creates path exclusively with exactly perm (whatever the umask).
func writeFile(path string, data []byte, perm fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	return errors.Join(err, f.Close())
}

func (p *plan) describe(dir string) *Tree {
	t := &Tree{Dir: dir}
	for _, n := range p.nodes {
		e := Entry{Path: n.path, Type: n.typ, Perm: n.perm, Target: n.target}
		if n.pkg != nil {
			e.Package = n.pkg.name
		}
		if n.typ == 0 {
			e.Size, e.Model = n.wrote, n.role.model()
			t.Files++
			t.Bytes += n.wrote
			t.ModelBytes[e.Model] += n.wrote
		}
		t.Entries = append(t.Entries, e)
	}
	for _, pk := range p.pkgs {
		pp := Package{Name: pk.name, Version: pk.ver.String()}
		for _, f := range pk.files {
			pp.Paths = append(pp.Paths, f.path)
		}
		slices.Sort(pp.Paths)
		t.Packages = append(t.Packages, pp)
	}
	return t
}

// copyTree copies the tree at src into the empty or absent dst: directories,
// regular files (contents and permissions) and symlinks, each with its
// mtime, as an upgrade in place leaves what it does not touch (a publish
// carries mtimes, so a copy that reset them would change every entry).
func copyTree(src, dst string) error {
	var dirs []string
	buf := make([]byte, 1<<20)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if rel != "." {
				if err := os.Mkdir(to, 0o755); err != nil {
					return err
				}
			}
			dirs = append(dirs, rel)
		case d.Type()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(t, to); err != nil {
				return err
			}
			return setMtime(to, info.ModTime())
		case d.Type().IsRegular():
			if err := copyFile(p, to, info.Mode().Perm(), buf); err != nil {
				return err
			}
			return setMtime(to, info.ModTime())
		default:
			return fmt.Errorf("%s: unsupported file type %v", p, d.Type())
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, d := range slices.Backward(dirs) {
		info, err := os.Stat(filepath.Join(src, d))
		if err != nil {
			return err
		}
		if err := os.Chmod(filepath.Join(dst, d), info.Mode().Perm()); err != nil {
			return err
		}
		if err := setMtime(filepath.Join(dst, d), info.ModTime()); err != nil {
			return err
		}
	}
	return nil
}

// setMtime sets the mtime of p, not following a symlink.
func setMtime(p string, t time.Time) error {
	ts := []unix.Timespec{unix.NsecToTimespec(t.UnixNano()), unix.NsecToTimespec(t.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimensat", Path: p, Err: err}
	}
	return nil
}

func copyFile(from, to string, perm fs.FileMode, buf []byte) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = io.CopyBuffer(out, in, buf)
	if err == nil {
		err = out.Chmod(perm)
	}
	return errors.Join(err, out.Close())
}
