package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.lsp.dev/protocol"
	"go.uber.org/zap"

	"github.com/diffill/diffill/infill"
	"github.com/diffill/diffill/lsp"
	"github.com/diffill/diffill/lsp/fake"
	"github.com/diffill/diffill/lsp/settings"
)

// TestRemoteEngine: requests sent through the remote engine to a real
// `serve --http` come back as the engine there writes them, in every mode.
func TestRemoteEngine(t *testing.T) {
	s, ts := newTestHTTP(t, httpOptions{})
	remote, err := newRemoteEngine(context.Background(), ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	local, err := s.engine(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	text := "func add(a, b int) int {\n\treturn a + b\n}\n\nfunc sub(a, b int) int {\n\treturn ???\n}\n"
	at := strings.Index(text, "a + b")
	for _, req := range []*infill.Request{
		{Text: text, Spans: []infill.Span{{Start: at, End: at}}, Mode: infill.ModeComplete, Prelude: "// util.go\npackage main\n"},
		{Text: text, Spans: []infill.Span{{Start: at, End: at + 5}, {Start: at + 6, End: at + 7}}, Mode: infill.ModeInfill, Params: infill.Params{MaxTokens: 6}},
		{Text: text, Spans: []infill.Span{{Start: at - 8, End: at + 5}}, Mode: infill.ModeRewrite, Params: infill.Params{Strength: 0.5, Seed: 3}},
		{Text: text, Mode: infill.ModeFillHoles},
	} {
		want, err := local.Run(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		got, err := remote.Run(context.Background(), req)
		if err != nil {
			t.Fatalf("%v: %v", req.Mode, err)
		}
		if !reflect.DeepEqual(got.Candidates[0].Edits, want.Candidates[0].Edits) {
			t.Errorf("%v: remote edits %+v, the server's engine writes %+v", req.Mode, got.Candidates[0].Edits, want.Candidates[0].Edits)
		}
	}
	// A bad request says why, from the server.
	_, err = remote.Run(context.Background(), &infill.Request{Text: "abc", Mode: infill.ModeFillHoles})
	if err == nil || !strings.Contains(err.Error(), "no hole") {
		t.Errorf("bad request: %v, want the server's reason", err)
	}
}

func TestRemoteEngineProbe(t *testing.T) {
	// Not a diffill server.
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"default_generation_settings": {}}`))
	}))
	defer other.Close()
	if _, err := newRemoteEngine(context.Background(), other.URL); err == nil || !strings.Contains(err.Error(), "not a diffill server") {
		t.Errorf("llama.cpp-like server: %v", err)
	}
	// Nobody there.
	other.Close()
	if _, err := newRemoteEngine(context.Background(), other.URL); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("closed server: %v", err)
	}
	// The token comes from the environment.
	_, ts := newTestHTTP(t, httpOptions{Token: "0123456789abcdef0123"})
	t.Setenv(envEngineToken, "")
	if _, err := newRemoteEngine(context.Background(), ts.URL); err == nil || !strings.Contains(err.Error(), envEngineToken) {
		t.Errorf("no token: %v, want a hint at $%s", err, envEngineToken)
	}
	t.Setenv(envEngineToken, "0123456789abcdef0123")
	if _, err := newRemoteEngine(context.Background(), ts.URL); err != nil {
		t.Errorf("with token: %v", err)
	}
}

// TestLanguageServerOnRemote: the language server, its model setting a
// URL, answers completions from another diffill's serve --http over
// loopback, and loads no model itself.
func TestLanguageServerOnRemote(t *testing.T) {
	s, ts := newTestHTTP(t, httpOptions{})
	local := newEngineCache(nil)
	defaults := settings.Default()
	defaults.Device = "cpu"
	srv := lsp.NewServer(withRemote(local.load), zap.NewNop(), lsp.Options{Defaults: &defaults})
	sconn, cconn := net.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx, sconn) }()
	cl := fake.New(cconn)
	defer cl.Close()
	if _, err := cl.Initialize(ctx, fake.InitOptions{NoConfiguration: true}); err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(map[string]any{"settings": map[string]any{"diffill": map[string]any{"model": ts.URL, "steps": 2, "maxTokens": 4}}})
	if err := cl.Notify(protocol.MethodWorkspaceDidChangeConfiguration, json.RawMessage(cfg)); err != nil {
		t.Fatal(err)
	}
	uri := protocol.DocumentURI("file:///tmp/a.go")
	prefix := "package a\n\nfunc f() {\n\tx := "
	if err := cl.Open(uri, "go", prefix+"\n}\n"); err != nil {
		t.Fatal(err)
	}
	var list protocol.CompletionList
	if err := cl.Call(ctx, protocol.MethodTextDocumentCompletion, map[string]any{
		"textDocument": map[string]any{"uri": uri}, "position": cl.Pos(uri, len(prefix)),
	}, &list); err != nil {
		t.Fatal(err)
	}
	s.metrics.mu.Lock()
	served := s.metrics.requests["/diffill/infill\x00200"]
	s.metrics.mu.Unlock()
	if served == 0 {
		t.Errorf("the remote served no /diffill/infill request (completion items: %d)", len(list.Items))
	}
	if got := local.loaded(); len(got) != 0 {
		t.Errorf("the language server loaded a local model: %v", got)
	}
	if err := cl.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	<-errc
}

// TestRemoteEngineServerRestart: the remote server restarts between two
// requests on the same address; the next request is answered by the new one.
func TestRemoteEngineServerRestart(t *testing.T) {
	dir := tinyCopies(t, 1)[0]
	start := func(addr string) (string, func()) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		s := newHTTPServer(newEngineCache(nil), zap.NewNop(), httpOptions{Model: dir})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { serveHTTP(ctx, ln, s); close(done) }()
		return ln.Addr().String(), func() { cancel(); <-done }
	}
	addr, stop := start("127.0.0.1:0")
	remote, err := newRemoteEngine(context.Background(), "http://"+addr)
	if err != nil {
		t.Fatal(err)
	}
	req := &infill.Request{Text: "x := ???\n", Mode: infill.ModeFillHoles}
	if _, err := remote.Run(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	stop()
	if _, err := remote.Run(context.Background(), req); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("server down: %v, want unreachable", err)
	}
	_, stop = start(addr)
	defer stop()
	if _, err := remote.Run(context.Background(), req); err != nil {
		t.Errorf("after the restart: %v", err)
	}
}
