package proxy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestArchitectureMapMatchesTheCode checks every "file: Func" and
// "file: Type.Method" that docs/architecture.md names: the file exists
// and declares it, so the map of a request's path cannot drift from the
// code.
func TestArchitectureMapMatchesTheCode(t *testing.T) {
	doc, err := os.ReadFile("../docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	// A file, then one or more declarations each after ": " or ", ".
	refs := regexp.MustCompile(`([a-z/]+\.go): ([A-Za-z][A-Za-z0-9_.]*)`)
	text := strings.Join(strings.Fields(string(doc)), " ") // references may wrap
	found := 0
	for _, m := range refs.FindAllStringSubmatch(text, -1) {
		file, name := m[1], m[2]
		found++
		decls, err := declarations(filepath.Join("..", file))
		if err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		if !decls[name] {
			t.Errorf("docs/architecture.md names %s in %s, which does not declare it", name, file)
		}
	}
	if found < 15 {
		t.Errorf("found only %d references in docs/architecture.md; the request's path lists more", found)
	}
}

// declarations lists a Go file's functions, as Name or Recv.Name.
func declarations(path string) (map[string]bool, error) {
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok {
			continue
		}
		name := fn.Name.Name
		if fn.Recv != nil && len(fn.Recv.List) > 0 {
			typ := fn.Recv.List[0].Type
			if star, ok := typ.(*ast.StarExpr); ok {
				typ = star.X
			}
			if id, ok := typ.(*ast.Ident); ok {
				name = id.Name + "." + name
			}
		}
		out[name] = true
	}
	return out, nil
}
