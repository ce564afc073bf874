package lsp

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"go.lsp.dev/protocol"

	"github.com/diffill/diffill/lsp/document"
	"github.com/diffill/diffill/lsp/fake"
)

// TestDocumentSync edits a document with emoji, CJK and CRLF line ends in
// every way a client may (incremental, several changes at once, full text)
// and checks that the server's copy stays equal to the client's, in both
// position encodings.
func TestDocumentSync(t *testing.T) {
	for _, enc := range []string{"utf-16", "utf-8"} {
		t.Run(enc, func(t *testing.T) {
			s := start(t, sessionOptions{init: fake.InitOptions{PositionEncodings: []string{enc}}})
			uri := protocol.DocumentURI("file:///sync.go")
			text := "package main\r\n\r\n// 你好, 世界 😀👍🏽\r\nfunc main() {\r\n\tprintln(\"é\")\r\n}\r\n"
			if err := s.Open(uri, "go", text); err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			inserts := []string{"x", "😀", "中", "\r\n", "\n", "\r", "", "ab\r\ncd", "é"}
			for i := 0; i < 200; i++ {
				d := s.Doc(uri)
				a, b := rng.IntN(d.Len()+1), rng.IntN(d.Len()+1)
				if a > b {
					a, b = b, a
				}
				r := d.Range(a, b, s.Encoding())
				ins := inserts[rng.IntN(len(inserts))]
				var err error
				switch i % 10 {
				case 9: // the whole text
					err = s.Change(uri, document.Change{Text: d.Text()[:a] + ins + d.Text()[b:]})
				case 8: // two changes in one notification
					r2 := protocol.Range{Start: r.Start, End: r.Start}
					err = s.Change(uri, document.Change{Range: &r, Text: ins}, document.Change{Range: &r2, Text: "y"})
				default:
					err = s.Change(uri, document.Change{Range: &r, Text: ins})
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			s.sync(t)
			if got, want := s.serverText(t, uri), s.Doc(uri).Text(); got != want {
				t.Fatalf("server text after edits:\n%q\nclient text:\n%q", got, want)
			}
			if v, _ := s.srv.currentVersion(uri); v != s.Doc(uri).Version {
				t.Errorf("server version %d, client %d", v, s.Doc(uri).Version)
			}
		})
	}
}

func TestDidChangeOutOfRange(t *testing.T) {
	s := start(t, sessionOptions{})
	ctx := ctxT(t)
	uri := protocol.DocumentURI("file:///a.go")
	s.Open(uri, "go", "package a\n")
	// An edit on a line the document does not have: the server cannot
	// know the client's text any more, says so, and refuses requests on
	// the document until the client sends the whole text again.
	bad := protocol.Range{Start: protocol.Position{Line: 7}, End: protocol.Position{Line: 7}}
	s.Notify(protocol.MethodTextDocumentDidChange, map[string]any{
		"textDocument":   map[string]any{"uri": uri, "version": 2},
		"contentChanges": []any{map[string]any{"range": bad, "text": "x"}},
	})
	if _, err := s.Await(ctx, protocol.MethodWindowShowMessage, func(n fake.Note) bool {
		return strings.Contains(string(n.Params), "out of sync")
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.complete(ctx, uri, protocol.Position{}); fake.Code(err) != codeRequestFailed || !strings.Contains(err.Error(), "reopen") {
		t.Errorf("completion on an out-of-sync document: %v", err)
	}
	s.Notify(protocol.MethodTextDocumentDidChange, map[string]any{
		"textDocument":   map[string]any{"uri": uri, "version": 3},
		"contentChanges": []any{map[string]any{"text": "package b\n"}},
	})
	s.sync(t)
	if got := s.serverText(t, uri); got != "package b\n" {
		t.Errorf("after a full change: %q", got)
	}
}

func TestInvalidUTF8Document(t *testing.T) {
	s := start(t, sessionOptions{init: fake.InitOptions{PositionEncodings: []string{"utf-8"}}})
	uri := protocol.DocumentURI("file:///bad.go")
	// Raw invalid bytes inside the JSON string, as a careless client
	// might send for a Latin-1 file.
	body := `{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{"textDocument":{"uri":"` + string(uri) +
		`","languageId":"go","version":1,"text":"a` + "\xff\xfe" + `b\n"}}}`
	raw := fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body)
	if err := s.WriteRaw([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	s.sync(t)
	got := s.serverText(t, uri)
	if !strings.HasPrefix(got, "a") || !strings.HasSuffix(got, "b\n") || !strings.Contains(got, "\uFFFD") {
		t.Errorf("server text = %q, want the bad bytes replaced by U+FFFD", got)
	}
	if _, err := s.complete(ctxT(t), uri, protocol.Position{Line: 0, Character: uint32(len(got) - 2)}); err != nil {
		t.Errorf("completion after invalid UTF-8: %v", err)
	}
}
