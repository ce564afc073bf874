package lsp

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.lsp.dev/protocol"

	"github.com/diffill/diffill/infill"
	"github.com/diffill/diffill/lsp/fake"
)

const goSource = "package main\n\nimport \"strings\"\n\n// 😀 中文\nfunc main() {\n\tx := strings.Rep\n\t_ = x\n}\n"

func TestCompletionItems(t *testing.T) {
	for _, enc := range []string{"utf-16", "utf-8"} {
		t.Run(enc, func(t *testing.T) {
			s := start(t, sessionOptions{init: fake.InitOptions{PositionEncodings: []string{enc}}})
			uri := protocol.DocumentURI("file:///main.go")
			s.Open(uri, "go", "// 😀 ok\n"+goSource)
			at := s.posOf(t, uri, "strings.Rep", true)
			list, err := s.complete(ctxT(t), uri, at)
			if err != nil {
				t.Fatal(err)
			}
			if !list.IsIncomplete {
				t.Error("isIncomplete = false; the client must ask again as the user types")
			}
			if len(list.Items) == 0 {
				t.Fatal("no items")
			}
			word := s.posOf(t, uri, "Rep", false)
			seen := map[string]bool{}
			for i, it := range list.Items {
				e := it.TextEdit
				// The edit replaces the word before the cursor, which
				// its text begins with, so clients filtering by that word
				// keep it; it ends at the cursor.
				if e == nil || e.Range.Start != word || e.Range.End != at {
					t.Errorf("item %d: edit %+v, want range %v-%v", i, e, word, at)
					continue
				}
				if !strings.HasPrefix(e.NewText, "Rep") || len(e.NewText) == len("Rep") || it.FilterText != e.NewText {
					t.Errorf("item %d: newText %q filterText %q", i, e.NewText, it.FilterText)
				}
				if seen[e.NewText] {
					t.Errorf("item %d repeats %q", i, e.NewText)
				}
				seen[e.NewText] = true
				if (i == 0) != it.Preselect || it.InsertTextFormat != protocol.InsertTextFormatPlainText {
					t.Errorf("item %d: preselect %v, format %v", i, it.Preselect, it.InsertTextFormat)
				}
			}
			// Inline completion at the same point: the same best answer,
			// as ghost text inserted exactly at the cursor.
			inl, err := s.inline(ctxT(t), uri, at, inlineTriggerInvoked)
			if err != nil {
				t.Fatal(err)
			}
			if len(inl.Items) == 0 || inl.Items[0].Range == nil {
				t.Fatalf("inline items = %+v", inl.Items)
			}
			if r := *inl.Items[0].Range; r.Start != at || r.End != at {
				t.Errorf("inline range = %+v, want empty at %v", r, at)
			}
			if got, want := "Rep"+inl.Items[0].InsertText, list.Items[0].TextEdit.NewText; got != want {
				t.Errorf("inline text %q, completion %q", got, want)
			}
		})
	}
}

// TestCacheWhileTyping: after a completion is shown, typing its first
// characters is answered from the cache, without running the model.
func TestCacheWhileTyping(t *testing.T) {
	o := &observed{}
	s := start(t, sessionOptions{load: observedLoader(o)})
	ctx := ctxT(t)
	uri := protocol.DocumentURI("file:///main.go")
	s.Open(uri, "go", goSource)
	at := s.posOf(t, uri, "strings.Rep", true)
	inl, err := s.inline(ctx, uri, at, 2)
	if err != nil || len(inl.Items) == 0 {
		t.Fatalf("inline: %v %+v", err, inl)
	}
	shown := inl.Items[0].InsertText
	runs := o.runs.Load()
	// Type what was shown, one character at a time (the tiny model's
	// text has U+FFFD where it ended inside a multi-byte character: the
	// server must see the same text the client does).
	typed := ""
	for _, r := range shown {
		c := string(r)
		if err := s.Type(uri, at, c); err != nil {
			t.Fatal(err)
		}
		typed += c
		at = s.posOf(t, uri, "strings.Rep"+typed, true)
		if typed == shown {
			break
		}
		inl2, err := s.inline(ctx, uri, at, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(inl2.Items) == 0 || inl2.Items[0].InsertText != shown[len(typed):] {
			t.Fatalf("after typing %q: %+v, want %q", typed, inl2.Items, shown[len(typed):])
		} else if r := *inl2.Items[0].Range; r.Start != at {
			t.Errorf("range %+v, want at %v", r, at)
		}
	}
	if o.runs.Load() != runs {
		t.Errorf("the model ran %d times while the shown completion was typed", o.runs.Load()-runs)
	}
	at2 := at
	// Typing something else runs the model.
	s.Type(uri, at2, "\x01")
	at3 := s.posOf(t, uri, "\x01", true)
	if _, err := s.inline(ctx, uri, at3, 2); err != nil {
		t.Fatal(err)
	}
	if o.runs.Load() == runs {
		t.Error("a different prefix was answered from the cache")
	}
}

// TestCancelWithinOneStep: $/cancelRequest stops the engine at the next
// denoising step. The first step is held until the server has cancelled
// the request's context; the engine may finish the step it is in, and no
// more.
func TestCancelWithinOneStep(t *testing.T) {
	o := &observed{}
	var stepsAtCancel atomic.Int32
	o.onStep = func(ctx context.Context, st infill.Step) {
		if st.Done == 1 && o.runs.Load() == 1 {
			<-ctx.Done()
			stepsAtCancel.Store(o.steps.Load())
		}
	}
	s := start(t, sessionOptions{load: observedLoader(o)})
	ctx := ctxT(t)
	uri := protocol.DocumentURI("file:///main.go")
	s.Open(uri, "go", goSource)
	p, err := s.Start(protocol.MethodTextDocumentCompletion, completionParams(uri, s.posOf(t, uri, "strings.Rep", true)))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return o.steps.Load() >= 1 })
	if err := p.Cancel(); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(ctx, nil); fake.Code(err) != codeRequestCancelled {
		t.Fatalf("cancelled completion answered %v, want RequestCancelled", err)
	}
	if extra := o.steps.Load() - stepsAtCancel.Load(); extra > 1 {
		t.Errorf("engine ran %d steps after the cancel, want at most 1", extra)
	}
	// The server goes on.
	if _, err := s.complete(ctx, uri, s.posOf(t, uri, "_ = x", true)); err != nil {
		t.Errorf("completion after a cancel: %v", err)
	}
}

// TestStringRequestID: ids may be strings; cancelling one works too.
func TestStringRequestID(t *testing.T) {
	o := &observed{onStep: func(ctx context.Context, st infill.Step) { <-ctx.Done() }}
	s := start(t, sessionOptions{load: observedLoader(o)})
	uri := protocol.DocumentURI("file:///main.go")
	s.Open(uri, "go", goSource)
	body := `{"jsonrpc":"2.0","id":"req-7","method":"textDocument/completion","params":{"textDocument":{"uri":"file:///main.go"},"position":{"line":6,"character":16}}}`
	s.WriteRaw([]byte(frameOf(body)))
	waitFor(t, func() bool { return o.steps.Load() >= 1 })
	cancel := `{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":"req-7"}}`
	s.WriteRaw([]byte(frameOf(cancel)))
	// The answer to a string id goes to no pending call of the fake
	// client; the server stopping is what shows the cancel worked.
	waitFor(t, func() bool { return o.steps.Load() >= 1 && len(s.srv.inflightIDs()) == 0 })
}

// TestNewerCompletionSupersedes: a new completion for a document cancels
// the one still running for it.
func TestNewerCompletionSupersedes(t *testing.T) {
	first := make(chan struct{})
	o := &observed{}
	o.onStep = func(ctx context.Context, st infill.Step) {
		if o.runs.Load() == 1 {
			select {
			case first <- struct{}{}:
			default:
			}
			<-ctx.Done() // the first run waits to be superseded
		}
	}
	s := start(t, sessionOptions{load: observedLoader(o)})
	ctx := ctxT(t)
	uri := protocol.DocumentURI("file:///main.go")
	s.Open(uri, "go", goSource)
	at := s.posOf(t, uri, "strings.Rep", true)
	p1, _ := s.Start(protocol.MethodTextDocumentCompletion, completionParams(uri, at))
	<-first
	s.Type(uri, at, "e")
	p2, _ := s.Start(protocol.MethodTextDocumentCompletion, completionParams(uri, s.posOf(t, uri, "strings.Repe", true)))
	if err := p1.Wait(ctx, nil); fake.Code(err) != codeRequestCancelled {
		t.Errorf("superseded completion: %v, want RequestCancelled", err)
	}
	var list protocol.CompletionList
	if err := p2.Wait(ctx, &list); err != nil {
		t.Errorf("newer completion: %v", err)
	}
}

// TestResultForOldVersionDropped: a completion computed for a version of
// the document that has since changed is not returned.
func TestResultForOldVersionDropped(t *testing.T) {
	var s *session
	uri := protocol.DocumentURI("file:///main.go")
	o := &observed{}
	o.onStep = func(ctx context.Context, st infill.Step) {
		if st.Done == 1 && o.runs.Load() == 1 {
			// While the engine works, the user types elsewhere (a
			// completion for another document would not supersede it).
			s.Type(uri, protocol.Position{Line: 0, Character: 0}, "// x\n")
			waitFor(t, func() bool { v, _ := s.srv.currentVersion(uri); return v == 2 })
		}
	}
	s = start(t, sessionOptions{load: observedLoader(o)})
	s.Open(uri, "go", goSource)
	_, err := s.complete(ctxT(t), uri, s.posOf(t, uri, "strings.Rep", true))
	if fake.Code(err) != codeContentModified {
		t.Errorf("completion for an old version: %v, want ContentModified", err)
	}
}

func TestCompletionErrors(t *testing.T) {
	s := start(t, sessionOptions{})
	ctx := ctxT(t)
	if _, err := s.complete(ctx, "file:///nowhere.go", protocol.Position{}); fake.Code(err) != -32602 || !strings.Contains(err.Error(), "didOpen") {
		t.Errorf("unknown document: %v", err)
	}
	uri := protocol.DocumentURI("file:///main.go")
	s.Open(uri, "go", goSource)
	if _, err := s.complete(ctx, uri, protocol.Position{Line: 400, Character: 2}); fake.Code(err) != -32602 || !strings.Contains(err.Error(), "outside") {
		t.Errorf("line outside the document: %v", err)
	}
	// A character past the end of a line means the end of the line.
	if _, err := s.complete(ctx, uri, protocol.Position{Line: 6, Character: 999}); err != nil {
		t.Errorf("character past the line end: %v", err)
	}
	if err := s.Call(ctx, protocol.MethodTextDocumentCompletion, map[string]any{"textDocument": 5}, nil); fake.Code(err) != -32602 {
		t.Errorf("malformed params: %v", err)
	}
}

func TestDebounceWaitsForTypingPause(t *testing.T) {
	// The pace is computed from edit times; no clocks are read here.
	var p typingPace
	t0 := time.Unix(1000, 0)
	for i := 0; i < 6; i++ {
		p.observe(t0.Add(time.Duration(i) * 100 * time.Millisecond))
	}
	last := t0.Add(500 * time.Millisecond)
	if d := p.delay(last, 300*time.Millisecond); d != 150*time.Millisecond {
		t.Errorf("typing every 100ms, asked at once: delay %v, want 150ms", d)
	}
	if d := p.delay(last.Add(100*time.Millisecond), 300*time.Millisecond); d != 50*time.Millisecond {
		t.Errorf("100ms after the last key: delay %v, want 50ms", d)
	}
	if d := p.delay(last, 60*time.Millisecond); d != 60*time.Millisecond {
		t.Errorf("capped: delay %v, want 60ms", d)
	}
	if d := p.delay(last.Add(time.Second), 300*time.Millisecond); d != 0 {
		t.Errorf("after a pause: delay %v, want 0", d)
	}
	if d := p.delay(last, 0); d != 0 {
		t.Errorf("debounce off: delay %v, want 0", d)
	}
	// A slow typist's pace caps at the setting.
	var slow typingPace
	slow.observe(t0)
	slow.observe(t0.Add(time.Second))
	if d := slow.delay(t0.Add(time.Second), 75*time.Millisecond); d != 75*time.Millisecond {
		t.Errorf("slow typist: delay %v, want 75ms", d)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

func frameOf(body string) string {
	return "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

// inflightIDs lists the requests the server is serving.
func (s *Server) inflightIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id := range s.inflight {
		ids = append(ids, fmt.Sprint(id))
	}
	return ids
}

// TestCompletionAndInlineShareARun: an editor asking for the completion
// list and for ghost text at the same keystroke gets both from one engine
// run.
func TestCompletionAndInlineShareARun(t *testing.T) {
	release := make(chan struct{})
	o := &observed{}
	o.onStep = func(ctx context.Context, st infill.Step) {
		if st.Done == 1 && o.runs.Load() == 1 {
			<-release
		}
	}
	s := start(t, sessionOptions{load: observedLoader(o)})
	ctx := ctxT(t)
	uri := protocol.DocumentURI("file:///main.go")
	s.Open(uri, "go", goSource)
	at := s.posOf(t, uri, "strings.Rep", true)
	p1, _ := s.Start(methodInlineCompletion, map[string]any{"textDocument": map[string]any{"uri": uri}, "position": at, "context": map[string]any{"triggerKind": 2}})
	waitFor(t, func() bool { return o.steps.Load() >= 1 })
	p2, _ := s.Start(protocol.MethodTextDocumentCompletion, completionParams(uri, at))
	waitFor(t, func() bool {
		s.srv.flights.mu.Lock()
		defer s.srv.flights.mu.Unlock()
		return len(s.srv.flights.m) == 1
	})
	close(release)
	var inl inlineCompletionList
	var list protocol.CompletionList
	if err := p1.Wait(ctx, &inl); err != nil {
		t.Fatal(err)
	}
	if err := p2.Wait(ctx, &list); err != nil {
		t.Fatal(err)
	}
	if o.runs.Load() != 1 {
		t.Errorf("engine ran %d times for one keystroke", o.runs.Load())
	}
	if len(inl.Items) == 0 || len(list.Items) == 0 || "Rep"+inl.Items[0].InsertText != list.Items[0].TextEdit.NewText {
		t.Errorf("inline %+v and completion %+v differ", inl.Items, list.Items)
	}
}

func TestWindow(t *testing.T) {
	small := "package a\n"
	if w, base := window(small, 3, 3, 1024); w != small || base != 0 {
		t.Errorf("small document windowed: %d bytes from %d", len(w), base)
	}
	var b strings.Builder
	for b.Len() < 2<<20 {
		b.WriteString("func f() { return 1 }\n")
	}
	text := b.String()
	off := len(text) / 2
	w, base := window(text, off, off, 1024)
	if base <= 0 || base+len(w) >= len(text) || base > off || base+len(w) < off {
		t.Fatalf("window [%d, %d) does not hold %d inside a %d-byte text", base, base+len(w), off, len(text))
	}
	if text[base:base+len(w)] != w || (base > 0 && text[base-1] != '\n') || w[len(w)-1] != '\n' {
		t.Error("window does not start and end at line boundaries")
	}
	// Typing a few characters on keeps the same window start, so the
	// engine's cache of the context stays valid.
	if _, base2 := window(text, off+40, off+40, 1024); base2 != base {
		t.Errorf("window moved from %d to %d after 40 bytes", base, base2)
	}
}
