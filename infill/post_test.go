package infill

import (
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/tools/txtar"
)

// TestPostprocessScenarios runs testdata/post/*.txtar. Each file has a doc
// with the span marked (⁁ a point, ⟦...⟧ a range), the model's raw answer,
// and the text wanted after post-processing. The comment may say
// "single: true" (one-line completion) and "closing: true" (the range is
// the closers after a completion point, see ClosingRest).
func TestPostprocessScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/post/*.txtar")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txtar"), func(t *testing.T) {
			ar, err := txtar.ParseFile(f)
			if err != nil {
				t.Fatal(err)
			}
			sec := map[string]string{}
			for _, fl := range ar.Files {
				sec[fl.Name] = string(fl.Data)
			}
			doc := sec["doc"]
			answer := strings.TrimSuffix(sec["answer"], "\n")
			want := strings.TrimSuffix(sec["want"], "\n")
			var pc postContext
			if i := strings.Index(doc, "⁁"); i >= 0 {
				pc.before, pc.after = doc[:i], doc[i+len("⁁"):]
			} else {
				i := strings.Index(doc, "⟦")
				j := strings.Index(doc, "⟧")
				if i < 0 || j < i {
					t.Fatal("doc has no span marker")
				}
				pc.before, pc.orig, pc.after = doc[:i], doc[i+len("⟦"):j], doc[j+len("⟧"):]
			}
			pc.single = strings.Contains(string(ar.Comment), "single: true")
			if strings.Contains(string(ar.Comment), "closing: true") {
				// The ⟦...⟧ range is the closers a completion replaces.
				pc.closing = pc.orig
			}
			if got := postprocess(answer, pc); got != want {
				t.Errorf("postprocess(%q) = %q, want %q", answer, got, want)
			}
		})
	}
}
