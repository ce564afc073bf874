package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diffill/diffill/infill"
	"github.com/diffill/diffill/infill/workspace"
)

const tinyInfillModel = "../../model/testdata/qwen2-tiny"

func TestLineCol(t *testing.T) {
	text := "ab\ncdé\n\nx"
	for _, tc := range []struct {
		at   string
		want int
	}{
		{"1:1", 0}, {"1:3", 2}, {"2:1", 3}, {"2:3", 5}, {"2:4", 7}, {"3:1", 8}, {"4:2", 10},
	} {
		got, err := lineCol(text, tc.at)
		if err != nil || got != tc.want {
			t.Errorf("lineCol(%q) = %d, %v; want %d", tc.at, got, err, tc.want)
		}
	}
	for _, bad := range []string{"0:1", "1:0", "5:1", "1:5", "x", "1:"} {
		if _, err := lineCol(text, bad); err == nil {
			t.Errorf("lineCol(%q): no error", bad)
		}
	}
}

func TestInfillFillsHoles(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a.go")
	src := "package a\n\nfunc f() int {\n\tx := ???\n\treturn ???\n}\n"
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if err := runInfill(context.Background(), []string{"--model", tinyInfillModel, "--max-tokens", "4", file}, &out, &errb); err != nil {
		t.Fatalf("%v: %s", err, errb.String())
	}
	got := out.String()
	if strings.Contains(got, "???") || !strings.HasPrefix(got, "package a\n\nfunc f() int {\n\tx := ") || !strings.HasSuffix(got, "\n}\n") {
		t.Fatalf("holes not filled in place:\n%s", got)
	}
	// --at and --range print the whole file too.
	out.Reset()
	if err := runInfill(context.Background(), []string{"--model", tinyInfillModel, "--at", "4:7", "--max-tokens", "3", file}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "package a\n\nfunc f() int {\n\tx :=") {
		t.Fatalf("--at: %q", out.String())
	}
	out.Reset()
	if err := runInfill(context.Background(), []string{"--model", tinyInfillModel, "--range", "4:2-4:10", "--rewrite", "0.5", file}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out.String(), "\n\treturn ???\n}\n") {
		t.Fatalf("--rewrite changed text outside the range: %q", out.String())
	}
	if err := runInfill(context.Background(), []string{"--model", tinyInfillModel, "--at", "9:1", file}, &out, &errb); err == nil {
		t.Fatal("--at past the end: no error")
	}
}

func TestInfillJSONL(t *testing.T) {
	m, err := loadInfillModel(tinyInfillModel)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	eng := infill.NewEngine(m)
	in := strings.NewReader(`{"prefix":"func f() {\n\tx := ","suffix":"\n}\n","max_tokens":4}
not json
{"prefix":"a"}

{"prefix":"b := ","suffix":""}
`)
	var out bytes.Buffer
	p := infill.DefaultParams()
	p.MaxTokens = 4
	if err := infillJSONL(context.Background(), eng, p, nil, in, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d answers for 4 requests:\n%s", len(lines), out.String())
	}
	for i, want := range []string{"middle", "error", "error", "middle"} {
		var m map[string]string
		if err := json.Unmarshal([]byte(lines[i]), &m); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if _, ok := m[want]; !ok || len(m) != 1 {
			t.Fatalf("line %d: %s, want a %q", i, lines[i], want)
		}
	}
}

func TestEvalScores(t *testing.T) {
	if s := editSimilarity("abc", "abc"); s != 1 {
		t.Fatal(s)
	}
	if s := editSimilarity("abcd", "abxd"); s != 0.75 {
		t.Fatal(s)
	}
	if s := editSimilarity("", ""); s != 1 {
		t.Fatal(s)
	}
	c := &evalCase{Prefix: "func f() {\n\tx := 1\n\t", Middle: "y := 2", Suffix: "\n}\n"}
	if got := copyPrevLine(c); got != "x := 1" {
		t.Fatalf("copyPrevLine = %q", got)
	}
	dir := t.TempDir()
	cases := filepath.Join(dir, "cases.jsonl")
	var b strings.Builder
	for _, c := range []evalCase{
		{Prefix: "func f() {\n\tx := 1\n\t", Middle: "x := 1", Suffix: "\n}\n", Kind: "line"},
		{Prefix: "func f() {\n\t", Middle: "a()\n\tb()", Suffix: "\n}\n", Kind: "block"},
	} {
		j, _ := json.Marshal(c)
		b.Write(j)
		b.WriteByte('\n')
	}
	os.WriteFile(cases, []byte(b.String()), 0o644)
	var out, errb bytes.Buffer
	answers := filepath.Join(dir, "answers.jsonl")
	if err := runEval(context.Background(), []string{"--model", tinyInfillModel, "--cases", cases, "--max-tokens", "4", "--compare", "length", "--json", "--answers", answers}, &out, &errb); err != nil {
		t.Fatalf("%v: %s", err, errb.String())
	}
	// --answers: a line per case with its middle and every run's answer.
	ab, err := os.ReadFile(answers)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(ab)), "\n")
	if len(lines) != 2 {
		t.Fatalf("--answers wrote %d lines for 2 cases", len(lines))
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"case", "kind", "middle", "adaptive", "fixed", "oracle", "multi"} {
		if _, ok := first[k]; !ok {
			t.Errorf("--answers line %s has no %q", lines[0], k)
		}
	}
	if first["middle"] != "x := 1" {
		t.Errorf("--answers middle %v, want the first case's", first["middle"])
	}
	var rep evalReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Cases != 2 || len(rep.Runs) != 4 || len(rep.Baselines) != 2 {
		t.Fatalf("report: %+v", rep)
	}
	// The copy-previous-line baseline gets the first case exactly.
	if g := rep.Baselines[1].Groups["line"]; g.N != 1 || g.EM != 1 {
		t.Fatalf("copy-prev-line on the line case: %+v", g)
	}
	if !strings.Contains(errb.String(), "eval adaptive: 2/2 cases") {
		t.Fatalf("no progress on stderr: %q", errb.String())
	}
}

func TestPairedCounts(t *testing.T) {
	cs := []*evalCase{{Middle: "a"}, {Middle: "b"}, {Middle: "c"}, {Middle: "d"}}
	answers := func(as ...string) *evalScore {
		s := scoreAnswers("run", cs, func(i int) string { return as[i] }, nil)
		s.answers = as
		return s
	}
	first := answers("a", "x", "c", "y")
	second := answers("a", "b", "z", "y ")
	got := *pair(first, second)
	// Case 1 both right, 2 only second, 3 only first, 4 neither (and the
	// answers differ by a trailing blank, which normalize ignores for
	// exact match but which still makes them different answers).
	want := pairedStat{OnlyFirst: 1, OnlySecond: 1, Differ: 3}
	if got != want {
		t.Fatalf("pair = %+v, want %+v", got, want)
	}
}

// TestInfillJSONLPath: a line's "path" must be absolute, and one in a real
// package gets that package's context (the prelude is checked in package
// workspace; here, that the line is answered).
func TestInfillJSONLPath(t *testing.T) {
	m, err := loadInfillModel(tinyInfillModel)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	eng := infill.NewEngine(m)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"go.mod": "module example.com/p\n",
		"a.go":   "package p\n\nfunc helper(n int) int { return n }\n",
	})
	b, _ := json.Marshal(map[string]any{"prefix": "package p\n\nfunc f() int {\n\treturn ", "suffix": "\n}\n", "path": filepath.Join(dir, "b.go"), "max_tokens": 4})
	in := strings.NewReader(string(b) + "\n" + `{"prefix":"a","suffix":"","path":"rel/b.go"}` + "\n")
	var out bytes.Buffer
	p := infill.DefaultParams()
	p.MaxTokens = 4
	sess := workspace.NewSession(workspace.Options{})
	defer sess.Close()
	if err := infillJSONL(context.Background(), eng, p, &jsonlContext{sess, workspace.Config{Budget: workspace.SnippetBytes, Pieces: workspace.AllPieces, Window: 1800}}, in, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"middle"`) || !strings.Contains(lines[1], "want an absolute path") {
		t.Fatalf("answers:\n%s", out.String())
	}
}
