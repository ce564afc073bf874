package infill

import "strings"

// postContext is what post-processing knows of a span's surroundings.
type postContext struct {
	before string // the document before the span
	after  string // the document after the span
	orig   string // the span's original text (infill, rewrite)
	single bool   // one line: stop at the end of the line
	// closing is the editor's closers a completion replaces (see
	// ClosingRest): the answer must keep them.
	closing string
}

// postprocess cleans a decoded span text: it drops bytes that do not form
// UTF-8 (byte-level tokens can be decoded in an order no text has), stops a
// one-line completion at the end of its line, removes text that duplicates
// what follows the span, and keeps brackets balanced where the span
// started balanced.
func postprocess(ans string, pc postContext) string {
	ans = strings.ToValidUTF8(ans, "")
	if pc.single {
		if i := strings.IndexAny(ans, "\r\n"); i >= 0 {
			ans = ans[:i]
		}
	}
	open := openBrackets(pc.before)
	ans = trimLineOverlap(ans, pc.after)
	ans = trimCharOverlap(ans, pc, open)
	ans = trimUnmatchedClosers(ans, pc, open)
	ans = trimOpenComment(ans, open)
	if lineEndFollows(pc.after) {
		// No trailing blanks before the end of the line.
		ans = strings.TrimRight(ans, " \t")
	}
	return keepClosers(ans, pc, open)
}

// lineEndFollows reports whether the span ends its line.
func lineEndFollows(after string) bool {
	return after == "" || after[0] == '\n' || after[0] == '\r'
}

// trimLineOverlap drops whole lines at the end of ans that repeat the lines
// right after the span (the model wrote the suffix again).
func trimLineOverlap(ans, after string) string {
	if !strings.Contains(ans, "\n") {
		return ans
	}
	// The lines after the span: the rest of the span's line, then whole
	// lines. Only whole lines are compared.
	rest := after
	i := strings.IndexByte(rest, '\n')
	if i < 0 {
		return ans
	}
	if strings.TrimSpace(rest[:i]) != "" {
		return ans // the span is mid-line: its answer's lines end before rest
	}
	next := strings.Split(rest[i+1:], "\n")
	lines := strings.Split(ans, "\n")
	// The answer's line 0 continues the document's line; lines 1.. are
	// whole. Find the largest k such that lines[len-k:] == next[:k],
	// ignoring blank lines at the end of the answer.
	for len(lines) > 1 && strings.TrimSpace(lines[len(lines)-1]) == "" {
		lines = lines[:len(lines)-1]
	}
	for k := len(lines) - 1; k >= 1; k-- {
		if k > len(next) {
			continue
		}
		match := true
		for j := 0; j < k; j++ {
			a, b := strings.TrimRight(lines[len(lines)-k+j], " \t\r"), strings.TrimRight(next[j], " \t\r")
			if a != b || strings.TrimSpace(a) == "" && j == 0 {
				match = false
				break
			}
		}
		if match {
			return strings.Join(lines[:len(lines)-k], "\n")
		}
	}
	return ans
}

// trimCharOverlap removes the end of ans where it repeats the start of the
// rest of the line after the span and leaves a closing bracket unmatched:
// "f(a, b)" before ")" becomes "f(a, b".
func trimCharOverlap(ans string, pc postContext, open bracketScanner) string {
	line := pc.after
	if i := strings.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	if line == "" || ans == "" {
		return ans
	}
	base := unmatchedClosers(open, ans+line)
	if base == 0 {
		return ans
	}
	for k := min(len(ans), len(line)); k >= 1; k-- {
		if !strings.HasSuffix(ans, line[:k]) {
			continue
		}
		cut := ans[:len(ans)-k]
		if unmatchedClosers(open, cut+line) < base {
			return cut
		}
	}
	return ans
}

// trimUnmatchedClosers cuts ans before its first closing bracket (or
// "*/") that matches nothing, when the span's original text had none (it
// "started balanced"), so that the document's bracket structure survives.
func trimUnmatchedClosers(ans string, pc postContext, open bracketScanner) string {
	if unmatchedClosers(open, pc.orig) > 0 {
		return ans
	}
	i := firstUnmatchedCloser(open, ans)
	if i < 0 {
		return ans
	}
	return strings.TrimRight(ans[:i], " \t")
}

// trimOpenComment cuts ans before a block comment it opens and does not
// close: a completion must not turn the code after it into a comment.
// (One that closes a comment not open is cut by trimUnmatchedClosers.)
func trimOpenComment(ans string, open bracketScanner) string {
	if open.state == '*' {
		return ans // the span is inside a comment already
	}
	sc := open.after("")
	start := -1
	for i := 0; i < len(ans); i++ {
		was := sc.state
		sc.feed(ans[i:i+1], nil)
		if was != '*' && sc.state == '*' {
			start = i - 1 // the '/' of "/*"
		}
	}
	if sc.state != '*' || start < 0 {
		return ans
	}
	return strings.TrimRight(ans[:start], " \t")
}

// bracketScanner follows Go's brackets, skipping strings, runes and
// comments. A "*/" in code or in a line comment closes a block comment
// that is not open: it is reported as an unmatched closer.
type bracketScanner struct {
	stack []byte
	state byte // 0 code, '"' string, '`' raw string, '\'' rune, '/' line comment, '*' block comment
	esc   bool
	prev  byte
}

func closerOf(b byte) byte {
	switch b {
	case '(':
		return ')'
	case '[':
		return ']'
	case '{':
		return '}'
	}
	return 0
}

// feed scans s; bad is called at the byte offset of each closer that
// matches no open bracket.
func (sc *bracketScanner) feed(s string, bad func(i int)) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch sc.state {
		case '"', '\'':
			switch {
			case sc.esc:
				sc.esc = false
			case c == '\\':
				sc.esc = true
			case c == sc.state || c == '\n':
				sc.state = 0
			}
		case '`':
			if c == '`' {
				sc.state = 0
			}
		case '/':
			if c == '\n' {
				sc.state = 0
			} else if c == '/' && sc.prev == '*' && bad != nil {
				bad(max(i-1, 0)) // a line comment closes no block comment either
			}
		case '*':
			if c == '/' && sc.prev == '*' {
				sc.state = 0
				c = 0 // "*/*" must not reopen
			}
		default:
			switch c {
			case '"', '\'', '`':
				sc.state = c
			case '/':
				if sc.prev == '/' {
					sc.state = '/'
				} else if sc.prev == '*' && bad != nil {
					bad(max(i-1, 0)) // "*/" is never Go code
				}
			case '*':
				if sc.prev == '/' {
					sc.state = '*'
					c = 0
				}
			case '(', '[', '{':
				sc.stack = append(sc.stack, c)
			case ')', ']', '}':
				if n := len(sc.stack); n > 0 && closerOf(sc.stack[n-1]) == c {
					sc.stack = sc.stack[:n-1]
				} else if bad != nil {
					bad(i)
				}
			}
		}
		sc.prev = c
	}
}

// openBrackets returns the scanner state at the end of the document before
// a span. Strings and comments are followed from the start of the text (a
// declaration may sit inside a block comment); brackets from the start of
// the span's top-level declaration (the last line that starts in column 0
// with a letter), so that broken code above does not count.
func openBrackets(before string) bracketScanner {
	start := 0
	for i := len(before) - 1; i >= 0; i-- {
		if before[i] == '\n' && i+1 < len(before) && isLetter(before[i+1]) {
			start = i + 1
			break
		}
	}
	var sc bracketScanner
	sc.feed(before[:start], nil)
	if sc.state == 0 {
		sc.stack = sc.stack[:0]
	}
	sc.feed(before[start:], nil)
	return sc
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' }

// unmatchedClosers counts closers in s that match nothing, given the
// scanner state before s.
func unmatchedClosers(sc bracketScanner, s string) int {
	sc.stack = append([]byte(nil), sc.stack...)
	n := 0
	sc.feed(s, func(int) { n++ })
	return n
}

func firstUnmatchedCloser(sc bracketScanner, s string) int {
	sc.stack = append([]byte(nil), sc.stack...)
	first := -1
	sc.feed(s, func(i int) {
		if first < 0 {
			first = i
		}
	})
	return first
}
