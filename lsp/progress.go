package lsp

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"go.lsp.dev/protocol"
	"go.uber.org/zap"
)

// progress reports work-done progress ($/progress) for one piece of work.
// Its zero value reports nothing, for clients that support no progress.
type progress struct {
	s     *Server
	ctx   context.Context
	token json.RawMessage
}

// startProgress begins progress under the client's token (from a request's
// workDoneToken), or under a new one made with window/workDoneProgress/create
// when the client supports that. With cancel set the client is offered a
// cancel button, which window/workDoneProgress/cancel presses. It calls the
// client, so it must not run on the read loop.
func (s *Server) startProgress(ctx context.Context, clientToken json.RawMessage, title string, cancel context.CancelCauseFunc) *progress {
	token := clientToken
	if len(token) == 0 || string(token) == "null" {
		s.mu.Lock()
		supported := s.caps.Window.WorkDoneProgress
		s.mu.Unlock()
		if !supported {
			return &progress{}
		}
		token = json.RawMessage(strconv.Quote(fmt.Sprintf("diffill-%d", s.tokens.Add(1))))
		if err := s.callClient(ctx, protocol.MethodWorkDoneProgressCreate, &workDoneProgressCreateParams{Token: token}, nil); err != nil {
			s.log.Debug("window/workDoneProgress/create refused", zap.Error(err))
			return &progress{}
		}
	}
	if cancel != nil {
		s.mu.Lock()
		s.progress[tokenKey(token)] = cancel
		s.mu.Unlock()
	}
	p := &progress{s: s, ctx: ctx, token: token}
	p.send(&protocol.WorkDoneProgressBegin{Kind: protocol.WorkDoneProgressKindBegin, Title: title, Cancellable: cancel != nil})
	return p
}

// report sends a message and a percentage (0-100).
func (p *progress) report(msg string, pct int) {
	p.send(&protocol.WorkDoneProgressReport{Kind: protocol.WorkDoneProgressKindReport, Message: msg, Percentage: uint32(min(max(pct, 0), 100))})
}

// end closes the progress.
func (p *progress) end(msg string) {
	if p.s == nil {
		return
	}
	p.s.mu.Lock()
	delete(p.s.progress, tokenKey(p.token))
	p.s.mu.Unlock()
	p.send(&protocol.WorkDoneProgressEnd{Kind: protocol.WorkDoneProgressKindEnd, Message: msg})
}

func (p *progress) send(value any) {
	if p.s == nil {
		return
	}
	// The session's context, not the work's: an "end" must go out even
	// when the work was cancelled.
	if err := p.s.conn.Notify(p.s.ctx, protocol.MethodProgress, &progressParams{Token: p.token, Value: value}); err != nil {
		p.s.log.Debug("$/progress not sent", zap.Error(err))
	}
}

// workDoneProgressCancel handles the user pressing cancel on a progress.
func (s *Server) workDoneProgressCancel(ctx context.Context, v *view, p *workDoneProgressCancelParams) (any, error) {
	s.mu.Lock()
	cancel := s.progress[tokenKey(p.Token)]
	s.mu.Unlock()
	if cancel != nil {
		cancel(errCancelled)
	}
	return nil, nil
}

// tokenKey normalises a progress token's JSON, so that the client's
// spelling of it (spaces, 5 vs 5.0) does not matter.
func tokenKey(raw json.RawMessage) string {
	var x any
	if json.Unmarshal(raw, &x) != nil {
		return string(raw)
	}
	b, _ := json.Marshal(x)
	return string(b)
}
