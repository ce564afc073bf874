package workspace

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Module is what a go.mod says that the workspace uses.
type Module struct {
	Path     string
	Dir      string
	Requires map[string]string // module path -> version
	// Replaces map a module path to a directory (a local replacement) or
	// to another module path and version ("path@version").
	Replaces map[string]string
}

// readModule reads root/go.mod; nil when there is none or it says no
// module. Only what resolving imports needs is read, and anything it
// cannot read is skipped: a broken go.mod costs context, not the load.
func readModule(root string) *Module {
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return nil
	}
	m := &Module{Dir: root, Requires: map[string]string{}, Replaces: map[string]string{}}
	block := ""
	for _, line := range strings.Split(string(b), "\n") {
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if block != "" {
			if f[0] == ")" {
				block = ""
				continue
			}
			m.directive(block, f)
			continue
		}
		if len(f) == 2 && f[1] == "(" {
			block = f[0]
			continue
		}
		m.directive(f[0], f[1:])
	}
	if m.Path == "" {
		return nil
	}
	return m
}

func (m *Module) directive(verb string, args []string) {
	unq := func(s string) string { return strings.Trim(s, "\"`") }
	switch verb {
	case "module":
		if len(args) == 1 {
			m.Path = unq(args[0])
		}
	case "require":
		if len(args) >= 2 {
			m.Requires[unq(args[0])] = args[1]
		}
	case "replace":
		i := -1
		for j, a := range args {
			if a == "=>" {
				i = j
			}
		}
		if i < 1 || i+1 >= len(args) {
			return
		}
		from, to := unq(args[0]), unq(args[i+1])
		if i+2 < len(args) {
			to += "@" + args[i+2]
		}
		m.Replaces[from] = to
	}
}

// resolve returns the directory of an import path's package, or "" when it
// is nowhere on this machine.
func (w *Workspace) resolve(ip string) string {
	exists := func(d string) bool {
		info, err := os.Stat(d)
		return err == nil && info.IsDir()
	}
	first, _, _ := strings.Cut(ip, "/")
	if !strings.Contains(first, ".") {
		if d := filepath.Join(w.opt.GOROOT, "src", ip); exists(d) {
			return d
		}
	}
	m := w.mod
	if m == nil {
		return ""
	}
	if ip == m.Path || strings.HasPrefix(ip, m.Path+"/") {
		return filepath.Join(m.Dir, strings.TrimPrefix(ip, m.Path))
	}
	if d := filepath.Join(m.Dir, "vendor", ip); exists(d) {
		return d
	}
	// The longest required (or replaced) module path that holds ip.
	best := ""
	for mp := range m.Requires {
		if (ip == mp || strings.HasPrefix(ip, mp+"/")) && len(mp) > len(best) {
			best = mp
		}
	}
	for mp := range m.Replaces {
		if (ip == mp || strings.HasPrefix(ip, mp+"/")) && len(mp) > len(best) {
			best = mp
		}
	}
	if best == "" {
		return ""
	}
	rest := strings.TrimPrefix(ip, best)
	modDir := ""
	if to, ok := m.Replaces[best]; ok {
		if strings.HasPrefix(to, ".") || filepath.IsAbs(to) {
			modDir = to
			if !filepath.IsAbs(to) {
				modDir = filepath.Join(m.Dir, to)
			}
		} else if p, v, ok := strings.Cut(to, "@"); ok {
			modDir = filepath.Join(w.opt.GOMODCACHE, escapePath(p)+"@"+v)
		}
	} else {
		modDir = filepath.Join(w.opt.GOMODCACHE, escapePath(best)+"@"+m.Requires[best])
	}
	if d := filepath.Join(modDir, rest); modDir != "" && exists(d) {
		return d
	}
	return ""
}

// escapePath is the module cache's spelling of a module path: each upper
// case letter as '!' and its lower case.
func escapePath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if unicode.IsUpper(r) {
			b.WriteByte('!')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// API is the exported surface of an imported package, as source text.
type API struct {
	Path string // import path
	Name string // package name
	Dir  string
	// Decls are its exported declarations (bodies, values of long
	// initialisers, unexported fields and comments left out), sorted by
	// name; methods follow their type.
	Decls []Decl
}

// Decl is one exported declaration.
type Decl struct {
	Name string // the declared name; for a method, Type.Method
	Recv string // the receiver's type name, for methods
	Kind token.Token
	Text string // e.g. "func Sprintf(format string, a ...any) string"
}

// Lookup returns the declarations of name (a type: itself and then its
// methods).
func (a *API) Lookup(name string) []Decl {
	var out []Decl
	for _, d := range a.Decls {
		if d.Name == name || d.Recv == name {
			out = append(out, d)
		}
	}
	return out
}

// maxAPIFileBytes bounds one file read for an API (tables, generated
// data): such a file costs its declarations, not the machine.
const maxAPIFileBytes = 1 << 20

// loadAPI parses an import's files (no function bodies kept) and renders
// its exported declarations; nil when the package is nowhere.
func (w *Workspace) loadAPI(ip string) *API {
	dir := w.resolve(ip)
	if dir == "" {
		return nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	api := &API{Path: ip, Dir: dir}
	fset := token.NewFileSet()
	seen := map[string]bool{}
	names := map[string]int{}
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		if info, err := e.Info(); err != nil || info.Size() > maxAPIFileBytes {
			continue
		}
		if w.ctx.Err() != nil {
			return nil
		}
		f, _ := parser.ParseFile(fset, filepath.Join(dir, n), nil, parser.SkipObjectResolution)
		if f == nil || f.Name == nil || f.Name.Name == "main" || f.Name.Name == "documentation" {
			continue
		}
		names[f.Name.Name]++
		dropBodies(f)
		// Build constraints are not evaluated: the same declaration from
		// several GOOS files counts once.
		for _, d := range exportedDecls(fset, f) {
			if k := d.Name + "\x00" + d.Text; !seen[k] {
				seen[k] = true
				api.Decls = append(api.Decls, d)
			}
		}
	}
	for n, c := range names {
		if c > names[api.Name] {
			api.Name = n
		}
	}
	sort.SliceStable(api.Decls, func(i, j int) bool {
		a, b := api.Decls[i], api.Decls[j]
		ka, kb := a.Name, b.Name
		if a.Recv != "" {
			ka = a.Recv + "\x01" + a.Name
		}
		if b.Recv != "" {
			kb = b.Recv + "\x01" + b.Name
		}
		return ka < kb
	})
	return api
}

func exported(name string) bool {
	r, _ := utf8.DecodeRuneInString(name)
	return unicode.IsUpper(r)
}

// maxValueBytes bounds an initialiser kept in a const or var's text.
const maxValueBytes = 60

// exportedDecls renders f's exported declarations.
func exportedDecls(fset *token.FileSet, f *ast.File) []Decl {
	var out []Decl
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if !exported(d.Name.Name) {
				continue
			}
			recv := ""
			if d.Recv != nil && len(d.Recv.List) > 0 {
				recv = recvTypeName(d.Recv.List[0].Type)
				if !exported(recv) {
					continue
				}
			}
			fd := *d
			fd.Doc, fd.Body = nil, nil
			name := d.Name.Name
			if recv != "" {
				name = recv + "." + name
			}
			out = append(out, Decl{Name: name, Recv: recv, Kind: token.FUNC, Text: render(fset, &fd)})
		case *ast.GenDecl:
			for _, s := range d.Specs {
				switch s := s.(type) {
				case *ast.TypeSpec:
					if !exported(s.Name.Name) {
						continue
					}
					ts := *s
					ts.Doc, ts.Comment = nil, nil
					ts.Type = exportedOnly(s.Type)
					out = append(out, Decl{Name: s.Name.Name, Kind: token.TYPE,
						Text: render(fset, &ast.GenDecl{Tok: token.TYPE, Specs: []ast.Spec{&ts}})})
				case *ast.ValueSpec:
					for i, n := range s.Names {
						if !exported(n.Name) {
							continue
						}
						vs := &ast.ValueSpec{Names: []*ast.Ident{n}, Type: s.Type}
						if i < len(s.Values) {
							vs.Values = []ast.Expr{s.Values[i]}
						}
						text := render(fset, &ast.GenDecl{Tok: d.Tok, Specs: []ast.Spec{vs}})
						if len(text) > maxValueBytes+len(n.Name)+10 && vs.Values != nil {
							vs.Values = nil
							text = render(fset, &ast.GenDecl{Tok: d.Tok, Specs: []ast.Spec{vs}})
						}
						out = append(out, Decl{Name: n.Name, Kind: d.Tok, Text: text})
					}
				}
			}
		}
	}
	return out
}

// exportedOnly returns a struct or interface type with its unexported
// fields and methods left out (a copy; other types as they are).
func exportedOnly(t ast.Expr) ast.Expr {
	keep := func(fl *ast.FieldList) *ast.FieldList {
		if fl == nil {
			return nil
		}
		out := &ast.FieldList{Opening: fl.Opening, Closing: fl.Closing}
		for _, f := range fl.List {
			g := *f
			g.Doc, g.Comment = nil, nil
			g.Names = nil
			for _, n := range f.Names {
				if exported(n.Name) {
					g.Names = append(g.Names, n)
				}
			}
			if len(f.Names) > 0 && len(g.Names) == 0 {
				continue
			}
			if len(f.Names) == 0 && !exported(recvTypeName(f.Type)) {
				continue // an unexported embedded type
			}
			out.List = append(out.List, &g)
		}
		return out
	}
	switch t := t.(type) {
	case *ast.StructType:
		return &ast.StructType{Struct: t.Struct, Fields: keep(t.Fields)}
	case *ast.InterfaceType:
		return &ast.InterfaceType{Interface: t.Interface, Methods: keep(t.Methods)}
	}
	return t
}

// recvTypeName is the type name of a receiver or embedded field: T in T,
// *T, T[P], pkg.T.
func recvTypeName(e ast.Expr) string {
	for {
		switch t := e.(type) {
		case *ast.StarExpr:
			e = t.X
		case *ast.IndexExpr:
			e = t.X
		case *ast.IndexListExpr:
			e = t.X
		case *ast.ParenExpr:
			e = t.X
		case *ast.SelectorExpr:
			return t.Sel.Name
		case *ast.Ident:
			return t.Name
		default:
			return ""
		}
	}
}

// render prints a node as gofmt would; positions of a node copied from a
// parsed file still come from fset.
func render(fset *token.FileSet, n ast.Node) string {
	var b bytes.Buffer
	cfg := printer.Config{Mode: printer.UseSpaces | printer.TabIndent, Tabwidth: 8}
	if err := cfg.Fprint(&b, fset, n); err != nil {
		return ""
	}
	return b.String()
}
