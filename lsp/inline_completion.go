package lsp

import (
	"context"
)

// inlineCompletionCandidates: ghost text shows one answer; more would only
// cost time.
const inlineCompletionCandidates = 1

// inlineCompletion serves textDocument/inlineCompletion (LSP 3.18): the
// same completion as textDocument/completion, as ghost text, with the exact
// range it replaces.
func (s *Server) inlineCompletion(ctx context.Context, v *view, p *inlineCompletionParams) (*inlineCompletionList, error) {
	doc, err := v.lookup(p.TextDocument.URI)
	if err != nil {
		return nil, err
	}
	off, err := doc.Offset(p.Position, v.enc)
	if err != nil {
		return nil, err
	}
	explicit := p.Context.TriggerKind == inlineTriggerInvoked
	sugs, err := s.suggest(ctx, v, doc, off, inlineCompletionCandidates, explicit)
	if err != nil {
		return nil, err
	}
	list := &inlineCompletionList{Items: []inlineCompletionItem{}}
	for _, sg := range sugs {
		// Ghost text that comes as the user types shows only answers
		// that pass the Go checks and are confident enough: a wrong one
		// is a keystroke to undo. Asked for (invoked), it shows the best,
		// as the completion list does.
		if !explicit && !sg.ghost(v.settings.GhostThreshold) {
			continue
		}
		if len(list.Items) == inlineCompletionCandidates {
			break
		}
		r := doc.Range(sg.start, sg.end, v.enc)
		list.Items = append(list.Items, inlineCompletionItem{InsertText: sg.text, Range: &r})
	}
	return list, nil
}
