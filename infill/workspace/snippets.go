package workspace

import (
	"go/ast"
	"go/scanner"
	"go/token"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// Snippet is a piece of the workspace worth showing the model beside the
// code at the cursor.
type Snippet struct {
	Kind  string // "recv", "decl", "api" or "chunk" (see Pieces)
	Path  string // the file it comes from, or the import path of an API
	Text  string
	Score float64 // chunks: Jaccard similarity with the code at the cursor
}

// Pieces say which kinds of snippet a query wants.
type Pieces struct {
	Recv   bool // the enclosing method's receiver type: its fields and method signatures
	Decls  bool // package-level declarations of the names used in the enclosing function
	API    bool // imported packages' exported declarations of the pkg.Name used there
	Chunks bool // the chunks of the file, the package and the open files most similar to the code at the cursor
}

// AllPieces asks for every kind of snippet.
var AllPieces = Pieces{Recv: true, Decls: true, API: true, Chunks: true}

// Query asks for the snippets of one cursor.
type Query struct {
	Path   string // the document's absolute path
	Text   string // its text now
	Offset int    // the cursor, a byte offset in Text
	// Budget bounds the snippets' text in bytes (about 3.5 bytes a token
	// for Go).
	Budget int
	Pieces Pieces
	// Open are other open documents (path -> text) whose chunks compete
	// with the package's.
	Open map[string]string
	// Skip is a byte range of Text the model sees anyway (its local
	// window): chunks of Text inside it are not offered.
	SkipStart, SkipEnd int
}

// Snippets chooses the snippets for q from p, most relevant first, within
// q.Budget. It only reads p: it never waits for a load.
func Snippets(p *Package, q Query) []Snippet {
	if q.Budget <= 0 || q.Offset < 0 || q.Offset > len(q.Text) {
		return nil
	}
	fn := enclosing(q.Text, q.Offset)
	idx := p.index()
	var cands []Snippet
	seen := map[string]bool{}
	add := func(s Snippet) {
		if s.Text == "" || seen[s.Text] {
			return
		}
		seen[s.Text] = true
		cands = append(cands, s)
	}
	// Names declared by the enclosing function itself are in the window.
	if q.Pieces.Recv && fn.recv != "" {
		add(Snippet{Kind: "recv", Path: p.Dir, Text: idx.typeWithMethods(fn.recv, fn.name)})
	}
	if q.Pieces.Decls || q.Pieces.API {
		imports := importNames(q.Text, p)
		for _, u := range fn.uses(q.Offset) {
			if u.pkg != "" {
				if !q.Pieces.API {
					continue
				}
				ip, ok := imports[u.pkg]
				if !ok {
					continue
				}
				api := p.Imports[ip]
				if api == nil {
					continue
				}
				if ds := api.Lookup(u.name); len(ds) > 0 {
					add(Snippet{Kind: "api", Path: ip, Text: apiText(api, ds)})
				}
				continue
			}
			if !q.Pieces.Decls || u.name == fn.name || u.name == fn.recv {
				continue
			}
			if t := idx.decls[u.name]; t != "" {
				add(Snippet{Kind: "decl", Path: p.Dir, Text: t})
			}
		}
	}
	var out []Snippet
	used := 0
	// Declarations take at most three fifths of the budget when chunks
	// compete for it: a large receiver type must not crowd them out.
	declBudget := q.Budget
	if q.Pieces.Chunks {
		declBudget = q.Budget * 3 / 5
	}
	for _, s := range cands {
		if used+len(s.Text) > declBudget {
			continue
		}
		used += len(s.Text)
		out = append(out, s)
	}
	if q.Pieces.Chunks {
		for _, s := range similarChunks(p, q, fn) {
			if used+len(s.Text) > q.Budget {
				continue
			}
			used += len(s.Text)
			out = append(out, s)
		}
		// A declaration that a chosen chunk shows in full is shown once.
		kept := out[:0]
		for i, s := range out {
			if s.Kind == "chunk" || !shownIn(s.Text, out[i+1:]) {
				kept = append(kept, s)
			}
		}
		out = kept
	}
	return out
}

// Prelude renders snippets as the code the model reads before the local
// window: least relevant first, so that the most relevant is nearest the
// cursor, each one's origin in a comment line, separated by blank lines.
func Prelude(root string, snips []Snippet) string {
	var b strings.Builder
	for i := len(snips) - 1; i >= 0; i-- {
		s := snips[i]
		switch s.Kind {
		case "api":
			b.WriteString("// package " + s.Path + "\n")
		case "chunk":
			if rel, err := filepath.Rel(root, s.Path); err == nil && !strings.HasPrefix(rel, "..") {
				b.WriteString("// " + filepath.ToSlash(rel) + "\n")
			}
		}
		b.WriteString(strings.TrimRight(s.Text, "\n"))
		b.WriteString("\n\n")
	}
	return b.String()
}

// apiText renders an API's declarations of one name, qualified by the
// package so that the model reads pkg.Name as used.
func apiText(api *API, ds []Decl) string {
	var b strings.Builder
	for i, d := range ds {
		if i >= 12 {
			break // a type with many methods: its first dozen
		}
		b.WriteString(d.Text)
		b.WriteByte('\n')
	}
	return b.String()
}

// fnInfo is the top-level declaration holding the cursor, found by lines:
// gofmt puts top-level declarations at column 0, so this works on text
// being typed that no parser accepts.
type fnInfo struct {
	start, end int    // byte range of the declaration in the text
	name, recv string // function name and receiver type name, if any
	text       string
}

// maxFnLines bounds how far the enclosing declaration is looked for.
const maxFnLines = 400

func enclosing(text string, off int) fnInfo {
	// Back to the nearest line at column 0 that opens a declaration.
	start := strings.LastIndexByte(text[:off], '\n') + 1
	for n := 0; ; n++ {
		line := text[start:lineEnd(text, start)]
		if isDeclLine(line) {
			break
		}
		if start == 0 || n > maxFnLines {
			start = strings.LastIndexByte(text[:off], '\n') + 1
			break
		}
		start = strings.LastIndexByte(text[:start-1], '\n') + 1
	}
	// Forward to the closing "}" at column 0, or the next declaration.
	end := lineEnd(text, off)
	for n := 0; end < len(text) && n < maxFnLines; n++ {
		next := end + 1
		le := lineEnd(text, next)
		line := text[next:le]
		if isDeclLine(line) {
			break
		}
		end = le
		if strings.HasPrefix(line, "}") {
			break
		}
	}
	f := fnInfo{start: start, end: end, text: text[start:end]}
	f.name, f.recv = funcHeader(f.text)
	return f
}

func lineEnd(text string, i int) int {
	if j := strings.IndexByte(text[i:], '\n'); j >= 0 {
		return i + j
	}
	return len(text)
}

func isDeclLine(l string) bool {
	for _, kw := range []string{"func ", "type ", "var ", "const ", "import "} {
		if strings.HasPrefix(l, kw) {
			return true
		}
	}
	return false
}

// funcHeader reads the name and receiver type of "func (r *T[P]) Name(".
func funcHeader(decl string) (name, recv string) {
	toks := scan(decl, 64)
	if len(toks) < 2 || toks[0].tok != token.FUNC {
		return "", ""
	}
	i := 1
	if toks[i].tok == token.LPAREN {
		depth := 0
		last := ""
		for ; i < len(toks); i++ {
			switch toks[i].tok {
			case token.LPAREN:
				depth++
			case token.RPAREN:
				depth--
			case token.LBRACK:
				depth += 100 // type parameters of the receiver: not its name
			case token.RBRACK:
				depth -= 100
			case token.IDENT:
				if depth == 1 {
					last = toks[i].lit
				}
			}
			if depth == 0 {
				i++
				break
			}
		}
		recv = last
	}
	if i < len(toks) && toks[i].tok == token.IDENT {
		name = toks[i].lit
	}
	return name, recv
}

type scanned struct {
	off int
	tok token.Token
	lit string
}

// scan tokenizes src (at most limit tokens; 0: all), errors ignored.
func scan(src string, limit int) []scanned {
	var s scanner.Scanner
	fset := token.NewFileSet()
	file := fset.AddFile("", -1, len(src))
	s.Init(file, []byte(src), func(token.Position, string) {}, 0)
	var out []scanned
	for limit <= 0 || len(out) < limit {
		pos, tok, lit := s.Scan()
		if tok == token.EOF {
			break
		}
		out = append(out, scanned{file.Offset(pos), tok, lit})
	}
	return out
}

// use is a name used in the enclosing declaration: a plain identifier, or
// pkg.name.
type use struct{ pkg, name string }

// uses lists the names used in the declaration, nearest the cursor first,
// each once.
func (f fnInfo) uses(cursor int) []use {
	toks := scan(f.text, 0)
	type at struct {
		u    use
		dist int
	}
	best := map[use]int{}
	for i, t := range toks {
		if t.tok != token.IDENT {
			continue
		}
		if i > 0 && toks[i-1].tok == token.PERIOD {
			continue // a selector's right side: counted with its left
		}
		u := use{name: t.lit}
		if i+2 < len(toks) && toks[i+1].tok == token.PERIOD && toks[i+2].tok == token.IDENT {
			u = use{pkg: t.lit, name: toks[i+2].lit}
		}
		d := f.start + t.off - cursor
		if d < 0 {
			d = -d
		}
		if old, ok := best[u]; !ok || d < old {
			best[u] = d
		}
		if u.pkg != "" {
			// x.f where x is a local: x's type may be a package type.
			p := use{name: u.pkg}
			if old, ok := best[p]; !ok || d < old {
				best[p] = d
			}
		}
	}
	var list []at
	for u, d := range best {
		list = append(list, at{u, d})
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].dist != list[j].dist {
			return list[i].dist < list[j].dist
		}
		return list[i].u.pkg+"."+list[i].u.name < list[j].u.pkg+"."+list[j].u.name
	})
	out := make([]use, len(list))
	for i, a := range list {
		out[i] = a.u
	}
	return out
}

// importNames maps the names the document's imports are used by to their
// paths (the file's own import declarations, read from its text).
func importNames(text string, p *Package) map[string]string {
	out := map[string]string{}
	toks := scan(text, 4000)
	for i := 0; i < len(toks); i++ {
		if toks[i].tok != token.IMPORT {
			continue
		}
		j := i + 1
		group := j < len(toks) && toks[j].tok == token.LPAREN
		if group {
			j++
		}
		for ; j < len(toks); j++ {
			t := toks[j]
			if t.tok == token.RPAREN || !group && t.tok == token.SEMICOLON && j > i+2 {
				break
			}
			if t.tok != token.STRING {
				continue
			}
			ip := strings.Trim(t.lit, "`\"")
			name := ""
			if j > 0 && (toks[j-1].tok == token.IDENT || toks[j-1].tok == token.PERIOD) {
				name = toks[j-1].lit
			}
			if name == "" {
				if api := p.Imports[ip]; api != nil && api.Name != "" {
					name = api.Name
				} else {
					name = ip[strings.LastIndexByte(ip, '/')+1:]
				}
			}
			if name != "_" && name != "." {
				out[name] = ip
			}
			if !group {
				break
			}
		}
	}
	return out
}

// pkgIndex is what snippet selection needs of a package, built once per
// snapshot.
type pkgIndex struct {
	decls   map[string]string   // package-level name -> its declaration's text
	types   map[string]string   // type name -> "type T ..." text
	methods map[string][]method // type name -> method signatures
}

type method struct{ name, text string }

// lazyIndex is a snapshot's index, built on first use.
type lazyIndex struct {
	once sync.Once
	idx  *pkgIndex
}

// index returns p's index, built on first use and kept with p.
func (p *Package) index() *pkgIndex {
	if p.lazy == nil {
		return buildIndex(p) // a Package made outside a Workspace
	}
	p.lazy.once.Do(func() { p.lazy.idx = buildIndex(p) })
	return p.lazy.idx
}

func buildIndex(p *Package) *pkgIndex {
	idx := &pkgIndex{decls: map[string]string{}, types: map[string]string{}, methods: map[string][]method{}}
	for _, f := range p.Files {
		if f.AST == nil || f.AST.Name == nil || f.AST.Name.Name != p.Name {
			continue
		}
		for _, d := range f.AST.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				fd := *d
				fd.Doc, fd.Body = nil, nil
				text := render(f.Fset, &fd)
				if d.Recv != nil && len(d.Recv.List) > 0 {
					t := recvTypeName(d.Recv.List[0].Type)
					idx.methods[t] = append(idx.methods[t], method{d.Name.Name, text})
					continue
				}
				idx.decls[d.Name.Name] = text
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						ts := *s
						ts.Doc, ts.Comment = nil, nil
						text := render(f.Fset, &ast.GenDecl{Tok: token.TYPE, Specs: []ast.Spec{&ts}})
						idx.types[s.Name.Name] = text
						idx.decls[s.Name.Name] = text
					case *ast.ValueSpec:
						for i, n := range s.Names {
							vs := &ast.ValueSpec{Names: []*ast.Ident{n}, Type: s.Type}
							if i < len(s.Values) {
								vs.Values = []ast.Expr{s.Values[i]}
							}
							text := render(f.Fset, &ast.GenDecl{Tok: d.Tok, Specs: []ast.Spec{vs}})
							if len(text) > maxValueBytes+len(n.Name)+10 && vs.Values != nil {
								vs.Values = nil
								text = render(f.Fset, &ast.GenDecl{Tok: d.Tok, Specs: []ast.Spec{vs}})
							}
							idx.decls[n.Name] = text
						}
					}
				}
			}
		}
	}
	for _, ms := range idx.methods {
		sort.Slice(ms, func(i, j int) bool { return ms[i].name < ms[j].name })
	}
	return idx
}

// maxMethods bounds the method signatures shown with a receiver type.
const maxMethods = 16

// typeWithMethods renders type t and its methods' signatures, except the
// method being written.
func (idx *pkgIndex) typeWithMethods(t, except string) string {
	var b strings.Builder
	if td := idx.types[t]; td != "" {
		b.WriteString(td)
		b.WriteString("\n")
	}
	n := 0
	for _, m := range idx.methods[t] {
		if m.name == except || n == maxMethods {
			continue
		}
		n++
		b.WriteString(m.text)
		b.WriteByte('\n')
	}
	return b.String()
}

// maxChunks bounds the chunks offered, however large the budget.
const maxChunks = 6

// similarChunks ranks the chunks of the document (outside the window the
// model sees), of the package's other files and of the open documents by
// Jaccard similarity of identifiers with the lines before the cursor.
func similarChunks(p *Package, q Query, fn fnInfo) []Snippet {
	// The query: the enclosing declaration up to the cursor's line, at
	// most its last 20 lines, so that it stays the same while the user
	// types on one line.
	ls := strings.LastIndexByte(q.Text[:q.Offset], '\n') + 1
	qs := max(fn.start, 0)
	for n, i := 0, ls; n < 20 && i > qs; n++ {
		i = strings.LastIndexByte(q.Text[:i-1], '\n') + 1
		qs = max(qs, i)
		if n == 19 {
			qs = i
		}
	}
	want := identifiers(q.Text[min(qs, ls):ls])
	if len(want) == 0 {
		return nil
	}
	type scored struct {
		s   Snippet
		sim float64
	}
	var all []scored
	consider := func(path, text string, cs []chunk, skipA, skipB int) {
		for _, c := range cs {
			if c.end > skipA && c.start < skipB {
				continue
			}
			if sim := jaccard(want, c.ids); sim > 0 {
				all = append(all, scored{Snippet{Kind: "chunk", Path: path, Text: text[c.start:c.end], Score: sim}, sim})
			}
		}
	}
	consider(q.Path, q.Text, chunkFile(q.Text), q.SkipStart, q.SkipEnd)
	for _, f := range p.Files {
		if f.Path == q.Path || f.Text == "" {
			continue
		}
		consider(f.Path, f.Text, f.chunks, 0, 0)
	}
	for path, text := range q.Open {
		if path == q.Path || filepath.Dir(path) == p.Dir || len(text) > 1<<20 {
			continue
		}
		consider(path, text, chunkFile(text), 0, 0)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].sim > all[j].sim })
	var out []Snippet
	var taken []Snippet
	for _, a := range all {
		if len(out) == maxChunks {
			break
		}
		overlap := false
		for _, t := range taken {
			if t.Path == a.s.Path && (strings.Contains(t.Text, a.s.Text[:min(len(a.s.Text), 40)]) || strings.Contains(a.s.Text, t.Text[:min(len(t.Text), 40)])) {
				overlap = true
			}
		}
		if overlap {
			continue
		}
		taken = append(taken, a.s)
		out = append(out, a.s)
	}
	return out
}

// shownIn reports whether a chunk among snips holds text.
func shownIn(text string, snips []Snippet) bool {
	t := strings.TrimRight(text, "\n")
	for _, s := range snips {
		if s.Kind == "chunk" && strings.Contains(s.Text, t) {
			return true
		}
	}
	return false
}
