package treegen

import (
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// A plan is the whole tree before any byte is written: every directory,
// file (with its role and size) and symlink, and the packages that own them.

// role says which generator makes a file.
type role uint8

const (
	roleEmpty role = iota
	roleExec
	roleLib
	roleProse
	roleMarkdown
	roleChangelog
	roleCopyright
	roleConfig
	rolePython
	roleShell
	roleStatus
	roleList
	roleRecords
	roleMo
	roleTZif
	roleGz
	rolePNG
	roleRandom
	roleSSHKey
	roleXML
)

// Model is a content model: how a file's bytes are made.
type Model uint8

const (
	Empty  Model = iota // no bytes
	Text                // the pseudo-language: prose, changelogs, configs, sources, records, catalogs
	Code                // ELF-like binaries and libraries
	Random              // already-compressed assets: incompressible
	numModels
)

func (m Model) String() string {
	return [...]string{"empty", "text", "code", "random"}[m]
}

func (r role) model() Model {
	switch r {
	case roleEmpty:
		return Empty
	case roleExec, roleLib:
		return Code
	case roleGz, rolePNG, roleRandom:
		return Random
	}
	return Text
}

type node struct {
	path   string
	typ    fs.FileMode // 0, fs.ModeDir or fs.ModeSymlink
	perm   fs.FileMode
	target string
	role   role
	size   int64 // planned
	wrote  int64 // written
	fixed  bool  // size is intrinsic, not scaled
	pkg    *pkgInfo
	prog   string // for binaries: the program name shown in messages
}

type pkgInfo struct {
	name    string
	base    string
	ver     version
	maint   string
	section string
	day     int
	files   []*node
	depends []string
	seed    uint64
}

type plan struct {
	seed  uint64
	r     rng
	nodes []*node
	index map[string]*node
	pkgs  []*pkgInfo
	used  map[string]bool // package base names and alternatives
	files int
}

const triplet = "x86_64-linux-gnu"

func (p *plan) dir(dir string, perm fs.FileMode) {
	if dir == "." || dir == "" {
		return
	}
	if n, ok := p.index[dir]; ok {
		if perm != 0 {
			n.perm = perm
		}
		return
	}
	p.dir(path.Dir(dir), 0)
	if perm == 0 {
		perm = 0o755
	}
	n := &node{path: dir, typ: fs.ModeDir, perm: perm}
	p.nodes = append(p.nodes, n)
	p.index[dir] = n
}

func (p *plan) add(pkg *pkgInfo, n *node) *node {
	if _, dup := p.index[n.path]; dup {
		return nil
	}
	p.dir(path.Dir(n.path), 0)
	p.nodes = append(p.nodes, n)
	p.index[n.path] = n
	if pkg != nil {
		n.pkg = pkg
		pkg.files = append(pkg.files, n)
	}
	if n.typ == 0 {
		p.files++
	}
	return n
}

// file adds a regular file with a log-normal planned size (sigma in 1/256
// doublings).
func (p *plan) file(pkg *pkgInfo, name string, r role, perm fs.FileMode, median int64, sigma int) *node {
	size := int64(0)
	if r != roleEmpty {
		size = max(p.r.logNormal(median, sigma), 64)
	}
	return p.add(pkg, &node{path: name, perm: perm, role: r, size: size})
}

func (p *plan) fixedFile(pkg *pkgInfo, name string, r role, perm fs.FileMode, size int64) *node {
	return p.add(pkg, &node{path: name, perm: perm, role: r, size: size, fixed: true})
}

// link adds a relative symlink at name pointing to the tree path to.
func (p *plan) link(pkg *pkgInfo, name, to string) *node {
	return p.add(pkg, &node{path: name, typ: fs.ModeSymlink, perm: 0o777, target: relTarget(name, to)})
}

// relTarget is the relative path from the directory of link to target.
func relTarget(link, target string) string {
	from := strings.Split(path.Dir(link), "/")
	to := strings.Split(target, "/")
	if path.Dir(link) == "." {
		from = nil
	}
	i := 0
	for i < len(from) && i < len(to)-1 && from[i] == to[i] {
		i++
	}
	var b strings.Builder
	for range len(from) - i {
		b.WriteString("../")
	}
	b.WriteString(strings.Join(to[i:], "/"))
	return b.String()
}

// name returns a fresh word for a package or program.
func (p *plan) name() string {
	l := lang()
	for {
		w := string(l.words[64+p.r.intn(vocabSize-64)])
		if len(w) < 3 {
			continue
		}
		if p.r.pct(15) {
			w2 := string(l.words[64+p.r.intn(vocabSize-64)])
			if len(w2) >= 3 {
				w += "-" + w2
			}
		}
		if !p.used[w] {
			p.used[w] = true
			return w
		}
	}
}

func (p *plan) newPkg(name, base, section string) *pkgInfo {
	r := &p.r
	pk := &pkgInfo{
		name: name, base: base, section: section,
		ver:  version{r.skewed(10), r.skewed(25), r.skewed(16), 1 + r.skewed(5)},
		day:  19000 + r.intn(800),
		seed: seedOf(p.seed, "pkg", name),
	}
	pk.maint = person(seedOf(p.seed, "maint", strconv.Itoa(r.intn(40))))
	for _, q := range p.pkgs {
		if strings.HasPrefix(q.name, "lib") && r.pct(12) && len(pk.depends) < 6 {
			pk.depends = append(pk.depends, q.name)
		}
	}
	p.pkgs = append(p.pkgs, pk)
	return pk
}

// docs adds /usr/share/doc/<pkg>/.
func (p *plan) docs(pk *pkgInfo, readme bool) {
	d := "usr/share/doc/" + pk.name + "/"
	p.file(pk, d+"changelog.Debian", roleChangelog, 0o644, 5000, 400)
	p.file(pk, d+"copyright", roleCopyright, 0o644, 2500, 300)
	if readme || p.r.pct(30) {
		p.file(pk, d+"README.md", roleMarkdown, 0o644, 2500, 400)
	}
	if p.r.pct(25) {
		p.file(pk, d+"NEWS.gz", roleGz, 0o644, 3000, 350)
	}
	if p.r.pct(35) {
		p.file(pk, d+"changelog.gz", roleGz, 0o644, 6000, 400)
	}
}

func (p *plan) translations(pk *pkgInfo, domain string) {
	n := 3 + p.r.skewed(len(langs)-3)
	size := p.r.logNormal(3000, 300)
	for _, lg := range langs[:n] {
		nd := p.file(pk, "usr/share/locale/"+lg+"/LC_MESSAGES/"+domain+".mo", roleMo, 0o644, 0, 0)
		if nd != nil {
			nd.size = size + int64(p.r.intn(int(size/8)+1))
		}
	}
}

var alternatives = []string{"editor", "pager", "awk", "rename", "x-terminal-emulator", "www-browser", "nc", "rmt",
	"mt", "vi", "view", "ex", "infobrowser", "rsh", "rlogin", "telnet", "ftp", "write", "lzma", "unxz"}

func (p *plan) program(pk *pkgInfo) {
	r := &p.r
	nbin := 1 + r.skewed(4)
	sbin := r.pct(15)
	var bins []string
	for i := range nbin {
		name := pk.base
		if i > 0 {
			name += "-" + string(lang().words[64+r.intn(2000)])
		}
		dir, man := "usr/bin/", "man1"
		if sbin {
			dir, man = "usr/sbin/", "man8"
		}
		if n := p.file(pk, dir+name, roleExec, 0o755, 48<<10, 560); n != nil {
			n.prog = name
			bins = append(bins, dir+name)
			p.file(pk, "usr/share/man/"+man+"/"+name+"."+man[3:]+".gz", roleGz, 0o644, 2500, 330)
		}
		if r.pct(25) {
			p.file(pk, "usr/share/bash-completion/completions/"+name, roleShell, 0o644, 2500, 300)
		}
	}
	p.docs(pk, false)
	etc := "etc/" + pk.base + "/"
	if r.pct(45) {
		p.file(pk, etc+pk.base+".conf", roleConfig, 0o644, 2000, 400)
		for range r.skewed(4) {
			p.file(pk, etc+string(lang().words[64+r.intn(2000)])+".conf", roleConfig, 0o644, 1500, 400)
		}
	}
	if r.pct(25) {
		p.file(pk, "etc/default/"+pk.base, roleConfig, 0o644, 800, 300)
	}
	if r.pct(12) {
		p.file(pk, "etc/init.d/"+pk.base, roleShell, 0o755, 3000, 250)
	}
	if r.pct(8) {
		p.file(pk, "etc/cron.daily/"+pk.base, roleShell, 0o755, 600, 250)
	}
	if r.pct(25) {
		p.file(pk, "usr/lib/systemd/system/"+pk.base+".service", roleConfig, 0o644, 700, 200)
	}
	if r.pct(20) {
		p.file(pk, "usr/share/applications/"+pk.base+".desktop", roleConfig, 0o644, 1500, 200)
		p.file(pk, "usr/share/metainfo/"+pk.base+".metainfo.xml", roleXML, 0o644, 4000, 300)
	}
	if r.pct(25) {
		p.translations(pk, pk.base)
	}
	if r.pct(30) {
		p.shareData(pk, "usr/share/"+pk.base+"/", 1+r.skewed(8))
	}
	if r.pct(12) {
		for range 1 + r.skewed(3) {
			name := string(lang().words[64+r.intn(2000)])
			if n := p.file(pk, "usr/lib/"+pk.base+"/"+name, roleExec, 0o755, 24<<10, 400); n != nil {
				n.prog = name
			}
		}
	}
	if r.pct(10) {
		if r.pct(50) {
			p.file(pk, "var/lib/"+pk.base+"/state", roleConfig, 0o644, 300, 300)
		} else {
			p.dir("var/lib/"+pk.base, 0o755)
		}
	}
	if r.pct(15) && len(bins) > 0 {
		alias := string(lang().words[64+r.intn(3000)])
		if !p.used[alias] {
			p.used[alias] = true
			p.link(pk, path.Dir(bins[0])+"/"+alias, bins[0])
		}
	}
	if r.pct(6) && len(bins) > 0 {
		alt := alternatives[r.intn(len(alternatives))]
		if !p.used["alt:"+alt] {
			p.used["alt:"+alt] = true
			p.link(pk, "usr/bin/"+alt, "etc/alternatives/"+alt)
			p.link(nil, "etc/alternatives/"+alt, bins[0])
		}
	}
	if r.pct(30) {
		p.file(pk, "var/lib/dpkg/info/"+pk.name+".postinst", roleShell, 0o755, 900, 250)
	}
}

func (p *plan) shareData(pk *pkgInfo, dir string, n int) {
	r := &p.r
	for range n {
		sub := ""
		if r.pct(40) {
			sub = string(lang().words[64+r.intn(500)]) + "/"
		}
		name := dir + sub + string(lang().words[64+r.intn(3000)])
		switch k := r.intn(10); {
		case k < 3:
			p.file(pk, name+".png", rolePNG, 0o644, 4000, 500)
		case k < 4:
			p.file(pk, name+".ogg", roleRandom, 0o644, 40000, 450)
		case k < 5:
			p.file(pk, name+".conf", roleConfig, 0o644, 3000, 400)
		case k < 7:
			p.file(pk, name+".xml", roleXML, 0o644, 6000, 450)
		case k < 8:
			p.file(pk, name+".txt", roleProse, 0o644, 4000, 450)
		case k < 9:
			p.file(pk, name+".gz", roleGz, 0o644, 8000, 450)
		default:
			p.file(pk, name, roleEmpty, 0o644, 0, 0)
		}
	}
}

func libName(base string, v version) string {
	return "lib" + base + ".so." + v.upstream()
}

func (p *plan) library(pk *pkgInfo) {
	r := &p.r
	d := "usr/lib/" + triplet + "/"
	bases := []string{pk.base}
	if r.pct(20) {
		bases = append(bases, pk.base+"-"+string(lang().words[64+r.intn(2000)]))
	}
	for _, b := range bases {
		real := d + libName(b, pk.ver)
		if n := p.file(pk, real, roleLib, 0o644, 96<<10, 590); n != nil {
			n.prog = "lib" + b
		}
		soname := d + "lib" + b + ".so." + strconv.Itoa(pk.ver.maj)
		p.link(pk, soname, real)
		if r.pct(50) {
			p.link(pk, d+"lib"+b+".so", soname)
		}
	}
	if r.pct(20) {
		for range 1 + r.skewed(6) {
			name := string(lang().words[64+r.intn(3000)])
			if n := p.file(pk, d+pk.base+"/plugins/"+name+".so", roleLib, 0o644, 30<<10, 400); n != nil {
				n.prog = name
			}
		}
	}
	p.docs(pk, false)
	if r.pct(15) {
		p.translations(pk, "lib"+pk.base)
	}
}

func (p *plan) python(pk *pkgInfo) {
	r := &p.r
	d := "usr/lib/python3/dist-packages/" + pk.base + "/"
	modules := func(dir string, n int) {
		if r.pct(30) {
			p.file(pk, dir+"__init__.py", roleEmpty, 0o644, 0, 0)
		} else {
			p.file(pk, dir+"__init__.py", rolePython, 0o644, 1500, 400)
		}
		for range n {
			p.file(pk, dir+string(lang().words[64+r.intn(3000)])+".py", rolePython, 0o644, 6000, 420)
		}
	}
	modules(d, 2+r.skewed(24))
	for range r.skewed(4) {
		modules(d+string(lang().words[64+r.intn(3000)])+"/", 1+r.skewed(10))
	}
	if r.pct(30) {
		p.file(pk, d+"py.typed", roleEmpty, 0o644, 0, 0)
	}
	e := "usr/lib/python3/dist-packages/" + pk.base + ".egg-info/"
	p.file(pk, e+"PKG-INFO", roleRecords, 0o644, 1500, 300)
	p.file(pk, e+"top_level.txt", roleRecords, 0o644, 64, 0)
	p.file(pk, e+"dependency_links.txt", roleEmpty, 0o644, 0, 0)
	if r.pct(25) {
		p.file(pk, "usr/bin/"+pk.base, rolePython, 0o755, 800, 200)
	}
	p.docs(pk, r.pct(50))
}

func (p *plan) dataPkg(pk *pkgInfo) {
	r := &p.r
	p.shareData(pk, "usr/share/"+pk.base+"/", 3+r.skewed(28))
	if r.pct(50) {
		for _, s := range []string{"16x16", "32x32", "48x48", "128x128", "scalable"}[:2+r.intn(3)] {
			p.file(pk, "usr/share/icons/hicolor/"+s+"/apps/"+pk.base+".png", rolePNG, 0o644, 3000, 400)
		}
	}
	p.docs(pk, false)
}

// base adds the parts every Debian system has.
func (p *plan) base(files int) {
	r := &p.r
	for _, d := range []string{"boot", "dev", "home", "media", "mnt", "opt", "proc", "run", "srv", "sys", "tmp",
		"var/tmp", "var/cache/apt/archives/partial", "var/log/apt", "var/mail", "var/spool/cron", "usr/local/bin",
		"usr/local/include", "usr/local/lib", "usr/local/sbin", "usr/local/share", "usr/local/src", "usr/src",
		"etc/opt", "usr/games", "usr/lib64", "usr/sbin", "usr/bin"} {
		p.dir(d, 0o755)
	}
	p.dir("root", 0o700)
	for _, l := range [][2]string{{"bin", "usr/bin"}, {"sbin", "usr/sbin"}, {"lib", "usr/lib"}, {"lib64", "usr/lib64"}} {
		p.link(nil, l[0], l[1])
	}

	bf := p.newPkg("base-files", "base-files", "admin")
	for _, f := range []string{"etc/issue", "etc/issue.net", "etc/debian_version", "etc/hostname", "etc/hosts",
		"etc/fstab", "etc/motd", "etc/nsswitch.conf", "etc/ld.so.conf", "etc/ld.so.conf.d/" + triplet + ".conf",
		"etc/passwd", "etc/group", "etc/host.conf", "etc/timezone", "etc/shells", "usr/lib/os-release"} {
		p.fixedFile(bf, f, roleRecords, 0o644, 200)
	}
	p.fixedFile(bf, "etc/shadow", roleRecords, 0o640, 600)
	p.fixedFile(bf, "etc/gshadow", roleRecords, 0o640, 400)
	p.file(bf, "etc/profile", roleShell, 0o644, 800, 100)
	p.file(bf, "etc/bash.bashrc", roleShell, 0o644, 2000, 100)
	p.file(bf, "etc/ld.so.cache", roleMo, 0o644, 30000, 200)
	for _, f := range []string{"etc/environment", "etc/subuid", "etc/subgid", "var/log/lastlog", "var/log/wtmp",
		"var/log/btmp", "var/log/faillog", "var/lib/dpkg/lock", "var/lib/dpkg/triggers/Lock"} {
		p.file(bf, f, roleEmpty, 0o644, 0, 0)
	}
	p.link(bf, "etc/os-release", "usr/lib/os-release")
	p.docs(bf, false)

	sys := p.newPkg("openssh-server", "sshd", "net")
	for _, k := range []string{"ed25519", "rsa", "ecdsa"} {
		p.fixedFile(sys, "etc/ssh/ssh_host_"+k+"_key", roleSSHKey, 0o600, 400)
		p.fixedFile(sys, "etc/ssh/ssh_host_"+k+"_key.pub", roleRecords, 0o644, 100)
	}
	p.file(sys, "etc/ssh/sshd_config", roleConfig, 0o644, 3300, 50)
	p.fixedFile(sys, "var/lib/systemd/random-seed", roleRandom, 0o600, 512)
	p.program(sys)

	libc := p.newPkg("libc6", "c", "libs")
	libc.ver = version{2, 36, 9, 1}
	d := "usr/lib/" + triplet + "/"
	for _, l := range []struct {
		name string
		size int64
	}{{"libc.so.6", 1900 << 10}, {"ld-linux-x86-64.so.2", 200 << 10}, {"libm.so.6", 900 << 10},
		{"libresolv.so.2", 70 << 10}, {"libdl.so.2", 16 << 10}, {"librt.so.1", 16 << 10}, {"libpthread.so.0", 16 << 10}} {
		n := p.file(libc, d+l.name, roleLib, 0o755, l.size, 40)
		n.prog = l.name
	}
	p.link(libc, "usr/lib64/ld-linux-x86-64.so.2", d+"ld-linux-x86-64.so.2")
	for range max(files/60, 4) {
		name := strings.ToUpper(string(lang().words[64+r.intn(3000)])) + "-" + strconv.Itoa(1+r.skewed(20))
		if n := p.file(libc, d+"gconv/"+name+".so", roleLib, 0o644, 20<<10, 200); n != nil {
			n.prog = name
		}
	}
	p.file(libc, d+"gconv/gconv-modules", roleConfig, 0o644, 50000, 100)
	p.docs(libc, false)
	p.translations(libc, "libc")

	core := p.newPkg("coreutils", "coreutils", "utils")
	for range max(files/40, 8) {
		name := p.name()
		if n := p.file(core, "usr/bin/"+name, roleExec, 0o755, 48<<10, 300); n != nil {
			n.prog = name
		}
	}
	p.docs(core, true)
	p.translations(core, "coreutils")

	tz := p.newPkg("tzdata", "tzdata", "localization")
	for range max(files/40, 8) {
		region := [...]string{"Europe", "America", "Asia", "Africa", "Australia", "Pacific", "Etc"}[r.skewed(7)]
		name := string(lang().words[64+r.intn(3000)])
		p.file(tz, "usr/share/zoneinfo/"+region+"/"+strings.ToUpper(name[:1])+name[1:], roleTZif, 0o644, 1500, 200)
	}
	p.fixedFile(tz, "usr/share/zoneinfo/Etc/UTC", roleTZif, 0o644, 120)
	p.link(tz, "etc/localtime", "usr/share/zoneinfo/Etc/UTC")
	p.docs(tz, false)
}

// newPlan lays out a tree of about opt.Files files.
func newPlan(opt Options) *plan {
	p := &plan{seed: opt.Seed, r: newRNG(seedOf(opt.Seed, "plan")), index: map[string]*node{}, used: map[string]bool{}}
	p.base(opt.Files)
	for p.files+len(p.pkgs)+2 < opt.Files { // each package adds a .list
		r := &p.r
		base := p.name()
		switch k := r.intn(100); {
		case k < 42:
			p.program(p.newPkg(base, base, [...]string{"utils", "admin", "net", "misc", "devel"}[r.intn(5)]))
		case k < 72:
			pk := p.newPkg("", base, "libs")
			pk.name = "lib" + base + strconv.Itoa(pk.ver.maj)
			p.library(pk)
		case k < 88:
			p.python(p.newPkg("python3-"+base, base, "python"))
		default:
			p.dataPkg(p.newPkg(base+"-data", base, "misc"))
		}
	}
	// dpkg's database, now that every package is known
	var total int64
	for _, pk := range p.pkgs {
		p.fixedFile(pk, "var/lib/dpkg/info/"+pk.name+".list", roleList, 0o644, int64(60*len(pk.files)))
		total += 700
	}
	p.fixedFile(nil, "var/lib/dpkg/status", roleStatus, 0o644, total)
	p.fixedFile(nil, "var/lib/apt/extended_states", roleRecords, 0o644, int64(60*len(p.pkgs)))
	p.scale(opt.Bytes)
	slices.SortFunc(p.nodes, func(a, b *node) int { return strings.Compare(a.path, b.path) })
	return p
}

// Byte shares of the content models in a root filesystem.
var modelShare = [numModels]int64{Text: 29, Code: 58, Random: 13}

// scale multiplies the planned sizes of each model so the tree totals about
// bytes, keeping the log-normal shape, and caps single files.
func (p *plan) scale(bytes int64) {
	caps := [numModels]int64{
		Text:   min(2<<20, max(bytes/30, 64<<10)),
		Code:   min(20<<20, max(bytes/6, 256<<10)),
		Random: min(8<<20, max(bytes/15, 64<<10)),
	}
	var fixed int64
	for _, n := range p.nodes {
		if n.typ == 0 && n.fixed {
			fixed += n.size
		}
	}
	for m := Text; m < numModels; m++ {
		target := bytes * modelShare[m] / 100
		if m == Text {
			target = max(target-fixed, target/4)
		}
		for range 4 {
			var free, capped int64
			for _, n := range p.nodes {
				if n.typ != 0 || n.fixed || n.role.model() != m {
					continue
				}
				if n.size >= caps[m] {
					n.size = caps[m]
					capped += caps[m]
				} else {
					free += n.size
				}
			}
			if free == 0 {
				break
			}
			// factor in 1/1024
			f := max((target-capped)*1024/free, 1)
			for _, n := range p.nodes {
				if n.typ != 0 || n.fixed || n.role.model() != m || n.size >= caps[m] {
					continue
				}
				n.size = min(max(n.size*f/1024, 64), caps[m])
			}
			if f > 1000 && f < 1048 {
				break
			}
		}
	}
}
