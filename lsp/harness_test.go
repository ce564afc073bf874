package lsp

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.lsp.dev/jsonrpc2"
	"go.lsp.dev/protocol"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/diffill/diffill/infill"
	"github.com/diffill/diffill/lsp/fake"
	"github.com/diffill/diffill/lsp/settings"
	"github.com/diffill/diffill/model"
)

// tinyDir is the tiny real checkpoint the tests run the engine on: its
// weights are random, so its text is noise, but every step of the server
// (tokens, masks, denoising steps, cancellation) is the real thing.
var tinyDir = filepath.Join("..", "model", "testdata", "qwen2-tiny")

var (
	tinyOnce   sync.Once
	tinyEngine *infill.Engine
	tinyErr    error
)

// tinyLoader loads the tiny checkpoint for the model setting "" (standing
// in for the built-in model) and any checkpoint directory otherwise. The
// tiny engine is shared by the tests, as a model is by an editor's
// sessions.
func tinyLoader(ctx context.Context, dir, device string) (Engine, error) {
	if dir != "" {
		m, err := model.Load(dir)
		if err != nil {
			return nil, err
		}
		return infill.NewEngine(m), nil
	}
	tinyOnce.Do(func() {
		m, err := model.Load(tinyDir)
		if err != nil {
			tinyErr = err
			return
		}
		tinyEngine = infill.NewEngine(m)
	})
	return tinyEngine, tinyErr
}

// session is a server and a fake client joined by a pipe.
type session struct {
	*fake.Client
	srv  *Server
	errc chan error // Serve's result
}

type sessionOptions struct {
	load     Loader
	opts     Options
	init     fake.InitOptions
	noInit   bool
	settings *settings.Settings
}

// testSettings turn the debounce off, so that tests do not wait on timers,
// and fit the context to the tiny model's 512 positions.
func testSettings() *settings.Settings {
	s := settings.Default()
	s.Debounce = 0
	s.ContextTokens = 256
	s.GhostThreshold = 0
	return &s
}

func start(t *testing.T, o sessionOptions) *session {
	t.Helper()
	if o.load == nil {
		o.load = tinyLoader
	}
	if o.opts.Defaults == nil {
		o.opts.Defaults = testSettings()
	}
	srv := NewServer(o.load, zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)), o.opts)
	sconn, cconn := net.Pipe()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(context.Background(), sconn) }()
	s := &session{Client: fake.New(cconn), srv: srv, errc: errc}
	t.Cleanup(func() {
		s.Close()
		select {
		case <-errc:
		case <-time.After(10 * time.Second):
			t.Error("server did not stop after the connection closed")
		}
	})
	if !o.noInit {
		if _, err := s.Initialize(ctxT(t), o.init); err != nil {
			t.Fatalf("initialize: %v", err)
		}
	}
	return s
}

// ctxT returns a context that ends with the test (and after a generous
// deadline, so that a hung server fails the test instead of the run).
func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// observed runs the real engine and lets a test act at each denoising
// step, on the engine's goroutine (to hold a step until the test has done
// something, say), and counts runs and steps.
type observed struct {
	Engine
	runs, steps atomic.Int32
	onStep      func(ctx context.Context, st infill.Step)
}

func (o *observed) Run(ctx context.Context, req *infill.Request) (*infill.Result, error) {
	o.runs.Add(1)
	inner := req.OnStep
	r := *req
	r.OnStep = func(st infill.Step) {
		o.steps.Add(1)
		if o.onStep != nil {
			o.onStep(ctx, st)
		}
		if inner != nil {
			inner(st)
		}
	}
	return o.Engine.Run(ctx, &r)
}

// observedLoader loads the tiny engine wrapped in o.
func observedLoader(o *observed) Loader {
	return func(ctx context.Context, dir, device string) (Engine, error) {
		e, err := tinyLoader(ctx, dir, device)
		if err != nil {
			return nil, err
		}
		o.Engine = e
		return o, nil
	}
}

// pos is a position in the client's encoding at the first occurrence of
// marker in the client's copy of uri (just after it with after).
func (s *session) posOf(t *testing.T, uri protocol.DocumentURI, marker string, after bool) protocol.Position {
	t.Helper()
	text := s.Doc(uri).Text()
	i := strings.Index(text, marker)
	if i < 0 {
		t.Fatalf("%q not in %s", marker, uri)
	}
	if after {
		i += len(marker)
	}
	return s.Pos(uri, i)
}

func (s *session) complete(ctx context.Context, uri protocol.DocumentURI, p protocol.Position) (*protocol.CompletionList, error) {
	var list protocol.CompletionList
	err := s.Call(ctx, protocol.MethodTextDocumentCompletion, completionParams(uri, p), &list)
	if err != nil {
		return nil, err
	}
	return &list, nil
}

func completionParams(uri protocol.DocumentURI, p protocol.Position) protocol.CompletionParams {
	return protocol.CompletionParams{TextDocumentPositionParams: protocol.TextDocumentPositionParams{
		TextDocument: protocol.TextDocumentIdentifier{URI: uri}, Position: p,
	}}
}

func (s *session) inline(ctx context.Context, uri protocol.DocumentURI, p protocol.Position, trigger int) (*inlineCompletionList, error) {
	var list inlineCompletionList
	params := map[string]any{"textDocument": map[string]any{"uri": uri}, "position": p, "context": map[string]any{"triggerKind": trigger}}
	if err := s.Call(ctx, methodInlineCompletion, params, &list); err != nil {
		return nil, err
	}
	return &list, nil
}

// serverText is the server's copy of uri.
func (s *session) serverText(t *testing.T, uri protocol.DocumentURI) string {
	t.Helper()
	d, _ := s.srv.view.Load().docs.get(uri)
	if d == nil || d.doc == nil {
		t.Fatalf("server does not hold %s", uri)
	}
	return d.doc.Text()
}

// sync waits until the server has read every message sent so far: a
// request's answer comes after the notifications sent before it.
func (s *session) sync(t *testing.T) {
	t.Helper()
	err := s.Call(ctxT(t), "diffill/sync-probe", nil, nil)
	if fake.Code(err) != jsonrpc2.MethodNotFound {
		t.Fatalf("sync probe: %v", err)
	}
}
