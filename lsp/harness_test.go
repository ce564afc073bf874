package lsp

import (
	"context"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

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

// testSettings turn the debounce off, so that tests do not wait on timers.
func testSettings() *settings.Settings {
	s := settings.Default()
	s.Debounce = 0
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
