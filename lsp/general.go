package lsp

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.lsp.dev/jsonrpc2"
	"go.lsp.dev/protocol"
	"go.uber.org/zap"

	"github.com/diffill/diffill/lsp/document"
)

// The commands the server runs on workspace/executeCommand; code actions
// carry them, and editors may bind keys to them directly. Each takes one
// argument, a commandArgs object.
const (
	CommandInfillRange  = "diffill.infillRange"
	CommandRewriteRange = "diffill.rewriteRange"
	CommandFillHoles    = "diffill.fillHoles"
)

// Commands lists the commands, as advertised in executeCommandProvider.
var Commands = []string{CommandInfillRange, CommandRewriteRange, CommandFillHoles}

// Code action kinds: under refactor.rewrite, so that they show in the
// editor's refactor menu and light bulb.
const (
	KindInfill    protocol.CodeActionKind = "refactor.rewrite.diffill.infill"
	KindRewrite   protocol.CodeActionKind = "refactor.rewrite.diffill.rewrite"
	KindFillHoles protocol.CodeActionKind = "refactor.rewrite.diffill.fillHoles"
)

func (s *Server) initialize(ctx context.Context, v *view, p *initializeParams) (*initializeResult, error) {
	s.mu.Lock()
	if s.state != stateNew {
		s.mu.Unlock()
		return nil, jsonrpc2.Errorf(jsonrpc2.InvalidRequest, "initialize sent twice")
	}
	opts, token := takeToken(p.InitializationOptions)
	if err := s.checkToken(token); err != nil {
		s.mu.Unlock()
		s.log.Warn("refused a session", zap.Error(err))
		// Answer, then end the session: nothing else is served to it.
		time.AfterFunc(100*time.Millisecond, func() { s.end(err) })
		return nil, jsonrpc2.Errorf(jsonrpc2.InvalidRequest, "%v", err)
	}
	p.InitializationOptions = opts
	s.state = stateRunning
	s.caps = p.Capabilities
	s.mu.Unlock()

	// UTF-8 when the client offers it (no conversion on either side), else
	// UTF-16, which every client must support.
	enc, encName := document.UTF16, encodingUTF16
	if slices.Contains(p.Capabilities.General.PositionEncodings, encodingUTF8) {
		enc, encName = document.UTF8, encodingUTF8
	}

	set, problems, err := v.settings.Apply(p.InitializationOptions, *s.opt.Defaults)
	if err != nil {
		problems = append(problems, "initializationOptions: "+err.Error())
	}
	s.update(func(v *view) {
		v.enc = enc
		v.settings = set
		v.gen++
	})
	if len(problems) > 0 {
		s.warnSettings(problems)
	}
	if p.ProcessID != nil {
		s.watchParent(*p.ProcessID)
	}
	client := "unknown client"
	if p.ClientInfo != nil {
		client = p.ClientInfo.Name + " " + p.ClientInfo.Version
	}
	s.log.Info("initialize", zap.String("client", client), zap.String("positionEncoding", encName),
		zap.String("model", modelName(set.Model)))

	return &initializeResult{
		Capabilities: serverCapabilities{
			ServerCapabilities: protocol.ServerCapabilities{
				TextDocumentSync: protocol.TextDocumentSyncOptions{
					OpenClose: true,
					Change:    protocol.TextDocumentSyncKindIncremental,
				},
				CompletionProvider: &protocol.CompletionOptions{},
				CodeActionProvider: protocol.CodeActionOptions{
					CodeActionKinds: []protocol.CodeActionKind{KindInfill, KindRewrite, KindFillHoles},
				},
				ExecuteCommandProvider: &protocol.ExecuteCommandOptions{Commands: Commands},
			},
			PositionEncoding:         encName,
			InlineCompletionProvider: &inlineCompletionOptions{},
		},
		ServerInfo: &protocol.ServerInfo{Name: "diffill", Version: s.opt.Version},
	}, nil
}

func (s *Server) initialized(ctx context.Context, v *view, _ *struct{}) (any, error) {
	s.mu.Lock()
	caps := s.caps
	s.mu.Unlock()
	// Ask for configuration changes, and pull the current settings; both
	// are calls to the client, so not on the read loop.
	s.goAsync(func(ctx context.Context) {
		if caps.Workspace.DidChangeConfiguration.DynamicRegistration {
			params := protocol.RegistrationParams{Registrations: []protocol.Registration{{
				ID:              "diffill-configuration",
				Method:          protocol.MethodWorkspaceDidChangeConfiguration,
				RegisterOptions: map[string]string{"section": "diffill"},
			}}}
			if err := s.callClient(ctx, protocol.MethodClientRegisterCapability, params, nil); err != nil {
				s.log.Debug("registering for configuration changes", zap.Error(err))
			}
		}
		s.pullConfiguration(ctx)
	})
	return nil, nil
}

// shutdown cancels the requests in progress and answers once they have
// answered (or after a grace period: a request may be waiting on the
// client), so that the client hears back about every request it sent.
func (s *Server) shutdown(ctx context.Context, reply jsonrpc2.Replier) {
	s.mu.Lock()
	s.state = stateShutdown
	var running []string
	for id, r := range s.inflight {
		r.cancel(errShuttingDown)
		running = append(running, fmt.Sprintf("%s (id %v)", r.method, id))
	}
	s.mu.Unlock()
	s.log.Info("shutdown", zap.Strings("cancelling", running))
	s.goAsync(func(context.Context) {
		done := make(chan struct{})
		go func() {
			s.requests.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(shutdownGrace):
			s.mu.Lock()
			var running []string
			for id, r := range s.inflight {
				running = append(running, fmt.Sprintf("%s (id %v)", r.method, id))
			}
			s.mu.Unlock()
			s.log.Warn("shutdown: requests still running after the grace period", zap.Strings("requests", running))
		}
		_ = reply(ctx, nil, nil)
	})
}

const shutdownGrace = 5 * time.Second

// exit ends Serve: cleanly after shutdown, with ErrExitWithoutShutdown
// otherwise (the spec's exit code 1).
func (s *Server) exit() {
	s.mu.Lock()
	var err error
	if s.state != stateShutdown {
		err = ErrExitWithoutShutdown
	}
	s.mu.Unlock()
	select {
	case s.exitErr <- err:
	default:
	}
}

func (s *Server) setTrace(ctx context.Context, v *view, p *struct {
	Value string `json:"value"`
}) (any, error) {
	s.log.Debug("setTrace", zap.String("value", p.Value))
	return nil, nil
}

// goAsync runs f on a goroutine that Serve waits for.
func (s *Server) goAsync(f func(ctx context.Context)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f(s.ctx)
	}()
}

func modelName(dir string) string {
	if dir == "" {
		return "built-in model"
	}
	return dir
}
