package lsp

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrUnauthorized ends a session whose initialize did not carry the token
// the server requires (Options.Token).
var ErrUnauthorized = errors.New("initialize without the server's token")

// ErrIdle ends a session that sent nothing for Options.IdleTimeout, or no
// initialize within Options.InitializeTimeout.
var ErrIdle = errors.New("session idle")

// takeToken removes the token from initializationOptions ("token" at the
// top or under "diffill"), so that it is neither a setting nor logged, and
// returns it.
func takeToken(raw json.RawMessage) (json.RawMessage, string) {
	var obj map[string]json.RawMessage
	if len(raw) == 0 || json.Unmarshal(raw, &obj) != nil {
		return raw, ""
	}
	token := ""
	take := func(m map[string]json.RawMessage) bool {
		v, ok := m["token"]
		if !ok {
			return false
		}
		delete(m, "token")
		var s string
		if json.Unmarshal(v, &s) == nil && token == "" {
			token = s
		}
		return true
	}
	changed := take(obj)
	if inner, ok := obj["diffill"]; ok {
		var m map[string]json.RawMessage
		if json.Unmarshal(inner, &m) == nil && take(m) {
			b, _ := json.Marshal(m)
			obj["diffill"] = b
			changed = true
		}
	}
	if !changed {
		return raw, ""
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return raw, token
	}
	return b, token
}

// checkToken compares in constant time, so that the answer's timing does
// not tell a guesser how much of the token it has right.
func (s *Server) checkToken(got string) error {
	if s.opt.Token == "" {
		return nil
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(s.opt.Token)) == 1 {
		return nil
	}
	return fmt.Errorf("%w: this server requires a token; send it as initializationOptions.token (the server printed the file that holds it at start)", ErrUnauthorized)
}

// watchIdle ends the session when no initialize arrives within the
// initialize timeout, or, after it, no message for the idle timeout (0:
// none). touched is signalled by every message.
func (s *Server) watchIdle(touched <-chan struct{}) {
	limit := func() time.Duration {
		s.mu.Lock()
		initialized := s.state != stateNew
		s.mu.Unlock()
		if initialized {
			return s.opt.IdleTimeout
		}
		return s.opt.InitializeTimeout
	}
	d := limit()
	if d == 0 && s.opt.IdleTimeout == 0 {
		return
	}
	t := time.NewTimer(time.Hour)
	t.Stop()
	if d > 0 {
		t.Reset(d)
	}
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-touched:
			if d = limit(); d > 0 {
				t.Reset(d)
			} else {
				t.Stop()
			}
		case <-t.C:
			what := fmt.Sprintf("no message for %v", d)
			s.mu.Lock()
			if s.state == stateNew {
				what = fmt.Sprintf("no initialize within %v", d)
			}
			s.mu.Unlock()
			s.log.Info("closing the session: " + what)
			s.end(fmt.Errorf("%w: %s", ErrIdle, what))
			return
		}
	}
}

// end stops the session with err as Serve's result.
func (s *Server) end(err error) {
	select {
	case s.exitErr <- err:
	default:
	}
}
