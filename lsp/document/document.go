// Package document holds the text of the documents an editor has open and
// converts between LSP positions and byte offsets.
//
// A Document is an immutable snapshot: applying changes returns a new one, so
// a request that captured a snapshot keeps reading the text it was asked
// about while newer edits arrive. Text is kept as UTF-8; LSP positions count
// in the negotiated encoding's code units (UTF-16 by default), and lines end
// at "\n", "\r\n" or "\r", as the specification says.
package document

import (
	"errors"
	"fmt"
	"sync"
	"unicode/utf8"

	"go.lsp.dev/protocol"
)

// Encoding is the unit in which a position's character offset is counted.
type Encoding int

const (
	UTF16 Encoding = iota // LSP's default: UTF-16 code units
	UTF8                  // bytes
	UTF32                 // Unicode code points
)

// String returns the name LSP 3.17 uses for the encoding.
func (e Encoding) String() string {
	switch e {
	case UTF8:
		return "utf-8"
	case UTF32:
		return "utf-32"
	default:
		return "utf-16"
	}
}

// ParseEncoding maps an LSP positionEncoding name to an Encoding.
func ParseEncoding(name string) (Encoding, bool) {
	switch name {
	case "utf-16":
		return UTF16, true
	case "utf-8":
		return UTF8, true
	case "utf-32":
		return UTF32, true
	}
	return UTF16, false
}

// ErrOutOfRange reports a position on a line the document does not have.
var ErrOutOfRange = errors.New("position outside the document")

// ErrTooLarge reports a document over the size the server keeps in memory.
var ErrTooLarge = errors.New("document too large")

// Document is one version of an open text document.
type Document struct {
	URI        protocol.DocumentURI
	LanguageID string
	Version    int32

	r *rope // the text, in pieces, with its line index

	once sync.Once // text is made from r on first use
	text string
}

// New returns a document holding text. Bytes that are not valid UTF-8 are
// replaced, one U+FFFD per bad byte, so that every offset the server hands
// out lies on a character boundary the client also sees.
func New(uri protocol.DocumentURI, languageID string, version int32, text string) *Document {
	return newSized(uri, languageID, version, text, defaultPieceSize)
}

func newSized(uri protocol.DocumentURI, languageID string, version int32, text string, size int) *Document {
	text = ValidUTF8(text)
	d := &Document{URI: uri, LanguageID: languageID, Version: version, r: newRope(text, size)}
	d.once.Do(func() { d.text = text })
	return d
}

// Text returns the document's full text. The first call after an edit
// joins the pieces (a copy of the text); later calls return the same string.
func (d *Document) Text() string {
	d.once.Do(func() { d.text = d.r.String() })
	return d.text
}

// Slice returns the text of the byte range [start, end), clamped to the
// document, without joining the whole text.
func (d *Document) Slice(start, end int) string {
	start, end = max(start, 0), min(end, d.r.len())
	return d.r.slice(start, end)
}

// Len returns the document's size in bytes.
func (d *Document) Len() int { return d.r.len() }

// LineCount returns the number of lines; a document ending in a newline has
// an empty last line.
func (d *Document) LineCount() int { return d.r.lineCount() }

// ValidUTF8 replaces each byte of s that is not part of valid UTF-8 with
// U+FFFD, the way editors decode such files.
func ValidUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	b := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = utf8.AppendRune(b, utf8.RuneError)
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return string(b)
}

// lineBounds returns the byte offsets where line starts and where its
// content ends, before the line terminator.
func (d *Document) lineBounds(line int) (start, end int) {
	start = d.r.lineStart(line)
	if line+1 == d.r.lineCount() {
		return start, d.r.len()
	}
	end = d.r.lineStart(line + 1)
	if end > start && d.r.byteAt(end-1) == '\n' {
		end--
	}
	if end > start && d.r.byteAt(end-1) == '\r' {
		end--
	}
	return start, end
}

// Offset converts p to a byte offset. A character past the end of its line
// means the end of the line, as the specification says; a character inside a
// multi-unit character (half of a surrogate pair, a byte within a UTF-8
// sequence) means the start of that character. A line the document does not
// have is an error.
func (d *Document) Offset(p protocol.Position, enc Encoding) (int, error) {
	if n := d.r.lineCount(); int64(p.Line) >= int64(n) {
		return 0, fmt.Errorf("%w: line %d, but the document has %d lines", ErrOutOfRange, p.Line, n)
	}
	start, end := d.lineBounds(int(p.Line))
	// A unit is at most 4 bytes: only that much of a long line is read.
	if lim := int64(start) + 4*int64(p.Character) + 4; lim < int64(end) {
		end = int(lim)
	}
	return start + advance(d.r.slice(start, end), 0, end-start, int64(p.Character), enc), nil
}

// advance returns the offset reached from start after n code units of enc,
// stopping at end and never inside a character.
func advance(s string, start, end int, n int64, enc Encoding) int {
	if enc == UTF8 {
		// Fast path: bytes are the unit; back up to a character start.
		if int64(end-start) <= n {
			return end
		}
		// Document text is valid UTF-8 (New makes it so), so a
		// continuation byte always belongs to the character before it.
		off := start + int(n)
		for off > start && !utf8.RuneStart(s[off]) {
			off--
		}
		return off
	}
	off := start
	var units int64
	for off < end {
		r, w := utf8.DecodeRuneInString(s[off:end])
		u := int64(1)
		if enc == UTF16 && r >= 0x10000 {
			u = 2
		}
		if units+u > n {
			break
		}
		units += u
		off += w
	}
	return off
}

// Position converts a byte offset to a position. An offset inside a
// character or a line terminator moves back to its start; one beyond the
// text is clamped to the end.
func (d *Document) Position(off int, enc Encoding) protocol.Position {
	if off < 0 {
		off = 0
	}
	if n := d.r.len(); off > n {
		off = n
	}
	line := d.r.lineOf(off)
	start, end := d.lineBounds(line)
	if off > end {
		off = end
	}
	for off > start && off < d.r.len() && !utf8.RuneStart(d.r.byteAt(off)) {
		off--
	}
	return protocol.Position{Line: uint32(line), Character: uint32(units(d.r.slice(start, off), enc))}
}

// Range converts a pair of byte offsets to a range.
func (d *Document) Range(start, end int, enc Encoding) protocol.Range {
	return protocol.Range{Start: d.Position(start, enc), End: d.Position(end, enc)}
}

// Span converts a range to byte offsets, start <= end.
func (d *Document) Span(r protocol.Range, enc Encoding) (start, end int, err error) {
	if start, err = d.Offset(r.Start, enc); err != nil {
		return 0, 0, err
	}
	if end, err = d.Offset(r.End, enc); err != nil {
		return 0, 0, err
	}
	if end < start {
		return 0, 0, fmt.Errorf("range end %d:%d is before its start %d:%d", r.End.Line, r.End.Character, r.Start.Line, r.Start.Character)
	}
	return start, end, nil
}

// units counts s in code units of enc.
func units(s string, enc Encoding) int {
	switch enc {
	case UTF8:
		return len(s)
	case UTF32:
		return utf8.RuneCountInString(s)
	}
	n := 0
	for _, r := range s {
		n++
		if r >= 0x10000 {
			n++
		}
	}
	return n
}

// Units counts s in code units of enc; a client's cursor moves by this much
// when s is inserted before it on one line.
func Units(s string, enc Encoding) int { return units(s, enc) }
