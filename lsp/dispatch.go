package lsp

import (
	"context"
	"encoding/json"
	"errors"
	"runtime/debug"

	"go.lsp.dev/jsonrpc2"
	"go.lsp.dev/protocol"
	"go.uber.org/zap"

	"github.com/diffill/diffill/lsp/document"
)

// A handler serves one method. Sync handlers run on the connection's read
// loop, in message order: they must be quick and must not call the client
// (its answer could only be read by the loop they block). Async handlers
// run on their own goroutine with the view taken when the request arrived,
// and may be cancelled.
type handler struct {
	async bool
	// supersede: a newer request of this method for the same document
	// cancels this one (completion requests as the user types).
	supersede bool
	// positions: the params carry positions or ranges, checked before they
	// are decoded (see checkPositions); needs lists the top-level fields
	// without which the method cannot be served. Methods without positions
	// (didOpen's whole text) are not walked.
	positions bool
	needs     []string
	// badParams, for a notification, is told of malformed positions in
	// its params (the notification is not served); nil: it is logged.
	badParams func(s *Server, params json.RawMessage, err error)
	serve     func(ctx context.Context, s *Server, v *view, params json.RawMessage) (any, error)
}

// handlers lists every method the server serves; all others are in
// unimplemented.go.
var handlers map[string]handler

func init() {
	handlers = map[string]handler{
		protocol.MethodInitialize:                      {serve: typed((*Server).initialize)},
		protocol.MethodInitialized:                     {serve: typed((*Server).initialized)},
		protocol.MethodSetTrace:                        {serve: typed((*Server).setTrace)},
		protocol.MethodTextDocumentDidOpen:             {serve: typed((*Server).didOpen)},
		protocol.MethodTextDocumentDidChange:           {positions: true, badParams: (*Server).badChange, serve: typed((*Server).didChange)},
		protocol.MethodTextDocumentDidClose:            {serve: typed((*Server).didClose)},
		protocol.MethodTextDocumentDidSave:             {serve: typed((*Server).didSave)},
		protocol.MethodWorkspaceDidChangeConfiguration: {serve: typed((*Server).didChangeConfiguration)},
		protocol.MethodWorkDoneProgressCancel:          {serve: typed((*Server).workDoneProgressCancel)},
		protocol.MethodTextDocumentCodeAction:          {positions: true, needs: []string{"range"}, serve: typed((*Server).codeAction)},
		protocol.MethodTextDocumentCompletion:          {async: true, supersede: true, positions: true, needs: []string{"position"}, serve: typed((*Server).completion)},
		methodInlineCompletion:                         {async: true, supersede: true, positions: true, needs: []string{"position"}, serve: typed((*Server).inlineCompletion)},
		protocol.MethodWorkspaceExecuteCommand:         {async: true, positions: true, serve: typed((*Server).executeCommand)},
		MethodStats:                                    {serve: typed((*Server).stats)},
	}
}

// typed adapts a handler taking decoded params.
func typed[P any, R any](f func(*Server, context.Context, *view, *P) (R, error)) func(context.Context, *Server, *view, json.RawMessage) (any, error) {
	return func(ctx context.Context, s *Server, v *view, raw json.RawMessage) (any, error) {
		p := new(P)
		if len(raw) > 0 && string(raw) != "null" {
			if err := json.Unmarshal(raw, p); err != nil {
				var te *json.UnmarshalTypeError
				if !errors.As(err, &te) {
					return nil, jsonrpc2.Errorf(jsonrpc2.InvalidParams, "invalid params: %v", err)
				}
				// A field of the wrong type: the rest decoded. Fields the
				// server needs are checked by the handler.
				s.log.Debug("params field of unexpected type", zap.Error(err))
			}
		}
		return f(s, ctx, v, p)
	}
}

// handle is the connection's jsonrpc2.Handler. It always returns nil: an
// error would make jsonrpc2 close the connection.
//
// (jsonrpc2 v0.10.0 also panics, in an atomic.Value, when a handler error
// is followed by a read error of another type; so a failed reply is logged
// here, never returned.)
func (s *Server) handle(ctx context.Context, jreply jsonrpc2.Replier, req jsonrpc2.Request) error {
	call, isCall := req.(*jsonrpc2.Call)
	method := req.Method()
	select {
	case s.touched <- struct{}{}:
	default:
	}
	reply := func(ctx context.Context, result any, err error) error {
		if rerr := jreply(ctx, result, err); rerr != nil {
			s.log.Debug("reply not sent", zap.String("method", method), zap.Error(rerr))
		}
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic in handler", zap.String("method", method), zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
			if isCall {
				_ = reply(ctx, nil, jsonrpc2.Errorf(jsonrpc2.InternalError, "internal error in %s: %v", method, r))
			}
		}
	}()

	switch method {
	case protocol.MethodExit:
		s.exit()
		return nil
	case protocol.MethodCancelRequest:
		s.cancelRequest(req.Params())
		return nil
	}

	s.mu.Lock()
	state := s.state
	s.mu.Unlock()
	switch {
	case state == stateNew && method != protocol.MethodInitialize:
		if isCall {
			return reply(ctx, nil, jsonrpc2.Errorf(jsonrpc2.ServerNotInitialized, "%s before initialize", method))
		}
		return nil // notifications before initialize are dropped (spec)
	case state == stateShutdown:
		if isCall {
			return reply(ctx, nil, jsonrpc2.Errorf(jsonrpc2.InvalidRequest, "%s after shutdown: %v", method, errShuttingDown))
		}
		return nil
	}

	if method == protocol.MethodShutdown && isCall {
		s.shutdown(ctx, reply)
		return nil
	}
	h, ok := handlers[method]
	if !ok {
		return s.unimplemented(ctx, reply, req)
	}
	if h.positions {
		if err := checkPositions(req.Params(), h.needs...); err != nil {
			if isCall {
				return reply(ctx, nil, err)
			}
			if h.badParams != nil {
				h.badParams(s, req.Params(), err)
				return nil
			}
			s.log.Warn("notification with malformed positions dropped", zap.String("method", method), zap.Error(err))
			return nil
		}
	}
	v := s.view.Load()
	if !h.async {
		res, err := h.serve(ctx, s, v, req.Params())
		if !isCall {
			if err != nil {
				s.log.Warn("notification failed", zap.String("method", method), zap.Error(err))
			}
			return nil
		}
		return reply(ctx, res, toRPCError(err))
	}

	// Async: cancellable, on its own goroutine.
	if !isCall {
		return nil // every async method is a request
	}
	rctx, cancel := context.WithCancelCause(s.ctx)
	id := call.ID()
	r := &inflightRequest{id: id, method: method, cancel: cancel}
	s.mu.Lock()
	if h.supersede {
		// The request this one replaces stops counting against the limit
		// at once: it is cancelled, and ends within a step. So the newest
		// request of a fast typist always gets in.
		if uri, ok := requestURI(req.Params()); ok {
			key := latestKey{method, uri}
			if prev := s.latest[key]; prev != nil {
				prev.cancel(errSuperseded)
				s.release(prev)
			}
			s.latest[key] = r
		}
	}
	if s.pending >= s.opt.MaxPending {
		s.mu.Unlock()
		cancel(nil)
		return reply(ctx, nil, jsonrpc2.Errorf(codeRequestFailed, "%s: %v: %d requests in progress", method, errBusy, s.opt.MaxPending))
	}
	s.pending++
	s.inflight[id] = r
	s.mu.Unlock()

	s.wg.Add(1)
	s.requests.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.requests.Done()
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("panic in handler", zap.String("method", method), zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
				_ = reply(ctx, nil, jsonrpc2.Errorf(jsonrpc2.InternalError, "internal error in %s: %v", method, r))
			}
		}()
		res, err := h.serve(rctx, s, v, req.Params())
		if err == nil && rctx.Err() != nil {
			// Finished, but cancelled meanwhile: its answer is unwanted.
			err = rctx.Err()
		}
		if err != nil && rctx.Err() != nil {
			err = context.Cause(rctx)
		}
		s.mu.Lock()
		delete(s.inflight, id)
		for k, l := range s.latest {
			if l == r {
				delete(s.latest, k)
			}
		}
		s.release(r)
		s.mu.Unlock()
		cancel(nil)
		if err != nil {
			s.log.Debug("request failed", zap.String("method", method), zap.Error(err))
		}
		_ = reply(ctx, res, toRPCError(err))
	}()
	return nil
}

// release stops counting r against MaxPending; s.mu is held.
func (s *Server) release(r *inflightRequest) {
	if !r.released {
		r.released = true
		s.pending--
	}
}

// requestURI reads params.textDocument.uri.
func requestURI(raw json.RawMessage) (protocol.DocumentURI, bool) {
	var p struct {
		TextDocument struct {
			URI protocol.DocumentURI `json:"uri"`
		} `json:"textDocument"`
	}
	if json.Unmarshal(raw, &p) != nil || p.TextDocument.URI == "" {
		return "", false
	}
	return p.TextDocument.URI, true
}

// cancelRequest handles $/cancelRequest. The id may be a number or a
// string; a request that already finished is ignored, as the spec says.
func (s *Server) cancelRequest(raw json.RawMessage) {
	var p cancelParams
	if err := json.Unmarshal(raw, &p); err != nil {
		s.log.Debug("bad $/cancelRequest", zap.Error(err))
		return
	}
	var id jsonrpc2.ID
	var num int64
	var str string
	switch {
	case json.Unmarshal(p.ID, &num) == nil && num == int64(int32(num)):
		id = jsonrpc2.NewNumberID(int32(num))
	case json.Unmarshal(p.ID, &str) == nil:
		id = jsonrpc2.NewStringID(str)
	default:
		return
	}
	s.mu.Lock()
	r, ok := s.inflight[id]
	s.mu.Unlock()
	if ok {
		r.cancel(errCancelled)
	}
}

// toRPCError gives an error the LSP code that tells the client what to do.
func toRPCError(err error) error {
	if err == nil {
		return nil
	}
	var rpc *jsonrpc2.Error
	switch {
	case errors.As(err, &rpc):
		return rpc
	case errors.Is(err, errCancelled), errors.Is(err, errSuperseded), errors.Is(err, errShuttingDown), errors.Is(err, context.Canceled):
		return jsonrpc2.NewError(codeRequestCancelled, err.Error())
	case errors.Is(err, errModified):
		return jsonrpc2.NewError(codeContentModified, err.Error())
	case errors.Is(err, document.ErrOutOfRange):
		return jsonrpc2.NewError(jsonrpc2.InvalidParams, err.Error())
	}
	return jsonrpc2.NewError(codeRequestFailed, err.Error())
}
