package tests

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// maxFuncLines is the longest a function of production code may be, from
// its func line to its closing brace: a longer one does several things
// that want names of their own (issue [4/10] split the 100–145 line ones).
const maxFuncLines = 80

// TestFunctionLength reports every function or method of production code
// (every package of the module outside tests/, test files excluded) that
// is longer than maxFuncLines. The generators and scenarios under tests/
// are test code and are not held to it.
func TestFunctionLength(t *testing.T) {
	root := moduleRoot(t)
	cmd := exec.Command("go", "list", "-f", "{{.Dir}}{{range .GoFiles}} {{.}}{{end}}", "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	type long struct {
		at    string
		lines int
	}
	var longs []long
	funcs := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		rel, _ := filepath.Rel(root, fields[0])
		if hasPathPrefix(filepath.ToSlash(rel), "tests") {
			continue
		}
		for _, name := range fields[1:] {
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, filepath.Join(fields[0], name), nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range f.Decls {
				fd, ok := d.(*ast.FuncDecl)
				if !ok || fd.Body == nil {
					continue
				}
				funcs++
				start, end := fset.Position(fd.Pos()), fset.Position(fd.End())
				if n := end.Line - start.Line + 1; n > maxFuncLines {
					longs = append(longs, long{filepath.Join(rel, name) + ":" + funcName(fd), n})
				}
			}
		}
	}
	if funcs == 0 {
		t.Fatal("found no function: the walk is broken")
	}
	slices.SortFunc(longs, func(a, b long) int { return b.lines - a.lines })
	for _, l := range longs {
		t.Errorf("%s is %d lines, more than %d: split it into steps with names of their own", l.at, l.lines, maxFuncLines)
	}
}

// funcName is a function's name, with its receiver's type for a method.
func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	t := fd.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	switch x := t.(type) {
	case *ast.IndexExpr:
		t = x.X
	case *ast.IndexListExpr:
		t = x.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name + "." + fd.Name.Name
	}
	return fd.Name.Name
}
