package lsp

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"go.lsp.dev/protocol"

	"github.com/diffill/diffill/lsp/fake"
	"github.com/diffill/diffill/lsp/settings"
)

func (s *session) settingsNow() settings.Settings { return s.srv.view.Load().settings }

func TestSettingsSources(t *testing.T) {
	s := start(t, sessionOptions{init: fake.InitOptions{
		NoConfiguration:       true,
		InitializationOptions: map[string]any{"diffill": map[string]any{"steps": 12, "holeMarker": "TODO"}},
	}})
	s.sync(t)
	if got := s.settingsNow(); got.Steps != 12 || got.HoleMarker != "TODO" {
		t.Errorf("from initializationOptions: %+v", got)
	}
	// Pushed settings: a flat object, and null keys restoring defaults.
	s.Notify(protocol.MethodWorkspaceDidChangeConfiguration, map[string]any{"settings": map[string]any{"diffill": map[string]any{"sampler": "margin", "steps": nil}}})
	s.sync(t)
	if got := s.settingsNow(); got.Sampler != "margin" || got.Steps != 0 || got.HoleMarker != "TODO" {
		t.Errorf("after didChangeConfiguration: %+v", got)
	}
	// The hole marker setting drives "Fill holes".
	uri := protocol.DocumentURI("file:///t.go")
	s.Open(uri, "go", "package t\n\nvar x = TODO\n")
	if got := titles(s.codeActions(t, uri, protocol.Range{})); got != "Fill holes (diffill.fillHoles)" {
		t.Errorf("actions with holeMarker TODO: %s", got)
	}
	// Bad values are reported to the user and leave the rest alone.
	s.Notify(protocol.MethodWorkspaceDidChangeConfiguration, map[string]any{"settings": map[string]any{"temperature": -3, "maxTokens": 16}})
	if _, err := s.Await(ctxT(t), protocol.MethodWindowShowMessage, func(n fake.Note) bool {
		return strings.Contains(string(n.Params), "temperature")
	}); err != nil {
		t.Fatal(err)
	}
	if got := s.settingsNow(); got.MaxTokens != 16 || got.Temperature != 0 {
		t.Errorf("after a bad value: %+v", got)
	}
}

func TestSettingsPulled(t *testing.T) {
	s := start(t, sessionOptions{noInit: true})
	s.SetSettings(json.RawMessage(`{"contextTokens": 300, "debounce": 10}`))
	if _, err := s.Initialize(ctxT(t), fake.InitOptions{}); err != nil {
		t.Fatal(err)
	}
	// initialized pulls workspace/configuration.
	waitFor(t, func() bool { return s.settingsNow().ContextTokens == 300 })
	// A change notification with null settings (the pull model) pulls again.
	s.SetSettings(json.RawMessage(`{"contextTokens": 128}`))
	s.Notify(protocol.MethodWorkspaceDidChangeConfiguration, map[string]any{"settings": nil})
	waitFor(t, func() bool { return s.settingsNow().ContextTokens == 128 })
	if got := s.settingsNow().Debounce; got != 10 {
		t.Errorf("debounce = %d: a pulled key that is absent must keep its value", got)
	}
}

// TestModelLoadFailure: a model that cannot load is reported once, with
// what to do, and each request that needs it fails with the reason; a
// new model setting tries again.
func TestModelLoadFailure(t *testing.T) {
	s := start(t, sessionOptions{opts: Options{Defaults: func() *settings.Settings {
		d := testSettings()
		d.Model = "/no/such/checkpoint"
		return d
	}()}})
	ctx := ctxT(t)
	uri := protocol.DocumentURI("file:///main.go")
	s.Open(uri, "go", goSource)
	at := s.posOf(t, uri, "strings.Rep", true)
	for i := 0; i < 3; i++ {
		if _, err := s.complete(ctx, uri, at); fake.Code(err) != codeRequestFailed || !strings.Contains(err.Error(), "/no/such/checkpoint") {
			t.Fatalf("completion without a model: %v", err)
		}
	}
	n, err := s.Await(ctx, protocol.MethodWindowShowMessage, nil)
	if err != nil {
		t.Fatal(err)
	}
	var msg protocol.ShowMessageParams
	json.Unmarshal(n.Params, &msg)
	if msg.Type != protocol.MessageTypeError || !strings.Contains(msg.Message, "diffill.model") {
		t.Errorf("load failure message: %+v", msg)
	}
	s.sync(t)
	if got := len(s.Notes(protocol.MethodWindowShowMessage)); got != 1 {
		t.Errorf("%d messages for one failure, want 1", got)
	}
	// Loading showed progress.
	if got := len(s.Notes(protocol.MethodProgress)); got < 2 {
		t.Errorf("%d progress notifications for the load, want begin and end", got)
	}
	// The user fixes the setting: the next request loads the model.
	s.Notify(protocol.MethodWorkspaceDidChangeConfiguration, map[string]any{"settings": map[string]any{"model": tinyDir}})
	if _, err := s.complete(ctx, uri, at); err != nil {
		t.Errorf("after fixing the model setting: %v", err)
	}
}

func TestLoaderErrorMessage(t *testing.T) {
	for _, tt := range []struct{ model, device, want string }{
		{"", "", "built-in model"},
		{"/m", "", `diffill.model names a checkpoint`},
		{"/m", "cuda", `diffill.device to "cpu"`},
	} {
		if got := loadFailureMessage(tt.model, tt.device, errors.New("boom")); !strings.Contains(got, tt.want) || !strings.Contains(got, "boom") {
			t.Errorf("loadFailureMessage(%q, %q) = %q", tt.model, tt.device, got)
		}
	}

}
