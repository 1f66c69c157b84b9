package treegen

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Change lists what Upgrade touched: relative slash paths of regular files
// and symlinks, each sorted.
type Change struct {
	Modified, Added, Removed []string
}

// Len is the number of touched paths.
func (c *Change) Len() int { return len(c.Modified) + len(c.Added) + len(c.Removed) }

// Upgrade writes into dir2 (which must not exist or be empty) a copy of the
// tree at dir1 changed the way a package upgrade changes a system, touching at
// most maxFiles files (added, removed, modified or replaced), and returns which
// paths changed and how.
//
// It reads the packages from dir1's dpkg database, so it works on any tree
// Generate or Upgrade wrote. It upgrades packages one after the other until the
// budget is spent (about 6 to 12 files per package, plus var/lib/dpkg/status
// once): each gets a new upstream version, rebuilt binaries and libraries (a
// versioned library is renamed and its soname link retargeted), changelog
// entries prepended, and some of: config lines edited, a document rewritten,
// an asset replaced, Python modules edited, a file added, a file removed.
func Upgrade(dir1, dir2 string, seed uint64, maxFiles int) (*Change, error) {
	if info, err := os.Stat(dir1); err != nil {
		return nil, fmt.Errorf("upgrade %s: %w", dir1, err)
	} else if !info.IsDir() {
		return nil, fmt.Errorf("upgrade %s: not a directory", dir1)
	}
	if err := prepareDir(dir2); err != nil {
		return nil, fmt.Errorf("upgrade into %s: %w", dir2, err)
	}
	if err := copyTree(dir1, dir2); err != nil {
		return nil, fmt.Errorf("upgrade: copy %s to %s: %w", dir1, dir2, err)
	}
	was, err := newest(dir2)
	if err != nil {
		return nil, fmt.Errorf("upgrade into %s: %w", dir2, err)
	}
	u := &upgrader{dir: dir2, budget: maxFiles, g: newGen(), seed: seed, touched: map[string]byte{}}
	u.r = newRNG(seedOf(seed, "upgrade"))
	if err := u.run(); err != nil {
		return nil, fmt.Errorf("upgrade %s into %s: %w", dir1, dir2, err)
	}
	if err := pinMTimes(dir2, was, was.Add(24*time.Hour)); err != nil {
		return nil, fmt.Errorf("upgrade into %s: %w", dir2, err)
	}
	return u.change(), nil
}

const (
	touchModified = 'M'
	touchAdded    = 'A'
	touchRemoved  = 'R'
)

type upgrader struct {
	dir     string
	budget  int
	g       *gen
	r       rng
	seed    uint64
	touched map[string]byte
	status  []byte
	targets map[string]bool // paths some symlink points to
}

type upPkg struct {
	name   string
	ver    version
	paths  []string // regular files and symlinks, from the .list
	files  []string // regular files
	elfs   []string
	oldVer version
}

func (u *upgrader) abs(p string) string { return filepath.Join(u.dir, filepath.FromSlash(p)) }

// cost is how many new paths touching ps would add to the change.
func (u *upgrader) cost(ps ...string) int {
	n := 0
	for i, p := range ps {
		if _, ok := u.touched[p]; !ok && !slices.Contains(ps[:i], p) {
			n++
		}
	}
	return n
}

func (u *upgrader) fits(ps ...string) bool { return u.cost(ps...) <= u.budget-u.used() }

func (u *upgrader) used() int { return len(u.touched) }

func (u *upgrader) touch(p string, how byte) {
	switch prev, ok := u.touched[p]; {
	case !ok:
		u.touched[p] = how
	case prev == touchRemoved && how == touchAdded:
		u.touched[p] = touchModified
	case prev == touchAdded && how == touchRemoved:
		delete(u.touched, p) // never mind
	}
}

func (u *upgrader) change() *Change {
	c := &Change{}
	for p, how := range u.touched {
		switch how {
		case touchModified:
			c.Modified = append(c.Modified, p)
		case touchAdded:
			c.Added = append(c.Added, p)
		case touchRemoved:
			c.Removed = append(c.Removed, p)
		}
	}
	slices.Sort(c.Modified)
	slices.Sort(c.Added)
	slices.Sort(c.Removed)
	return c
}

const statusPath = "var/lib/dpkg/status"

func listPath(pkg string) string { return "var/lib/dpkg/info/" + pkg + ".list" }

func (u *upgrader) run() error {
	if u.budget < 2 {
		return nil // too small for a package upgrade; an unchanged copy is one
	}
	var err error
	if u.status, err = os.ReadFile(u.abs(statusPath)); err != nil {
		return fmt.Errorf("read dpkg status: %w", err)
	}
	pkgs, err := u.packages()
	if err != nil {
		return err
	}
	if len(pkgs) == 0 {
		return fmt.Errorf("no packages in %s", statusPath)
	}
	// order: a library package, a program package, then the rest shuffled
	order := make([]*upPkg, 0, len(pkgs))
	pick := func(ok func(*upPkg) bool) {
		var c []int
		for i, p := range pkgs {
			if p != nil && ok(p) {
				c = append(c, i)
			}
		}
		if len(c) > 0 {
			i := c[u.r.intn(len(c))]
			order = append(order, pkgs[i])
			pkgs[i] = nil
		}
	}
	pick(func(p *upPkg) bool { return slices.ContainsFunc(p.elfs, isVersionedLib) })
	pick(func(p *upPkg) bool {
		return slices.ContainsFunc(p.elfs, func(s string) bool { return strings.Contains(s, "bin/") })
	})
	for len(order) < cap(order) {
		pick(func(p *upPkg) bool { return true })
		if len(pkgs) == 0 {
			break
		}
		if !slices.ContainsFunc(pkgs, func(p *upPkg) bool { return p != nil }) {
			break
		}
	}
	if err := u.symlinkTargets(); err != nil {
		return err
	}
	u.touch(statusPath, touchModified)
	for i, p := range order {
		if u.budget-u.used() < 2 {
			break
		}
		if err := u.upgrade(p, i); err != nil {
			return fmt.Errorf("package %s: %w", p.name, err)
		}
	}
	return os.WriteFile(u.abs(statusPath), u.status, 0o644)
}

func isVersionedLib(p string) bool {
	base := path.Base(p)
	i := strings.Index(base, ".so.")
	return strings.HasPrefix(base, "lib") && i > 0 && strings.Count(base[i+4:], ".") == 2
}

// packages reads the dpkg database.
func (u *upgrader) packages() ([]*upPkg, error) {
	var pkgs []*upPkg
	for rec := range bytes.SplitSeq(u.status, []byte("\n\n")) {
		name := field(rec, "Package")
		if name == "" {
			continue
		}
		v, ok := parseVersion(field(rec, "Version"))
		if !ok {
			continue
		}
		list, err := os.ReadFile(u.abs(listPath(name)))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, err
		}
		p := &upPkg{name: name, ver: v, oldVer: v}
		for line := range strings.SplitSeq(string(list), "\n") {
			rel := strings.TrimPrefix(line, "/")
			if rel == "" || rel == "." || rel == line {
				continue
			}
			info, err := os.Lstat(u.abs(rel))
			if err != nil || info.IsDir() {
				continue
			}
			p.paths = append(p.paths, rel)
			if info.Mode().IsRegular() {
				p.files = append(p.files, rel)
				if info.Size() > 64 && isELF(u.abs(rel)) {
					p.elfs = append(p.elfs, rel)
				}
			}
		}
		// versioned libraries first, then programs: they are what an upgrade rebuilds
		rank := func(f string) int {
			switch {
			case isVersionedLib(f):
				return 0
			case strings.Contains(f, "bin/"):
				return 1
			}
			return 2
		}
		slices.SortStableFunc(p.elfs, func(a, b string) int { return rank(a) - rank(b) })
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

func isELF(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [4]byte
	_, err = f.Read(b[:])
	return err == nil && string(b[:]) == "\x7fELF"
}

// field returns the value of a one-line field of a deb822 record.
func field(rec []byte, name string) string {
	for line := range bytes.SplitSeq(rec, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte(name+": ")); ok {
			return string(v)
		}
	}
	return ""
}

func (u *upgrader) symlinkTargets() error {
	u.targets = map[string]bool{}
	return filepath.WalkDir(u.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return err
		}
		t, err := os.Readlink(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(u.dir, filepath.Join(filepath.Dir(p), t))
		if err == nil {
			u.targets[filepath.ToSlash(rel)] = true
		}
		return nil
	})
}

// upgrade applies one package's upgrade within the remaining budget.
func (u *upgrader) upgrade(p *upPkg, index int) error {
	r := &u.r
	p.ver = p.oldVer.newer(r)
	var added, removed []string
	listP := listPath(p.name)

	// changelog first: the upgrade is real only with a new entry
	for _, f := range p.files {
		if strings.HasSuffix(f, "/changelog.Debian") && u.fits(f) {
			if err := u.edit(f, func(b []byte) []byte { return u.changelog(b, p) }); err != nil {
				return err
			}
			break
		}
	}
	changePct := 5 + r.intn(21)
	for i, f := range p.elfs {
		if i >= 3 {
			break
		}
		if isVersionedLib(f) && strings.HasSuffix(f, "."+p.oldVer.upstream()) {
			to := strings.TrimSuffix(f, p.oldVer.upstream()) + p.ver.upstream()
			soname := strings.TrimSuffix(f, "."+p.oldVer.upstream()) + "." + strconv.Itoa(p.oldVer.maj)
			if _, err := os.Lstat(u.abs(to)); err == nil || !u.fits(f, to, soname, listP) {
				continue
			}
			if err := u.rebuild(f, to, p, changePct); err != nil {
				return err
			}
			added, removed = append(added, to), append(removed, f)
			if info, err := os.Lstat(u.abs(soname)); err == nil && info.Mode()&fs.ModeSymlink != 0 {
				if err := os.Remove(u.abs(soname)); err != nil {
					return err
				}
				if err := os.Symlink(path.Base(to), u.abs(soname)); err != nil {
					return err
				}
				u.touch(soname, touchModified)
			}
			continue
		}
		if u.fits(f) {
			if err := u.rebuild(f, f, p, changePct); err != nil {
				return err
			}
		}
	}
	choose := func(ok func(string) bool) string {
		var c []string
		for _, f := range p.files {
			if _, done := u.touched[f]; !done && ok(f) && !u.targets[f] {
				c = append(c, f)
			}
		}
		if len(c) == 0 {
			return ""
		}
		return c[r.intn(len(c))]
	}
	if index == 0 || r.pct(60) {
		if f := choose(func(f string) bool {
			return strings.HasPrefix(f, "etc/") && !isELF(u.abs(f)) && !strings.Contains(f, "ssh_host")
		}); f != "" && u.fits(f) {
			if err := u.edit(f, u.editConfig); err != nil {
				return err
			}
			u.status = setConffile(u.status, p.name, f, seedOf(u.seed, f, p.ver.String()))
		}
	}
	if index < 2 || r.pct(50) {
		if f := choose(func(f string) bool {
			return strings.HasSuffix(f, "README.md") || strings.HasSuffix(f, ".txt") && strings.HasPrefix(f, "usr/share/")
		}); f != "" && u.fits(f) {
			if err := u.edit(f, func(b []byte) []byte { return u.rewrite(f, b, p) }); err != nil {
				return err
			}
		}
	}
	if r.pct(30) {
		if f := choose(func(f string) bool { return strings.HasSuffix(f, ".gz") || strings.HasSuffix(f, ".png") }); f != "" && u.fits(f) {
			if err := u.edit(f, func(b []byte) []byte { return u.replaceAsset(f, b) }); err != nil {
				return err
			}
		}
	}
	for range r.skewed(4) {
		if f := choose(func(f string) bool { return strings.HasSuffix(f, ".py") }); f != "" && u.fits(f) {
			if err := u.edit(f, u.editPython); err != nil {
				return err
			}
		}
	}
	if index == 1 || r.pct(30) {
		if f := u.newFile(p); f != "" && !slices.Contains(p.paths, f) && u.fits(f, listP) {
			if err := u.add(f, p); err != nil {
				return err
			}
			added = append(added, f)
		}
	}
	if index == 1 || r.pct(30) {
		if f := choose(func(f string) bool {
			return strings.HasSuffix(f, ".mo") || strings.HasSuffix(f, ".py") && !strings.HasSuffix(f, "__init__.py") ||
				strings.HasPrefix(f, "usr/share/") && !strings.HasPrefix(f, "usr/share/doc/") && !strings.HasPrefix(f, "usr/share/zoneinfo/")
		}); f != "" && u.fits(f, listP) {
			if err := os.Remove(u.abs(f)); err != nil {
				return err
			}
			u.touch(f, touchRemoved)
			removed = append(removed, f)
		}
	}
	for _, f := range p.files {
		if strings.HasSuffix(f, ".egg-info/PKG-INFO") && u.fits(f) {
			if err := u.edit(f, func(b []byte) []byte {
				return bytes.Replace(b, []byte("Version: "+p.oldVer.upstream()+"\n"), []byte("Version: "+p.ver.upstream()+"\n"), 1)
			}); err != nil {
				return err
			}
		}
	}
	if len(added)+len(removed) > 0 {
		if err := u.edit(listP, func(b []byte) []byte { return updateList(b, added, removed) }); err != nil {
			return err
		}
	}
	u.status = setVersion(u.status, p.name, p.ver.String())
	return nil
}

// edit rewrites file p through fn and records it as modified.
func (u *upgrader) edit(p string, fn func([]byte) []byte) error {
	b, err := os.ReadFile(u.abs(p))
	if err != nil {
		return err
	}
	u.g.reset(seedOf(u.seed, "edit", p))
	return u.replace(p, fn(b), touchModified)
}

// replace writes data to p (keeping its permissions) and records how.
func (u *upgrader) replace(p string, data []byte, how byte) error {
	perm := fs.FileMode(0o644)
	if info, err := os.Lstat(u.abs(p)); err == nil {
		perm = info.Mode().Perm()
	}
	if err := os.Remove(u.abs(p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := writeFile(u.abs(p), data, perm); err != nil {
		return err
	}
	u.touch(p, how)
	return nil
}

func (u *upgrader) rebuild(from, to string, p *upPkg, changePct int) error {
	b, err := os.ReadFile(u.abs(from))
	if err != nil {
		return err
	}
	info, err := os.Lstat(u.abs(from))
	if err != nil {
		return err
	}
	u.g.reset(seedOf(u.seed, "rebuild", from))
	nb, err := u.g.rebuildELF(b, p.name, p.oldVer, p.ver, changePct)
	if err != nil {
		return fmt.Errorf("rebuild %s: %w", from, err)
	}
	if from != to {
		if err := os.Remove(u.abs(from)); err != nil {
			return err
		}
		u.touch(from, touchRemoved)
		if err := writeFile(u.abs(to), nb, info.Mode().Perm()); err != nil {
			return err
		}
		u.touch(to, touchAdded)
		return nil
	}
	return u.replace(to, nb, touchModified)
}

// changelog prepends the new release's entry.
func (u *upgrader) changelog(old []byte, p *upPkg) []byte {
	maint := "Debian Maintainer <maint@debian.org>"
	day := 19700
	if i := bytes.Index(old, []byte("\n -- ")); i >= 0 {
		line := old[i+5:]
		if j := bytes.IndexByte(line, '\n'); j >= 0 {
			line = line[:j]
		}
		if j := bytes.Index(line, []byte("  ")); j > 0 {
			maint = string(line[:j])
			if t, err := time.Parse(time.RFC1123Z, string(line[j+2:])); err == nil {
				day = int(t.Unix() / 86400)
			}
		}
	}
	g := u.g
	day += 14 + g.r.skewed(200)
	nb := g.changelogEntry(nil, p.name, p.ver, maint, day, false)
	return append(nb, old...)
}

// editConfig changes the values of a few settings and may add a commented
// setting.
func (u *upgrader) editConfig(b []byte) []byte {
	g := u.g
	g.makeIdents(8)
	lines := bytes.SplitAfter(b, []byte("\n"))
	var settings []int
	for i, l := range lines {
		if len(l) > 2 && l[0] != '#' && l[0] != '[' && l[0] != '\n' && l[0] != ' ' {
			settings = append(settings, i)
		}
	}
	for range 1 + g.r.skewed(4) {
		if len(settings) == 0 {
			break
		}
		i := settings[g.r.intn(len(settings))]
		l := lines[i]
		cut := bytes.IndexAny(l, "= :")
		if cut < 0 {
			continue
		}
		for cut+1 < len(l) && (l[cut+1] == ' ' || l[cut+1] == '=') {
			cut++
		}
		nl := append([]byte(nil), l[:cut+1]...)
		nl = g.value(nl)
		lines[i] = append(nl, '\n')
	}
	var out []byte
	at := g.r.intn(len(lines) + 1)
	for i, l := range lines {
		if i == at {
			out = g.config(out, 1)
		}
		out = append(out, l...)
	}
	if at == len(lines) {
		out = g.config(out, 1)
	}
	return out
}

// rewrite replaces a document with a new one of about the same size.
func (u *upgrader) rewrite(p string, old []byte, pk *upPkg) []byte {
	g := u.g
	n := len(old) * (80 + g.r.intn(50)) / 100
	if strings.HasSuffix(p, ".md") {
		title := pk.name
		if i := bytes.IndexByte(old, '\n'); i > 0 {
			title = string(old[:i])
		}
		return g.markdown(nil, n, title)
	}
	return g.prose(nil, n, 72+g.r.intn(8), "")
}

func (u *upgrader) replaceAsset(p string, old []byte) []byte {
	g := u.g
	n := len(old) * (90 + g.r.intn(30)) / 100
	if strings.HasSuffix(p, ".png") {
		return g.png(nil, n)
	}
	return g.gz(nil, n)
}

// editPython replaces a few runs of lines with new code at the same depth.
func (u *upgrader) editPython(b []byte) []byte {
	g := u.g
	g.makeIdents(20)
	lines := bytes.SplitAfter(b, []byte("\n"))
	for range 1 + g.r.skewed(3) {
		if len(lines) < 4 {
			break
		}
		i := g.r.intn(len(lines) - 2)
		n := min(1+g.r.skewed(12), len(lines)-i)
		depth := 0
		for depth*4 < len(lines[i]) && bytes.HasPrefix(lines[i][depth*4:], []byte("    ")) {
			depth++
		}
		block := g.pyBlock(nil, max(depth, 1), 1+g.r.skewed(8))
		nl := slices.Clone(lines[:i])
		nl = append(nl, bytes.SplitAfter(block, []byte("\n"))...)
		lines = append(nl, lines[i+n:]...)
	}
	return bytes.Join(lines, nil)
}

// newFile picks a path for a file the new release adds.
func (u *upgrader) newFile(p *upPkg) string {
	w := string(lang().words[64+u.r.intn(vocabSize-64)])
	for _, f := range p.files {
		if strings.HasSuffix(f, ".py") {
			return path.Dir(f) + "/" + w + ".py"
		}
	}
	for _, f := range p.files {
		if strings.HasPrefix(f, "usr/share/") && !strings.HasPrefix(f, "usr/share/doc/") && !strings.HasPrefix(f, "usr/share/locale/") && !strings.HasPrefix(f, "usr/share/man/") {
			return path.Dir(f) + "/" + w + [...]string{".conf", ".txt", ".png"}[u.r.intn(3)]
		}
	}
	return "usr/share/doc/" + p.name + "/NEWS.md"
}

func (u *upgrader) add(f string, p *upPkg) error {
	g := u.g
	g.reset(seedOf(u.seed, "add", f))
	var b []byte
	switch {
	case strings.HasSuffix(f, ".py"):
		b = g.python(nil, 2000+g.r.intn(10000), path.Base(path.Dir(f)))
	case strings.HasSuffix(f, ".conf"):
		b = g.config(nil, 500+g.r.intn(4000))
	case strings.HasSuffix(f, ".png"):
		b = g.png(nil, 1000+g.r.intn(8000))
	case strings.HasSuffix(f, ".md"):
		b = g.markdown(nil, 1000+g.r.intn(4000), p.name)
	default:
		b = g.prose(nil, 1000+g.r.intn(6000), 76, "")
	}
	if err := os.MkdirAll(filepath.Dir(u.abs(f)), 0o755); err != nil {
		return err
	}
	return u.replace(f, b, touchAdded)
}

// updateList applies added and removed paths to a dpkg .list.
func updateList(b []byte, added, removed []string) []byte {
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	set := map[string]bool{}
	for _, l := range lines {
		set[l] = true
	}
	for _, r := range removed {
		delete(set, "/"+r)
	}
	for _, a := range added {
		for d := a; d != "."; d = path.Dir(d) {
			set["/"+d] = true
		}
	}
	delete(set, "/.")
	out := []string{"/."}
	for l := range set {
		out = append(out, l)
	}
	slices.Sort(out[1:])
	return []byte(strings.Join(out, "\n") + "\n")
}

// record returns the bounds of package pkg's record in status.
func record(status []byte, pkg string) (int, int) {
	i := bytes.Index(status, []byte("Package: "+pkg+"\n"))
	for i > 0 && status[i-1] != '\n' {
		j := bytes.Index(status[i+1:], []byte("Package: "+pkg+"\n"))
		if j < 0 {
			return -1, -1
		}
		i += 1 + j
	}
	if i < 0 {
		return -1, -1
	}
	end := bytes.Index(status[i:], []byte("\n\n"))
	if end < 0 {
		return i, len(status)
	}
	return i, i + end + 1
}

func setVersion(status []byte, pkg, ver string) []byte {
	s, e := record(status, pkg)
	if s < 0 {
		return status
	}
	rec := status[s:e]
	i := bytes.Index(rec, []byte("\nVersion: "))
	if i < 0 {
		return status
	}
	j := bytes.IndexByte(rec[i+1:], '\n')
	out := slices.Clone(status[:s+i+1])
	out = append(out, "Version: "+ver...)
	return append(out, status[s+i+1+j:]...)
}

func setConffile(status []byte, pkg, file string, sum uint64) []byte {
	s, e := record(status, pkg)
	if s < 0 {
		return status
	}
	key := []byte(" /" + file + " ")
	i := bytes.Index(status[s:e], key)
	if i < 0 {
		return status
	}
	at := s + i + len(key)
	if at+32 > len(status) {
		return status
	}
	out := slices.Clone(status)
	copy(out[at:], appendHex(appendHex(nil, sum), mix64(sum)))
	return out
}
