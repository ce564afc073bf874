package infill

import (
	"strings"
	"unicode/utf8"
)

// Editors close brackets and quotes as the user opens them: after typing
// "len(" the line reads "len()" with the cursor before ")". That ")" is
// the editor's guess at the end of the line, not text the user wrote. A
// completion there is given the closers to replace (ModeComplete with a
// span that covers them): the model writes the rest of the line with no
// ")" in its way, and post-processing (keepClosers) makes the answer close
// what the closers closed, keeping every one of them, in order.

// closingChars are what an editor's auto-closing leaves after the cursor:
// closing brackets, quotes, and the separators that follow them in Go
// ("f(x),", "{a: b};"), with blanks between.
const closingChars = ")]}\"'`,;: \t"

// ClosingRest returns the end of the closing brackets and quotes that are
// all that follows off on its line (as an editor's auto-closing leaves
// them, see closers.go), blanks at the end of the line excluded; off when
// the rest of the line holds anything else, or nothing but blanks, or when
// nothing but blanks comes before off on its line (a "}" that closes a
// block on a line of its own is structure, not an editor's guess). A
// completion at off may replace text[off:ClosingRest(text, off)]
// (ModeComplete with that span).
func ClosingRest(text string, off int) int {
	if off < 0 || off > len(text) {
		return off
	}
	ls := strings.LastIndexAny(text[:off], "\r\n") + 1
	if strings.TrimLeft(text[ls:off], " \t") == "" {
		return off
	}
	end := len(text)
	if i := strings.IndexAny(text[off:], "\r\n"); i >= 0 {
		end = off + i
	}
	rest := text[off:end]
	if !isClosing(rest) {
		return off
	}
	return off + len(strings.TrimRight(rest, " \t"))
}

// isClosing reports whether s is made of closingChars only.
func isClosing(s string) bool {
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(closingChars, rune(s[i])) {
			return false
		}
	}
	return true
}

// keepClosers makes a completion that replaces closers (pc.closing, see
// ClosingRest) end the line as they did: the answer, with as few of the
// closers appended as needed, must leave the brackets, strings and
// comments as the closers left them, match nothing they did not, and hold
// every closer in order (so that the edit only inserts: nothing of the
// line is lost, and editors can show it as ghost text around the closers).
// "a.v)" for ")" stays, "a.v" gets ")", "hello" for "\")" gets "\")". An
// answer that can be made to fit by no appending is cut back until it
// can; nothing fits, and the closers alone (no change) are the answer.
func keepClosers(ans string, pc postContext, open bracketScanner) string {
	closing := pc.closing
	if closing == "" {
		return ans
	}
	want := open.after(closing)
	bad := unmatchedClosers(open, closing)
	for cut := len(ans); cut >= 0; cut-- {
		if cut < len(ans) && !utf8.RuneStart(ans[cut]) {
			continue
		}
		a := ans[:cut]
		if cut < len(ans) && strings.TrimRight(a, " \t") != a {
			continue // a shorter answer never ends in blanks
		}
		// Append as few closers as possible: the model's own closers
		// come first.
		for k := len(closing); k >= 0; k-- {
			if !isSubsequence(closing[:k], a) {
				continue
			}
			t := a + closing[k:]
			if got := open.after(t); got.same(want) && unmatchedClosers(open, t) <= bad {
				return t
			}
		}
	}
	return closing
}

// isSubsequence reports whether the bytes of sub occur in s in order.
func isSubsequence(sub, s string) bool {
	for i := 0; i < len(s) && sub != ""; i++ {
		if s[i] == sub[0] {
			sub = sub[1:]
		}
	}
	return sub == ""
}

// after returns the scanner state after s, leaving sc as it was.
func (sc bracketScanner) after(s string) bracketScanner {
	sc.stack = append([]byte(nil), sc.stack...)
	sc.feed(s, nil)
	return sc
}

// same reports whether two scanner states are in the same brackets and in
// the same kind of string or comment.
func (sc bracketScanner) same(o bracketScanner) bool {
	return sc.state == o.state && string(sc.stack) == string(o.stack)
}
