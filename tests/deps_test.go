package tests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The architecture as tests: docs/DESIGN.md's package table says which
// package may import which ("dependencies point down the table only") and
// STYLE.md rule 1 asks for a test that says it in code, as tailscale's
// tstest/deptest does. The rules read `go list`, so they see exactly what
// the compiler links: the non-test files of every package of the module and
// everything they pull in. Test files may import what they like (a package's
// tests may use tests/treegen, say).

const module = "github.com/meshcast/meshcast"

// layers are the rows of DESIGN.md's package table that hold Go, top to
// bottom. A module package belongs to the first layer that owns its path
// (relative to the module); TestDesignTableMatchesLayers keeps this list and
// the table in step.
var layers = []struct {
	name string // as the table's first column writes it
	owns func(rel string) bool
}{
	{"content", subtree("content")},
	{"attest", subtree("attest")},
	{"deploy", subtree("deploy")},
	{"gossip", subtree("gossip")},
	{"seeder", subtree("seeder")},
	{"mesh/…", below("mesh")},
	{"mesh", exactly("mesh")},
	{"cmd/meshcast", subtree("cmd")}, // every command under cmd/
	{"tests", subtree("tests")},
}

// layerOf returns the index of the layer a module-relative path belongs to,
// or -1 if none owns it.
func layerOf(rel string) int {
	for i, l := range layers {
		if l.owns(rel) {
			return i
		}
	}
	return -1
}

// importRule forbids some imports to some packages.
type importRule struct {
	name string // short, for messages and the self-check
	why  string // the sentence of DESIGN.md or STYLE.md it enforces
	// from says which module packages the rule constrains (by path
	// relative to the module).
	from func(rel string) bool
	// transitive rules look at everything the package links (go list's
	// Deps); the others at its direct imports.
	transitive bool
	// forbid reports whether the package at from (module-relative) may not
	// import imp (a full import path).
	forbid func(from, imp string) bool
}

var importRules = []importRule{
	{
		name: "layers",
		why: "DESIGN.md: dependencies point down the package table only (content → attest → deploy → gossip → seeder → mesh/… → mesh → cmd → tests); " +
			"a package imports meshcast packages of earlier rows or of its own row only",
		from: func(string) bool { return true },
		forbid: func(from, imp string) bool {
			rel, ok := inModule(imp)
			return ok && layerOf(rel) > layerOf(from)
		},
	},
	{
		name: "leaves",
		why:  "STYLE.md 1: content and attest are leaves: they import no other meshcast package (within content, a subpackage may import content)",
		from: anyOf(subtree("content"), subtree("attest")),
		forbid: func(from, imp string) bool {
			rel, ok := inModule(imp)
			return ok && layerOf(rel) != layerOf(from)
		},
	},
	{
		name:   "composition root",
		why:    "DESIGN.md: cmd and tests start nodes only through mesh.Node; no other package imports package mesh",
		from:   not(anyOf(subtree("cmd"), subtree("tests"))),
		forbid: func(_, imp string) bool { return imp == module+"/mesh" },
	},
	{
		name: "seeder talks no QUIC",
		why: "DESIGN.md: seeder must not talk QUIC itself: it declares the small interfaces it needs and mesh wires them in, " +
			"so nothing it links may be mesh, mesh/…, github.com/libp2p/… or github.com/quic-go/…",
		from:       subtree("seeder"),
		transitive: true,
		forbid: func(_, imp string) bool {
			rel, ok := inModule(imp)
			return ok && subtree("mesh")(rel) || hasPathPrefix(imp, "github.com/libp2p") || hasPathPrefix(imp, "github.com/quic-go")
		},
	},
	{
		name:       "mesh/… knows no Raft",
		why:        "DESIGN.md: the mesh/… subpackages must not know about Raft, so nothing they link may be seeder, seeder/… or github.com/hashicorp/raft*",
		from:       below("mesh"),
		transitive: true,
		forbid: func(_, imp string) bool {
			rel, ok := inModule(imp)
			return ok && subtree("seeder")(rel) || strings.HasPrefix(imp, "github.com/hashicorp/raft")
		},
	},
	{
		name:       "attest knows no libp2p or Raft",
		why:        "DESIGN.md: attest must not know about libp2p or Raft, so nothing it links may be github.com/libp2p/… or github.com/hashicorp/raft*",
		from:       subtree("attest"),
		transitive: true,
		forbid: func(_, imp string) bool {
			return hasPathPrefix(imp, "github.com/libp2p") || strings.HasPrefix(imp, "github.com/hashicorp/raft")
		},
	},
	{
		name: "the development origin stays out of daemons",
		why: "DESIGN.md: seeder/cdn/devserver stands in for a CDN in development and tests; only cmd (meshcast cdn serve) and tests " +
			"link it, so no node, seeder or library package carries it",
		from:       not(anyOf(subtree("cmd"), subtree("tests"), subtree("seeder/cdn/devserver"), isTestHelper)),
		transitive: true,
		forbid: func(_, imp string) bool {
			rel, ok := inModule(imp)
			return ok && subtree("seeder/cdn/devserver")(rel)
		},
	},
	{
		name: "deploy talks to no network itself",
		why: "DESIGN.md: deploy's follower and rollout work over interfaces that mesh wires; nothing deploy links may be " +
			"github.com/libp2p/…, github.com/quic-go/…, github.com/hashicorp/memberlist or github.com/hashicorp/raft*",
		from:       subtree("deploy"),
		transitive: true,
		forbid: func(_, imp string) bool {
			return hasPathPrefix(imp, "github.com/libp2p") || hasPathPrefix(imp, "github.com/quic-go") ||
				hasPathPrefix(imp, "github.com/hashicorp/memberlist") || strings.HasPrefix(imp, "github.com/hashicorp/raft")
		},
	},
	{
		name: "the leader reads the site through interfaces",
		why: "DESIGN.md: seeder declares the small interfaces its leader loop needs (Members, Follower, Swarm, …) and mesh wires " +
			"them in, so seeder imports neither gossip nor deploy's follower's network side: no direct import of gossip",
		from:   subtree("seeder"),
		forbid: func(_, imp string) bool { return imp == module+"/gossip" },
	},
	{
		name: "content knows no network",
		why:  "DESIGN.md: content must not know about networks: it imports neither net nor net/http",
		from: subtree("content"),
		forbid: func(_, imp string) bool {
			return imp == "net" || hasPathPrefix(imp, "net/http")
		},
	},
	{
		name:       "tests stay out of production",
		why:        "DESIGN.md: tests must not be imported by production code, directly or through another package",
		from:       not(subtree("tests")),
		transitive: true,
		forbid: func(_, imp string) bool {
			rel, ok := inModule(imp)
			return ok && subtree("tests")(rel)
		},
	},
	{
		name:   "test helpers stay out of production",
		why:    "STYLE.md 17: test helpers live in xxxtest subpackages and tests/; no other package of ours imports package testing",
		from:   not(anyOf(subtree("tests"), isTestHelper)),
		forbid: func(_, imp string) bool { return hasPathPrefix(imp, "testing") },
	},
	{
		// Third-party modules are not held to this: hashicorp/raft keeps
		// its test helpers in its main package (testing.go), which links
		// package testing into every program using raft; it registers no
		// flags and does nothing at run time.
		name: "our test helpers stay out of production",
		why: "STYLE.md 17: nothing but tests/ and other test helpers links one of our xxxtest helper packages, " +
			"directly or through another package",
		from:       not(anyOf(subtree("tests"), isTestHelper)),
		transitive: true,
		forbid: func(_, imp string) bool {
			rel, ok := inModule(imp)
			return ok && isTestHelper(rel)
		},
	},
}

// ruleNotInTable names the check that every module package sits in a row
// of the table.
const ruleNotInTable = "package table"

// goPackage is what the checks read of `go list -json`.
type goPackage struct {
	ImportPath string
	Imports    []string // direct imports of the non-test files
	Deps       []string // everything the non-test files link, transitively
	Error      *struct{ Err string }
}

// violation is one import a rule forbids.
type violation struct {
	pkg, imported string   // full import paths; imported is empty for ruleNotInTable
	rule, why     string   // the rule broken
	chain         []string // for a transitive rule: pkg → … → imported
}

func (v violation) String() string {
	if v.rule == ruleNotInTable {
		return fmt.Sprintf("%s is in no row of docs/DESIGN.md's package table: add a row there and a layer in tests/deps_test.go, "+
			"or move the package (%s)", v.pkg, v.why)
	}
	via := ""
	if len(v.chain) > 2 {
		via = " (through " + strings.Join(v.chain, " → ") + ")"
	}
	return fmt.Sprintf("%s imports %s%s, breaking rule %q: %s", v.pkg, v.imported, via, v.rule, v.why)
}

// checkArchitecture applies every rule to the module's packages in pkgs,
// which also holds their dependencies (for import chains in messages).
func checkArchitecture(pkgs map[string]*goPackage) []violation {
	var out []violation
	paths := make([]string, 0, len(pkgs))
	for p := range pkgs {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, path := range paths {
		from, ok := inModule(path)
		if !ok {
			continue
		}
		p := pkgs[path]
		if layerOf(from) < 0 {
			out = append(out, violation{pkg: path, rule: ruleNotInTable,
				why: "STYLE.md 1: the package list is the architecture"})
			continue
		}
		for _, r := range importRules {
			if !r.from(from) {
				continue
			}
			imports := p.Imports
			if r.transitive {
				imports = p.Deps
			}
			for _, imp := range imports {
				if !r.forbid(from, imp) {
					continue
				}
				v := violation{pkg: path, imported: imp, rule: r.name, why: r.why}
				if r.transitive {
					v.chain = importChain(pkgs, path, imp)
				}
				out = append(out, v)
			}
		}
	}
	return out
}

// importChain returns a shortest chain of direct imports from one package
// to another, both included, or nil if pkgs does not show one.
func importChain(pkgs map[string]*goPackage, from, to string) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if cur == to {
			var chain []string
			for p := to; p != ""; p = prev[p] {
				chain = append(chain, p)
			}
			slices.Reverse(chain)
			return chain
		}
		if p := pkgs[cur]; p != nil {
			for _, next := range p.Imports {
				if _, seen := prev[next]; !seen {
					prev[next] = cur
					queue = append(queue, next)
				}
			}
		}
	}
	return nil
}

// inModule returns the path of imp relative to the module ("." for the
// module's root package), and whether imp is in the module.
func inModule(imp string) (string, bool) {
	if imp == module {
		return ".", true
	}
	rel, ok := strings.CutPrefix(imp, module+"/")
	return rel, ok
}

// hasPathPrefix reports whether p is dir or below it.
func hasPathPrefix(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

func subtree(dir string) func(string) bool {
	return func(p string) bool { return hasPathPrefix(p, dir) }
}
func below(dir string) func(string) bool {
	return func(p string) bool { return strings.HasPrefix(p, dir+"/") }
}
func exactly(dir string) func(string) bool { return func(p string) bool { return p == dir } }
func not(f func(string) bool) func(string) bool {
	return func(p string) bool { return !f(p) }
}
func anyOf(fs ...func(string) bool) func(string) bool {
	return func(p string) bool {
		for _, f := range fs {
			if f(p) {
				return true
			}
		}
		return false
	}
}

// isTestHelper reports whether a module-relative path names a test helper
// package: a subpackage whose name ends in "test" (content/storetest).
func isTestHelper(rel string) bool {
	i := strings.LastIndex(rel, "/")
	return i >= 0 && strings.HasSuffix(rel[i+1:], "test")
}

// moduleRoot returns the directory of go.mod, from `go env GOMOD`.
func moduleRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v (the tests in tests/ need the go command on PATH)", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatalf("go env GOMOD: not inside a module (got %q)", gomod)
	}
	return filepath.Dir(gomod)
}

// listPackages runs `go list -deps` over the module: its packages and
// everything they link, by import path.
func listPackages(t *testing.T) map[string]*goPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-deps", "-json=ImportPath,Imports,Deps,Error", "./...")
	cmd.Dir = moduleRoot(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	pkgs := map[string]*goPackage{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p goPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs[p.ImportPath] = &p
	}
	return pkgs
}

// TestImportRules checks the module's real import graph against the rules.
func TestImportRules(t *testing.T) {
	pkgs := listPackages(t)
	var ours []string
	for path, p := range pkgs {
		if _, ok := inModule(path); !ok {
			continue
		}
		ours = append(ours, path)
		if p.Error != nil {
			t.Errorf("go list %s: %s (the rules cannot see its imports)", path, p.Error.Err)
		}
	}
	if len(ours) == 0 {
		t.Fatal("go list found no package of the module")
	}
	slices.Sort(ours)
	for _, v := range checkArchitecture(pkgs) {
		t.Error(v)
	}
	if !t.Failed() {
		t.Logf("%d packages of %s follow the %d import rules", len(ours), module, len(importRules))
	}
}

// TestImportRulesCatchViolations runs the checker on made-up import graphs:
// one that follows every rule and must pass, and one that breaks each rule
// and must be reported for each break. Without it, a rule that matched
// nothing would pass forever.
func TestImportRulesCatchViolations(t *testing.T) {
	m := func(rel string) string { return module + "/" + rel }
	// graph builds a package map from direct imports and fills in Deps.
	graph := func(imports map[string][]string) map[string]*goPackage {
		pkgs := map[string]*goPackage{}
		var deps func(p string, seen map[string]bool)
		deps = func(p string, seen map[string]bool) {
			for _, imp := range imports[p] {
				if !seen[imp] {
					seen[imp] = true
					deps(imp, seen)
				}
			}
		}
		for p, imps := range imports {
			seen := map[string]bool{}
			deps(p, seen)
			g := &goPackage{ImportPath: p, Imports: imps}
			for d := range seen {
				g.Deps = append(g.Deps, d)
			}
			slices.Sort(g.Deps)
			pkgs[p] = g
		}
		for _, imps := range imports {
			for _, imp := range imps {
				if pkgs[imp] == nil {
					pkgs[imp] = &goPackage{ImportPath: imp}
				}
			}
		}
		return pkgs
	}

	t.Run("clean", func(t *testing.T) {
		// The architecture DESIGN.md describes, once everything is built.
		pkgs := graph(map[string][]string{
			m("content"):                  {"crypto/sha256", "github.com/ipfs/go-cid"},
			m("content/origin"):           {m("content"), "github.com/theupdateframework/go-tuf/v2/metadata"},
			m("content/storetest"):        {m("content"), "testing"},
			m("attest"):                   {"github.com/google/go-tpm/tpm2"},
			m("gossip"):                   {m("content"), "github.com/hashicorp/memberlist"},
			m("deploy"):                   {m("content")},
			m("seeder"):                   {m("content"), m("attest"), m("deploy"), m("seeder/cdn"), "github.com/hashicorp/raft", "github.com/hashicorp/raft-wal"},
			m("seeder/cdn"):               {m("content"), "net/http"},
			m("seeder/cdn/devserver"):     {"net/http"},
			m("seeder/cdn/cdntest"):       {m("seeder/cdn/devserver"), "testing"},
			m("deploy/follow"):            {m("content"), "github.com/theupdateframework/go-tuf/v2/metadata/updater"},
			m("mesh/host"):                {m("attest"), "github.com/libp2p/go-libp2p", "github.com/quic-go/quic-go"},
			m("mesh/chunks"):              {m("content"), m("mesh/host")},
			m("mesh"):                     {m("mesh/host"), m("mesh/chunks"), m("seeder"), m("gossip"), m("deploy")},
			m("cmd/meshcast"):             {m("mesh"), m("content/origin"), m("seeder/cdn"), m("seeder/cdn/devserver")},
			m("tests"):                    {m("mesh"), m("tests/treegen"), "net/http/httptest", "testing"},
			m("tests/treegen"):            {m("content")},
			"github.com/libp2p/go-libp2p": {"github.com/quic-go/quic-go"},
		})
		for _, v := range checkArchitecture(pkgs) {
			t.Errorf("false alarm: %s", v)
		}
	})

	t.Run("broken", func(t *testing.T) {
		pkgs := graph(map[string][]string{
			m("content"):              {"net"},
			m("content/origin"):       {m("content"), "net/http"},
			m("content/chunker"):      {m("attest")},
			m("attest"):               {m("content"), "github.com/libp2p/go-libp2p/core/peer", "github.com/hashicorp/raft"},
			m("gossip"):               {m("content/storetest"), m("deploy"), "example.com/transport"},
			m("deploy"):               {"testing", m("mesh")},
			m("seeder"):               {m("gossip")},
			m("seeder/cdn"):           {m("tests/treegen")},
			m("seeder/raft"):          {"github.com/libp2p/go-libp2p/core/network", m("gossip")},
			m("seeder/cdn/devserver"): {"net/http"},
			m("mesh/dash"):            {m("seeder/cdn/devserver")},
			m("deploy/follow"):        {"github.com/hashicorp/memberlist"},
			m("mesh/host"):            {m("seeder/cdn"), m("mesh")},
			m("mesh/rpc"):             {"github.com/hashicorp/raft-wal"},
			m("internal/util"):        {},
			m("content/storetest"):    {m("content"), "testing"},
			m("tests/treegen"):        {m("content")},
			"example.com/transport":   {"github.com/quic-go/quic-go"},
		})
		type want struct{ rule, pkg, imported string }
		wants := []want{
			{"layers", m("content/chunker"), m("attest")},
			{"layers", m("deploy"), m("mesh")},
			{"layers", m("mesh/host"), m("mesh")},
			{"layers", m("seeder/cdn"), m("tests/treegen")},
			{"leaves", m("attest"), m("content")},
			{"leaves", m("content/chunker"), m("attest")},
			{"composition root", m("deploy"), m("mesh")},
			{"composition root", m("mesh/host"), m("mesh")},
			{"seeder talks no QUIC", m("seeder/raft"), "github.com/libp2p/go-libp2p/core/network"},
			{"seeder talks no QUIC", m("seeder"), "github.com/quic-go/quic-go"}, // through gossip
			{"seeder talks no QUIC", m("seeder"), m("mesh")},                    // through gossip, deploy
			{"the leader reads the site through interfaces", m("seeder"), m("gossip")},
			{"the leader reads the site through interfaces", m("seeder/raft"), m("gossip")},
			{"seeder talks no QUIC", m("seeder/raft"), m("mesh")},                                 // through gossip, deploy
			{"seeder talks no QUIC", m("seeder/raft"), "github.com/quic-go/quic-go"},              // through gossip
			{"our test helpers stay out of production", m("seeder/raft"), m("content/storetest")}, // through gossip
			{"the development origin stays out of daemons", m("mesh/dash"), m("seeder/cdn/devserver")},
			{"deploy talks to no network itself", m("deploy/follow"), "github.com/hashicorp/memberlist"},
			{"mesh/… knows no Raft", m("mesh/dash"), m("seeder/cdn/devserver")},
			{"mesh/… knows no Raft", m("mesh/host"), m("seeder/cdn")},
			{"mesh/… knows no Raft", m("mesh/rpc"), "github.com/hashicorp/raft-wal"},
			{"attest knows no libp2p or Raft", m("attest"), "github.com/libp2p/go-libp2p/core/peer"},
			{"attest knows no libp2p or Raft", m("attest"), "github.com/hashicorp/raft"},
			{"content knows no network", m("content"), "net"},
			{"content knows no network", m("content/origin"), "net/http"},
			{"tests stay out of production", m("seeder/cdn"), m("tests/treegen")},
			{"tests stay out of production", m("mesh/host"), m("tests/treegen")}, // through seeder/cdn
			{"test helpers stay out of production", m("deploy"), "testing"},
			{"our test helpers stay out of production", m("gossip"), m("content/storetest")},
			{"our test helpers stay out of production", m("seeder"), m("content/storetest")}, // through gossip
			{ruleNotInTable, m("internal/util"), ""},
		}
		got := checkArchitecture(pkgs)
		rulesSeen := map[string]bool{}
		for _, w := range wants {
			rulesSeen[w.rule] = true
			i := slices.IndexFunc(got, func(v violation) bool {
				return v.rule == w.rule && v.pkg == w.pkg && v.imported == w.imported
			})
			if i < 0 {
				t.Errorf("rule %q did not report %s importing %s", w.rule, w.pkg, w.imported)
				continue
			}
			if s := got[i].String(); !strings.Contains(s, w.pkg) || !strings.Contains(s, w.imported) || !strings.Contains(s, w.rule) {
				t.Errorf("message does not name the package, the import and the rule: %s", s)
			}
		}
		for _, r := range importRules {
			if !rulesSeen[r.name] {
				t.Errorf("rule %q has no broken case in this test", r.name)
			}
		}
		// A transitive break names the chain that pulls the import in.
		chains := map[[2]string][]string{
			{m("seeder"), "github.com/quic-go/quic-go"}: {m("seeder"), m("gossip"), "example.com/transport", "github.com/quic-go/quic-go"},
			{m("seeder"), m("content/storetest")}:       {m("seeder"), m("gossip"), m("content/storetest")},
		}
		for _, v := range got {
			if want, ok := chains[[2]string{v.pkg, v.imported}]; ok {
				if !slices.Equal(v.chain, want) {
					t.Errorf("chain of %s: got %q, want %q", v, v.chain, want)
				}
				if !strings.Contains(v.String(), strings.Join(want, " → ")) {
					t.Errorf("message does not show the chain %q: %s", want, v)
				}
				delete(chains, [2]string{v.pkg, v.imported})
			}
		}
		for k := range chains {
			t.Errorf("no report of %s importing %s", k[0], k[1])
		}
		// Nothing is reported that the graph does not break.
		for _, v := range got {
			if !slices.ContainsFunc(wants, func(w want) bool { return v.rule == w.rule && v.pkg == w.pkg && v.imported == w.imported }) {
				t.Errorf("unexpected report: %s", v)
			}
		}
	})
}

// designRow is a row of DESIGN.md's package table.
type designRow struct {
	name  string // the first column, without backquotes
	goPkg bool   // false for rows of non-Go files ("(no Go)")
}

// designTable reads the package table of docs/DESIGN.md.
func designTable(t *testing.T) []designRow {
	t.Helper()
	p := filepath.Join(moduleRoot(t), "docs", "DESIGN.md")
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []designRow
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			in = strings.HasPrefix(line, "## Packages")
		case in && strings.HasPrefix(line, "| `"):
			cols := strings.Split(line, "|")
			first := strings.Split(cols[1], "`")
			for i := 1; i < len(first); i += 2 { // "`deploy/systemd`, `deploy/kubernetes`"
				rows = append(rows, designRow{name: first[i], goPkg: !strings.Contains(line, "(no Go)")})
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		t.Fatalf("%s: found no package table under \"## Packages\"", p)
	}
	return rows
}

// TestDesignTableNamesEveryPackage checks that DESIGN.md's package
// section names every package of the module (`go list ./...`), in
// backquotes: the package list is the architecture (STYLE.md 1), so a new
// package gets its line there in the commit that adds it.
func TestDesignTableNamesEveryPackage(t *testing.T) {
	root := moduleRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "docs", "DESIGN.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(b), "\n## Packages")
	section, _, _ = strings.Cut(section, "\n## ")
	named := map[string]bool{}
	for i, part := range strings.Split(section, "`") {
		if i%2 == 1 {
			named[part] = true
		}
	}
	cmd := exec.Command("go", "list", "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, imp := range strings.Fields(string(out)) {
		if rel, _ := inModule(imp); !named[rel] {
			t.Errorf("%s: docs/DESIGN.md's package section does not name it (in backquotes)", rel)
		}
	}
}

// TestDesignTableMatchesLayers keeps the layers the rules use in the order
// of DESIGN.md's table: change both in the same commit.
func TestDesignTableMatchesLayers(t *testing.T) {
	var table, ours []string
	for _, r := range designTable(t) {
		if r.goPkg {
			table = append(table, r.name)
		}
	}
	for _, l := range layers {
		ours = append(ours, l.name)
	}
	if !slices.Equal(table, ours) {
		t.Errorf("docs/DESIGN.md's package table lists\n\t%s\nbut tests/deps_test.go's layers are\n\t%s\nmake them agree",
			strings.Join(table, ", "), strings.Join(ours, ", "))
	}
}

// TestPackageDocs checks that every package of the module (`go list
// ./...`, the architecture as the compiler sees it) opens with a doc.go
// that carries its package comment (STYLE.md 2), and that every row of
// DESIGN.md's package table names a directory that exists.
func TestPackageDocs(t *testing.T) {
	root := moduleRoot(t)
	cmd := exec.Command("go", "list", "-f", "{{.Dir}}", "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dirs := strings.Fields(string(out))
	if len(dirs) == 0 {
		t.Fatal("go list found no package")
	}
	for _, dir := range dirs {
		rel, _ := filepath.Rel(root, dir)
		checkDocGo(t, filepath.ToSlash(rel), dir)
	}
	for _, r := range designTable(t) {
		if !r.goPkg || strings.Contains(r.name, "…") {
			continue
		}
		if fi, err := os.Stat(filepath.Join(root, filepath.FromSlash(r.name))); err != nil || !fi.IsDir() {
			t.Errorf("%s: DESIGN.md's package table lists it, but there is no such directory", r.name)
		}
	}
}

// checkDocGo checks that the package in dir has a doc.go whose package
// comment starts as godoc wants: "Package x " ("Command x " for main).
func checkDocGo(t *testing.T, rel, dir string) {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, "doc.go"), nil, parser.PackageClauseOnly|parser.ParseComments)
	if errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s has no doc.go (STYLE.md 2: every package opens with doc.go: its nouns and its guarantees)", rel)
		return
	}
	if err != nil {
		t.Errorf("%s: %v", rel, err)
		return
	}
	want := "Package " + f.Name.Name + " "
	if f.Name.Name == "main" {
		want = "Command " + filepath.Base(dir) + " "
	}
	if f.Doc == nil {
		t.Errorf("%s/doc.go has no package comment; want one starting %q", rel, want)
	} else if text := f.Doc.Text(); !strings.HasPrefix(text, want) {
		line, _, _ := strings.Cut(text, "\n")
		t.Errorf("%s/doc.go: the package comment starts %q; want %q", rel, line, want)
	}
}
