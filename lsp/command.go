package lsp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"go.lsp.dev/jsonrpc2"
	"go.lsp.dev/protocol"
	"go.uber.org/zap"

	"github.com/diffill/diffill/infill"
	"github.com/diffill/diffill/lsp/document"
)

// MethodStep is diffill's own notification, sent after each denoising step
// of a command, with the text of each span so far, for clients that want to
// draw the text as it forms. Clients that do not know it ignore it.
const MethodStep = "diffill/step"

// stepParams are MethodStep's params. Each span's range is where it lies in
// the document version given (the version the command started from).
type stepParams struct {
	TextDocument optionalVersionedTextDocumentIdentifier `json:"textDocument"`
	Command      string                                  `json:"command"`
	Done         int                                     `json:"done"`
	Total        int                                     `json:"total"`
	Spans        []stepSpan                              `json:"spans"`
}

type stepSpan struct {
	Range protocol.Range `json:"range"`
	Text  string         `json:"text"`
}

// commandResult is what workspace/executeCommand returns: whether the
// client applied the edit. A client without workspace/applyEdit gets the
// edit itself, to apply as it can.
type commandResult struct {
	Applied       bool           `json:"applied"`
	FailureReason string         `json:"failureReason,omitempty"`
	Edit          *workspaceEdit `json:"edit,omitempty"`
}

func (s *Server) executeCommand(ctx context.Context, v *view, p *executeCommandParams) (*commandResult, error) {
	var mode infill.Mode
	var title string
	switch p.Command {
	case CommandInfillRange:
		mode, title = infill.ModeInfill, "Infill selection"
	case CommandRewriteRange:
		mode, title = infill.ModeRewrite, "Rewrite selection"
	case CommandFillHoles:
		mode, title = infill.ModeFillHoles, "Fill holes"
	default:
		return nil, jsonrpc2.Errorf(jsonrpc2.InvalidParams, "unknown command %q (diffill runs %s)", p.Command, strings.Join(Commands, ", "))
	}
	usage := jsonrpc2.Errorf(jsonrpc2.InvalidParams, `%s takes one argument: {"textDocument": {"uri": ..., "version": ...}, "range": ...}`, p.Command)
	if len(p.Arguments) != 1 {
		return nil, usage
	}
	var a commandArgs
	if err := json.Unmarshal(p.Arguments[0], &a); err != nil || a.TextDocument.URI == "" {
		return nil, usage
	}
	doc, err := v.lookup(a.TextDocument.URI)
	if err != nil {
		return nil, err
	}
	if a.TextDocument.Version != nil && *a.TextDocument.Version != doc.Version {
		return nil, fmt.Errorf("%s: the document changed since the action was offered (version %d, now %d): %w",
			title, *a.TextDocument.Version, doc.Version, errModified)
	}
	text := doc.Text()
	pr := params(v.settings)
	if a.Strength != 0 {
		if a.Strength < 0 || a.Strength > 1 {
			return nil, jsonrpc2.Errorf(jsonrpc2.InvalidParams, "strength %v is outside (0, 1]", a.Strength)
		}
		pr.Strength = a.Strength
	}
	req := &infill.Request{Mode: mode, Params: pr}
	var spans []stepSpan // where the spans are, for diffill/step
	base := 0
	switch mode {
	case infill.ModeFillHoles:
		req.Text = text
		for i := 0; ; {
			j := strings.Index(text[i:], pr.HoleMarker)
			if j < 0 {
				break
			}
			spans = append(spans, stepSpan{Range: doc.Range(i+j, i+j+len(pr.HoleMarker), v.enc)})
			i += j + len(pr.HoleMarker)
		}
		if len(spans) == 0 {
			return nil, jsonrpc2.Errorf(codeRequestFailed, "Fill holes: the document has no hole marker %q", pr.HoleMarker)
		}
	default:
		if a.Range == nil {
			return nil, usage
		}
		start, end, err := doc.Span(*a.Range, v.enc)
		if err != nil {
			return nil, err
		}
		if mode == infill.ModeRewrite && start == end {
			return nil, jsonrpc2.Errorf(jsonrpc2.InvalidParams, "Rewrite selection: the selection is empty")
		}
		req.Text, base = window(text, start, end, pr.ContextTokens)
		req.Spans = []infill.Span{{Start: start - base, End: end - base}}
		spans = []stepSpan{{Range: doc.Range(start, end, v.enc)}}
	}

	at := strings.Index(text, pr.HoleMarker)
	if mode != infill.ModeFillHoles {
		at = req.Spans[0].Start + base
	}
	// No copy prior for actions: over a selected line it copied the lines
	// after it into the answer (Neovim TestWholeLine: "b.buf = buf\n}\n\n//
	// Grow grows"); it was measured for completions.
	req.Prelude = s.prelude(doc.URI, text, at)
	eng, err := s.engine(ctx, v)
	if err != nil {
		return nil, err
	}
	if bg, ok := eng.(interface{ Background() Engine }); ok {
		// A command may denoise for seconds: on the loader's engine for
		// long runs, which gives way to completions between steps.
		eng = bg.Background()
	}
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	prog := s.startProgress(ctx, p.WorkDoneToken, "diffill: "+title, cancel)
	version := doc.Version
	req.OnStep = func(st infill.Step) {
		prog.report(fmt.Sprintf("step %d/%d", st.Done, st.Total), 100*st.Done/max(st.Total, 1))
		sp := make([]stepSpan, len(spans))
		for i := range spans {
			sp[i] = spans[i]
			if i < len(st.Texts) {
				sp[i].Text = st.Texts[i]
			}
		}
		if err := s.conn.Notify(s.ctx, MethodStep, &stepParams{
			TextDocument: optionalVersionedTextDocumentIdentifier{URI: doc.URI, Version: &version},
			Command:      p.Command, Done: st.Done, Total: st.Total, Spans: sp,
		}); err != nil {
			s.log.Debug("diffill/step not sent", zap.Error(err))
		}
	}
	res, err := eng.Run(wctx, req)
	if err != nil {
		if wctx.Err() != nil {
			err = context.Cause(wctx)
			prog.end("cancelled")
			return nil, err
		}
		prog.end("failed")
		return nil, fmt.Errorf("%s: %w", title, err)
	}
	if cur, ok := s.currentVersion(doc.URI); !ok || cur != version {
		prog.end("the document changed; not applied")
		return nil, fmt.Errorf("%s: %w", title, errModified)
	}
	if len(res.Candidates) == 0 {
		prog.end("no answer")
		return nil, errors.New(title + ": the engine gave no answer")
	}
	var edits []protocol.TextEdit
	for _, e := range res.Candidates[0].Edits {
		edits = append(edits, protocol.TextEdit{Range: doc.Range(e.Start+base, e.End+base, v.enc), NewText: document.ValidUTF8(e.NewText)})
	}
	s.mu.Lock()
	caps := s.caps
	s.mu.Unlock()
	we := workspaceEdit{}
	if caps.Workspace.WorkspaceEdit.DocumentChanges {
		// The version makes the client refuse the edit if the document
		// changed before it arrived.
		we.DocumentChanges = []textDocumentEdit{{
			TextDocument: optionalVersionedTextDocumentIdentifier{URI: doc.URI, Version: &version},
			Edits:        edits,
		}}
	} else {
		we.Changes = map[protocol.DocumentURI][]protocol.TextEdit{doc.URI: edits}
	}
	if !caps.Workspace.ApplyEdit {
		prog.end("done")
		return &commandResult{Edit: &we}, nil
	}
	var applied protocol.ApplyWorkspaceEditResponse
	// The request's context, bounded by the client timeout: a client that
	// never answers, or a user who cancels meanwhile, releases this request.
	// The edit may still be applied by the editor then; the error says so.
	if err := s.callClient(ctx, protocol.MethodWorkspaceApplyEdit, &applyWorkspaceEditParams{Label: "diffill: " + title, Edit: we}, &applied); err != nil {
		prog.end("no answer from the editor")
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: cancelled while waiting for the editor to apply the edit (it may still apply it): %w", title, context.Cause(ctx))
		}
		return nil, fmt.Errorf("%s: workspace/applyEdit (the editor may still apply the edit): %w", title, err)
	}
	if applied.Applied {
		prog.end("applied")
	} else {
		prog.end("not applied: " + applied.FailureReason)
		s.log.Info("edit refused by the client", zap.String("command", p.Command), zap.String("reason", applied.FailureReason))
	}
	return &commandResult{Applied: applied.Applied, FailureReason: applied.FailureReason}, nil
}
