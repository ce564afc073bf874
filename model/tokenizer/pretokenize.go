package tokenizer

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// A splitter cuts text into consecutive pre-tokens. It appends the end
// offset (relative to s) of each pre-token to ends and returns it; the pieces
// cover s without gaps, as Hugging Face's Split with the "Isolated" behaviour
// does (text between two regex matches is a pre-token of its own).
type splitter interface {
	split(s string, ends []int) []int
}

// Split patterns of published tokenizers that diffill recognises by their
// exact text. Their lookahead (`\s+(?!\S)`) is beyond Go's regexp, so each has
// a hand-written matcher that follows Oniguruma's leftmost-first backtracking.
const (
	// PatternGPT2 is GPT-2's pattern, used by ByteLevel{use_regex:true}.
	PatternGPT2 = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	// PatternQwen2 is the Qwen2 (and cl100k, with single digits) pattern.
	PatternQwen2 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// PatternLlama3 is Llama-3's pattern: Qwen2's with runs of up to three digits.
	PatternLlama3 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// PatternGo is diffill's Go-aware pattern (built-in model): a run of
	// newlines together with the next line's indentation is one pre-token, and
	// identifiers include '_'.
	PatternGo = `(?:\r?\n)+[\t ]*| ?[\p{L}_][\p{L}\p{N}_]*| ?\p{N}{1,3}| ?[^\t\n\r \p{L}\p{N}_]+|[\t ]+|\r`
)

// newSplitter returns the splitter for a Split regex. Known patterns get a
// hand-written matcher; any other pattern is compiled with Go's regexp after
// translating the Perl classes whose meaning differs (Oniguruma's \s, \d and
// \w are Unicode-aware, Go's are ASCII).
func newSplitter(pattern string) (splitter, error) {
	switch pattern {
	case PatternGPT2:
		return gpt2Splitter{}, nil
	case PatternQwen2:
		return qwenSplitter{maxDigits: 1}, nil
	case PatternLlama3:
		return qwenSplitter{maxDigits: 3}, nil
	case PatternGo:
		return goSplitter{}, nil
	}
	expr, err := translateRegex(pattern)
	if err != nil {
		return nil, fmt.Errorf("split pattern %q: %w", pattern, err)
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("split pattern %q is not one diffill knows and Go's regexp cannot compile it: %w", pattern, err)
	}
	return regexpSplitter{re}, nil
}

// Character classes of the hand-written matchers.
const (
	clOther   = iota // none of the below: punctuation, symbols, marks, U+FFFD, invalid bytes
	clLetter         // \p{L}
	clNumber         // \p{N}
	clSpace          // \s in Oniguruma's Unicode sense (White_Space), except \r and \n
	clNewline        // \r or \n (also \s)
)

var asciiClass = func() (t [utf8.RuneSelf]uint8) {
	for r := range utf8.RuneSelf {
		t[r] = runeClassSlow(rune(r))
	}
	return t
}()

func runeClassSlow(r rune) uint8 {
	switch {
	case r == '\r' || r == '\n':
		return clNewline
	case unicode.IsLetter(r):
		return clLetter
	case unicode.IsNumber(r):
		return clNumber
	case unicode.IsSpace(r): // White_Space: \t \v \f space U+0085 U+00A0 Zs Zl Zp
		return clSpace
	}
	return clOther
}

// classAt returns the class and byte width of the rune at s[i]. An invalid
// UTF-8 byte is one rune of width 1 in class clOther, as U+FFFD would be.
func classAt(s string, i int) (uint8, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return asciiClass[c], 1
	}
	return classAtSlow(s, i)
}

// classAtSlow is classAt for non-ASCII, kept apart so that classAt inlines.
func classAtSlow(s string, i int) (uint8, int) {
	r, n := utf8.DecodeRuneInString(s[i:])
	return runeClassSlow(r), n
}

func isSpaceClass(c uint8) bool { return c == clSpace || c == clNewline }

// runOf returns the end of the run of class c starting at i.
func runOf(s string, i int, c uint8) int {
	return runMask(s, i, 1<<c, &asciiClass, false)
}

// runMask returns the end of the run of runes starting at i whose class is
// in mask (a set of 1<<class). ASCII is classified by tab, inline, since it
// is nearly all of source code; with spaceAsOther, non-ASCII spaces count as
// clOther (PatternGo's blanks are ASCII only).
func runMask(s string, i int, mask uint8, tab *[utf8.RuneSelf]uint8, spaceAsOther bool) int {
	for i < len(s) {
		if b := s[i]; b < utf8.RuneSelf {
			if mask&(1<<tab[b]) == 0 {
				break
			}
			i++
			continue
		}
		c, n := classAtSlow(s, i)
		if spaceAsOther && c == clSpace {
			c = clOther
		}
		if mask&(1<<c) == 0 {
			break
		}
		i += n
	}
	return i
}

// spaceRun returns the end of the run of \s starting at i, the start of its
// last rune, and the end of its last \r or \n (-1 when it has none).
func spaceRun(s string, i int) (end, last, nl int) {
	nl = -1
	last = i
	for i < len(s) {
		c, n := classAt(s, i)
		if !isSpaceClass(c) {
			break
		}
		if c == clNewline {
			nl = i + n
		}
		last = i
		i += n
	}
	return i, last, nl
}

// trailingSpace resolves `\s+(?!\S)|\s+` for the whitespace run [i,end)
// whose last rune starts at last: the run minus its last rune when a
// non-space follows and the run has more than one rune, else the whole run.
func trailingSpace(s string, i, end, last int) int {
	if end < len(s) && last > i {
		return last
	}
	return end
}

// gpt2Splitter matches PatternGPT2.
type gpt2Splitter struct{}

func (gpt2Splitter) split(s string, ends []int) []int {
	for i := 0; i < len(s); {
		i = gpt2Next(s, i)
		ends = append(ends, i)
	}
	return ends
}

func gpt2Next(s string, i int) int {
	if s[i] == '\'' {
		if n := contraction(s, i+1, false); n > 0 {
			return i + 1 + n
		}
	}
	c, n := classAt(s, i)
	start := i
	if s[i] == ' ' && i+1 < len(s) {
		// ` ?\p{L}+`, ` ?\p{N}+` and ` ?[^\s\p{L}\p{N}]+` take one leading space.
		if c2, n2 := classAt(s, i+1); !isSpaceClass(c2) {
			c, n, start = c2, n2, i+1
		}
	}
	if !isSpaceClass(c) {
		return runOf(s, start+n, c)
	}
	end, last, _ := spaceRun(s, i)
	return trailingSpace(s, i, end, last)
}

// contraction reports the length of an English contraction suffix (s, t,
// re, ve, m, ll, d) at s[i:], 0 when there is none. With fold, letters match
// case-insensitively under Unicode simple case folding, as Oniguruma's (?i:)
// does, so 'ſ (long s) counts as 's.
func contraction(s string, i int, fold bool) int {
	letter := func(j int, want byte) int {
		if j >= len(s) {
			return 0
		}
		c := s[j]
		if c == want || fold && c == want-'a'+'A' {
			return 1
		}
		if fold && want == 's' && strings.HasPrefix(s[j:], "ſ") {
			return len("ſ")
		}
		return 0
	}
	for _, w := range [...]string{"s", "t", "re", "ve", "m", "ll", "d"} {
		j := i
		for k := 0; k < len(w); k++ {
			n := letter(j, w[k])
			if n == 0 {
				j = -1
				break
			}
			j += n
		}
		if j >= 0 {
			return j - i
		}
	}
	return 0
}

// qwenSplitter matches PatternQwen2 (maxDigits 1) and PatternLlama3 (3).
type qwenSplitter struct{ maxDigits int }

func (q qwenSplitter) split(s string, ends []int) []int {
	for i := 0; i < len(s); {
		i = q.next(s, i)
		ends = append(ends, i)
	}
	return ends
}

func (q qwenSplitter) next(s string, i int) int {
	if s[i] == '\'' {
		if n := contraction(s, i+1, true); n > 0 {
			return i + 1 + n
		}
	}
	c, n := classAt(s, i)
	switch c {
	case clLetter:
		return runOf(s, i+n, clLetter)
	case clNumber:
		j := i + n
		for k := 1; k < q.maxDigits && j < len(s); k++ {
			c2, n2 := classAt(s, j)
			if c2 != clNumber {
				break
			}
			j += n2
		}
		return j
	}
	// `[^\r\n\p{L}\p{N}]?\p{L}+`: one rune that is not a newline (space,
	// punctuation, ...) glued to the letters after it.
	if c != clNewline && i+n < len(s) {
		if c2, n2 := classAt(s, i+n); c2 == clLetter {
			return runOf(s, i+n+n2, clLetter)
		}
	}
	// ` ?[^\s\p{L}\p{N}]+[\r\n]*`
	start, oc := i, c
	if s[i] == ' ' && i+1 < len(s) {
		start = i + 1
		oc, _ = classAt(s, start)
	}
	if oc == clOther {
		j := runOf(s, start, clOther)
		for j < len(s) && (s[j] == '\r' || s[j] == '\n') {
			j++
		}
		return j
	}
	// `\s*[\r\n]+`: the whitespace run up to its last newline; then
	// `\s+(?!\S)|\s+`.
	end, last, nl := spaceRun(s, i)
	if nl >= 0 {
		return nl
	}
	return trailingSpace(s, i, end, last)
}

// goSplitter matches PatternGo.
type goSplitter struct{}

func (goSplitter) split(s string, ends []int) []int {
	for i := 0; i < len(s); {
		i = goNext(s, i)
		ends = append(ends, i)
	}
	return ends
}

// goClass classifies for PatternGo: identifiers are [\p{L}_][\p{L}\p{N}_]*,
// and only \t \n \r and space count as blanks (other Unicode spaces fall in
// the symbol class, as in the pattern).
func goClass(s string, i int) (uint8, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return goASCIIClass[c], 1
	}
	return goClassSlow(s, i)
}

//go:noinline
func goClassSlow(s string, i int) (uint8, int) {
	c, n := classAtSlow(s, i)
	if c == clSpace {
		c = clOther
	}
	return c, n
}

var goASCIIClass = func() (t [utf8.RuneSelf]uint8) {
	for c := range byte(utf8.RuneSelf) {
		cl := asciiClass[c]
		switch {
		case c == '_':
			cl = clLetter
		case c == '\t' || c == ' ':
			cl = clSpace
		case cl == clSpace: // \v and \f
			cl = clOther
		}
		t[c] = cl
	}
	return t
}()

func goNext(s string, i int) int {
	// `(?:\r?\n)+[\t ]*`
	j := i
	for {
		if j < len(s) && s[j] == '\n' {
			j++
		} else if j+1 < len(s) && s[j] == '\r' && s[j+1] == '\n' {
			j += 2
		} else {
			break
		}
	}
	if j > i {
		for j < len(s) && (s[j] == '\t' || s[j] == ' ') {
			j++
		}
		return j
	}
	c, n := goClass(s, i)
	start := i
	if s[i] == ' ' && i+1 < len(s) {
		if c2, n2 := goClass(s, i+1); c2 == clLetter || c2 == clNumber || c2 == clOther {
			c, n, start = c2, n2, i+1
		}
	}
	switch c {
	case clLetter: // ` ?[\p{L}_][\p{L}\p{N}_]*`
		return runMask(s, start+n, 1<<clLetter|1<<clNumber, &goASCIIClass, true)
	case clNumber: // ` ?\p{N}{1,3}`
		j := start + n
		for k := 1; k < 3 && j < len(s); k++ {
			c2, n2 := goClass(s, j)
			if c2 != clNumber {
				break
			}
			j += n2
		}
		return j
	case clOther: // ` ?[^\t\n\r \p{L}\p{N}_]+`
		return runMask(s, start+n, 1<<clOther, &goASCIIClass, true)
	case clSpace: // `[\t ]+`
		j := i + 1
		for j < len(s) && (s[j] == '\t' || s[j] == ' ') {
			j++
		}
		return j
	}
	return i + 1 // `\r` not followed by \n
}

// regexpSplitter runs a pattern diffill has no hand-written matcher for.
// Go's regexp, like Oniguruma, prefers the leftmost alternative, so patterns
// without lookaround split the same way.
type regexpSplitter struct{ re *regexp.Regexp }

func (r regexpSplitter) split(s string, ends []int) []int {
	prev := 0
	for _, m := range r.re.FindAllStringIndex(s, -1) {
		if m[0] == m[1] {
			continue // empty matches make no pre-token, as in Hugging Face
		}
		if m[0] > prev {
			ends = append(ends, m[0])
		}
		ends = append(ends, m[1])
		prev = m[1]
	}
	if prev < len(s) {
		ends = append(ends, len(s))
	}
	return ends
}

// Oniguruma's Unicode meaning of the Perl classes, spelled for Go's regexp.
const (
	uniSpace = `\t\n\v\f\r \x{85}\p{Z}`
	uniDigit = `\p{Nd}`
	uniWord  = `\p{L}\p{M}\p{Nd}\p{Pc}`
)

// translateRegex rewrites \s, \d and \w (and their negations outside
// character classes) to their Unicode meaning. A negated class inside a
// bracket expression has no Go spelling and is refused.
func translateRegex(p string) (string, error) {
	var b strings.Builder
	inClass := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c != '\\' || i+1 == len(p) {
			switch c {
			case '[':
				if !inClass {
					inClass = true
					// A ']' right after '[' or '[^' is a literal.
					b.WriteByte(c)
					if i+1 < len(p) && p[i+1] == '^' {
						b.WriteByte('^')
						i++
					}
					if i+1 < len(p) && p[i+1] == ']' {
						b.WriteByte(']')
						i++
					}
					continue
				}
			case ']':
				inClass = false
			}
			b.WriteByte(c)
			continue
		}
		e := p[i+1]
		i++
		var set string
		neg := false
		switch e {
		case 's', 'S':
			set, neg = uniSpace, e == 'S'
		case 'd', 'D':
			set, neg = uniDigit, e == 'D'
		case 'w', 'W':
			set, neg = uniWord, e == 'W'
		default:
			b.WriteByte('\\')
			b.WriteByte(e)
			continue
		}
		switch {
		case inClass && neg:
			return "", fmt.Errorf(`\%c inside a character class is not supported`, e)
		case inClass:
			b.WriteString(set)
		case neg:
			b.WriteString("[^" + set + "]")
		default:
			b.WriteString("[" + set + "]")
		}
	}
	return b.String(), nil
}
