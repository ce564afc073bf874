package infill

import "strings"

// codec is the part of a tokenizer the engine uses.
type codec interface {
	EncodeOrdinary(s string) []int32
	Decode(ids []int32) string
	TokenBytes(id int32) []byte
}

// bytesPerTokenBound over-estimates bytes per token, to decide how much
// text to tokenize before cutting to a token budget. Code averages 3-4;
// long runs of spaces or a long string may exceed it, which only costs a
// second, larger, tokenization.
const bytesPerTokenBound = 12

// encodeTail tokenizes the end of s, at most limit tokens, starting at a
// line start where possible (the line holding the end of s is always kept,
// cut at a token boundary if it alone is over budget).
func encodeTail(c codec, s string, limit int) []int32 {
	if limit <= 0 || s == "" {
		return nil
	}
	for window := limit * bytesPerTokenBound; ; window *= 2 {
		start := 0
		if len(s) > window {
			start = lineStartAfter(s, len(s)-window)
		}
		toks := c.EncodeOrdinary(s[start:])
		if len(toks) < limit && start > 0 {
			continue // more text would fit: widen the window
		}
		if len(toks) <= limit {
			return toks
		}
		// Too many: keep from the first line start at or after the first
		// token that fits, and tokenize from there.
		sub := s[start:]
		off := tokenOffsets(c, toks)
		cut := off[len(toks)-limit]
		if cut > 0 && sub[cut-1] != '\n' {
			i := strings.IndexByte(sub[cut:], '\n')
			if i < 0 || cut+i+1 == len(sub) {
				// The line holding the end is over budget by itself.
				return toks[len(toks)-limit:]
			}
			cut += i + 1
		}
		out := c.EncodeOrdinary(sub[cut:])
		if len(out) > limit {
			// Tokenizing from the cut can add a token; drop from the front.
			out = out[len(out)-limit:]
		}
		return out
	}
}

// encodeHead tokenizes the start of s, at most limit tokens, ending at a
// line end (after a newline) where possible.
func encodeHead(c codec, s string, limit int) []int32 {
	if limit <= 0 || s == "" {
		return nil
	}
	for window := limit * bytesPerTokenBound; ; window *= 2 {
		end := len(s)
		if end > window {
			end = lineEndBefore(s, window)
		}
		toks := c.EncodeOrdinary(s[:end])
		if len(toks) < limit && end < len(s) {
			continue // more text would fit: widen the window
		}
		if len(toks) <= limit {
			return toks
		}
		sub := s[:end]
		off := tokenOffsets(c, toks)
		cut := strings.LastIndexByte(sub[:off[limit]], '\n') + 1
		if cut == 0 {
			return toks[:limit] // the first line alone is over budget
		}
		out := c.EncodeOrdinary(sub[:cut])
		if len(out) > limit {
			out = out[:limit]
		}
		return out
	}
}

// tokenOffsets returns the byte offset at which each token starts, plus the
// total length at the end.
func tokenOffsets(c codec, toks []int32) []int {
	off := make([]int, len(toks)+1)
	for i, t := range toks {
		off[i+1] = off[i] + len(c.TokenBytes(t))
	}
	return off
}

// lineStartAfter returns the first line start at or after i (or i when
// there is none, so the caller still cuts somewhere).
func lineStartAfter(s string, i int) int {
	if i <= 0 {
		return 0
	}
	if s[i-1] == '\n' {
		return i
	}
	if j := strings.IndexByte(s[i:], '\n'); j >= 0 {
		return i + j + 1
	}
	return i
}

// lineEndBefore returns the last line end (just after a newline) at or
// before i, or i when there is none.
func lineEndBefore(s string, i int) int {
	if j := strings.LastIndexByte(s[:i], '\n'); j >= 0 {
		return j + 1
	}
	return i
}

// splitBudget divides budget tokens between a prefix that could use
// wantPre and a suffix that could use wantSuf: half each, and what one side
// does not need goes to the other.
func splitBudget(budget, wantPre, wantSuf int) (pre, suf int) {
	if budget <= 0 {
		return 0, 0
	}
	pre, suf = budget/2, budget-budget/2
	switch {
	case wantPre < pre:
		pre, suf = wantPre, budget-wantPre
	case wantSuf < suf:
		pre, suf = budget-wantSuf, wantSuf
	}
	return min(pre, wantPre), min(suf, wantSuf)
}
