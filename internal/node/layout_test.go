package node_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/callflow/callflow/"

// layer orders the module's packages: a package may import only packages
// of its own layer or a lower one, and a role no other role.
func layer(pkg string) int {
	switch {
	case pkg == "wire":
		return 0
	case pkg == "internal/node":
		return 3
	case strings.HasPrefix(pkg, "cmd/"):
		return 4
	case pkg == "ingest" || pkg == "decider" || pkg == "archiver":
		return 2
	case strings.HasPrefix(pkg, "ingest/"): // what belongs to one role
		return 1
	default: // internal/*: shared parts below the roles
		return 1
	}
}

// The top level shows the architecture and the import arrows point one
// way: wire at the bottom, internal parts above it, the roles above them
// (never importing each other), the node wiring the roles, cmd on top.
func TestLayout(t *testing.T) {
	root := filepath.Join("..", "..")
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{"cmd": true, "ingest": true, "decider": true, "archiver": true, "wire": true, "internal": true, "deploy": true, "scripts": true}
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") && !allowed[e.Name()] {
			t.Errorf("top-level directory %s/: the top level holds the roles, wire, cmd, internal, deploy and scripts", e.Name())
		}
	}

	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "deploy" || name == "scripts") {
			return filepath.SkipDir
		}
		pkg, _ := filepath.Rel(root, path)
		pkg = filepath.ToSlash(pkg)
		fset := token.NewFileSet()
		pkgs, err := parser.ParseDir(fset, path, func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, p := range pkgs {
			for fname, f := range p.Files {
				for _, imp := range f.Imports {
					ip, _ := strconv.Unquote(imp.Path.Value)
					dep, ok := strings.CutPrefix(ip, module)
					if !ok {
						continue
					}
					if layer(dep) > layer(pkg) || (layer(pkg) == 2 && layer(dep) == 2) {
						t.Errorf("%s imports %s: arrows point down only (%s)", pkg, dep, filepath.Base(fname))
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
