package lsp

import (
	"strings"
	"testing"
	"time"

	"go.lsp.dev/protocol"

	"github.com/diffill/diffill/lsp/fake"
)

// TestApplyEditNeverAnswered: a client that never answers
// workspace/applyEdit does not keep the command, and its slot, for good:
// $/cancelRequest releases it, and the client timeout ends it with an error
// that says the edit may still be applied. With two slots, ten such
// commands in a row leave the server serving completions. (Before, each
// waited for ever, and after MaxPending of them every request was refused
// as busy.)
func TestApplyEditNeverAnswered(t *testing.T) {
	s := start(t, sessionOptions{opts: Options{MaxPending: 2, ClientTimeout: 300 * time.Millisecond}})
	ctx := ctxT(t)
	uri := protocol.DocumentURI("file:///h.go")
	if err := s.Open(uri, "go", "package h\n\nfunc f() int {\n\treturn ???\n}\n"); err != nil {
		t.Fatal(err)
	}
	never := make(chan struct{})
	defer close(never)
	s.BeforeApplyEdit(func() { <-never })

	// Cancelled while waiting for the editor.
	p, err := s.Start(protocol.MethodWorkspaceExecuteCommand, commandParams(CommandFillHoles, uri, 1, nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Await(ctx, protocol.MethodProgress, func(n fake.Note) bool {
		return strings.Contains(string(n.Params), "step")
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the edit is sent by now, or soon after
	if err := p.Cancel(); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(ctx, nil); err == nil {
		t.Fatal("a cancelled command that was waiting for the editor succeeded")
	}

	// Never answered: the timeout ends each one.
	for i := 0; i < 10; i++ {
		err := s.Call(ctx, protocol.MethodWorkspaceExecuteCommand, commandParams(CommandFillHoles, uri, 1, nil), nil)
		if err == nil || !strings.Contains(err.Error(), "did not answer") || !strings.Contains(err.Error(), "may still apply") {
			t.Fatalf("command %d: %v", i, err)
		}
	}
	if _, err := s.complete(ctx, uri, protocol.Position{Line: 3, Character: 8}); err != nil {
		t.Fatalf("completion after ten unanswered edits: %v", err)
	}
}
