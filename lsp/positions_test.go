package lsp

import (
	"encoding/json"
	"strings"
	"testing"

	"go.lsp.dev/protocol"

	"github.com/diffill/diffill/lsp/fake"
)

// TestMalformedPositions: positions and ranges that are not two integers in
// [0, 2^31-1] get InvalidParams naming the field, instead of being read as
// 0:0 and answered there; a didChange with such a range marks the document
// out of sync instead of editing it at 0:0.
func TestMalformedPositions(t *testing.T) {
	s := start(t, sessionOptions{})
	ctx := ctxT(t)
	uri := protocol.DocumentURI("file:///p.go")
	text := "package p\n\nfunc f() {\n\tx := \n}\n"
	if err := s.Open(uri, "go", text); err != nil {
		t.Fatal(err)
	}
	doc := `"textDocument":{"uri":"file:///p.go"}`
	for _, tc := range []struct{ method, params, want string }{
		{"textDocument/completion", `{` + doc + `,"position":{"line":9007199254740992,"character":0}}`, "position.line"},
		{"textDocument/completion", `{` + doc + `,"position":{"line":-1,"character":0}}`, "position.line"},
		{"textDocument/completion", `{` + doc + `,"position":{"line":"3","character":0}}`, "string"},
		{"textDocument/completion", `{` + doc + `,"position":{"line":3,"character":null}}`, "position.character"},
		{"textDocument/completion", `{` + doc + `,"position":{"line":3}}`, "missing"},
		{"textDocument/completion", `{` + doc + `,"position":null}`, "null"},
		{"textDocument/completion", `{` + doc + `}`, "position"},
		{"textDocument/completion", `{` + doc + `,"position":{"line":1.5,"character":0}}`, "1.5"},
		{"textDocument/inlineCompletion", `{` + doc + `,"position":{"line":3,"character":-7},"context":{"triggerKind":1}}`, "position.character"},
		{"textDocument/codeAction", `{` + doc + `,"range":{"start":{"line":0,"character":0},"end":{"line":"x","character":0}},"context":{"diagnostics":[]}}`, "range.end.line"},
		{"textDocument/codeAction", `{` + doc + `,"context":{"diagnostics":[]}}`, "range"},
		{"workspace/executeCommand", `{"command":"diffill.rewriteRange","arguments":[{` + doc + `,"range":{"start":{"line":3,"character":0},"end":{"line":4294967296,"character":0}}}]}`, "range.end.line"},
	} {
		err := s.Call(ctx, tc.method, json.RawMessage(tc.params), nil)
		if fake.Code(err) != -32602 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %s: got %v, want InvalidParams mentioning %q", tc.method, tc.params, err, tc.want)
		}
	}
	// A good request still works.
	if _, err := s.complete(ctx, uri, protocol.Position{Line: 3, Character: 6}); err != nil {
		t.Fatalf("completion after the bad ones: %v", err)
	}

	// didChange with a malformed range: not applied at 0:0; the document is
	// out of sync, said once, and completions there say so.
	raw := `{"jsonrpc":"2.0","method":"textDocument/didChange","params":{"textDocument":{"uri":"file:///p.go","version":9},"contentChanges":[{"range":{"start":{"line":-1,"character":0},"end":{"line":0,"character":0}},"text":"BROKEN"}]}}`
	if err := s.WriteRaw([]byte(frameOf(raw))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Await(ctx, protocol.MethodWindowShowMessage, func(n fake.Note) bool {
		return strings.Contains(string(n.Params), "malformed range")
	}); err != nil {
		t.Fatal(err)
	}
	_, err := s.complete(ctx, uri, protocol.Position{Line: 3, Character: 6})
	if err == nil || !strings.Contains(err.Error(), "reopen") {
		t.Fatalf("completion in the out-of-sync document: %v", err)
	}
}
