package lsp

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.lsp.dev/protocol"
	"go.lsp.dev/uri"

	"github.com/diffill/diffill/infill"
	"github.com/diffill/diffill/infill/workspace"
)

// preludes records the prelude of every request the engine gets.
type preludes struct {
	Engine
	mu     sync.Mutex
	seen   []string
	corpus string // the last request's
}

func (p *preludes) Run(ctx context.Context, req *infill.Request) (*infill.Result, error) {
	p.mu.Lock()
	p.seen = append(p.seen, req.Prelude)
	p.corpus = req.Corpus
	p.mu.Unlock()
	return p.Engine.Run(ctx, req)
}

func (p *preludes) last() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.seen) == 0 {
		return ""
	}
	return p.seen[len(p.seen)-1]
}

// TestWorkspaceContext: a completion in a Go file of a module on disk gets
// the document as the copy prior's corpus and the snippets of its package
// as the engine's prelude (once the package
// has loaded in the background; no request waits for it), and a file's
// unsaved text in the editor wins over the disk.
func TestWorkspaceContext(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		"go.mod":    "module example.com/shop\n\ngo 1.22\n",
		"widget.go": "package shop\n\ntype Widget struct {\n\tSize int\n}\n\nfunc (w *Widget) Grow(n int) { w.Size += n }\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rec := &preludes{}
	cfg := workspace.DefaultConfig
	cfg.Budget = workspace.SnippetBytes
	s := start(t, sessionOptions{opts: Options{Context: &cfg}, load: func(ctx context.Context, d, device string) (Engine, error) {
		e, err := tinyLoader(ctx, d, device)
		rec.Engine = e
		return rec, err
	}})
	ctx := ctxT(t)
	main := protocol.DocumentURI(uri.File(filepath.Join(dir, "main.go")))
	s.Open(main, "go", "package shop\n\nfunc (w *Widget) Shrink() {\n\tw.\n}\n")
	at := s.posOf(t, main, "\tw.", true)
	// No request waits for the package; this test does, so that the
	// suggestion cache does not answer the next requests.
	mainPath := filepath.Join(dir, "main.go")
	s.srv.ws.For(mainPath).Wait(ctx, mainPath)
	// Asks until the context is there: the first answers may come before
	// the package has loaded.
	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, err := s.complete(ctx, main, at); err != nil {
				t.Fatal(err)
			}
			// A keystroke, so that the next request is not answered
			// from the suggestion cache.
			if err := s.Type(main, at, "x"); err != nil {
				t.Fatal(err)
			}
			at = s.Pos(main, len(s.Doc(main).Text())-len("\n}\n"))
			if strings.Contains(rec.last(), want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the prelude after 30 s; last prelude:\n%s", want, rec.last())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("type Widget struct {\n\tSize int\n}")
	if !strings.Contains(rec.last(), "func (w *Widget) Grow(n int)") {
		t.Errorf("the receiver's methods are not in the prelude:\n%s", rec.last())
	}
	// The copy prior's corpus is the document around the cursor, the
	// text before it last.
	rec.mu.Lock()
	corpus := rec.corpus
	rec.mu.Unlock()
	if !strings.Contains(corpus, "func (w *Widget) Shrink() {\n\tw.") || !strings.HasPrefix(corpus, "\n\n}\n") || strings.HasSuffix(corpus, "}\n") {
		t.Errorf("corpus %q", corpus)
	}
	// The editor's unsaved text of widget.go wins over the disk.
	widget := protocol.DocumentURI(uri.File(filepath.Join(dir, "widget.go")))
	s.Open(widget, "go", "package shop\n\ntype Widget struct {\n\tSize  int\n\tColor string\n}\n")
	waitFor("Color string")
	if strings.Contains(rec.last(), "Grow") {
		t.Errorf("the prelude still has the disk's Grow, which the open text no longer has:\n%s", rec.last())
	}
}
