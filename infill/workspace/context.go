package workspace

import (
	"context"
	"crypto/sha256"
	"strconv"
	"strings"
	"sync"
)

// Config says what context a completion gets.
type Config struct {
	// Budget bounds the snippets' text in bytes; 0: no context.
	Budget int
	Pieces Pieces
	// Window is about how many bytes of the document the model sees on
	// each side of the cursor anyway: chunks there are not offered.
	Window int
}

// SnippetBytes is the snippet budget to try when measuring (eval
// --snippets all): about 350 tokens, which with the 512-token window keeps
// the canvas within the built-in model's 1024-token training length.
const SnippetBytes = 1200

// DefaultConfig is the context the server and the command line give by
// default: none in the canvas. With the built-in model no piece and no
// budget raised exact match on the dev set (eval --workspace on five
// modules of the module cache, 180-450 cases a run: all pieces 7.2% and
// 8.3% at 1200 and 2400 bytes against 7.8% without; each piece alone
// 7.2-7.8%), while the longer canvas raised the cold p50 from 112 ms to
// 190-520 ms. A larger model that reads far context can turn it on
// (Budget: SnippetBytes).
var DefaultConfig = Config{Budget: 0, Pieces: AllPieces, Window: 1800}

// Query builds the query of a cursor under c.
func (c Config) Query(path, text string, off int, open map[string]string) Query {
	return Query{Path: path, Text: text, Offset: off, Budget: c.Budget, Pieces: c.Pieces, Open: open,
		SkipStart: off - c.Window, SkipEnd: off + c.Window}
}

// preludeMemo keeps the last prelude of each document, so that requests
// in the same declaration get the very same text (and the engine's cache
// of the last canvas still holds) while the user types there.
type preludeMemo struct {
	mu sync.Mutex
	m  map[string]memoEntry
}

type memoEntry struct {
	key     string
	prelude string
}

// Prelude returns the context for a completion at off in the open
// document path whose text is text: the snippets of its package and open
// documents, rendered. It never waits for loading (it answers with what is
// loaded); it returns the same text as the last call while the cursor
// stays in the same top-level declaration and the package's load state
// does not change.
func (s *Session) Prelude(path, text string, off int, c Config) string {
	if c.Budget <= 0 || off < 0 || off > len(text) {
		return ""
	}
	w := s.For(path)
	p := w.Package(path)
	fn := enclosing(text, off)
	header := text[fn.start:lineEnd(text, fn.start)]
	key := strings.Join([]string{header, itoa(strings.Count(text[:fn.start], "\n")), othersKey(p, path), boolStr(p.Loaded), itoa(c.Budget)}, "\x00")
	s.memo.mu.Lock()
	if e, ok := s.memo.m[path]; ok && e.key == key {
		s.memo.mu.Unlock()
		return e.prelude
	}
	s.memo.mu.Unlock()
	pre := Prelude(w.Root(), Snippets(p, c.Query(path, text, off, s.Open())))
	s.memo.mu.Lock()
	if s.memo.m == nil {
		s.memo.m = map[string]memoEntry{}
	}
	s.memo.m[path] = memoEntry{key, pre}
	s.memo.mu.Unlock()
	return pre
}

// PreludeWait is Prelude for the command line: the document's text is an
// overlay while its package loads (until ctx ends), and no memo.
func (s *Session) PreludeWait(ctx context.Context, path, text string, off int, c Config) string {
	if c.Budget <= 0 || off < 0 || off > len(text) {
		return ""
	}
	w := s.For(path)
	w.SetOverlay(path, text)
	defer w.ClearOverlay(path)
	p := w.Wait(ctx, path)
	return Prelude(w.Root(), Snippets(p, c.Query(path, text, off, s.Open())))
}

func itoa(n int) string { return strconv.Itoa(n) }

func boolStr(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// othersKey identifies the content of a package's files other than path:
// the prelude of a document changes when they do, not when it does.
func othersKey(p *Package, path string) string {
	h := sha256.New()
	for _, f := range p.Files {
		if f.Path != path {
			h.Write([]byte(f.Path))
			h.Write(f.key[:])
			h.Write([]byte{byte(f.Size), byte(f.Size >> 8), byte(f.Size >> 16), byte(f.Size >> 24)})
		}
	}
	for ip := range p.Imports {
		h.Write([]byte(ip))
	}
	return string(h.Sum(nil))
}

// Corpus bounds: how much of the document around the cursor the copy
// prior copies from, before and after it.
const (
	CorpusBefore = 12 << 10
	CorpusAfter  = 4 << 10
)

// Corpus is the text the engine's copy prior copies from for a cursor at
// off: the document around it (after the cursor first, then before it, so
// that the nearest text comes last, where the prior looks first) and,
// when extra is not empty, extra (the package's snippets) before both.
func Corpus(text string, off int, extra string) string {
	if off < 0 || off > len(text) {
		return ""
	}
	lo := max(0, off-CorpusBefore)
	hi := min(len(text), off+CorpusAfter)
	var b strings.Builder
	b.Grow(len(extra) + hi - lo + 2)
	b.WriteString(extra)
	b.WriteString("\n")
	b.WriteString(text[off:hi])
	b.WriteString("\n")
	b.WriteString(text[lo:off])
	return b.String()
}
