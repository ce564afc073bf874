package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"go/scanner"
	"go/token"
	"hash/fnv"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/diffill/diffill/infill/workspace"
)

// Limits on the files eval --workspace cuts cases from.
const (
	// wsMaxFileBytes skips huge files (tables, generated data that
	// escaped the "Code generated" marker): no one types there.
	wsMaxFileBytes = 256 << 10
	// wsMaxLineBytes skips target lines no completion could be asked for
	// (long literals, tables).
	wsMaxLineBytes = 160
)

// caseKinds are the kinds eval --workspace cuts, in report order.
var caseKinds = []string{"cursor", "line", "block"}

// cutOptions say how eval --workspace cuts its cases.
type cutOptions struct {
	perKind int    // cases of each kind, over all workspaces
	seed    uint64 // the same seed gives the same cases
	tests   bool   // also cut from _test.go files
}

// wsFile is one Go file a workspace's cases come from.
type wsFile struct {
	path  string
	text  string
	lines []int // byte offset of each line start
}

func (f *wsFile) line(i int) (start, end int) {
	start = f.lines[i]
	end = len(f.text)
	if i+1 < len(f.lines) {
		end = f.lines[i+1] - 1 // before the '\n'
	}
	return start, end
}

// cutWorkspaceCases cuts o.perKind cases of each kind from the Go files of
// dirs (each a module's root), split evenly between them. Each case
// carries the absolute path of its file and its module's path.
func cutWorkspaceCases(dirs []string, o cutOptions) ([]*evalCase, error) {
	var cs []*evalCase
	for wi, dir := range dirs {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, fmt.Errorf("--workspace %s: %w", dir, err)
		}
		files, err := workspaceFiles(abs, o.tests)
		if err != nil {
			return nil, fmt.Errorf("--workspace %s: %w", dir, err)
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("--workspace %s: no Go files to cut cases from (generated, vendored, testdata and files over %d KB are skipped)", dir, wsMaxFileBytes>>10)
		}
		mod := modulePath(abs)
		// The first workspaces take the remainder, so the total per kind
		// is exactly perKind.
		n := o.perKind / len(dirs)
		if wi < o.perKind%len(dirs) {
			n++
		}
		h := fnv.New64a()
		h.Write([]byte(mod))
		rng := rand.New(rand.NewPCG(o.seed, h.Sum64()))
		for _, kind := range caseKinds {
			got := cutKind(files, kind, n, rng)
			for _, c := range got {
				c.Module = mod
			}
			cs = append(cs, got...)
		}
	}
	return cs, nil
}

// cutKind draws n cases of one kind, uniformly over the eligible lines of
// all files, without repeating a line.
func cutKind(files []*wsFile, kind string, n int, rng *rand.Rand) []*evalCase {
	type ref struct{ f, l int }
	var pool []ref
	for fi, f := range files {
		for l := range f.lines {
			if eligibleLine(f, l) {
				pool = append(pool, ref{fi, l})
			}
		}
	}
	var out []*evalCase
	// A drawn line may not fit the kind (a cursor needs an inner token
	// boundary, a block two more lines): draw again, a bounded number of
	// times so that a file set without such lines still ends.
	for tries := 0; len(out) < n && len(pool) > 0 && tries < 20*n+100; tries++ {
		i := rng.IntN(len(pool))
		r := pool[i]
		pool[i] = pool[len(pool)-1]
		pool = pool[:len(pool)-1]
		if c := cutCase(files[r.f], r.l, kind, rng); c != nil {
			out = append(out, c)
		}
	}
	return out
}

// cutCase cuts a case of kind at line l of f, or nil when the line does
// not fit the kind.
func cutCase(f *wsFile, l int, kind string, rng *rand.Rand) *evalCase {
	ls, le := f.line(l)
	lineText := f.text[ls:le]
	content := strings.TrimLeft(lineText, " \t")
	at := ls + len(lineText) - len(content) // after the indentation
	c := &evalCase{Kind: kind, Path: f.path}
	switch kind {
	case "line":
		c.Prefix, c.Middle, c.Suffix = f.text[:at], content, f.text[le:]
	case "cursor":
		cuts := innerBoundaries(content)
		if len(cuts) == 0 {
			return nil
		}
		o := cuts[rng.IntN(len(cuts))]
		c.Prefix, c.Middle, c.Suffix = f.text[:at+o], content[o:], f.text[le:]
	case "block":
		if l+2 >= len(f.lines) {
			return nil
		}
		_, be := f.line(l + 2)
		c.Prefix, c.Middle, c.Suffix = f.text[:at], f.text[at:be], f.text[be:]
	default:
		return nil
	}
	return c
}

// innerBoundaries are the byte offsets in content where a Go token starts
// or ends, strictly inside it and in its first three quarters: where a
// user who typed part of the line would pause.
func innerBoundaries(content string) []int {
	var s scanner.Scanner
	fset := token.NewFileSet()
	file := fset.AddFile("", -1, len(content))
	s.Init(file, []byte(content), func(token.Position, string) {}, scanner.ScanComments)
	limit := len(content) * 3 / 4
	seen := map[int]bool{}
	var out []int
	add := func(o int) {
		if o > 0 && o <= limit && !seen[o] {
			seen[o] = true
			out = append(out, o)
		}
	}
	for {
		pos, tok, lit := s.Scan()
		if tok == token.EOF {
			break
		}
		if tok == token.SEMICOLON && lit == "\n" {
			continue // inserted, not typed
		}
		o := file.Offset(pos)
		add(o)
		switch {
		case tok.IsLiteral() || tok == token.COMMENT:
			add(o + len(lit))
		case tok.IsOperator() || tok.IsKeyword():
			add(o + len(tok.String()))
		}
	}
	slices.Sort(out)
	return out
}

// eligibleLine reports whether line l of f may be a case's target: not
// blank, not only brackets and punctuation, not over wsMaxLineBytes.
func eligibleLine(f *wsFile, l int) bool {
	ls, le := f.line(l)
	t := strings.TrimSpace(f.text[ls:le])
	return t != "" && len(t) <= wsMaxLineBytes && strings.Trim(t, "{}()[],;") != ""
}

// workspaceFiles reads the Go files of a module's tree that cases may come
// from, sorted by path: not vendored, not testdata, not in a nested module,
// not generated, not over wsMaxFileBytes, and _test.go files only when
// tests is set.
func workspaceFiles(root string, tests bool) ([]*wsFile, error) {
	var files []*wsFile
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // an unreadable directory costs its cases, not the run
		}
		name := d.Name()
		if d.IsDir() {
			if path != root {
				if name == "vendor" || name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
					return filepath.SkipDir
				}
				if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
					return filepath.SkipDir // another module
				}
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || !tests && strings.HasSuffix(name, "_test.go") {
			return nil
		}
		info, err := d.Info()
		if err != nil || !info.Mode().IsRegular() || info.Size() > wsMaxFileBytes {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil || isGenerated(b) {
			return nil
		}
		f := &wsFile{path: path, text: string(b), lines: []int{0}}
		for i, c := range b {
			if c == '\n' && i+1 < len(b) {
				f.lines = append(f.lines, i+1)
			}
		}
		files = append(files, f)
		return nil
	})
	return files, err
}

// isGenerated reports whether a Go file says it is generated: a line
// "// Code generated ... DO NOT EDIT." before the package clause (Go's
// convention, as ast.IsGenerated reads it).
func isGenerated(b []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "package ") {
			return false
		}
		if strings.HasPrefix(l, "// Code generated ") && strings.HasSuffix(l, "DO NOT EDIT.") {
			return true
		}
	}
	return false
}

// modulePath is the module path in dir's go.mod, or dir's base name.
func modulePath(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(l), "module "); ok {
				return strings.Trim(strings.TrimSpace(rest), `"`)
			}
		}
	}
	base := filepath.Base(dir)
	if i := strings.LastIndexByte(base, '@'); i > 0 {
		base = base[:i]
	}
	return base
}

// copyLine is the "copy a line" baseline: the nearest other line of the
// document (above first at equal distance) that starts with what the user
// typed on the cursor's line, indentation aside, and goes on, and is not
// only brackets; its rest is the answer.
func copyLine(c *evalCase) string {
	ls := strings.LastIndexByte(c.Prefix, '\n') + 1
	typed := strings.TrimLeft(c.Prefix[ls:], " \t")
	above := strings.Split(c.Prefix[:max(0, ls-1)], "\n")
	if ls == 0 {
		above = nil
	}
	var below []string
	if i := strings.IndexByte(c.Suffix, '\n'); i >= 0 {
		below = strings.Split(c.Suffix[i+1:], "\n")
	}
	fits := func(l string) (string, bool) {
		t := strings.TrimSpace(l)
		// Bracket-only lines are never asked for (see eligibleLine).
		if !strings.HasPrefix(t, typed) || strings.TrimSpace(t[len(typed):]) == "" || strings.Trim(t, "{}()[],;") == "" {
			return "", false
		}
		return t[len(typed):], true
	}
	for d := 0; d < len(above) || d < len(below); d++ {
		if d < len(above) {
			if r, ok := fits(above[len(above)-1-d]); ok {
				return r
			}
		}
		if d < len(below) {
			if r, ok := fits(below[d]); ok {
				return r
			}
		}
	}
	return ""
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// hasPaths reports whether some case says which file it is.
func hasPaths(cs []*evalCase) bool {
	for _, c := range cs {
		if c.Path != "" {
			return true
		}
	}
	return false
}

// contextConfigs parses --snippets: runs "none", "all", or pieces joined by
// "+", each with an optional "@BYTES" budget; or "copy" (no snippets in the
// canvas, the copy prior over the document) or "copy+package" (the copy
// prior over the document and the package's snippets).
func contextConfigs(list string, bytes int, cache bool, length string) ([]evalConfig, error) {
	var out []evalConfig
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		name, budget := item, bytes
		if n, b, ok := strings.Cut(item, "@"); ok {
			v, err := strconv.Atoi(b)
			if err != nil || v <= 0 {
				return nil, fmt.Errorf("--snippets %q: want a positive byte budget after @", item)
			}
			name, budget = n, v
		}
		cfg := evalConfig{name: item, cache: cache, length: length}
		switch name {
		case "copy":
			cfg.copy = copyDoc
			out = append(out, cfg)
			continue
		case "copy+package":
			cfg.copy = copyPackage
			out = append(out, cfg)
			continue
		}
		if name != "none" {
			wc := workspace.DefaultConfig
			wc.Budget = budget
			wc.Pieces = workspace.Pieces{}
			for _, piece := range strings.Split(name, "+") {
				switch piece {
				case "all":
					wc.Pieces = workspace.AllPieces
				case "recv":
					wc.Pieces.Recv = true
				case "decls":
					wc.Pieces.Decls = true
				case "api":
					wc.Pieces.API = true
				case "chunks":
					wc.Pieces.Chunks = true
				default:
					return nil, fmt.Errorf("--snippets %q: %q is not none, all, recv, decls, api or chunks", item, piece)
				}
			}
			cfg.context = &wc
		}
		out = append(out, cfg)
	}
	return out, nil
}

// caseContext loads the package of a case's file with the case's text
// (the file with its middle cut out) as an unsaved overlay, waiting for
// it as an editor would have by then, and returns what chooses the
// snippets then: the part of a request's path that eval times.
func caseContext(ctx context.Context, sess *workspace.Session, c *evalCase, text string, at int, cfg workspace.Config) func() string {
	w := sess.For(c.Path)
	w.SetOverlay(c.Path, text)
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	p := w.Wait(wctx, c.Path)
	cancel()
	return func() string {
		defer w.ClearOverlay(c.Path)
		return workspace.Prelude(w.Root(), workspace.Snippets(p, cfg.Query(c.Path, text, at, nil)))
	}
}
