package lsp

import (
	"context"
	"strings"

	"go.lsp.dev/protocol"
)

// commandArgs is the one argument of diffill's commands. Version is the
// document version the range refers to; when it is set and the document
// has changed since, the command is refused rather than run on the wrong
// text. Range is required by diffill.infillRange (may be empty: infill at
// the cursor) and diffill.rewriteRange (must not be); diffill.fillHoles
// ignores it. Strength (0, 1] is how much diffill.rewriteRange re-masks;
// 0 means the engine's default.
type commandArgs struct {
	TextDocument optionalVersionedTextDocumentIdentifier `json:"textDocument"`
	Range        *protocol.Range                         `json:"range,omitempty"`
	Strength     float64                                 `json:"strength,omitempty"`
}

func (s *Server) codeAction(ctx context.Context, v *view, p *protocol.CodeActionParams) ([]protocol.CodeAction, error) {
	d, ok := v.docs.get(p.TextDocument.URI)
	if !ok {
		_, err := v.lookup(p.TextDocument.URI)
		return nil, err
	}
	actions := []protocol.CodeAction{}
	if d.doc == nil {
		return actions, nil // too large or out of sync: nothing to offer
	}
	doc := d.doc
	start, end, err := doc.Span(p.Range, v.enc)
	if err != nil {
		return nil, err
	}
	version := doc.Version
	add := func(kind protocol.CodeActionKind, title, command string, r *protocol.Range) {
		if !wanted(kind, p.Context.Only) {
			return
		}
		args := commandArgs{TextDocument: optionalVersionedTextDocumentIdentifier{URI: doc.URI, Version: &version}, Range: r}
		actions = append(actions, protocol.CodeAction{
			Title:   title,
			Kind:    kind,
			Command: &protocol.Command{Title: title, Command: command, Arguments: []any{args}},
		})
	}
	if end > start {
		r := doc.Range(start, end, v.enc) // normalised: clamped, on character boundaries
		add(KindInfill, "Infill selection", CommandInfillRange, &r)
		add(KindRewrite, "Rewrite selection", CommandRewriteRange, &r)
	}
	if marker := v.settings.HoleMarker; marker != "" && strings.Contains(doc.Text(), marker) {
		add(KindFillHoles, "Fill holes", CommandFillHoles, nil)
	}
	return actions, nil
}

// wanted applies a code action request's "only" filter: kinds are
// hierarchical, so "refactor" admits "refactor.rewrite.diffill.infill".
func wanted(kind protocol.CodeActionKind, only []protocol.CodeActionKind) bool {
	if len(only) == 0 {
		return true
	}
	for _, o := range only {
		if kind == o || strings.HasPrefix(string(kind), string(o)+".") {
			return true
		}
	}
	return false
}
