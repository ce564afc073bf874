package document

import (
	"fmt"

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
	cur := d
	for i, c := range changes {
		if c.Range == nil {
			if maxBytes > 0 && len(c.Text) > maxBytes {
				return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(c.Text), maxBytes)
			}
			cur = newSized(d.URI, d.LanguageID, version, c.Text, d.r.size)
			continue
		}
		start, end, err := cur.Span(*c.Range, enc)
		if err != nil {
			return nil, fmt.Errorf("change %d: %w", i, err)
		}
		insert := ValidUTF8(c.Text)
		size := cur.Len() - (end - start) + len(insert)
		if maxBytes > 0 && size > maxBytes {
			return nil, fmt.Errorf("%w: change %d makes it %d bytes, limit %d", ErrTooLarge, i, size, maxBytes)
		}
		cur = &Document{r: cur.r.replace(start, end, insert)}
	}
	if cur == d {
		cur = &Document{r: d.r}
	}
	return &Document{URI: d.URI, LanguageID: d.LanguageID, Version: version, r: cur.r}, nil
}
