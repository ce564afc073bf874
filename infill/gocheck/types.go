package gocheck

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"strings"
)

// noImporter imports nothing: go/types then gives each import a fake
// package whose members it does not check, and members of imported
// packages are checked against the workspace's API snapshot instead
// (loading export data or type-checking dependencies would cost a
// keystroke far more than it buys).
type noImporter struct{}

func (noImporter) Import(string) (*types.Package, error) { return nil, errors.New("not loaded") }

// ignoredTypeError says which go/types errors are not the answer's fault
// or not worth a refusal: unused names (the user is mid-edit), imports
// not loaded, declarations that build constraints duplicate.
func ignoredTypeError(msg string) bool {
	for _, s := range []string{"declared and not used", "imported and not used", "could not import", "redeclared", "missing return", "missing function body", "is not used", "no new variables", "invalid recursive type", "undefined: C."} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// unresolvedError says whether a go/types error is a name that is not in
// scope or a member a type does not have, and returns the name.
func unresolvedError(msg string) (string, bool) {
	if n, ok := strings.CutPrefix(msg, "undefined: "); ok {
		return n, true
	}
	if i := strings.Index(msg, " undefined (type "); i >= 0 {
		return msg[:i], true
	}
	return "", false
}

// typeCheck type-checks the file with answer in place (and the package's
// other files) and returns the unresolved names and other type errors
// inside the answer. Function bodies away from the answer are dropped.
func (c *Checker) typeCheck(answer string) (unresolved, typeErrs []string) {
	d := c.doc
	if answer == "" {
		return nil, nil
	}
	after := []byte(d.Text[:d.Start] + answer + d.Text[d.End:])
	lo, hi := d.Start, d.Start+len(answer)
	for _, r := range c.broken {
		a, b := r[0], r[1]
		if a >= d.End {
			a, b = a+len(answer)-(d.End-d.Start), b+len(answer)-(d.End-d.Start)
		}
		for i := a; i < b; i++ {
			if after[i] != '\n' {
				after[i] = ' '
			}
		}
	}
	fset := token.NewFileSet()
	if c.otherBase > 0 {
		// The package's files come from their own file sets: the file is
		// put after every position they use, so that theirs never fall in it.
		fset.AddFile("(package)", -1, c.otherBase)
	}
	f, _ := parser.ParseFile(fset, d.Path, after, parser.SkipObjectResolution)
	if f == nil || f.Name == nil {
		return nil, nil
	}
	tf := fset.File(f.FileStart)
	if tf == nil {
		return nil, nil
	}
	off := func(p token.Pos) int {
		if !p.IsValid() || fset.File(p) != tf {
			return -1
		}
		return tf.Offset(p)
	}
	for _, decl := range f.Decls {
		if fd, ok := decl.(*ast.FuncDecl); ok && fd.Body != nil {
			if off(fd.End()) < lo || off(fd.Pos()) > hi {
				fd.Body = &ast.BlockStmt{Lbrace: fd.Body.Lbrace, Rbrace: fd.Body.Rbrace}
			}
		}
	}
	var errs []types.Error
	conf := types.Config{
		Importer:    noImporter{},
		FakeImportC: true,
		Error: func(err error) {
			if te, ok := err.(types.Error); ok {
				errs = append(errs, te)
			}
		},
	}
	info := &types.Info{Uses: map[*ast.Ident]types.Object{}}
	files := append(append([]*ast.File(nil), c.others...), f)
	conf.Check(f.Name.Name, fset, files, info) // errors come through conf.Error

	seen := map[string]bool{}
	add := func(list *[]string, s string) {
		if !seen[s] {
			seen[s] = true
			*list = append(*list, s)
		}
	}
	for _, e := range errs {
		o := off(e.Pos)
		if o < lo || o >= hi || ignoredTypeError(e.Msg) {
			continue
		}
		if n, ok := unresolvedError(e.Msg); ok {
			// Without the package's other files, a name may be theirs.
			if !c.knowsPackage && !strings.Contains(e.Msg, " undefined (type ") {
				continue
			}
			add(&unresolved, n)
			continue
		}
		add(&typeErrs, e.Msg)
	}
	// Members of imported packages, from the workspace's API snapshot.
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		x, ok := sel.X.(*ast.Ident)
		if !ok || off(sel.Sel.Pos()) < lo || off(sel.Sel.Pos()) >= hi {
			return true
		}
		pn, ok := info.Uses[x].(*types.PkgName)
		if !ok {
			return true
		}
		api := c.imports[pn.Imported().Path()]
		if api == nil || len(api.Decls) == 0 {
			return true
		}
		for _, dcl := range api.Decls {
			if dcl.Recv == "" && dcl.Name == sel.Sel.Name {
				return true
			}
		}
		add(&unresolved, x.Name+"."+sel.Sel.Name)
		return true
	})
	return unresolved, typeErrs
}
