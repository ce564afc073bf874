package tokenizer

import (
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// AddedToken is a token matched in the text before pre-tokenization, as in
// Hugging Face's added_tokens.
type AddedToken struct {
	ID      int32
	Content string
	Special bool // special tokens are not matched by EncodeOrdinary
	// SingleWord: only match when not inside a word.
	SingleWord bool
	// LStrip and RStrip: the match takes the whitespace on its left (right).
	LStrip, RStrip bool
	// Normalized: matched in the normalized text rather than the raw text.
	Normalized bool
}

// addedMatcher finds added tokens in text, leftmost first and longest among
// those starting at the same byte (Aho-Corasick's LeftmostLongest, which
// Hugging Face uses).
type addedMatcher struct {
	byFirst  [256][]*AddedToken // candidates by first byte, longest first
	firsts   string             // the distinct first bytes
	contents map[*AddedToken]string
}

func newAddedMatcher(toks []*AddedToken, content func(*AddedToken) string) *addedMatcher {
	m := &addedMatcher{}
	contents := make(map[*AddedToken]string, len(toks))
	for _, t := range toks {
		c := content(t)
		if c == "" {
			continue
		}
		contents[t] = c
		if m.byFirst[c[0]] == nil {
			m.firsts += c[:1]
		}
		m.byFirst[c[0]] = append(m.byFirst[c[0]], t)
	}
	for i := range m.byFirst {
		l := m.byFirst[i]
		sort.SliceStable(l, func(a, b int) bool { return len(contents[l[a]]) > len(contents[l[b]]) })
	}
	if m.firsts == "" {
		return nil
	}
	m.contents = contents
	return m
}

// find returns the leftmost-longest match starting at or after pos.
func (m *addedMatcher) find(s string, pos int) (start, end int, tok *AddedToken) {
	for pos < len(s) {
		var i int
		if len(m.firsts) == 1 {
			i = strings.IndexByte(s[pos:], m.firsts[0])
		} else {
			i = strings.IndexAny(s[pos:], m.firsts)
		}
		if i < 0 {
			return -1, -1, nil
		}
		pos += i
		for _, t := range m.byFirst[s[pos]] {
			if c := m.contents[t]; strings.HasPrefix(s[pos:], c) {
				return pos, pos + len(c), t
			}
		}
		pos++
	}
	return -1, -1, nil
}

// split cuts s into text pieces and added tokens, with Hugging Face's rules
// for single_word, lstrip and rstrip, calling text for each (non-empty)
// piece of text and token for each match. Special tokens are skipped when
// !special; the search still resumes after them, as Hugging Face's does.
func (m *addedMatcher) split(s string, special bool, text func(string), token func(int32)) {
	startOffset, pos := 0, 0
	for {
		start, stop, t := m.find(s, pos)
		if t == nil {
			break
		}
		pos = stop
		if t.Special && !special {
			continue
		}
		if t.SingleWord {
			startSpace := start == 0 || !endsWithWord(s[:start])
			stopSpace := stop == len(s) || !startsWithWord(s[stop:])
			if !startSpace || !stopSpace {
				continue
			}
		}
		if t.LStrip {
			newStart := len(strings.TrimRightFunc(s[:start], unicode.IsSpace))
			start = max(newStart, startOffset)
		}
		if t.RStrip {
			stop = len(s) - len(strings.TrimLeftFunc(s[stop:], unicode.IsSpace))
		}
		if startOffset < start {
			text(s[startOffset:start])
		}
		token(t.ID)
		startOffset = stop
	}
	if startOffset < len(s) {
		text(s[startOffset:])
	}
}

// isWordRune is \w of Rust's regex crate (Unicode TR18: Alphabetic, marks,
// decimal digits, connector punctuation, joiners), which Hugging Face uses
// to tell whether a single_word token touches a word.
func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsMark(r) ||
		unicode.In(r, unicode.Nd, unicode.Nl, unicode.Pc, unicode.Other_Alphabetic, unicode.Join_Control)
}

func endsWithWord(s string) bool {
	r, _ := utf8.DecodeLastRuneInString(s)
	return isWordRune(r)
}

func startsWithWord(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return isWordRune(r)
}
