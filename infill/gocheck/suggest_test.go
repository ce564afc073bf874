package gocheck

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diffill/diffill/infill"
	"github.com/diffill/diffill/model"
)

// TestSuggestOrder runs Suggest with a real (tiny) checkpoint on a line
// being typed whose rest is written above: the copied continuation is a
// candidate, every candidate that parses comes before every one that does
// not, answers that do not parse have confidence 0, and the best one has
// been type-checked.
func TestSuggestOrder(t *testing.T) {
	m, err := model.Load(filepath.Join("..", "..", "model", "testdata", "qwen2-tiny"))
	if err != nil {
		t.Fatal(err)
	}
	eng := infill.NewEngine(m)
	src := "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"hello, world\")\n\tfmt.Pri\n}\n"
	at := strings.LastIndex(src, "fmt.Pri") + len("fmt.Pri")
	req := &infill.Request{Text: src, Spans: []infill.Span{{Start: at, End: at}}, Mode: infill.ModeComplete, Params: infill.DefaultParams()}
	as, err := Suggest(context.Background(), eng, req, Doc{Path: "/main.go", Text: src, Start: at, End: at}, SuggestOptions{Decodes: 3})
	if err != nil {
		t.Fatal(err)
	}
	copied, failed := false, false
	for i, a := range as {
		t.Logf("%d %-6s %.3f %q %v", i, a.Source, a.Confidence, a.Text, a.Verdict.Reasons())
		if a.Text == "ntln(\"hello, world\")" && strings.HasPrefix(a.Source, "copy") {
			copied = true
		}
		if !a.Verdict.Parses {
			failed = true
			if a.Confidence != 0 {
				t.Errorf("%q does not parse, confidence %.3f", a.Text, a.Confidence)
			}
		} else if failed {
			t.Errorf("%q parses but comes after one that does not", a.Text)
		}
	}
	if !copied {
		t.Error("the copied rest of the line above is not a candidate")
	}
	if len(as) == 0 || as[0].Verdict.Parses && !as[0].Verdict.Typed {
		t.Errorf("the best answer was not type-checked: %+v", as)
	}
}
