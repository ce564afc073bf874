package lsp

import (
	"strings"

	"go.lsp.dev/protocol"
	"go.lsp.dev/uri"

	"github.com/diffill/diffill/infill/workspace"
	"github.com/diffill/diffill/lsp/document"
)

// The server keeps one workspace per module root (workspace.Session): the
// open documents are its overlays, and every completion, inline completion
// and action gets the snippets of the document's package as its prelude
// (when Options.Context has a budget) and the document around the cursor
// as the copy prior's corpus.

// docPath is the file path of a file: URI, or "" for other schemes.
func docPath(u protocol.DocumentURI) string {
	if !strings.HasPrefix(string(u), "file://") {
		return ""
	}
	return uri.URI(u).Filename()
}

// syncWorkspace gives the workspace a document's current text (nil: the
// document closed or is not served). A document too large for the
// workspace to parse is only sized: its text is not made into one string
// on every keystroke.
func (s *Server) syncWorkspace(u protocol.DocumentURI, doc *document.Document) {
	p := docPath(u)
	if p == "" || !strings.HasSuffix(p, ".go") {
		return
	}
	switch {
	case doc == nil:
		s.ws.ClearOverlay(p)
	case doc.Len() > s.ws.MaxFileBytes():
		s.ws.SetLargeOverlay(p, doc.Len())
	default:
		s.ws.SetOverlay(p, doc.Text())
	}
}

// prelude is the workspace context of a request at off in text, or "" when
// the document is not a Go file on disk. It never waits for loading.
func (s *Server) prelude(u protocol.DocumentURI, text string, off int) string {
	p := docPath(u)
	if p == "" || !strings.HasSuffix(p, ".go") {
		return ""
	}
	cfg := workspace.DefaultConfig
	if s.opt.Context != nil {
		cfg = *s.opt.Context
	}
	if cfg.Budget <= 0 {
		return ""
	}
	return s.ws.Prelude(p, text, off, cfg)
}

// corpus is the text the engine's copy prior copies from for a request at
// off: the document around the cursor.
func (s *Server) corpus(u protocol.DocumentURI, text string, off int) string {
	return workspace.Corpus(text, off, "")
}
