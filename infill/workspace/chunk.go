package workspace

import (
	"go/scanner"
	"go/token"
	"strings"
)

// Chunks of a file that similarity search compares with the code at the
// cursor (as Copilot's neighbouring-tab snippets and llama.vim's ring of
// chunks do): windows of chunkLines lines every chunkStride lines.
const (
	chunkLines  = 10
	chunkStride = 5
)

// chunk is a window of lines of a file and the identifiers in it.
type chunk struct {
	start, end int // byte range in the file's text
	line       int // first line, from 0
	ids        map[string]struct{}
}

// chunkFile cuts text into overlapping windows of lines and indexes each
// by its identifiers.
func chunkFile(text string) []chunk {
	var starts []int
	starts = append(starts, 0)
	for i := 0; i < len(text); i++ {
		if text[i] == '\n' && i+1 < len(text) {
			starts = append(starts, i+1)
		}
	}
	var out []chunk
	for l := 0; l < len(starts); l += chunkStride {
		e := len(text)
		if l+chunkLines < len(starts) {
			e = starts[l+chunkLines]
		}
		c := chunk{start: starts[l], end: e, line: l, ids: identifiers(text[starts[l]:e])}
		if len(c.ids) > 0 {
			out = append(out, c)
		}
		if e == len(text) {
			break
		}
	}
	return out
}

// identifiers is the set of identifiers in src (Go's scanner, errors
// ignored: a chunk starts and ends anywhere, inside a comment or string).
func identifiers(src string) map[string]struct{} {
	var s scanner.Scanner
	fset := token.NewFileSet()
	file := fset.AddFile("", -1, len(src))
	s.Init(file, []byte(src), func(token.Position, string) {}, 0)
	ids := map[string]struct{}{}
	for {
		_, tok, lit := s.Scan()
		if tok == token.EOF {
			break
		}
		if tok == token.IDENT && lit != "_" {
			ids[lit] = struct{}{}
		}
	}
	return ids
}

// jaccard is |a ∩ b| / |a ∪ b|.
func jaccard(a, b map[string]struct{}) float64 {
	if len(a) == 0 || len(b) == 0 {
		return 0
	}
	if len(a) > len(b) {
		a, b = b, a
	}
	n := 0
	for k := range a {
		if _, ok := b[k]; ok {
			n++
		}
	}
	return float64(n) / float64(len(a)+len(b)-n)
}

// lineCount is the number of lines of s.
func lineCount(s string) int { return strings.Count(s, "\n") + 1 }
