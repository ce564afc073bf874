package lsp

import (
	"context"
	"errors"
	"os/exec"

	"slices"
	"testing"
	"time"

	"go.lsp.dev/jsonrpc2"
	"go.lsp.dev/protocol"

	"github.com/diffill/diffill/infill"
	"github.com/diffill/diffill/lsp/fake"
)

func TestInitializeAdvertises(t *testing.T) {
	s := start(t, sessionOptions{noInit: true})
	res, err := s.Initialize(ctxT(t), fake.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Capabilities
	if got := string(c.TextDocumentSync); got != `{"openClose":true,"change":2}` {
		t.Errorf("textDocumentSync = %s, want open/close and incremental (2)", got)
	}
	if c.CompletionProvider == nil || c.InlineCompletionProvider == nil || c.CodeActionProvider == nil {
		t.Errorf("completion, inline completion and code actions must be advertised: %+v", c)
	}
	want := []string{"diffill.infillRange", "diffill.rewriteRange", "diffill.fillHoles"}
	if !slices.Equal(c.ExecuteCommandProvider.Commands, want) {
		t.Errorf("commands = %v, want %v", c.ExecuteCommandProvider.Commands, want)
	}
	if c.PositionEncoding != "utf-16" {
		t.Errorf("positionEncoding = %q without an offer, want utf-16", c.PositionEncoding)
	}
	if res.ServerInfo.Name != "diffill" {
		t.Errorf("serverInfo.name = %q", res.ServerInfo.Name)
	}
}

func TestPositionEncodingNegotiation(t *testing.T) {
	for _, tt := range []struct {
		offer []string
		want  string
	}{
		{nil, "utf-16"},
		{[]string{"utf-16"}, "utf-16"},
		{[]string{"utf-32", "utf-16"}, "utf-16"},
		{[]string{"utf-16", "utf-8"}, "utf-8"},
	} {
		s := start(t, sessionOptions{noInit: true})
		res, err := s.Initialize(ctxT(t), fake.InitOptions{PositionEncodings: tt.offer})
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Capabilities.PositionEncoding; got != tt.want {
			t.Errorf("offer %v: positionEncoding = %q, want %q", tt.offer, got, tt.want)
		}
	}
}

func TestBeforeInitialize(t *testing.T) {
	s := start(t, sessionOptions{noInit: true})
	ctx := ctxT(t)
	// A notification before initialize is dropped; a request is refused.
	if err := s.Open("file:///a.go", "go", "package a\n"); err != nil {
		t.Fatal(err)
	}
	_, err := s.complete(ctx, "file:///a.go", protocol.Position{})
	if fake.Code(err) != jsonrpc2.ServerNotInitialized {
		t.Fatalf("completion before initialize: %v, want ServerNotInitialized", err)
	}
	if _, err := s.Initialize(ctx, fake.InitOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.srv.view.Load().docs.get("file:///a.go"); ok {
		t.Error("didOpen before initialize was kept")
	}
	err = s.Call(ctx, protocol.MethodInitialize, map[string]any{"capabilities": map[string]any{}}, nil)
	if fake.Code(err) != jsonrpc2.InvalidRequest {
		t.Errorf("second initialize: %v, want InvalidRequest", err)
	}
}

func TestUnimplementedMethods(t *testing.T) {
	s := start(t, sessionOptions{})
	ctx := ctxT(t)
	for _, m := range []string{"textDocument/hover", "textDocument/definition", "completionItem/resolve", "no/such/method", "$/private"} {
		if err := s.Call(ctx, m, map[string]any{}, nil); fake.Code(err) != jsonrpc2.MethodNotFound {
			t.Errorf("%s: %v, want MethodNotFound", m, err)
		}
	}
	// Unknown notifications are ignored, and the server goes on.
	for _, m := range []string{"workspace/didChangeWatchedFiles", "$/unknown", "x/y"} {
		if err := s.Notify(m, map[string]any{}); err != nil {
			t.Fatal(err)
		}
	}
	s.sync(t)
}

func TestShutdownExit(t *testing.T) {
	s := start(t, sessionOptions{})
	ctx := ctxT(t)
	if err := s.Call(ctx, protocol.MethodShutdown, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.complete(ctx, "file:///a.go", protocol.Position{}); fake.Code(err) != jsonrpc2.InvalidRequest {
		t.Errorf("request after shutdown: %v, want InvalidRequest", err)
	}
	if err := s.Notify(protocol.MethodExit, nil); err != nil {
		t.Fatal(err)
	}
	if err := waitServe(t, s); err != nil {
		t.Errorf("Serve after shutdown and exit = %v, want nil (exit code 0)", err)
	}
}

func TestExitWithoutShutdown(t *testing.T) {
	s := start(t, sessionOptions{})
	if err := s.Notify(protocol.MethodExit, nil); err != nil {
		t.Fatal(err)
	}
	if err := waitServe(t, s); !errors.Is(err, ErrExitWithoutShutdown) {
		t.Errorf("Serve after exit alone = %v, want ErrExitWithoutShutdown (exit code 1)", err)
	}
}

func TestConnectionClosed(t *testing.T) {
	s := start(t, sessionOptions{})
	s.Close()
	if err := waitServe(t, s); !errors.Is(err, ErrConnectionClosed) {
		t.Errorf("Serve after the client vanished = %v, want ErrConnectionClosed", err)
	}
}

// TestShutdownAnswersPending: shutdown cancels requests in progress, and
// each of them is answered before shutdown is.
func TestShutdownAnswersPending(t *testing.T) {
	held := make(chan struct{})
	o := &observed{onStep: func(ctx context.Context, _ infill.Step) {
		select {
		case held <- struct{}{}:
		default:
		}
		<-ctx.Done() // hold the first step until cancelled
	}}
	s := start(t, sessionOptions{load: observedLoader(o)})
	ctx := ctxT(t)
	uri := protocol.DocumentURI("file:///a.go")
	s.Open(uri, "go", "package a\n\nfunc f() {\n\t\n}\n")
	p, err := s.Start(protocol.MethodTextDocumentCompletion, completionParams(uri, protocol.Position{Line: 3, Character: 1}))
	if err != nil {
		t.Fatal(err)
	}
	<-held
	sd, _ := s.Start(protocol.MethodShutdown, nil)
	if err := p.Wait(ctx, nil); fake.Code(err) != codeRequestCancelled {
		t.Errorf("pending completion at shutdown: %v, want RequestCancelled", err)
	}
	if err := sd.Wait(ctx, nil); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

func waitServe(t *testing.T, s *session) error {
	t.Helper()
	select {
	case err := <-s.errc:
		s.errc <- err // for the cleanup
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return")
		return nil
	}
}

// TestParentGone: the session ends when the editor process named in
// initialize's processId no longer exists.
func TestParentGone(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skip("cannot start a stand-in parent:", err)
	}
	s := start(t, sessionOptions{noInit: true})
	s.srv.parentPoll = 20 * time.Millisecond
	err := s.Call(ctxT(t), protocol.MethodInitialize, map[string]any{"processId": cmd.Process.Pid, "capabilities": map[string]any{}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if err := waitServe(t, s); !errors.Is(err, ErrConnectionClosed) {
		t.Errorf("Serve after the parent died = %v, want ErrConnectionClosed", err)
	}
}
