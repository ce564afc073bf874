package lsp

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"go.lsp.dev/protocol"

	"github.com/diffill/diffill/infill"
	"github.com/diffill/diffill/lsp/fake"
)

const holesSource = "package main\n\nfunc add(a, b int) int {\n\treturn ???\n}\n\nfunc main() {\n\tprintln(add(1, ???))\n}\n"

func (s *session) codeActions(t *testing.T, uri protocol.DocumentURI, r protocol.Range, only ...protocol.CodeActionKind) []protocol.CodeAction {
	t.Helper()
	var actions []protocol.CodeAction
	err := s.Call(ctxT(t), protocol.MethodTextDocumentCodeAction, protocol.CodeActionParams{
		TextDocument: protocol.TextDocumentIdentifier{URI: uri},
		Range:        r,
		Context:      protocol.CodeActionContext{Only: only},
	}, &actions)
	if err != nil {
		t.Fatal(err)
	}
	return actions
}

func titles(actions []protocol.CodeAction) string {
	var ts []string
	for _, a := range actions {
		ts = append(ts, a.Title+" ("+a.Command.Command+")")
	}
	return strings.Join(ts, ", ")
}

func TestCodeActions(t *testing.T) {
	s := start(t, sessionOptions{})
	plain := protocol.DocumentURI("file:///plain.go")
	holes := protocol.DocumentURI("file:///holes.go")
	s.Open(plain, "go", goSource)
	s.Open(holes, "go", holesSource)
	sel := protocol.Range{Start: protocol.Position{Line: 6, Character: 1}, End: protocol.Position{Line: 6, Character: 9}}
	cursor := protocol.Range{Start: sel.Start, End: sel.Start}
	for _, tt := range []struct {
		uri  protocol.DocumentURI
		r    protocol.Range
		only []protocol.CodeActionKind
		want string
	}{
		{plain, sel, nil, "Infill selection (diffill.infillRange), Rewrite selection (diffill.rewriteRange)"},
		{plain, cursor, nil, ""},
		{holes, cursor, nil, "Fill holes (diffill.fillHoles)"},
		{holes, sel, nil, "Infill selection (diffill.infillRange), Rewrite selection (diffill.rewriteRange), Fill holes (diffill.fillHoles)"},
		{holes, sel, []protocol.CodeActionKind{"refactor"}, "Infill selection (diffill.infillRange), Rewrite selection (diffill.rewriteRange), Fill holes (diffill.fillHoles)"},
		{holes, sel, []protocol.CodeActionKind{"refactor.rewrite.diffill.fillHoles"}, "Fill holes (diffill.fillHoles)"},
		{holes, sel, []protocol.CodeActionKind{"quickfix"}, ""},
	} {
		if got := titles(s.codeActions(t, tt.uri, tt.r, tt.only...)); got != tt.want {
			t.Errorf("%s %v only %v: %s, want %s", tt.uri, tt.r, tt.only, got, tt.want)
		}
	}
	// The command carries the document version its range refers to.
	a := s.codeActions(t, plain, sel)[0]
	raw, _ := json.Marshal(a.Command.Arguments[0])
	var args commandArgs
	json.Unmarshal(raw, &args)
	if args.TextDocument.URI != plain || args.TextDocument.Version == nil || *args.TextDocument.Version != 1 || args.Range == nil || *args.Range != sel {
		t.Errorf("command argument %s, want the document, version 1 and the selection", raw)
	}
}

func commandParams(cmd string, uri protocol.DocumentURI, version int32, r *protocol.Range) map[string]any {
	arg := map[string]any{"textDocument": map[string]any{"uri": uri, "version": version}}
	if r != nil {
		arg["range"] = r
	}
	return map[string]any{"command": cmd, "arguments": []any{arg}}
}

// TestFillHoles runs "Fill holes" end to end: the server computes, reports
// progress and each step, and the client applies the versioned edit.
func TestFillHoles(t *testing.T) {
	s := start(t, sessionOptions{})
	ctx := ctxT(t)
	uri := protocol.DocumentURI("file:///holes.go")
	s.Open(uri, "go", holesSource)
	var res commandResult
	if err := s.Call(ctx, protocol.MethodWorkspaceExecuteCommand, commandParams(CommandFillHoles, uri, 1, nil), &res); err != nil {
		t.Fatal(err)
	}
	if !res.Applied {
		t.Fatalf("not applied: %+v", res)
	}
	got := s.Doc(uri).Text()
	if strings.Contains(got, "???") || !strings.HasPrefix(got, "package main\n\nfunc add(a, b int) int {\n\treturn ") ||
		!strings.HasSuffix(got, "))\n}\n") || s.Doc(uri).Version != 2 {
		t.Errorf("after Fill holes (version %d):\n%s", s.Doc(uri).Version, got)
	}
	s.sync(t)
	if srv := s.serverText(t, uri); srv != got {
		t.Errorf("server copy after the edit differs:\n%s", srv)
	}

	// Progress: begin, a report per step with done/total, end "applied".
	kinds := ""
	for _, n := range s.Notes(protocol.MethodProgress) {
		var p struct {
			Value struct {
				Kind, Title, Message string
			}
		}
		json.Unmarshal(n.Params, &p)
		if p.Value.Title == "diffill: Fill holes" || kinds != "" && !strings.HasPrefix(kinds, "load") {
			kinds += p.Value.Kind + ":" + p.Value.Message + " "
		}
	}
	if !strings.HasPrefix(kinds, "begin: report:step 1/") || !strings.HasSuffix(kinds, "end:applied ") {
		t.Errorf("progress: %s", kinds)
	}
	// diffill/step: the partial text of both holes at each step, with
	// the holes' ranges in the version the command ran on.
	steps := s.Notes(MethodStep)
	if len(steps) == 0 {
		t.Fatal("no diffill/step notifications")
	}
	var last stepParams
	json.Unmarshal(steps[len(steps)-1].Params, &last)
	if last.Command != CommandFillHoles || len(last.Spans) != 2 || *last.TextDocument.Version != 1 || last.Done != len(steps) {
		t.Errorf("last step: %+v (of %d)", last, len(steps))
	}
	if r := last.Spans[0].Range; r.Start != (protocol.Position{Line: 3, Character: 8}) || r.End != (protocol.Position{Line: 3, Character: 11}) {
		t.Errorf("first hole's range %+v", r)
	}
}

func TestRewriteSelection(t *testing.T) {
	s := start(t, sessionOptions{})
	uri := protocol.DocumentURI("file:///main.go")
	s.Open(uri, "go", goSource)
	r := protocol.Range{Start: protocol.Position{Line: 6, Character: 1}, End: protocol.Position{Line: 6, Character: 17}}
	var res commandResult
	if err := s.Call(ctxT(t), protocol.MethodWorkspaceExecuteCommand, commandParams(CommandRewriteRange, uri, 1, &r), &res); err != nil {
		t.Fatal(err)
	}
	got := s.Doc(uri).Text()
	if !res.Applied || !strings.HasPrefix(got, "package main\n\nimport \"strings\"\n\n// 😀 中文\nfunc main() {\n\t") || !strings.HasSuffix(got, "\n\t_ = x\n}\n") {
		t.Errorf("after Rewrite selection (%+v):\n%s", res, got)
	}
}

// TestStaleEditRefused: the document changes while the client is being
// sent the edit; the version on the edit makes the client refuse it, so
// it does not land in the wrong place.
func TestStaleEditRefused(t *testing.T) {
	s := start(t, sessionOptions{})
	uri := protocol.DocumentURI("file:///holes.go")
	s.Open(uri, "go", holesSource)
	s.BeforeApplyEdit(func() { s.Type(uri, protocol.Position{}, "// edited meanwhile\n") })
	var res commandResult
	if err := s.Call(ctxT(t), protocol.MethodWorkspaceExecuteCommand, commandParams(CommandFillHoles, uri, 1, nil), &res); err != nil {
		t.Fatal(err)
	}
	if res.Applied || !strings.Contains(res.FailureReason, "version") {
		t.Errorf("stale edit: %+v, want refused for its version", res)
	}
	if got := s.Doc(uri).Text(); got != "// edited meanwhile\n"+holesSource {
		t.Errorf("document changed by a refused edit:\n%s", got)
	}
}

func TestCommandErrors(t *testing.T) {
	s := start(t, sessionOptions{})
	ctx := ctxT(t)
	uri := protocol.DocumentURI("file:///main.go")
	s.Open(uri, "go", goSource)
	r := protocol.Range{Start: protocol.Position{Line: 6, Character: 1}, End: protocol.Position{Line: 6, Character: 5}}
	empty := protocol.Range{Start: r.Start, End: r.Start}
	for _, tt := range []struct {
		name   string
		params any
		code   int
		text   string
	}{
		{"unknown command", map[string]any{"command": "diffill.nope", "arguments": []any{}}, -32602, "unknown command"},
		{"no arguments", map[string]any{"command": CommandInfillRange}, -32602, "takes one argument"},
		{"old version", commandParams(CommandInfillRange, uri, 0, &r), int(codeContentModified), "changed since"},
		{"no range", commandParams(CommandRewriteRange, uri, 1, nil), -32602, "takes one argument"},
		{"empty rewrite", commandParams(CommandRewriteRange, uri, 1, &empty), -32602, "empty"},
		{"no holes", commandParams(CommandFillHoles, uri, 1, nil), int(codeRequestFailed), "no hole marker"},
		{"unknown document", commandParams(CommandFillHoles, "file:///x.go", 1, nil), -32602, "not open"},
	} {
		err := s.Call(ctx, protocol.MethodWorkspaceExecuteCommand, tt.params, nil)
		if int(fake.Code(err)) != tt.code || !strings.Contains(err.Error(), tt.text) {
			t.Errorf("%s: %v, want code %d with %q", tt.name, err, tt.code, tt.text)
		}
	}
}

// TestCommandCancelledByProgress: the cancel button of a command's
// progress (window/workDoneProgress/cancel) stops it.
func TestCommandCancelledByProgress(t *testing.T) {
	o := &observed{onStep: func(ctx context.Context, st infill.Step) {
		if st.Done == 1 {
			<-ctx.Done()
		}
	}}
	s := start(t, sessionOptions{load: observedLoader(o)})
	ctx := ctxT(t)
	uri := protocol.DocumentURI("file:///holes.go")
	s.Open(uri, "go", holesSource)
	params := commandParams(CommandFillHoles, uri, 1, nil)
	params["workDoneToken"] = 42
	p, _ := s.Start(protocol.MethodWorkspaceExecuteCommand, params)
	n, err := s.Await(ctx, protocol.MethodProgress, func(n fake.Note) bool {
		return strings.Contains(string(n.Params), `"begin"`) && strings.Contains(string(n.Params), `"token":42`)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(n.Params), `"cancellable":true`) {
		t.Errorf("begin: %s", n.Params)
	}
	s.Notify(protocol.MethodWorkDoneProgressCancel, map[string]any{"token": 42})
	if err := p.Wait(ctx, nil); fake.Code(err) != codeRequestCancelled {
		t.Errorf("command after progress cancel: %v, want RequestCancelled", err)
	}
	if s.Doc(uri).Text() != holesSource {
		t.Error("cancelled command changed the document")
	}
}

// TestNoApplyEditSupport: a client that cannot apply edits gets the edit
// in the command's result.
func TestNoApplyEditSupport(t *testing.T) {
	s := start(t, sessionOptions{noInit: true})
	ctx := ctxT(t)
	// Capabilities without workspace.applyEdit.
	if err := s.Call(ctx, protocol.MethodInitialize, map[string]any{"capabilities": map[string]any{}}, nil); err != nil {
		t.Fatal(err)
	}
	uri := protocol.DocumentURI("file:///holes.go")
	s.Open(uri, "go", holesSource)
	var res commandResult
	if err := s.Call(ctx, protocol.MethodWorkspaceExecuteCommand, commandParams(CommandFillHoles, uri, 1, nil), &res); err != nil {
		t.Fatal(err)
	}
	if res.Applied || res.Edit == nil || len(res.Edit.Changes[uri]) != 2 {
		t.Errorf("result %+v, want the two hole edits", res)
	}
}
