package document

import (
	"fmt"
	"strings"

	"go.lsp.dev/protocol"
)

// Change is one entry of textDocument/didChange's contentChanges: a range
// and its replacement, or, with a nil Range, the whole new text.
// (protocol v0.12.0's TextDocumentContentChangeEvent has a non-pointer
// Range, which cannot tell a full-text change from an insertion at 0:0.)
type Change struct {
	Range *protocol.Range `json:"range,omitempty"`
	Text  string          `json:"text"`
}

// Apply returns the document after changes, applied in order, each to the
// result of the one before, as the specification says. maxBytes bounds the
// size of the result (0: no bound); on any error the receiver is unchanged
// and no new document is returned.
func (d *Document) Apply(changes []Change, version int32, enc Encoding, maxBytes int) (*Document, error) {
	text, lines := d.text, d.lines
	for i, c := range changes {
		if c.Range == nil {
			if maxBytes > 0 && len(c.Text) > maxBytes {
				return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(c.Text), maxBytes)
			}
			text = ValidUTF8(c.Text)
			lines = lineStarts(text)
			continue
		}
		cur := &Document{text: text, lines: lines}
		start, end, err := cur.Span(*c.Range, enc)
		if err != nil {
			return nil, fmt.Errorf("change %d: %w", i, err)
		}
		insert := ValidUTF8(c.Text)
		size := len(text) - (end - start) + len(insert)
		if maxBytes > 0 && size > maxBytes {
			return nil, fmt.Errorf("%w: change %d makes it %d bytes, limit %d", ErrTooLarge, i, size, maxBytes)
		}
		var b strings.Builder
		b.Grow(size)
		b.WriteString(text[:start])
		b.WriteString(insert)
		b.WriteString(text[end:])
		text = b.String()
		lines = relines(lines, text, start, end, len(insert))
	}
	return &Document{URI: d.URI, LanguageID: d.LanguageID, Version: version, text: text, lines: lines}, nil
}

// relines returns the line starts of text, which is the old text with
// [start,end) replaced by n bytes. Lines wholly before the edit keep their
// offsets and lines wholly after it shift, so a keystroke in a large file
// scans only the edited line's neighbourhood rather than the whole text.
func relines(old []int, text string, start, end, n int) []int {
	// Rescan from the start of the line before the one holding start: a
	// "\r" ending that line may now be joined to a "\n" the edit inserted.
	first := searchLine(old, start)
	if first > 0 {
		first--
	}
	from := old[first]
	// The old lines that start after end (plus one byte, for a "\r\n" split
	// by the edit) are unchanged apart from the shift.
	delta := n - (end - start)
	keep := len(old)
	for keep > first+1 && old[keep-1] > end+1 {
		keep--
	}
	stop := len(text) // rescan up to where the kept lines begin
	if keep < len(old) {
		stop = old[keep] + delta
	}
	lines := make([]int, 0, len(old)+strings.Count(text[start:start+n], "\n")+1)
	lines = append(lines, old[:first+1]...)
	for i := from; i < stop; i++ {
		switch text[i] {
		case '\n':
			lines = append(lines, i+1)
		case '\r':
			if i+1 < len(text) && text[i+1] == '\n' {
				i++
			}
			lines = append(lines, i+1)
		}
	}
	// The rescan may have already produced the first kept line start.
	for _, l := range old[keep:] {
		if s := l + delta; len(lines) == 0 || s > lines[len(lines)-1] {
			lines = append(lines, s)
		}
	}
	return lines
}
