package lsp

import (
	"context"
	"encoding/json"
	"strings"

	"go.lsp.dev/protocol"
	"go.uber.org/zap"

	"github.com/diffill/diffill/lsp/settings"
)

func (s *Server) didChangeConfiguration(ctx context.Context, v *view, p *struct {
	Settings json.RawMessage `json:"settings"`
}) (any, error) {
	// Clients that push settings send them here; clients that support
	// workspace/configuration often send null and expect a pull.
	s.applySettings(p.Settings, "didChangeConfiguration")
	s.mu.Lock()
	pull := s.caps.Workspace.Configuration
	s.mu.Unlock()
	if pull {
		s.goAsync(s.pullConfiguration)
	}
	return nil, nil
}

// pullConfiguration asks the client for the "diffill" section, if it
// supports workspace/configuration.
func (s *Server) pullConfiguration(ctx context.Context) {
	s.mu.Lock()
	supported := s.caps.Workspace.Configuration
	s.mu.Unlock()
	if !supported {
		return
	}
	params := protocol.ConfigurationParams{Items: []protocol.ConfigurationItem{{Section: settings.Section}}}
	var result []json.RawMessage
	if err := s.callClient(ctx, protocol.MethodWorkspaceConfiguration, params, &result); err != nil {
		s.log.Warn("workspace/configuration failed", zap.Error(err))
		return
	}
	if len(result) > 0 {
		s.applySettings(result[0], "workspace/configuration")
	}
}

// applySettings merges raw into the settings of a new view.
func (s *Server) applySettings(raw json.RawMessage, from string) {
	var problems []string
	var changed bool
	s.update(func(v *view) {
		set, p, err := v.settings.Apply(raw, *s.opt.Defaults)
		problems = p
		if err != nil {
			problems = append(problems, err.Error())
			return
		}
		if set != v.settings {
			v.settings = set
			v.gen++
			changed = true
		}
	})
	if len(problems) > 0 {
		s.warnSettings(problems)
	}
	if changed {
		v := s.view.Load()
		s.log.Info("settings changed", zap.String("from", from), zap.Any("settings", v.settings))
	}
}

func (s *Server) warnSettings(problems []string) {
	s.log.Warn("invalid settings ignored", zap.Strings("problems", problems))
	s.showMessage(protocol.MessageTypeWarning, "diffill: ignoring invalid settings: "+strings.Join(problems, "; "))
}

// showMessage sends window/showMessage without waiting.
func (s *Server) showMessage(typ protocol.MessageType, msg string) {
	if s.conn == nil {
		return
	}
	s.goAsync(func(ctx context.Context) {
		if err := s.conn.Notify(ctx, protocol.MethodWindowShowMessage, &protocol.ShowMessageParams{Type: typ, Message: msg}); err != nil {
			s.log.Debug("showMessage not sent", zap.Error(err))
		}
	})
}
