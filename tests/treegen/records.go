package treegen

import (
	"path"
	"slices"
	"strconv"
	"strings"
)

// content appends the bytes of file n of plan p (p may be nil outside
// Generate; then roles that describe the whole tree are not available).
func (g *gen) content(dst []byte, n *node, p *plan) []byte {
	size := int(n.size)
	start := len(dst)
	pk := n.pkg
	switch n.role {
	case roleEmpty:
		return dst
	case roleExec, roleLib:
		name, ver := "", version{1, 0, 0, 1}
		if pk != nil {
			name, ver = pk.name, pk.ver
		}
		return g.elf(dst, elfSpec{name: name, ver: ver, lib: n.role == roleLib, size: size, program: n.prog})
	case roleProse:
		dst = g.prose(dst, size, 72+g.r.intn(8), "")
	case roleMarkdown:
		dst = g.markdown(dst, size, pk.base)
	case roleChangelog:
		return g.changelog(dst, size, pk.name, pk.ver, pk.maint, pk.day)
	case roleCopyright:
		dst = g.copyright(dst, size, pk)
	case roleConfig:
		dst = g.config(dst, size)
	case roleXML:
		dst = g.xml(dst, size)
	case rolePython:
		base := "pkg"
		if pk != nil {
			base = pk.base
		}
		if n.perm&0o100 != 0 {
			dst = append(dst, "#!/usr/bin/python3\n"...)
		}
		dst = g.python(dst, size, base)
	case roleShell:
		dst = g.shell(dst, size, path.Base(n.path))
	case roleStatus:
		return g.status(dst, p)
	case roleList:
		return appendList(dst, pk)
	case roleRecords:
		return g.records(dst, n, p)
	case roleMo:
		seed, name := uint64(7), "catalog"
		if pk != nil {
			seed, name = pk.seed, pk.name
		}
		lg := path.Base(path.Dir(path.Dir(n.path)))
		return g.mo(dst, size, seed, name, lg)
	case roleTZif:
		return g.tzif(dst, size)
	case roleGz:
		return g.gz(dst, size)
	case rolePNG:
		return g.png(dst, size)
	case roleRandom:
		return g.random(dst, size)
	case roleSSHKey:
		return g.sshKey(dst, size)
	}
	// text: cut to the planned size at a line end
	if len(dst)-start > size {
		cut := start + size
		if i := lastIndexByte(dst[start:cut], '\n'); i > size/2 {
			cut = start + i + 1
		}
		dst = dst[:cut]
		dst[len(dst)-1] = '\n'
	}
	return dst
}

func lastIndexByte(b []byte, c byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == c {
			return i
		}
	}
	return -1
}

var licenses = []string{"GPL-2+", "GPL-3+", "LGPL-2.1+", "BSD-3-clause", "MIT", "Apache-2.0", "Expat"}

// copyright appends a DEP-5 copyright file. License texts are the same in
// every package that uses them.
func (g *gen) copyright(dst []byte, n int, pk *pkgInfo) []byte {
	end := len(dst) + n
	dst = append(dst, "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: "...)
	dst = append(dst, pk.base...)
	dst = append(dst, "\nSource: https://"...)
	dst = append(dst, pk.base...)
	dst = append(dst, ".org/releases\n\n"...)
	var used []int
	for len(dst) < end-1500 || len(used) == 0 {
		lic := g.r.skewed(len(licenses))
		if !slices.Contains(used, lic) {
			used = append(used, lic)
		}
		dst = append(dst, "Files: "...)
		if len(used) == 1 {
			dst = append(dst, '*')
		} else {
			dst = append(dst, "src/"...)
			dst = append(dst, g.word()...)
			dst = append(dst, "/*"...)
		}
		dst = append(dst, "\nCopyright: "...)
		for i := range 1 + g.r.skewed(3) {
			if i > 0 {
				dst = append(dst, "\n           "...)
			}
			y := 1995 + g.r.intn(25)
			dst = strconv.AppendInt(dst, int64(y), 10)
			dst = append(dst, '-')
			dst = strconv.AppendInt(dst, int64(y+g.r.intn(6)), 10)
			dst = append(dst, ' ')
			dst = append(dst, person(g.r.u64()%64)...)
		}
		dst = append(dst, "\nLicense: "...)
		dst = append(dst, licenses[lic]...)
		dst = append(dst, "\n\n"...)
		if len(used) > 6 {
			break
		}
	}
	saved := g.r
	for _, lic := range used {
		dst = append(dst, "License: "...)
		dst = append(dst, licenses[lic]...)
		dst = append(dst, '\n')
		g.r = newRNG(uint64(lic) + 991)
		dst = g.prose(dst, 600+lic*500, 78, " ")
		dst = dst[:len(dst)-1]
	}
	g.r = saved
	return dst
}

// status appends var/lib/dpkg/status.
func (g *gen) status(dst []byte, p *plan) []byte {
	pkgs := slices.Clone(p.pkgs)
	slices.SortFunc(pkgs, func(a, b *pkgInfo) int { return strings.Compare(a.name, b.name) })
	for _, pk := range pkgs {
		dst = g.statusRecord(dst, pk)
	}
	return dst
}

func (g *gen) statusRecord(dst []byte, pk *pkgInfo) []byte {
	r := newRNG(pk.seed)
	saved := g.r
	g.r = r
	var size int64
	var conffiles []string
	for _, f := range pk.files {
		size += f.size
		if strings.HasPrefix(f.path, "etc/") && f.typ == 0 {
			conffiles = append(conffiles, f.path)
		}
	}
	dst = append(dst, "Package: "...)
	dst = append(dst, pk.name...)
	dst = append(dst, "\nStatus: install ok installed\nPriority: optional\nSection: "...)
	dst = append(dst, pk.section...)
	dst = append(dst, "\nInstalled-Size: "...)
	dst = strconv.AppendInt(dst, (size+1023)/1024, 10)
	dst = append(dst, "\nMaintainer: "...)
	dst = append(dst, pk.maint...)
	dst = append(dst, "\nArchitecture: amd64\nMulti-Arch: foreign\nSource: "...)
	dst = append(dst, pk.base...)
	dst = append(dst, "\nVersion: "...)
	dst = append(dst, pk.ver.String()...)
	dst = append(dst, '\n')
	if len(pk.depends) > 0 {
		dst = append(dst, "Depends: "...)
		for i, d := range pk.depends {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = append(dst, d...)
			dst = append(dst, " (>= "...)
			dst = strconv.AppendInt(dst, int64(1+g.r.skewed(4)), 10)
			dst = append(dst, ".0)"...)
		}
		dst = append(dst, '\n')
	}
	if len(conffiles) > 0 {
		dst = append(dst, "Conffiles:\n"...)
		for _, c := range conffiles {
			dst = append(dst, " /"...)
			dst = append(dst, c...)
			dst = append(dst, ' ')
			dst = appendHex(dst, seedOf(pk.seed, c, pk.ver.String()))
			dst = appendHex(dst, seedOf(pk.seed, pk.ver.String(), c))
			dst = append(dst, '\n')
		}
	}
	dst = append(dst, "Description: "...)
	g.width, g.indent, g.col = 1000, "", 0
	dst = g.sentence(dst)
	dst = append(dst[:len(dst)-1], '\n')
	dst = g.prose(dst, 200+g.r.intn(400), 78, " ")
	dst = dst[:len(dst)-1]
	g.r = saved
	return dst
}

func appendHex(dst []byte, v uint64) []byte {
	const hex = "0123456789abcdef"
	for i := 60; i >= 0; i -= 4 {
		dst = append(dst, hex[v>>uint(i)&15])
	}
	return dst
}

// appendList appends var/lib/dpkg/info/<pkg>.list: "/.", the package's
// directories and its files and links, sorted.
func appendList(dst []byte, pk *pkgInfo) []byte {
	dst = append(dst, "/.\n"...)
	var paths []string
	seen := map[string]bool{}
	for _, f := range pk.files {
		if strings.HasPrefix(f.path, "var/lib/dpkg/") {
			continue
		}
		for d := path.Dir(f.path); d != "." && !seen[d]; d = path.Dir(d) {
			seen[d] = true
			paths = append(paths, d)
		}
		paths = append(paths, f.path)
	}
	slices.Sort(paths)
	for _, p := range paths {
		dst = append(dst, '/')
		dst = append(dst, p...)
		dst = append(dst, '\n')
	}
	return dst
}

// records appends small system files, chosen by path.
func (g *gen) records(dst []byte, n *node, p *plan) []byte {
	switch path.Base(n.path) {
	case "passwd", "shadow", "group", "gshadow":
		users := []string{"root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp",
			"proxy", "www-data", "backup", "list", "irc", "_apt", "nobody", "systemd-network", "messagebus", "sshd"}
		for i, u := range users {
			dst = append(dst, u...)
			switch path.Base(n.path) {
			case "passwd":
				dst = append(dst, ":x:"...)
				dst = strconv.AppendInt(dst, int64(i), 10)
				dst = append(dst, ':')
				dst = strconv.AppendInt(dst, int64(i), 10)
				dst = append(dst, ':')
				dst = append(dst, u...)
				dst = append(dst, ":/var/lib/"...)
				dst = append(dst, u...)
				dst = append(dst, ":/usr/sbin/nologin\n"...)
			case "group":
				dst = append(dst, ":x:"...)
				dst = strconv.AppendInt(dst, int64(i), 10)
				dst = append(dst, ":\n"...)
			default:
				dst = append(dst, ":*:19000:0:99999:7:::\n"...)
			}
		}
		return dst
	case "hosts":
		return append(dst, "127.0.0.1\tlocalhost\n127.0.1.1\tedge-gateway\n\n::1     localhost ip6-localhost ip6-loopback\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n"...)
	case "hostname":
		return append(dst, "edge-gateway\n"...)
	case "debian_version":
		return append(dst, "12.5\n"...)
	case "os-release":
		return append(dst, "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\nHOME_URL=\"https://www.debian.org/\"\n"...)
	case "fstab":
		return append(dst, "# /etc/fstab: static file system information.\n#\n# <file system> <mount point>   <type>  <options>       <dump>  <pass>\nUUID=6f0e8a4c-1b7e-4c53-9a57-0d5f2c9e1a11 /               ext4    errors=remount-ro 0       1\n"...)
	case "top_level.txt":
		return append(append(dst, n.pkg.base...), '\n')
	case "PKG-INFO":
		dst = append(dst, "Metadata-Version: 2.1\nName: "...)
		dst = append(dst, n.pkg.base...)
		dst = append(dst, "\nVersion: "...)
		dst = append(dst, n.pkg.ver.upstream()...)
		dst = append(dst, "\nSummary: "...)
		g.width, g.indent, g.col = 1000, "", 0
		dst = g.sentence(dst)
		dst = append(dst, "\nLicense: MIT\n\n"...)
		return g.prose(dst, int(n.size), 78, "")
	case "extended_states":
		for _, pk := range p.pkgs {
			if g.r.pct(40) {
				dst = append(dst, "Package: "...)
				dst = append(dst, pk.name...)
				dst = append(dst, "\nArchitecture: amd64\nAuto-Installed: 1\n\n"...)
			}
		}
		return dst
	}
	if strings.HasSuffix(n.path, ".pub") {
		dst = append(dst, "ssh-ed25519 "...)
		var raw [51]byte
		for i := range raw {
			raw[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[g.r.intn(64)]
		}
		dst = append(dst, raw[:]...)
		return append(dst, " root@edge-gateway\n"...)
	}
	dst = append(dst, "# "...)
	dst = append(dst, n.path...)
	dst = append(dst, '\n')
	return g.config(dst, int(n.size))
}
