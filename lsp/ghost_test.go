package lsp

import (
	"path/filepath"
	"testing"

	"go.lsp.dev/protocol"
	"go.lsp.dev/uri"
)

// TestGhostThreshold: ghost text that comes as the user types shows an
// answer only at or above the ghostThreshold setting, on both sides of it,
// and the completion list still shows it, marked low confidence. The
// answer is the copied rest of the line above (gocheck's "copy" source,
// calibrated confidence about 0.27, or 0.3 when the model also writes it):
// it parses and its names resolve.
func TestGhostThreshold(t *testing.T) {
	for _, tt := range []struct {
		threshold float64
		shown     bool
	}{{0.2, true}, {0.6, false}} {
		set := testSettings()
		set.GhostThreshold = tt.threshold
		s := start(t, sessionOptions{opts: Options{Defaults: set}})
		u := protocol.DocumentURI(uri.File(filepath.Join(t.TempDir(), "main.go")))
		src := "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"hello, world\")\n\tfmt.Pri\n}\n"
		s.Open(u, "go", src)
		at := s.posOf(t, u, "world\")\n\tfmt.Pri", true)
		inl, err := s.inline(ctxT(t), u, at, 2) // Automatic: as the user types
		if err != nil {
			t.Fatal(err)
		}
		if got := len(inl.Items) > 0; got != tt.shown {
			t.Errorf("threshold %.2f: ghost text %+v, want shown %v", tt.threshold, inl.Items, tt.shown)
		}
		if tt.shown && inl.Items[0].InsertText != "ntln(\"hello, world\")" {
			t.Errorf("threshold %.2f: ghost text %q, want the copied line's rest", tt.threshold, inl.Items[0].InsertText)
		}
		list, err := s.complete(ctxT(t), u, at)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, it := range list.Items {
			if it.TextEdit != nil && it.TextEdit.NewText == "Println(\"hello, world\")" {
				found = true
				low := it.Detail != "" && it.Detail[len(it.Detail)-1] == ')'
				if low == tt.shown {
					t.Errorf("threshold %.2f: completion item detail %q", tt.threshold, it.Detail)
				}
			}
		}
		if !found {
			t.Errorf("threshold %.2f: completion list %+v lacks the copied line", tt.threshold, list.Items)
		}
	}
}
