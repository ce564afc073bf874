package lsp

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"go.lsp.dev/protocol"

	"github.com/diffill/diffill/lsp/document"
)

// bigGo returns about n bytes of Go source.
func bigGo(n int) string {
	var b strings.Builder
	b.WriteString("package big\n\n")
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "func f%d(x int) int { return x*%d + 1 } // 😀\n", i, i)
	}
	return b.String()
}

// allocated returns the bytes allocated by f (both ends of the pipe run in
// this process; the fake client keeps its own copy of the document too).
func allocated(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// TestKeystrokeCostFlat: a keystroke in a 20 MB document costs the server
// (and the client's copy) memory in proportion to the edit, not to the
// document. It was a new 20 MB string per keystroke (15.8 ms each).
func TestKeystrokeCostFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("a 20 MB document")
	}
	s := start(t, sessionOptions{opts: Options{MaxDocumentBytes: 32 << 20, MaxOpenBytes: 64 << 20}})
	text := bigGo(20 << 20)
	uri := protocol.DocumentURI("file:///big.go")
	if err := s.Open(uri, "go", text); err != nil {
		t.Fatal(err)
	}
	s.sync(t)
	at := s.Pos(uri, len(text)/2)
	const keys = 50
	got := allocated(func() {
		for i := 0; i < keys; i++ {
			if err := s.Type(uri, at, "x"); err != nil {
				t.Fatal(err)
			}
			at.Character++
		}
		s.sync(t)
	})
	if per := got / keys; per > 1<<20 {
		t.Errorf("a keystroke in a 20 MB document allocated %d bytes", per)
	}
	// One didChange replacing 1,000 ranges (a rename, a multi-cursor edit):
	// each change costs its own size, not the document's (12.9 s before).
	var changes []document.Change
	for i := 0; i < 1000; i++ {
		line := uint32(2 + i*97)
		changes = append(changes, document.Change{Range: &protocol.Range{
			Start: protocol.Position{Line: line, Character: 5}, End: protocol.Position{Line: line, Character: 6}}, Text: "g"})
	}
	got = allocated(func() {
		if err := s.Change(uri, changes...); err != nil {
			t.Fatal(err)
		}
		s.sync(t)
	})
	if per := got / 1000; per > 1<<20 {
		t.Errorf("each of 1,000 ranges replaced in one change allocated %d bytes", per)
	}
	if got, want := s.serverText(t, uri), s.Doc(uri).Text(); got != want {
		t.Fatal("the server's copy differs from the client's")
	}
}

// TestOpenManyDocuments: opening 10,000 documents costs each open about the
// same, not more and more (the document map was copied whole at each open,
// and the open-bytes limit summed every document).
func TestOpenManyDocuments(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 documents")
	}
	s := start(t, sessionOptions{})
	const n, batch = 10_000, 1000
	open := func(from int) uint64 {
		return allocated(func() {
			for i := from; i < from+batch; i++ {
				if err := s.Open(protocol.DocumentURI(fmt.Sprintf("file:///d/%d.go", i)), "go", "package d\n"); err != nil {
					t.Fatal(err)
				}
			}
			s.sync(t)
		})
	}
	first := open(0)
	for i := batch; i < n-batch; i += batch {
		open(i)
	}
	last := open(n - batch)
	t.Logf("bytes allocated per open: %d for the first %d, %d for the last", first/batch, batch, last/batch)
	if last > 2*first {
		t.Errorf("the last %d opens cost %d bytes, the first %d: the cost grows with the documents open", batch, last, first)
	}
	if st := s.srv.view.Load().docs; st.len() != n || st.keptBytes() != n*len("package d\n") {
		t.Errorf("docs: %d, %d bytes", st.len(), st.keptBytes())
	}
}

// BenchmarkKeystroke: a keystroke and a request after it (to know it was
// read), in documents of 20 MB and of 2 KB; the difference is what the
// size of the document costs a keystroke.
func BenchmarkKeystroke(b *testing.B) {
	for _, size := range []int{2 << 10, 20 << 20} {
		b.Run(fmt.Sprintf("%dKB", size>>10), func(b *testing.B) { benchKeystroke(b, size) })
	}
}

func benchKeystroke(b *testing.B, size int) {
	s := start(&testing.T{}, sessionOptions{opts: Options{MaxDocumentBytes: 32 << 20, MaxOpenBytes: 64 << 20}})
	text := bigGo(size)
	uri := protocol.DocumentURI("file:///big.go")
	s.Open(uri, "go", text)
	at := s.Pos(uri, len(text)/2)
	b.ResetTimer()
	for range b.N {
		s.Type(uri, at, "x")
		at.Character++
		s.Call(b.Context(), "diffill/sync-probe", nil, nil)
	}
}

func BenchmarkReplace1000Ranges20MB(b *testing.B) {
	s := start(&testing.T{}, sessionOptions{opts: Options{MaxDocumentBytes: 32 << 20, MaxOpenBytes: 64 << 20}})
	text := bigGo(20 << 20)
	uri := protocol.DocumentURI("file:///big.go")
	s.Open(uri, "go", text)
	var changes []document.Change
	for i := 0; i < 1000; i++ {
		line := uint32(2 + i*97)
		changes = append(changes, document.Change{Range: &protocol.Range{
			Start: protocol.Position{Line: line, Character: 5}, End: protocol.Position{Line: line, Character: 6}}, Text: "g"})
	}
	b.ResetTimer()
	for range b.N {
		s.Change(uri, changes...)
		s.Call(b.Context(), "diffill/sync-probe", nil, nil)
	}
}

func BenchmarkOpen10k(b *testing.B) {
	for range b.N {
		s := start(&testing.T{}, sessionOptions{})
		for i := 0; i < 10_000; i++ {
			s.Open(protocol.DocumentURI(fmt.Sprintf("file:///d/%d.go", i)), "go", "package d\n")
		}
		s.Call(b.Context(), "diffill/sync-probe", nil, nil)
	}
}
