// Package gocheck asks Go about an answer put in place: does the enclosing
// declaration still parse, do its names resolve, does it repeat itself or
// the code after it. It knows nothing of LSP; names in scope come from the
// document itself and from a workspace snapshot of its package
// (infill/workspace), type information from go/types over those files.
//
// Checks are relative to the document's own state: a file already broken
// elsewhere does not make every answer fail, only errors the answer adds
// count.
package gocheck

import (
	"go/ast"
	"go/parser"
	"go/scanner"
	"go/token"
	"strings"
	"unicode/utf8"

	"github.com/diffill/diffill/infill/workspace"
)

// Doc is a document and the span an answer replaces.
type Doc struct {
	Path       string // the file's path ("" when not a file; only its name is used to leave it out of Pkg)
	Text       string
	Start, End int                // the span of Text the answer replaces
	Pkg        *workspace.Package // the file's package as loaded; nil: the file alone
}

// Verdict is what the checks found for one answer.
type Verdict struct {
	// Parses is false when the enclosing declaration has parse errors with
	// the answer in place that it did not have before; ParseError is the
	// first of them.
	Parses     bool
	ParseError string
	// ParseErrorAt is where that error is, in bytes from the answer's
	// start (past its end when the parser found out only after it).
	ParseErrorAt int
	// Unresolved are the names the answer uses that are nowhere in scope:
	// undeclared identifiers, members that the selected package or type
	// does not have.
	Unresolved []string
	// TypeErrors are the other type errors go/types reports inside the
	// answer (a wrong argument count, a mismatched type).
	TypeErrors []string
	// Repeats is a run of 3 or more repetitions of one pattern of tokens
	// that the document does not have ("name, name, name, "), or "".
	Repeats string
	// DupSuffix: the answer ends with the text that follows it.
	DupSuffix bool
	// Typed: the type check ran (Unresolved and TypeErrors are known).
	Typed bool
}

// OK reports whether every check passed.
func (v Verdict) OK() bool {
	return v.Parses && len(v.Unresolved) == 0 && len(v.TypeErrors) == 0 && v.Repeats == "" && !v.DupSuffix
}

// Reasons lists the failed checks, in words, for logs and tests.
func (v Verdict) Reasons() []string {
	var out []string
	if !v.Parses {
		out = append(out, "parse: "+v.ParseError)
	}
	for _, n := range v.Unresolved {
		out = append(out, "unresolved: "+n)
	}
	for _, e := range v.TypeErrors {
		out = append(out, "type: "+e)
	}
	if v.Repeats != "" {
		out = append(out, "repeats: "+v.Repeats)
	}
	if v.DupSuffix {
		out = append(out, "duplicates the suffix")
	}
	return out
}

// Checker checks answers for one Doc. It is not safe for concurrent use.
type Checker struct {
	doc         Doc
	regionStart int // the enclosing declarations' start in Text
	regionEnd   int // their end in Text
	beforeErrs  map[errKey]bool
	others      []*ast.File // the package's other files (bodies dropped)
	otherBase   int
	imports     map[string]*workspace.API // import path -> API, as loaded
	// knowsPackage: the package's other files are in, so a name declared
	// nowhere that go/types sees is truly undeclared.
	knowsPackage bool
	// broken are the file's other top-level regions that do not parse
	// alone (in Text): blanked before type-checking, so that the parser's
	// recovery from them does not swallow the declaration being checked.
	broken [][2]int
}

// errKey identifies a parse error across the two versions of a region:
// its offset in the after-coordinates and its message.
type errKey struct {
	off int
	msg string
}

// New prepares the checks of answers for d: the enclosing declaration's
// parse errors without an answer, the package's other files.
func New(d Doc) *Checker {
	c := &Checker{doc: d}
	c.regionStart, c.regionEnd = enclosingRegion(d.Text, d.Start, d.End)
	before := d.Text[c.regionStart:d.Start] + d.Text[d.End:c.regionEnd]
	c.beforeErrs = map[errKey]bool{}
	for _, e := range regionErrors(before) {
		off := e.off
		if off >= d.Start-c.regionStart {
			// after the span: an answer of length n moves it by n
			off = -1 - (off - (d.Start - c.regionStart)) // counted from the span's end, negative
		}
		c.beforeErrs[errKey{off, e.msg}] = true
	}
	for lo := 0; lo < len(d.Text); {
		hi := nextDecl(d.Text, lo)
		if (hi <= c.regionStart || lo >= c.regionEnd) && len(regionErrors(d.Text[lo:hi])) > 0 {
			c.broken = append(c.broken, [2]int{lo, hi})
		}
		lo = hi
	}
	if d.Pkg != nil {
		c.imports = d.Pkg.Imports
		c.knowsPackage = len(d.Pkg.Files) > 0
		for _, f := range d.Pkg.Files {
			if f.AST == nil || samePath(f.Path, d.Path) {
				continue
			}
			if f.AST.Name == nil || f.AST.Name.Name != d.Pkg.Name {
				continue
			}
			c.others = append(c.others, f.AST)
			if f.Fset != nil && f.Fset.Base() > c.otherBase {
				c.otherBase = f.Fset.Base()
			}
		}
	}
	return c
}

func samePath(a, b string) bool {
	return a != "" && b != "" && strings.TrimSuffix(a, "/") == strings.TrimSuffix(b, "/")
}

type posErr struct {
	off int
	msg string
}

// regionHeader makes a region a file.
const regionHeader = "package p\n"

// regionErrors parses a region of top-level declarations and returns its
// errors by offset in the region.
func regionErrors(region string) []posErr {
	fset := token.NewFileSet()
	header := regionHeader
	if declLine(region) && strings.HasPrefix(region, "package") {
		header = ""
	}
	_, err := parser.ParseFile(fset, "", header+region, parser.AllErrors|parser.SkipObjectResolution)
	var out []posErr
	if el, ok := err.(scanner.ErrorList); ok {
		for _, e := range el {
			out = append(out, posErr{e.Pos.Offset - len(header), e.Msg})
		}
	} else if err != nil {
		out = append(out, posErr{0, err.Error()})
	}
	return out
}

// enclosingRegion returns the top-level declarations that hold [start,
// end) in text: from the last line at or before start that begins a
// declaration (a keyword in column 0) to the next such line after end.
func enclosingRegion(text string, start, end int) (int, int) {
	lo := strings.LastIndexByte(text[:start], '\n') + 1
	for lo > 0 && !declLine(text[lo:]) {
		lo = strings.LastIndexByte(text[:lo-1], '\n') + 1
	}
	return lo, nextDecl(text, max(end, lo))
}

// nextDecl returns the start of the first line after the one holding at
// that begins a top-level declaration, or len(text).
func nextDecl(text string, at int) int {
	hi := at
	for {
		i := strings.IndexByte(text[hi:], '\n')
		if i < 0 {
			return len(text)
		}
		hi += i + 1
		if hi >= len(text) || declLine(text[hi:]) {
			return hi
		}
	}
}

// declLine reports whether s starts with a top-level declaration keyword.
func declLine(s string) bool {
	for _, kw := range []string{"func", "type", "var", "const", "import", "package"} {
		if strings.HasPrefix(s, kw) && len(s) > len(kw) && (s[len(kw)] == ' ' || s[len(kw)] == '(' || s[len(kw)] == '\t') {
			return true
		}
	}
	return false
}

// Check runs every check on answer in place of the span.
func (c *Checker) Check(answer string) Verdict {
	v := c.CheckSyntax(answer)
	c.CheckTypes(answer, &v)
	return v
}

// CheckSyntax runs the checks that need no type information (parse,
// repetition, duplicated suffix): a fraction of a millisecond, where the
// type check costs the package's declarations (10-30 ms on gonum's mat).
func (c *Checker) CheckSyntax(answer string) Verdict {
	v := Verdict{}
	v.ParseError, v.ParseErrorAt = c.parseCheck(answer)
	v.Parses = v.ParseError == ""
	v.Repeats = repeats(answer, c.doc.Text)
	v.DupSuffix = dupSuffix(answer, c.doc.Text[c.doc.End:])
	return v
}

// CheckTypes adds the type check's findings to v.
func (c *Checker) CheckTypes(answer string, v *Verdict) {
	v.Unresolved, v.TypeErrors = c.typeCheck(answer)
	v.Typed = true
}

// parseCheck returns the first parse error of the enclosing region that
// the answer adds, or "", and where it is, in bytes from the answer's
// start.
func (c *Checker) parseCheck(answer string) (string, int) {
	d := c.doc
	spanAt := d.Start - c.regionStart
	after := d.Text[c.regionStart:d.Start] + answer + d.Text[d.End:c.regionEnd]
	// The lines the answer is on (and the next, where the parser finds
	// what a line lacks) must parse whatever their state before: an answer
	// that leaves "n := f(s, " as broken as it was is no answer.
	lineLo := strings.LastIndexByte(after[:spanAt], '\n') + 1
	lineHi := spanAt + len(answer)
	for n := 0; n < 2 && lineHi < len(after); n++ {
		if i := strings.IndexByte(after[lineHi:], '\n'); i >= 0 {
			lineHi += i + 1
		} else {
			lineHi = len(after)
		}
	}
	for _, e := range regionErrors(after) {
		off := e.off
		if off >= lineLo && off < lineHi {
			return e.msg, e.off - spanAt
		}
		if off >= spanAt+len(answer) {
			off = -1 - (off - spanAt - len(answer))
		}
		if !c.beforeErrs[errKey{off, e.msg}] {
			return e.msg, e.off - spanAt
		}
	}
	return "", 0
}

// ParsingPrefix returns the longest prefix of answer that passes the
// parse check, or "" when none does. Prefixes are cut at any character,
// not at the answer's own tokens: an answer may begin inside a string.
func (c *Checker) ParsingPrefix(answer string) string {
	for n := len(answer) - 1; n > 0; n-- {
		if !utf8.RuneStart(answer[n]) {
			continue
		}
		p := answer[:n]
		if strings.TrimSpace(p) == "" || strings.TrimRight(p, " \t") != p {
			continue
		}
		if msg, _ := c.parseCheck(p); msg == "" {
			return p
		}
	}
	return ""
}
