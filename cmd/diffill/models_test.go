package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.lsp.dev/protocol"
	"go.uber.org/zap"

	"github.com/diffill/diffill/infill"
	"github.com/diffill/diffill/lsp"
	"github.com/diffill/diffill/lsp/fake"
	"github.com/diffill/diffill/lsp/settings"
	"github.com/diffill/diffill/model"
)

// tinyCopies copies the tiny checkpoint into n directories: n distinct
// models as far as the cache can tell.
func tinyCopies(t *testing.T, n int) []string {
	t.Helper()
	src := filepath.Join("..", "..", "model", "testdata", "qwen2-tiny")
	var dirs []string
	for i := 0; i < n; i++ {
		dst := t.TempDir()
		for _, name := range []string{"config.json", "model.safetensors", "tokenizer.json"} {
			b, err := os.ReadFile(filepath.Join(src, name))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dst, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		dirs = append(dirs, dst)
	}
	return dirs
}

func runOnce(t *testing.T, e lsp.Engine) {
	t.Helper()
	_, err := e.Run(context.Background(), &infill.Request{
		Text: "func main() {\n\tx := \n}\n", Spans: []infill.Span{{Start: 20, End: 20}},
		Mode: infill.ModeComplete, Params: infill.Params{Steps: 2, MaxTokens: 4},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestEngineCacheSwitching: switching among six models and back leaves one
// loaded (the one held), where the cache used to keep every model it ever
// loaded.
func TestEngineCacheSwitching(t *testing.T) {
	dirs := tinyCopies(t, 6)
	c := newEngineCache(nil)
	var held lsp.Engine
	for _, d := range append(dirs, dirs[0]) {
		h, err := c.load(context.Background(), d, "cpu")
		if err != nil {
			t.Fatal(err)
		}
		if held != nil {
			held.(*engineHandle).Close()
		}
		held = h
		runOnce(t, h)
		if got := c.loaded(); !slices.Equal(got, []string{d}) {
			t.Fatalf("after switching to %s, loaded: %v", d, got)
		}
	}
	held.(*engineHandle).Close()
	if got := c.loaded(); len(got) != 0 {
		t.Fatalf("after the last handle closed, loaded: %v", got)
	}
}

// TestEngineCacheBudget: two sessions hold two models; with a budget for
// one, the idle one is unloaded and loads again on its next run.
func TestEngineCacheBudget(t *testing.T) {
	dirs := tinyCopies(t, 2)
	c := newEngineCache(nil)
	c.budget = 1 // bytes: one model at a time
	a, err := c.load(context.Background(), dirs[0], "cpu")
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.load(context.Background(), dirs[1], "cpu")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.loaded(); !slices.Equal(got, []string{dirs[1]}) {
		t.Fatalf("loaded with a one-model budget: %v", got)
	}
	runOnce(t, a)
	if got := c.loaded(); !slices.Equal(got, []string{dirs[0]}) {
		t.Fatalf("after a run on the evicted model: %v", got)
	}
	a.(*engineHandle).Close()
	b.(*engineHandle).Close()
}

// TestEngineCacheWeightsChanged: weights copied over in place (smaller) or
// renamed over a loaded model are picked up by the next run, which gives an
// answer instead of an error or a crash.
func TestEngineCacheWeightsChanged(t *testing.T) {
	dirs := tinyCopies(t, 2)
	c := newEngineCache(nil)
	h, err := c.load(context.Background(), dirs[0], "cpu")
	if err != nil {
		t.Fatal(err)
	}
	defer h.(*engineHandle).Close()
	runOnce(t, h)
	// A different checkpoint copied over the weights in place: truncated,
	// then written (cp's way), with a new modification time.
	src, err := os.ReadFile(filepath.Join(dirs[1], "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dirs[0], "model.safetensors")
	if err := os.Truncate(dst, 8); err != nil {
		t.Fatal(err)
	}
	// Mid-copy: the next run reloads (Changed sees the new size) and
	// reports the half-written file, rather than fault.
	_, err = h.Run(context.Background(), &infill.Request{Text: "x := ", Spans: []infill.Span{{Start: 5, End: 5}}, Mode: infill.ModeComplete})
	if err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("run over a half-copied checkpoint: %v", err)
	}
	if err := os.WriteFile(dst, src, 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(3 * time.Second)
	os.Chtimes(dst, later, later)
	runOnce(t, h)
}

// TestServerUnloadsSwitchedModels: through the language server, a user who
// tries six models and goes back to the first holds one model in memory.
func TestServerUnloadsSwitchedModels(t *testing.T) {
	dirs := tinyCopies(t, 6)
	c := newEngineCache(nil)
	defaults := settings.Default()
	defaults.Device = "cpu"
	srv := lsp.NewServer(c.load, zap.NewNop(), lsp.Options{Defaults: &defaults})
	sconn, cconn := net.Pipe()
	errc := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go func() { errc <- srv.Serve(ctx, sconn) }()
	cl := fake.New(cconn)
	defer cl.Close()
	if _, err := cl.Initialize(ctx, fake.InitOptions{NoConfiguration: true}); err != nil {
		t.Fatal(err)
	}
	uri := protocol.DocumentURI("file:///tmp/a.go")
	text := "package a\n\nfunc f() {\n\tx := \n}\n"
	if err := cl.Open(uri, "go", text); err != nil {
		t.Fatal(err)
	}
	for _, d := range append(dirs, dirs[0]) {
		cfg, _ := json.Marshal(map[string]any{"settings": map[string]any{"diffill": map[string]any{"model": d, "steps": 2, "maxTokens": 4}}})
		if err := cl.Notify(protocol.MethodWorkspaceDidChangeConfiguration, json.RawMessage(cfg)); err != nil {
			t.Fatal(err)
		}
		var list protocol.CompletionList
		err := cl.Call(ctx, protocol.MethodTextDocumentCompletion, map[string]any{
			"textDocument": map[string]any{"uri": uri},
			"position":     cl.Pos(uri, len("package a\n\nfunc f() {\n\tx := ")),
		}, &list)
		if err != nil {
			t.Fatal(err)
		}
	}
	// The switch closes the old handle asynchronously, once its load is done.
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := c.loaded()
		if slices.Equal(got, []string{dirs[0]}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after switching back to the first model, loaded: %v", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cl.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
		t.Log("serve:", err)
	}
	if got := c.loaded(); len(got) != 0 {
		t.Fatalf("after the session ended, loaded: %v", got)
	}
}

var _ = model.ErrWeightsChanged

// TestLongRunGivesWay: a long command (a fill that takes many slow steps)
// does not hold up a completion: the completion runs on the model's other
// engine while the command waits between its steps. With one engine per
// model the completion waited for the whole command.
func TestLongRunGivesWay(t *testing.T) {
	dirs := tinyCopies(t, 1)
	c := newEngineCache(nil)
	h, err := c.load(context.Background(), dirs[0], "cpu")
	if err != nil {
		t.Fatal(err)
	}
	defer h.(*engineHandle).Close()
	long := &infill.Request{
		Text: "func main() {\n\t???\n}\n", Mode: infill.ModeFillHoles,
		Params: infill.Params{Steps: 64, MaxTokens: 64, Length: "fixed", Schedule: "fixed"},
	}
	started := make(chan struct{})
	steps := 0
	long.OnStep = func(infill.Step) {
		steps++
		if steps == 1 {
			close(started)
		}
		time.Sleep(20 * time.Millisecond) // a slow step: 64 of them take over a second
	}
	longDone := make(chan time.Time, 1)
	go func() {
		if _, err := h.(*engineHandle).Background().Run(context.Background(), long); err != nil {
			t.Error(err)
		}
		longDone <- time.Now()
	}()
	<-started
	runOnce(t, h)
	shortDone := time.Now()
	select {
	case end := <-longDone:
		if !end.After(shortDone) {
			t.Fatalf("the completion finished after the long command (%d steps)", steps)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the long command did not finish")
	}
	if steps < 32 {
		t.Fatalf("the long run took %d steps: not long enough to tell", steps)
	}
}
