package rootfs

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// privateApt is apt with state of its own in the cache (package lists,
// sources: the suite, its -updates and its security suite on
// deb.debian.org), so that what it resolves and downloads depends on
// neither the host's sources nor what the host has installed. It keeps
// the host's apt.conf.d (a proxy, say).
type privateApt struct {
	dir, suite string
	updated    bool
}

func newApt(cacheDir, suite string) *privateApt {
	return &privateApt{dir: filepath.Join(cacheDir, "apt"), suite: suite}
}

// setup writes the configuration and the sources.
func (a *privateApt) setup() error {
	for _, d := range []string{"state/lists/partial", "cache/archives/partial", "sources.list.d", "preferences.d"} {
		if err := os.MkdirAll(filepath.Join(a.dir, d), 0o755); err != nil {
			return err
		}
	}
	sources := strings.Join(mirrors(a.suite, "[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "), "\n") + "\n"
	conf := ""
	for _, kv := range [][2]string{
		{"Dir::State", "state"}, {"Dir::State::status", "status"}, {"Dir::Cache", "cache"},
		{"Dir::Etc::SourceList", "sources.list"}, {"Dir::Etc::SourceParts", "sources.list.d"},
		{"Dir::Etc::Preferences", "preferences"}, {"Dir::Etc::PreferencesParts", "preferences.d"},
	} {
		conf += fmt.Sprintf("%s %q;\n", kv[0], filepath.Join(a.dir, kv[1]))
	}
	conf += "Acquire::Languages \"none\";\nAcquire::Retries \"3\";\nAPT::Sandbox::User \"root\";\n" +
		"Acquire::IndexTargets::deb::DEP-11::DefaultEnabled \"false\";\n"
	for name, text := range map[string]string{"sources.list": sources, "apt.conf": conf, "status": ""} {
		if err := os.WriteFile(filepath.Join(a.dir, name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// mirrors are the sources.list lines of suite, its -updates and its
// security suite, all on deb.debian.org (mmdebstrap's own default takes
// the security suite from security.debian.org), each with opts.
func mirrors(suite, opts string) []string {
	return []string{
		"deb " + opts + "http://deb.debian.org/debian " + suite + " main",
		"deb " + opts + "http://deb.debian.org/debian " + suite + "-updates main",
		"deb " + opts + "http://deb.debian.org/debian-security " + suite + "-security main",
	}
}

// command runs an apt command on the private state, in dir.
func (a *privateApt) command(dir, name string, args ...string) (string, error) {
	var out, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(aptEnv(), "APT_CONFIG="+filepath.Join(a.dir, "apt.conf"))
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		all := out.String() + stderr.String()
		if offline.MatchString(all) {
			return "", skipf("apt cannot download from the Debian mirror (deb.debian.org): run with network access to it, "+
				"or with a cache (%s) that has the trees\n%s", CacheEnv, tail(all, 10))
		}
		return "", fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, tail(all, 30))
	}
	return out.String(), nil
}

// update fetches the package lists, once per privateApt.
func (a *privateApt) update() error {
	if a.updated {
		return nil
	}
	if err := a.setup(); err != nil {
		return err
	}
	if _, err := a.command(a.dir, "apt-get", "-q", "--error-on=any", "update"); err != nil {
		return err
	}
	a.updated = true
	return nil
}

// versions lists the versions of pkg the mirrors have, oldest first.
func (a *privateApt) versions(pkg string) ([]string, error) {
	out, err := a.command(a.dir, "apt-cache", "madison", pkg)
	if err != nil {
		return nil, err
	}
	var vs []string
	for line := range strings.Lines(out) {
		f := strings.Split(line, "|")
		if len(f) == 3 && strings.TrimSpace(f[0]) == pkg && strings.HasSuffix(strings.TrimSpace(f[2]), "Packages") {
			vs = append(vs, strings.TrimSpace(f[1]))
		}
	}
	return sortVersions(slices.Compact(slices.Sorted(slices.Values(vs))))
}

// sortVersions sorts Debian versions as dpkg does, oldest first.
func sortVersions(vs []string) ([]string, error) {
	var err error
	slices.SortStableFunc(vs, func(x, y string) int {
		if x == y {
			return 0
		}
		cmd := exec.Command("dpkg", "--compare-versions", x, "lt", y)
		e := cmd.Run()
		if e == nil {
			return -1
		}
		if _, ok := e.(*exec.ExitError); !ok && err == nil {
			err = fmt.Errorf("dpkg --compare-versions: %w", e)
		}
		return 1
	})
	return vs, err
}

// groupVersions are the versions that every package of group has, oldest
// first.
func (a *privateApt) groupVersions(group []string) ([]string, error) {
	var common []string
	for i, pkg := range group {
		vs, err := a.versions(pkg)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			common = vs
		} else {
			common = slices.DeleteFunc(common, func(v string) bool { return !slices.Contains(vs, v) })
		}
	}
	if len(common) == 0 {
		return nil, fmt.Errorf("the mirrors of %s have no version that all of %s share", a.suite, strings.Join(group, ", "))
	}
	return common, nil
}

// series resolves the series of base and groups (see NewSeries).
func (a *privateApt) series(base Spec, groups [][]string) (Series, error) {
	if err := a.update(); err != nil {
		return Series{}, err
	}
	versions := make([][]string, len(groups))
	s := Series{Base: Spec{Suite: base.Suite, Include: dropIncluded(base.Include, groups)}}
	for i, g := range groups {
		var err error
		if versions[i], err = a.groupVersions(g); err != nil {
			return Series{}, err
		}
		for _, p := range g {
			s.Base.Include = append(s.Base.Include, p+"="+versions[i][0])
		}
	}
	for round := 1; ; round++ {
		moved := false
		for i, g := range groups {
			if round < len(versions[i]) {
				st := Step{}
				for _, p := range g {
					st.Packages = append(st.Packages, p+"="+versions[i][round])
				}
				s.Steps = append(s.Steps, st)
				moved = true
			}
		}
		if !moved {
			return s, nil
		}
	}
}

// download fetches the .deb of each "name=version" into dir, and
// returns their paths.
func (a *privateApt) download(dir string, pkgs []string) ([]string, error) {
	if err := a.update(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if _, err := a.command(dir, "apt-get", append([]string{"-q", "download"}, pkgs...)...); err != nil {
		return nil, err
	}
	debs, err := filepath.Glob(filepath.Join(dir, "*.deb"))
	if err == nil && len(debs) != len(pkgs) {
		err = fmt.Errorf("apt-get download %s gave %d files", strings.Join(pkgs, " "), len(debs))
	}
	return debs, err
}

// dpkgInstall installs debs into the tree at root as an update would:
// the tree's own dpkg, run chrooted, from the tree's apt archive
// directory, which is emptied again afterwards as apt-get clean does.
func dpkgInstall(root string, debs []string) error {
	archives := filepath.Join(root, "var/cache/apt/archives")
	args := []string{root, "dpkg", "-i"}
	for _, d := range debs {
		if err := copyFile(d, filepath.Join(archives, filepath.Base(d))); err != nil {
			return err
		}
		defer os.Remove(filepath.Join(archives, filepath.Base(d)))
		args = append(args, "/var/cache/apt/archives/"+filepath.Base(d))
	}
	var out bytes.Buffer
	cmd := exec.Command("chroot", args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C.UTF-8", "HOME=/root"}
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("chroot %s: %v\n%s", strings.Join(args, " "), err, tail(out.String(), 30))
	}
	return nil
}

// checkInstalled checks that the tree at root has exactly these
// "name=version" installed, as dpkg-query inside it says.
func checkInstalled(root string, pkgs []string) error {
	args := []string{root, "dpkg-query", "-W", "-f", "${Package}=${Version} ${db:Status-Abbrev}\n"}
	for _, p := range pkgs {
		name, _, _ := strings.Cut(p, "=")
		args = append(args, name)
	}
	out, err := exec.Command("chroot", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("chroot %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	lines := strings.Split(string(out), "\n")
	for _, p := range pkgs {
		if !slices.Contains(lines, p+" ii ") {
			return fmt.Errorf("after dpkg -i, the tree does not have %s installed; dpkg-query says:\n%s", p, out)
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
