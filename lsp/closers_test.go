package lsp

import (
	"context"
	"go/parser"
	"go/scanner"
	"go/token"
	"os"
	"strings"
	"sync"
	"testing"

	"go.lsp.dev/protocol"

	"github.com/diffill/diffill/infill"
	"github.com/diffill/diffill/model"
	"github.com/diffill/diffill/model/builtin"
)

// autoClosed are documents as an editor leaves them right after the user
// typed an opening bracket or quote, which it closed: ⁁ is the cursor,
// what follows it on its line is the editor's.
var autoClosed = map[string]string{
	"paren":   "package a\n\ntype stack struct {\n\tv []int\n}\n\nfunc (a *stack) empty() bool {\n\treturn len(⁁)\n}\n",
	"bracket": "package a\n\nfunc last(parts []string) string {\n\treturn parts[⁁]\n}\n",
	"brace":   "package a\n\nfunc sum() int {\n\tx := []int{⁁}\n\ttotal := 0\n\tfor _, v := range x {\n\t\ttotal += v\n\t}\n\treturn total\n}\n",
	"quote":   "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"⁁\")\n}\n",
	"raw":     "package main\n\ntype User struct {\n\tName  string `json:\"name\"`\n\tEmail string `⁁`\n}\n",
}

// openAutoClosed opens doc and returns its cursor and the position after
// the closers on the cursor's line.
func openAutoClosed(t *testing.T, s *session, uri protocol.DocumentURI, doc string) (at, end protocol.Position, closers string) {
	t.Helper()
	i := strings.Index(doc, "⁁")
	text := doc[:i] + doc[i+len("⁁"):]
	j := i + strings.IndexByte(text[i:], '\n')
	s.Open(uri, "go", text)
	return s.Pos(uri, i), s.Pos(uri, j), text[i:j]
}

// lineBalanced reports whether Go's scanner finds line's brackets balanced
// and its strings terminated.
func lineBalanced(line string) bool {
	var sc scanner.Scanner
	fs := token.NewFileSet()
	bad := false
	sc.Init(fs.AddFile("line.go", -1, len(line)), []byte(line), func(_ token.Position, msg string) {
		if strings.Contains(msg, "not terminated") {
			bad = true
		}
	}, scanner.ScanComments)
	depth := []token.Token{}
	for {
		_, tok, _ := sc.Scan()
		switch tok {
		case token.EOF:
			return !bad && len(depth) == 0
		case token.LPAREN, token.LBRACK, token.LBRACE:
			depth = append(depth, tok)
		case token.RPAREN, token.RBRACK, token.RBRACE:
			if len(depth) == 0 || depth[len(depth)-1]+5 != tok { // LPAREN+5 == RPAREN, and so on
				return false
			}
			depth = depth[:len(depth)-1]
		}
	}
}

// subsequence reports whether the bytes of sub occur in s in order.
func subsequence(sub, s string) bool {
	for i := 0; i < len(s) && sub != ""; i++ {
		if s[i] == sub[0] {
			sub = sub[1:]
		}
	}
	return sub == ""
}

// lineOf returns the line of text holding byte offset off.
func lineOf(text string, off int) string {
	ls := strings.LastIndexByte(text[:off], '\n') + 1
	le := strings.IndexByte(text[off:], '\n')
	if le < 0 {
		return text[ls:]
	}
	return text[ls : off+le]
}

// applyItems applies each completion item's edit and each inline item to
// the client's copy of uri and calls check with the kind and index of the
// item, the text it leaves and where its edit starts.
func applyItems(t *testing.T, s *session, uri protocol.DocumentURI, list *protocol.CompletionList, inl *inlineCompletionList, check func(kind string, i int, text string, at int)) {
	t.Helper()
	orig := s.Doc(uri).Text()
	try := func(kind string, i int, r protocol.Range, newText string) {
		d := s.Doc(uri)
		a, b, err := d.Span(r, s.Encoding())
		if err != nil {
			t.Fatalf("%s range %v: %v", kind, r, err)
		}
		check(kind, i, orig[:a]+newText+orig[b:], a)
	}
	for i, it := range list.Items {
		if it.TextEdit == nil {
			t.Fatalf("item %q has no edit", it.Label)
		}
		try("completion", i, it.TextEdit.Range, it.TextEdit.NewText)
	}
	for i, it := range inl.Items {
		if it.Range == nil {
			t.Fatalf("inline item %q has no range", it.InsertText)
		}
		try("inline", i, *it.Range, it.InsertText)
	}
}

// TestCompletionReplacesAutoClosed: inside an auto-closed "(", "[", "{",
// "\"" or "`", the completion items' and the inline item's ranges run from
// the cursor over the closers, the line the edit leaves keeps the closer
// and is balanced, and with the built-in model there is an answer (the
// closer does not make it vanish) and the file the best one leaves
// parses: the closer is neither doubled ("len(a.v))") nor lost. The tiny checkpoint
// writes noise, which may be nothing but closers (then no item is the
// right answer); what it offers must have the same shape.
func TestCompletionReplacesAutoClosed(t *testing.T) {
	for _, m := range []struct {
		name string
		load Loader
	}{{"model", contentLoader}, {"tiny", tinyLoader}} {
		for name, doc := range autoClosed {
			t.Run(m.name+"/"+name, func(t *testing.T) {
				s := start(t, sessionOptions{load: m.load})
				ctx := ctxT(t)
				uri := protocol.DocumentURI("file:///a.go")
				at, end, closers := openAutoClosed(t, s, uri, doc)
				list, err := s.complete(ctx, uri, at)
				if err != nil {
					t.Fatal(err)
				}
				inl, err := s.inline(ctx, uri, at, inlineTriggerInvoked)
				if err != nil {
					t.Fatal(err)
				}
				if m.name == "model" && (len(list.Items) == 0 || len(inl.Items) == 0) {
					t.Fatalf("%d completion items, %d inline items inside %q; want some of each", len(list.Items), len(inl.Items), closers)
				}
				// No partial word before the cursor in these documents:
				// the items' edits start at the cursor too.
				for _, it := range list.Items {
					if r := it.TextEdit.Range; r.Start != at || r.End != end {
						t.Errorf("completion item %q replaces %v, want %v-%v (the closers %q)", it.Label, r, at, end, closers)
					}
				}
				for _, it := range inl.Items {
					if r := *it.Range; r.Start != at || r.End != end {
						t.Errorf("inline item %q replaces %v, want %v-%v (the closers %q)", it.InsertText, r, at, end, closers)
					}
				}
				applyItems(t, s, uri, list, inl, func(kind string, i int, text string, off int) {
					line := lineOf(text, off)
					t.Logf("%s: %q", kind, line)
					if !lineBalanced(line) {
						t.Errorf("%s leaves %q: brackets or quotes unbalanced", kind, line)
					}
					if rest := text[off : off+strings.IndexByte(text[off:], '\n')]; !subsequence(closers, rest) {
						t.Errorf("%s leaves %q: the closers %q are not all there, in order", kind, line, closers)
					}
					if m.name != "model" || i > 0 {
						return // noise, or a second guess: its shape is what counts
					}
					if _, err := parser.ParseFile(token.NewFileSet(), "a.go", text, parser.AllErrors); err != nil {
						t.Errorf("%s leaves %q, which does not parse: %v", kind, line, err)
					}
				})
			})
		}
	}
}

// TestAutoClosedFromCache: typing the first character of ghost text shown
// inside auto-closed quotes is answered from the cache, with the rest of
// the text still replacing the closers.
func TestAutoClosedFromCache(t *testing.T) {
	o := &observed{}
	load := func(ctx context.Context, dir, device string) (Engine, error) {
		e, err := contentLoader(ctx, dir, device)
		o.Engine = e
		return o, err
	}
	s := start(t, sessionOptions{load: load})
	ctx := ctxT(t)
	uri := protocol.DocumentURI("file:///a.go")
	at, _, closers := openAutoClosed(t, s, uri, autoClosed["quote"])
	inl, err := s.inline(ctx, uri, at, 2)
	if err != nil || len(inl.Items) == 0 {
		t.Fatalf("inline: %v %+v", err, inl)
	}
	shown := inl.Items[0].InsertText
	runs := o.runs.Load()
	first := string([]rune(shown)[0])
	if rest := shown[len(first):]; rest == closers || rest == "" {
		t.Fatalf("the answer %q is too short to type into", shown)
	}
	closerAt := strings.Index(s.Doc(uri).Text(), closers+"\n")
	if err := s.Type(uri, at, first); err != nil {
		t.Fatal(err)
	}
	at2, end2 := s.Pos(uri, closerAt+len(first)), s.Pos(uri, closerAt+len(first)+len(closers))
	inl2, err := s.inline(ctx, uri, at2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if o.runs.Load() != runs {
		t.Errorf("the model ran again after typing %q of %q", first, shown)
	}
	if len(inl2.Items) == 0 || inl2.Items[0].InsertText != shown[len(first):] || *inl2.Items[0].Range != (protocol.Range{Start: at2, End: end2}) {
		t.Errorf("after typing %q: %+v, want %q replacing %v-%v", first, inl2.Items, shown[len(first):], at2, end2)
	}
}

var (
	contentOnce   sync.Once
	contentEngine *infill.Engine
	contentErr    error
)

// contentLoader loads the model for tests where what the model writes
// matters: the built-in model, or the checkpoint directory
// DIFFILL_TEST_MODEL names (as the editor tests read it; "builtin" is the
// built-in model too).
func contentLoader(ctx context.Context, dir, device string) (Engine, error) {
	contentOnce.Do(func() {
		var m *model.Model
		var err error
		if d := os.Getenv("DIFFILL_TEST_MODEL"); d != "" && d != "builtin" {
			m, err = model.Load(d)
		} else {
			m, err = builtin.Load()
		}
		if err != nil {
			contentErr = err
			return
		}
		contentEngine = infill.NewEngine(m)
	})
	return contentEngine, contentErr
}
