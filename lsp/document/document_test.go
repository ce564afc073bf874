package document

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"go.lsp.dev/protocol"
)

func pos(line, char uint32) protocol.Position { return protocol.Position{Line: line, Character: char} }

func TestOffset(t *testing.T) {
	// "a😀b" : 😀 is 4 bytes, 2 UTF-16 units, 1 code point.
	// "中文x" : each CJK character is 3 bytes, 1 UTF-16 unit.
	text := "a😀b\r\n中文x\rz\n"
	d := New("file:///t.go", "go", 1, text)
	if got := d.LineCount(); got != 4 {
		t.Fatalf("LineCount = %d, want 4", got)
	}
	tests := []struct {
		p    protocol.Position
		enc  Encoding
		want int
	}{
		{pos(0, 0), UTF16, 0},
		{pos(0, 1), UTF16, 1},
		{pos(0, 2), UTF16, 1}, // inside the surrogate pair: start of the emoji
		{pos(0, 3), UTF16, 5},
		{pos(0, 4), UTF16, 6},  // end of line, before "\r\n"
		{pos(0, 99), UTF16, 6}, // past the end of the line: clamped
		{pos(0, 2), UTF32, 5},
		{pos(0, 3), UTF8, 1}, // inside the emoji's bytes
		{pos(0, 5), UTF8, 5},
		{pos(1, 0), UTF16, 8},
		{pos(1, 1), UTF16, 11},
		{pos(1, 2), UTF16, 14},
		{pos(1, 3), UTF16, 15}, // before the lone "\r"
		{pos(1, 4), UTF8, 11},  // inside 文: its start
		{pos(1, 6), UTF8, 14},
		{pos(2, 0), UTF16, 16},
		{pos(2, 1), UTF16, 17},
		{pos(3, 0), UTF16, 18}, // the empty line after the final newline
		{pos(3, 7), UTF16, 18},
	}
	for _, tt := range tests {
		got, err := d.Offset(tt.p, tt.enc)
		if err != nil || got != tt.want {
			t.Errorf("Offset(%d:%d, %v) = %d, %v; want %d", tt.p.Line, tt.p.Character, tt.enc, got, err, tt.want)
		}
	}
	if _, err := d.Offset(pos(4, 0), UTF16); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("Offset(4:0) error = %v, want ErrOutOfRange", err)
	}
}

func TestPosition(t *testing.T) {
	text := "a😀b\r\n中文x\rz\n"
	d := New("file:///t.go", "go", 1, text)
	tests := []struct {
		off  int
		enc  Encoding
		want protocol.Position
	}{
		{0, UTF16, pos(0, 0)},
		{5, UTF16, pos(0, 3)},
		{5, UTF8, pos(0, 5)},
		{5, UTF32, pos(0, 2)},
		{3, UTF16, pos(0, 1)}, // inside the emoji
		{7, UTF16, pos(0, 4)}, // between "\r" and "\n"
		{14, UTF16, pos(1, 2)},
		{16, UTF16, pos(2, 0)},
		{18, UTF16, pos(3, 0)},
		{99, UTF16, pos(3, 0)},
	}
	for _, tt := range tests {
		if got := d.Position(tt.off, tt.enc); got != tt.want {
			t.Errorf("Position(%d, %v) = %d:%d, want %d:%d", tt.off, tt.enc, got.Line, got.Character, tt.want.Line, tt.want.Character)
		}
	}
}

func TestInvalidUTF8(t *testing.T) {
	d := New("file:///t.go", "go", 1, "a\xffb\xe4\xb8")
	if got, want := d.Text(), "a\uFFFDb\uFFFD\uFFFD"; got != want {
		t.Fatalf("Text = %q, want %q", got, want)
	}
	if off, _ := d.Offset(pos(0, 2), UTF16); off != 4 {
		t.Errorf("Offset(0:2) = %d, want 4", off)
	}
}

func rng(l1, c1, l2, c2 uint32) *protocol.Range {
	return &protocol.Range{Start: pos(l1, c1), End: pos(l2, c2)}
}

func TestApply(t *testing.T) {
	d := New("file:///t.go", "go", 1, "func main() {\r\n\tfmt.Println(\"😀\")\r\n}\r\n")
	d2, err := d.Apply([]Change{
		{Range: rng(1, 14, 1, 16), Text: "中"},    // replace the emoji (2 UTF-16 units)
		{Range: rng(0, 13, 1, 0), Text: "\n"},    // CRLF -> LF after the brace
		{Range: rng(3, 0, 3, 0), Text: "// end"}, // the empty last line
	}, 2, UTF16, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := "func main() {\n\tfmt.Println(\"中\")\r\n}\r\n// end"
	if d2.Text() != want || d2.Version != 2 {
		t.Fatalf("Apply = %q v%d, want %q v2", d2.Text(), d2.Version, want)
	}
	if d.Text() == d2.Text() {
		t.Fatal("Apply changed the original snapshot")
	}
	if _, err := d2.Apply([]Change{{Range: rng(9, 0, 9, 0), Text: "x"}}, 3, UTF16, 0); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("change outside the document: err = %v, want ErrOutOfRange", err)
	}
	if _, err := d2.Apply([]Change{{Range: rng(1, 3, 1, 1), Text: "x"}}, 3, UTF16, 0); err == nil {
		t.Error("change with end before start: no error")
	}
	if _, err := d2.Apply([]Change{{Text: strings.Repeat("x", 101)}}, 3, UTF16, 100); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized full change: err = %v, want ErrTooLarge", err)
	}
	full, err := d2.Apply([]Change{{Text: "new"}}, 4, UTF16, 100)
	if err != nil || full.Text() != "new" || full.LineCount() != 1 {
		t.Errorf("full change = %q, %v", full.Text(), err)
	}
}

// checkLines holds the incrementally maintained line index to a rescan of
// the text.
func checkLines(t *testing.T, d *Document) {
	t.Helper()
	want := lineStarts(d.Text())
	if len(want) != d.LineCount() {
		t.Fatalf("text %q: %d lines, want %d", d.Text(), d.LineCount(), len(want))
	}
	for i, w := range want {
		if got := d.r.lineStart(i); got != w {
			t.Fatalf("text %q: line %d starts at %d, want %d", d.Text(), i, got, w)
		}
		if got := d.r.lineOf(w); got != i {
			t.Fatalf("text %q: offset %d is on line %d, want %d", d.Text(), w, got, i)
		}
	}
	for k, p := range d.r.pieces {
		if p.s == "" {
			t.Fatalf("piece %d is empty", k)
		}
		if k > 0 && d.r.pieces[k-1].s[len(d.r.pieces[k-1].s)-1] == '\r' && p.s[0] == '\n' {
			t.Fatalf("pieces %d and %d cut a CR LF", k-1, k)
		}
	}
}

// lineStarts is the reference line index: where each line starts.
func lineStarts(s string) []int {
	lines := []int{0}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\n':
			lines = append(lines, i+1)
		case '\r':
			if i+1 < len(s) && s[i+1] == '\n' {
				i++
			}
			lines = append(lines, i+1)
		}
	}
	return lines
}

// FuzzPosition checks that converting a position to an offset and back
// lands on a character boundary, inside the document, and that offsets on
// boundaries survive the round trip in every encoding.
func FuzzPosition(f *testing.F) {
	f.Add("a😀b\r\n中文x\rz\n", uint32(0), uint32(2), uint8(0))
	f.Add("\r\r\n\n", uint32(2), uint32(0), uint8(1))
	f.Add("x\xffy\xe4", uint32(0), uint32(3), uint8(2))
	f.Fuzz(func(t *testing.T, text string, line, char uint32, e uint8) {
		enc := Encoding(e % 3)
		// Tiny pieces, so that lines and characters straddle them.
		d := newSized("file:///f", "", 0, text, 1+int(e/3)%7)
		if !utf8.ValidString(d.Text()) {
			t.Fatalf("text not valid UTF-8: %q", d.Text())
		}
		checkLines(t, d)
		off, err := d.Offset(pos(line, char), enc)
		if err != nil {
			if int(line) < d.LineCount() {
				t.Fatalf("Offset(%d:%d) in a %d-line document: %v", line, char, d.LineCount(), err)
			}
			return
		}
		if off < 0 || off > d.Len() || (off < d.Len() && !utf8.RuneStart(d.Text()[off])) {
			t.Fatalf("Offset(%d:%d) = %d: outside or mid-character in %q", line, char, off, d.Text())
		}
		p := d.Position(off, enc)
		if p.Line != line || p.Character > char {
			t.Fatalf("Position(Offset(%d:%d) = %d) = %d:%d", line, char, off, p.Line, p.Character)
		}
		if back, _ := d.Offset(p, enc); back != off {
			t.Fatalf("Offset(Position(%d)) = %d", off, back)
		}
	})
}

// FuzzApply applies a random edit and checks the result against a
// reference built from byte offsets, and the line index against a rescan.
func FuzzApply(f *testing.F) {
	f.Add("a\r\nb😀\nc", uint32(0), uint32(1), uint32(1), uint32(2), "\n\r", uint8(0))
	f.Add("\r\n\r\n", uint32(0), uint32(1), uint32(0), uint32(1), "\r", uint8(1))
	f.Add("x\ry", uint32(0), uint32(1), uint32(0), uint32(1), "\n", uint8(2))
	f.Fuzz(func(t *testing.T, text string, l1, c1, l2, c2 uint32, insert string, e uint8) {
		enc := Encoding(e % 3)
		d := newSized("file:///f", "", 0, text, 1+int(e/3)%7)
		r := rng(l1, c1, l2, c2)
		start, end, spanErr := d.Span(*r, enc)
		d2, err := d.Apply([]Change{{Range: r, Text: insert}}, 1, enc, 0)
		if (err != nil) != (spanErr != nil) {
			t.Fatalf("Apply error %v, Span error %v", err, spanErr)
		}
		if err != nil {
			return
		}
		want := d.Text()[:start] + ValidUTF8(insert) + d.Text()[end:]
		if d2.Text() != want {
			t.Fatalf("Apply = %q, want %q", d2.Text(), want)
		}
		checkLines(t, d2)
		// The same edit again, on the result, in one didChange with a
		// second one: each applies to the result of the one before.
		d3, err := d2.Apply([]Change{{Range: r, Text: insert}, {Range: rng(l2, c2, l2, c2+1), Text: "é"}}, 2, enc, 0)
		if err != nil {
			return
		}
		s2, e2, _ := d2.Span(*r, enc)
		mid := d2.Text()[:s2] + ValidUTF8(insert) + d2.Text()[e2:]
		ref := newSized("file:///f", "", 0, mid, 1<<20)
		s3, e3, err := ref.Span(*rng(l2, c2, l2, c2+1), enc)
		if err != nil {
			t.Fatalf("second change applied by Apply, refused by the reference: %v", err)
		}
		if want := mid[:s3] + "é" + mid[e3:]; d3.Text() != want {
			t.Fatalf("two changes = %q, want %q", d3.Text(), want)
		}
		checkLines(t, d3)
	})
}

// BenchmarkApplyKeystroke: one character typed in the middle of a document,
// as didChange applies it, for documents of 2 KB to 20 MB.
func BenchmarkApplyKeystroke(b *testing.B) {
	for _, size := range []int{2 << 10, 2 << 20, 20 << 20} {
		var sb strings.Builder
		for i := 0; sb.Len() < size; i++ {
			fmt.Fprintf(&sb, "func f%d(x int) int { return x*%d + 1 } // 😀\n", i, i)
		}
		d := New("file:///b.go", "go", 0, sb.String())
		b.Run(fmt.Sprintf("%dKB", size>>10), func(b *testing.B) {
			at := d.Position(d.Len()/2, UTF16)
			cur := d
			for range b.N {
				next, err := cur.Apply([]Change{{Range: &protocol.Range{Start: at, End: at}, Text: "x"}}, 1, UTF16, 0)
				if err != nil {
					b.Fatal(err)
				}
				cur = next
				at.Character++
			}
		})
	}
}
