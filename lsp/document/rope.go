package document

import (
	"sort"
	"strings"
)

// defaultPieceSize is the size a document's text is cut into. An edit
// copies the pieces it touches and their neighbours (a few times this) and
// the piece index (one entry per piece): about 30 µs per keystroke in a
// 20 MB file, where one flat string cost a copy of all of it (15 ms).
const defaultPieceSize = 16 << 10

// rope is a document's text as immutable pieces with a line index: edits
// share every piece they do not touch with the version before.
//
// Pieces are never cut between the "\r" and the "\n" of a "\r\n", so a line
// terminator always lies in one piece; they may cut a UTF-8 character.
type rope struct {
	pieces []*piece
	starts []int // byte offset of each piece, then the total length
	before []int // line terminators before each piece, then the total
	size   int   // the target piece size
}

// piece is a run of text and where lines start in it.
type piece struct {
	s string
	// ends holds, for each line terminator in s, the offset just after
	// it (in (0, len(s)]): where the next line starts.
	ends []int32
}

func newPiece(s string) *piece {
	p := &piece{s: s}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\n':
			p.ends = append(p.ends, int32(i+1))
		case '\r':
			if i+1 < len(s) && s[i+1] == '\n' {
				i++
			}
			p.ends = append(p.ends, int32(i+1))
		}
	}
	return p
}

// cutPieces splits s into pieces of about size bytes, never inside "\r\n".
func cutPieces(s string, size int, out []*piece) []*piece {
	for len(s) > 0 {
		n := min(len(s), size)
		if n < len(s) && s[n-1] == '\r' && s[n] == '\n' {
			n++
		}
		out = append(out, newPiece(s[:n]))
		s = s[n:]
	}
	return out
}

func newRope(text string, size int) *rope {
	r := &rope{size: size}
	r.pieces = cutPieces(text, size, nil)
	r.index()
	return r
}

// index rebuilds starts and before from the pieces.
func (r *rope) index() {
	r.starts = make([]int, len(r.pieces)+1)
	r.before = make([]int, len(r.pieces)+1)
	for i, p := range r.pieces {
		r.starts[i+1] = r.starts[i] + len(p.s)
		r.before[i+1] = r.before[i] + len(p.ends)
	}
}

func (r *rope) len() int { return r.starts[len(r.pieces)] }

// lineCount is the number of lines: terminators plus one.
func (r *rope) lineCount() int { return r.before[len(r.pieces)] + 1 }

// pieceAt returns the piece holding byte off; the end of the text belongs to
// the last piece. -1 for an empty text.
func (r *rope) pieceAt(off int) int {
	n := len(r.pieces)
	if n == 0 {
		return -1
	}
	// The first piece that starts after off, less one.
	k := sort.Search(n, func(i int) bool { return r.starts[i+1] > off })
	return min(k, n-1)
}

// lineStart returns the byte offset where line (0-based, < lineCount) starts.
func (r *rope) lineStart(line int) int {
	if line == 0 {
		return 0
	}
	// The piece holding the line-th terminator.
	n := len(r.pieces)
	k := sort.Search(n, func(i int) bool { return r.before[i+1] >= line })
	return r.starts[k] + int(r.pieces[k].ends[line-r.before[k]-1])
}

// lineOf returns the line holding byte off (0 <= off <= len).
func (r *rope) lineOf(off int) int {
	k := r.pieceAt(off)
	if k < 0 {
		return 0
	}
	rel := int32(off - r.starts[k])
	ends := r.pieces[k].ends
	return r.before[k] + sort.Search(len(ends), func(i int) bool { return ends[i] > rel })
}

// byteAt returns the byte at off (< len).
func (r *rope) byteAt(off int) byte {
	k := r.pieceAt(off)
	return r.pieces[k].s[off-r.starts[k]]
}

// slice returns the text of [a, b); within one piece it is not copied.
func (r *rope) slice(a, b int) string {
	if a >= b {
		return ""
	}
	i, j := r.pieceAt(a), r.pieceAt(b-1)
	if i == j {
		return r.pieces[i].s[a-r.starts[i] : b-r.starts[i]]
	}
	var sb strings.Builder
	sb.Grow(b - a)
	sb.WriteString(r.pieces[i].s[a-r.starts[i]:])
	for k := i + 1; k < j; k++ {
		sb.WriteString(r.pieces[k].s)
	}
	sb.WriteString(r.pieces[j].s[:b-r.starts[j]])
	return sb.String()
}

// String returns the whole text (a copy, unless it is one piece).
func (r *rope) String() string { return r.slice(0, r.len()) }

// replace returns the rope with [a, b) replaced by ins. The pieces touched
// and one on each side are cut again (so that no new "\r\n" straddles a
// cut, and small pieces merge); the rest are shared.
func (r *rope) replace(a, b int, ins string) *rope {
	n := len(r.pieces)
	if n == 0 {
		return newRope(ins, r.size)
	}
	i := max(r.pieceAt(a)-1, 0)
	j := min(r.pieceAt(max(b-1, a))+1, n-1)
	lo, hi := r.starts[i], r.starts[j+1]
	var sb strings.Builder
	sb.Grow(hi - lo - (b - a) + len(ins))
	sb.WriteString(r.slice(lo, a))
	sb.WriteString(ins)
	sb.WriteString(r.slice(b, hi))
	out := &rope{size: r.size}
	out.pieces = make([]*piece, 0, n+len(ins)/r.size+2)
	out.pieces = append(out.pieces, r.pieces[:i]...)
	out.pieces = cutPieces(sb.String(), r.size, out.pieces)
	out.pieces = append(out.pieces, r.pieces[j+1:]...)
	out.index()
	return out
}
