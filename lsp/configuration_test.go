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
// what to do (window/showMessage, and diffill/status "failed" for a status
// display); completions and inline completions answer empty while it
// cannot load, not an error per keystroke; a command that needs the model
// fails with the reason; a new model setting tries again and reports
// "ready".
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
		list, err := s.complete(ctx, uri, at)
		if err != nil || list == nil || len(list.Items) != 0 {
			t.Fatalf("completion without a model: %+v, %v; want an empty list", list, err)
		}
		inl, err := s.inline(ctx, uri, at, 2) // 2: automatic, as typing triggers it
		if err != nil || inl == nil || len(inl.Items) != 0 {
			t.Fatalf("inline completion without a model: %+v, %v; want no items", inl, err)
		}
	}
	// An explicit command says why it cannot run.
	r := protocol.Range{Start: at, End: at}
	if err := s.Call(ctx, protocol.MethodWorkspaceExecuteCommand, commandParams(CommandInfillRange, uri, 1, &r), nil); fake.Code(err) != codeRequestFailed || !strings.Contains(err.Error(), "/no/such/checkpoint") {
		t.Errorf("infill without a model: %v", err)
	}
	n, err := s.Await(ctx, protocol.MethodWindowShowMessage, nil)
	if err != nil {
		t.Fatal(err)
	}
	var msg protocol.ShowMessageParams
	json.Unmarshal(n.Params, &msg)
	if msg.Type != protocol.MessageTypeError || !strings.Contains(msg.Message, "diffill.model") || !strings.Contains(msg.Message, "config.json") ||
		!strings.Contains(msg.Message, "built-in model") {
		t.Errorf("load failure message: %+v", msg)
	}
	s.sync(t)
	if got := len(s.Notes(protocol.MethodWindowShowMessage)); got != 1 {
		t.Errorf("%d messages for one failure, want 1", got)
	}
	if got := statuses(s); got != "loading failed" {
		t.Errorf("diffill/status states %q, want \"loading failed\"", got)
	}
	var failed StatusParams
	json.Unmarshal(s.Notes(MethodStatus)[1].Params, &failed)
	if failed.Message != msg.Message || failed.Model != "/no/such/checkpoint" {
		t.Errorf("diffill/status failed = %+v, want the message shown (%q)", failed, msg.Message)
	}
	// The status comes first, so that a client showing it knows the showMessage that follows.
	var order []string
	for _, n := range s.Notes("") {
		if n.Method == MethodStatus || n.Method == protocol.MethodWindowShowMessage {
			order = append(order, n.Method)
		}
	}
	if strings.Join(order, " ") != MethodStatus+" "+MethodStatus+" "+protocol.MethodWindowShowMessage {
		t.Errorf("notifications in the order %v, want loading, failed, then showMessage", order)
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
	s.sync(t)
	if got := statuses(s); got != "loading failed loading ready" {
		t.Errorf("diffill/status states %q after the fix", got)
	}
}

// statuses lists the states of the diffill/status notifications received.
func statuses(s *session) string {
	var states []string
	for _, n := range s.Notes(MethodStatus) {
		var p StatusParams
		json.Unmarshal(n.Params, &p)
		states = append(states, p.State)
	}
	return strings.Join(states, " ")
}

func TestLoaderErrorMessage(t *testing.T) {
	for _, tt := range []struct{ model, device, want string }{
		{"", "", "built-in model"},
		{tinyDir, "", `diffill.model names a checkpoint`},
		{tinyDir, "cuda", `diffill.device to "cpu"`},
	} {
		if got := loadFailureMessage(tt.model, tt.device, errors.New("boom")); !strings.Contains(got, tt.want) || !strings.Contains(got, "boom") {
			t.Errorf("loadFailureMessage(%q, %q) = %q", tt.model, tt.device, got)
		}
	}
	// A directory that does not exist: said plainly, with what a model directory holds and how to use the
	// built-in model, and no device hint (no device would help).
	got := loadFailureMessage("/no/such/dir", "auto", errors.New("config.json: open /no/such/dir/config.json: no such file or directory"))
	for _, want := range []string{`"/no/such/dir": there is no such directory`, "config.json, *.safetensors and tokenizer.json", "clear the setting to use the built-in model"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing directory: %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "diffill.device") {
		t.Errorf("missing directory: %q suggests the device", got)
	}

}
