package lsp

import (
	"testing"

	"go.lsp.dev/protocol"
)

func TestCompletionSmoke(t *testing.T) {
	s := start(t, sessionOptions{})
	uri := protocol.DocumentURI("file:///a.go")
	if err := s.Open(uri, "go", "package main\n\nfunc main() {\n\tx := fmt.Spr\n}\n"); err != nil {
		t.Fatal(err)
	}
	var list protocol.CompletionList
	err := s.Call(ctxT(t), protocol.MethodTextDocumentCompletion, protocol.CompletionParams{
		TextDocumentPositionParams: protocol.TextDocumentPositionParams{
			TextDocument: protocol.TextDocumentIdentifier{URI: uri},
			Position:     protocol.Position{Line: 3, Character: 13},
		},
	}, &list)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range list.Items {
		t.Logf("%q %+v", it.Label, it.TextEdit)
	}
}
