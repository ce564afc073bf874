package lsp

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"go.lsp.dev/protocol"

	"github.com/diffill/diffill/lsp/fake"
)

// TestMalformedFrames sends broken frames between good ones: each broken
// one gets an error, and the session carries on.
func TestMalformedFrames(t *testing.T) {
	s := start(t, sessionOptions{opts: Options{MaxMessageBytes: 1 << 16}})
	good := `{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{"textDocument":{"uri":"file:///a.go","languageId":"go","version":1,"text":"package a\n"}}}`
	for _, raw := range []string{
		"not a header\r\n\r\n",
		"Content-Length: 12\r\n\r\n{\"jsonrpc\":",                      // not JSON
		fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(good)-9, good), // too short
		"Content-Length: -4\r\n\r\n",
		"Content-Length: 999999999\r\n\r\n",                                           // over the limit: skipped unread, bytes follow
		"Content-Length: 29\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"x\"}", // bad id
		frameOf(`[{"jsonrpc":"2.0","id":1,"method":"shutdown"}]`),                     // batch
	} {
		if raw == "Content-Length: 999999999\r\n\r\n" {
			// The server skips that many bytes: send a small oversized
			// message instead, so that the test does not send a gigabyte.
			big := strings.Repeat("x", 1<<16+1)
			raw = fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(big), big)
		}
		if err := s.WriteRaw([]byte(raw)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.WriteRaw([]byte(frameOf(good))); err != nil {
		t.Fatal(err)
	}
	s.sync(t)
	if got := s.serverText(t, "file:///a.go"); got != "package a\n" {
		t.Errorf("document after the bad frames: %q", got)
	}
	errs := strings.Join(s.WireErrors(), "\n")
	for _, want := range []string{"-32700", "-32600", "over the"} {
		if !strings.Contains(errs, want) {
			t.Errorf("no error reply with %q; replies:\n%s", want, errs)
		}
	}
}

// TestLargeDocument: a 10 MB file is served (completion near its end,
// incremental edits), and a document over the limit gets a clear error.
func TestLargeDocument(t *testing.T) {
	s := start(t, sessionOptions{opts: Options{MaxDocumentBytes: 12 << 20}})
	ctx := ctxT(t)
	var b strings.Builder
	b.WriteString("package big\n\n")
	for i := 0; b.Len() < 10<<20; i++ {
		fmt.Fprintf(&b, "func f%d(x int) int { return x*%d + 1 } // 😀 中文\n", i, i)
	}
	b.WriteString("\nfunc last() {\n\t\n}\n")
	text := b.String()
	uri := protocol.DocumentURI("file:///big.go")
	if err := s.Open(uri, "go", text); err != nil {
		t.Fatal(err)
	}
	at := s.Pos(uri, len(text)-3)
	for i := 0; i < 5; i++ {
		if err := s.Type(uri, at, "x"); err != nil {
			t.Fatal(err)
		}
		at.Character++
	}
	if _, err := s.complete(ctx, uri, at); err != nil {
		t.Fatalf("completion in a 10 MB file: %v", err)
	}
	if got, want := s.serverText(t, uri), s.Doc(uri).Text(); got != want {
		t.Fatal("server copy of the large file differs from the client's")
	}

	huge := protocol.DocumentURI("file:///huge.go")
	s.Open(huge, "go", strings.Repeat("x", 13<<20))
	if _, err := s.complete(ctx, huge, protocol.Position{}); fake.Code(err) != codeRequestFailed || !strings.Contains(err.Error(), "too large") {
		t.Errorf("completion in a file over the limit: %v", err)
	}
	if _, err := s.Await(ctx, protocol.MethodWindowShowMessage, func(n fake.Note) bool { return strings.Contains(string(n.Params), "huge.go") }); err != nil {
		t.Error(err)
	}
	if got := titles(s.codeActions(t, huge, protocol.Range{})); got != "" {
		t.Errorf("actions on a document over the limit: %s", got)
	}
}

// TestRequestBurst: hundreds of completions in a burst, each replacing the
// one before for the same document (as fast typing does). Every request is
// answered (the newest with items, the others cancelled), and afterwards
// the server holds no goroutine or request of theirs.
func TestRequestBurst(t *testing.T) {
	s := start(t, sessionOptions{})
	ctx := ctxT(t)
	uri := protocol.DocumentURI("file:///main.go")
	s.Open(uri, "go", goSource)
	at := s.posOf(t, uri, "strings.Rep", true)
	if _, err := s.complete(ctx, uri, at); err != nil { // load the model first
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	var pending []*fake.Pending
	for i := 0; i < 500; i++ {
		if i%50 == 0 {
			s.Type(uri, at, "e")
			at.Character++
		}
		p, err := s.Start(protocol.MethodTextDocumentCompletion, completionParams(uri, at))
		if err != nil {
			t.Fatal(err)
		}
		pending = append(pending, p)
	}
	cancelled := 0
	for i, p := range pending {
		err := p.Wait(ctx, nil)
		switch {
		case err == nil:
		case fake.Code(err) == codeRequestCancelled || fake.Code(err) == codeContentModified:
			cancelled++
		default:
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if cancelled == 0 {
		t.Error("no request of the burst was cancelled by a newer one")
	}
	waitFor(t, func() bool { return len(s.srv.inflightIDs()) == 0 })
	waitFor(t, func() bool { return runtime.NumGoroutine() <= before+2 })
}

func TestStats(t *testing.T) {
	s := start(t, sessionOptions{})
	s.Open("file:///a.go", "go", goSource)
	var st Stats
	if err := s.Call(ctxT(t), MethodStats, nil, &st); err != nil {
		t.Fatal(err)
	}
	if st.Goroutines == 0 || st.HeapInuseBytes == 0 || st.OpenDocuments != 1 || st.OpenBytes != len(goSource) {
		t.Errorf("stats = %+v", st)
	}
	if runtime.GOOS == "linux" && st.RSSBytes == 0 {
		t.Error("no RSS on linux")
	}
}
