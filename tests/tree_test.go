package tests

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// testTree is a small input tree for publish: a few MiB in about fifty
// entries, with what a release holds (binaries, a shared library and its
// symlinks, text, incompressible data, an empty file, an empty directory,
// odd modes). It is deterministic, so chunk counts repeat between runs.
type testTree map[string]treeEntry

// treeEntry is a regular file (data), a directory (dir) or a symlink
// (link), with its permission bits (not for symlinks).
type treeEntry struct {
	data []byte
	dir  bool
	link string
	mode fs.FileMode // permission bits plus setuid, setgid, sticky
}

var treeWords = strings.Fields(`gateway site seeder node chunk release wave health
rollback verify fetch peer quic raft tuf manifest pack origin cdn mesh attest
quote admission gossip member status canary floor target snapshot timestamp`)

// newTestTree returns release 1 of the tree.
func newTestTree() testTree {
	rng := rand.New(rand.NewPCG(7, 11))
	noise := rand.NewChaCha8([32]byte{1, 2, 3})
	random := func(n int) []byte {
		b := make([]byte, n)
		noise.Read(b)
		return b
	}
	text := func(n int) []byte {
		var b bytes.Buffer
		for b.Len() < n {
			for range 5 + rng.IntN(9) {
				b.WriteString(treeWords[rng.IntN(len(treeWords))])
				b.WriteByte(' ')
			}
			b.WriteByte('\n')
		}
		return b.Bytes()[:n]
	}
	// binary is executable-like: random code with repeated tables and
	// zero padding, so some of it compresses.
	binary := func(n int) []byte {
		b := make([]byte, 0, n)
		table := random(4 << 10)
		for len(b) < n {
			switch rng.IntN(3) {
			case 0:
				b = append(b, random(8<<10+rng.IntN(24<<10))...)
			case 1:
				b = append(b, table...)
			default:
				b = append(b, make([]byte, rng.IntN(8<<10))...)
			}
		}
		return b[:n]
	}
	file := func(data []byte, mode fs.FileMode) treeEntry { return treeEntry{data: data, mode: mode} }
	dir := func(mode fs.FileMode) treeEntry { return treeEntry{dir: true, mode: mode} }
	link := func(target string) treeEntry { return treeEntry{link: target} }

	tr := testTree{
		"bin":                            dir(0o755),
		"bin/gatewayd":                   file(binary(1536<<10), 0o755),
		"bin/gatewayctl":                 file(binary(300<<10), 0o755),
		"bin/gw-setuid-helper":           file(binary(40<<10), 0o755|fs.ModeSetuid),
		"bin/gw":                         link("gatewayd"),
		"lib":                            dir(0o755),
		"lib/libgw.so.1.2":               file(binary(800<<10), 0o644),
		"lib/libgw.so.1":                 link("libgw.so.1.2"),
		"lib/libgw.so":                   link("libgw.so.1"),
		"etc":                            dir(0o750),
		"etc/gateway.conf":               file(text(6<<10), 0o640),
		"etc/secret.key":                 file(random(64), 0o600),
		"etc/empty.conf":                 file(nil, 0o644),
		"share":                          dir(0o755),
		"share/doc":                      dir(0o755),
		"share/doc/gateway.conf":         link("../../etc/gateway.conf"),
		"share/doc/read me, ünïcode.txt": file(text(3<<10), 0o444),
		"share/data":                     dir(0o755),
		"docs":                           link("share/doc"),
		"var":                            dir(0o755),
		"var/lib":                        dir(0o755),
		"var/lib/gateway":                dir(0o700), // empty
		"tmp":                            dir(0o777 | fs.ModeSticky),
	}
	for i := range 28 {
		tr[fmt.Sprintf("share/doc/guide-%02d.txt", i)] = file(text(1<<10+rng.IntN(60<<10)), 0o644)
	}
	for i := range 5 {
		tr[fmt.Sprintf("share/data/blob-%d.bin", i)] = file(random(100<<10+rng.IntN(200<<10)), 0o644)
	}
	return tr
}

// upgrade returns release 2: a patched binary, an edited and re-moded
// config, a longer guide, a new file, a removed one, and a library renamed
// with its symlink moved along (its bytes unchanged).
func (tr testTree) upgrade() testTree {
	up := maps.Clone(tr)
	bin := slices.Clone(tr["bin/gatewayd"].data)
	for i := len(bin) / 2; i < len(bin)/2+4096; i++ {
		bin[i] ^= 0x5a
	}
	up["bin/gatewayd"] = treeEntry{data: bin, mode: 0o755}
	conf := bytes.Replace(tr["etc/gateway.conf"].data, []byte("wave"), []byte("WAVE"), 1)
	up["etc/gateway.conf"] = treeEntry{data: conf, mode: 0o644}
	guide := tr["share/doc/guide-00.txt"]
	up["share/doc/guide-00.txt"] = treeEntry{data: append(slices.Clone(guide.data), "\nrelease 2: faster rollouts\n"...), mode: guide.mode}
	up["share/doc/NEWS"] = treeEntry{data: []byte("release 2\n"), mode: 0o644}
	delete(up, "share/data/blob-4.bin")
	up["lib/libgw.so.1.3"] = tr["lib/libgw.so.1.2"]
	delete(up, "lib/libgw.so.1.2")
	up["lib/libgw.so.1"] = treeEntry{link: "libgw.so.1.3"}
	return up
}

// fileBytes returns the total size of the regular files.
func (tr testTree) fileBytes() int64 {
	var n int64
	for _, e := range tr {
		n += int64(len(e.data))
	}
	return n
}

// files returns the number of regular files.
func (tr testTree) files() int {
	n := 0
	for _, e := range tr {
		if !e.dir && e.link == "" {
			n++
		}
	}
	return n
}

// write creates the tree at root, which must not exist.
func (tr testTree) write(t testing.TB, root string) {
	t.Helper()
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	paths := slices.Sorted(maps.Keys(tr))
	for _, p := range paths {
		e, full := tr[p], filepath.Join(root, filepath.FromSlash(p))
		var err error
		switch {
		case e.dir:
			err = os.MkdirAll(full, 0o755)
		case e.link != "":
			err = os.Symlink(e.link, full)
		default:
			err = os.WriteFile(full, e.data, 0o600)
			if err == nil {
				err = os.Chmod(full, e.mode) // exact bits, whatever the umask
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// Directory modes last, deepest first, so that none blocks its content.
	for _, p := range slices.Backward(paths) {
		if e := tr[p]; e.dir {
			if err := os.Chmod(filepath.Join(root, filepath.FromSlash(p)), e.mode); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// treeItem is what compareTrees looks at in one entry.
type treeItem struct {
	kind   string // "file", "dir", "symlink"
	mode   fs.FileMode
	target string
	size   int64
	sum    [sha256.Size]byte
}

func (it treeItem) String() string {
	switch it.kind {
	case "symlink":
		return "symlink → " + it.target
	case "dir":
		return fmt.Sprintf("dir %v", it.mode)
	}
	return fmt.Sprintf("file %v, %d bytes, sha256 %x", it.mode, it.size, it.sum[:6])
}

// readTree reads every entry below root (root itself excluded).
func readTree(t testing.TB, root string) map[string]treeItem {
	t.Helper()
	items := map[string]treeItem{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		it := treeItem{mode: fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)}
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			it.kind, it.size, it.sum = "file", int64(len(b)), sha256.Sum256(b)
		case fi.IsDir():
			it.kind = "dir"
		case fi.Mode()&fs.ModeSymlink != 0:
			it.kind, it.mode = "symlink", 0
			if it.target, err = os.Readlink(p); err != nil {
				return err
			}
		default:
			it.kind = fi.Mode().Type().String()
		}
		items[filepath.ToSlash(rel)] = it
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return items
}

// compareTrees fails t unless got holds exactly the entries of want, with
// the same types, modes, link targets and bytes.
func compareTrees(t testing.TB, want, got string) {
	t.Helper()
	w, g := readTree(t, want), readTree(t, got)
	for _, p := range slices.Sorted(maps.Keys(w)) {
		switch gi, ok := g[p]; {
		case !ok:
			t.Errorf("%s: missing from %s", p, got)
		case gi != w[p]:
			t.Errorf("%s: got %s, want %s", p, gi, w[p])
		}
	}
	for _, p := range slices.Sorted(maps.Keys(g)) {
		if _, ok := w[p]; !ok {
			t.Errorf("%s: in %s but not in the input", p, got)
		}
	}
}
