package gocheck

import (
	"go/scanner"
	"go/token"
	"strings"
)

type tok struct {
	tok      token.Token
	lit      string
	from, to int // byte range in the answer
}

func tokens(s string) []tok {
	var sc scanner.Scanner
	fset := token.NewFileSet()
	f := fset.AddFile("", -1, len(s))
	sc.Init(f, []byte(s), nil, 0)
	var out []tok
	for {
		pos, t, lit := sc.Scan()
		if t == token.EOF {
			return out
		}
		if t == token.SEMICOLON && lit == "\n" {
			continue
		}
		o := f.Offset(pos)
		end := o + len(t.String())
		if lit != "" {
			end = o + len(lit)
		}
		out = append(out, tok{t, lit, o, min(end, len(s))})
	}
}

func sameTok(a, b tok) bool {
	return a.tok == b.tok && (a.lit == b.lit || a.tok == token.SEMICOLON)
}

// repeats finds the degenerate repetition of masked decoders: a pattern
// of 1 to 8 tokens holding a name or a literal, written 3 times or more in
// a row ("name, name, name, "), that the document does not have as it is.
// It returns that run's text, or "".
func repeats(answer, doc string) string {
	ts := tokens(answer)
	for k := 1; k <= 8; k++ {
		for i := 0; i+3*k-1 <= len(ts); i++ {
			r := 1
			for i+(r+1)*k <= len(ts) && samePattern(ts[i:i+k], ts[i+r*k:i+(r+1)*k]) {
				r++
			}
			end := i + r*k // tokens of the run
			// The last element needs no separator after it ("a, a, a").
			if k > 1 && end+k-1 <= len(ts) && samePattern(ts[i:i+k-1], ts[end:end+k-1]) {
				r, end = r+1, end+k-1
			}
			if r < 3 || !hasOperand(ts[i:i+k]) {
				continue
			}
			run := answer[ts[i].from:ts[end-1].to]
			if !strings.Contains(doc, run) {
				return run
			}
		}
	}
	return ""
}

func samePattern(a, b []tok) bool {
	for i := range a {
		if !sameTok(a[i], b[i]) {
			return false
		}
	}
	return true
}

func hasOperand(p []tok) bool {
	for _, t := range p {
		if t.tok == token.IDENT || t.tok.IsLiteral() {
			return true
		}
	}
	return false
}

// dupSuffix reports whether the answer ends by writing again what follows
// it: its last line is the next line of the document (a line with a
// name or literal in it), or, within a line, it ends with the rest of the
// line.
func dupSuffix(answer, after string) bool {
	a := strings.TrimRight(answer, " \t\n")
	if a == "" {
		return false
	}
	rest, _, _ := strings.Cut(after, "\n")
	if strings.TrimSpace(rest) != "" {
		r := strings.TrimSpace(rest)
		return meaningful(r) && strings.HasSuffix(a, r)
	}
	// The answer ends a line: compare its last line with the next
	// non-blank line of the document.
	next := ""
	for _, l := range strings.Split(after, "\n")[1:] {
		if strings.TrimSpace(l) != "" {
			next = strings.TrimSpace(l)
			break
		}
	}
	last := a[strings.LastIndexByte(a, '\n')+1:]
	return next != "" && meaningful(next) && strings.TrimSpace(last) == next
}

// meaningful: text with a name or a literal, not just closing brackets.
func meaningful(s string) bool {
	return hasOperand(tokens(s))
}
