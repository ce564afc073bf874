package builtin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"testing"

	"github.com/diffill/diffill/infill"
	"github.com/diffill/diffill/model/builtin"
)

var update = flag.Bool("update", false, "measure the built-in model and rewrite testdata/quality.json")

// quality is the committed model's measured smoke quality and the floors the
// test holds it to.
type quality struct {
	Cases             int     `json:"cases"`
	ExactMatch        float64 `json:"exact_match"`
	EditSimilarity    float64 `json:"edit_similarity"`
	MinExactMatch     float64 `json:"min_exact_match"`
	MinEditSimilarity float64 `json:"min_edit_similarity"`
}

type evalCase struct {
	Prefix string `json:"prefix"`
	Suffix string `json:"suffix"`
	Middle string `json:"middle"`
	Kind   string `json:"kind"`
}

const qualityFile = "testdata/quality.json"

// smokeCases is the number of held-out single lines the test completes: a
// few seconds on two cores.
const smokeCases = 40

// TestQuality is the smoke evaluation of the built-in model: single-line
// completions of held-out Go lines (model/train/testdata/heldout.jsonl, from
// files the model was not trained on) through the infill engine, with no
// oracle length. It fails when exact match or edit similarity falls below
// the floors in testdata/quality.json, which `go test -run Quality -update`
// sets from the committed model (measured minus a margin for decoding
// changes that are not regressions).
func TestQuality(t *testing.T) {
	if testing.Short() && !*update {
		t.Skip("-short: skipping the built-in model's smoke evaluation")
	}
	cases, err := lineCases("../train/testdata/heldout.jsonl", smokeCases)
	if err != nil {
		t.Fatal(err)
	}
	m, err := builtin.Load()
	if err != nil {
		t.Fatal(err)
	}
	e := infill.NewEngine(m)
	var em, es float64
	for i, c := range cases {
		p := infill.DefaultParams()
		p.SingleLine = true
		p.Seed = 1
		res, err := e.Run(context.Background(), &infill.Request{
			Text:   c.Prefix + c.Suffix,
			Spans:  []infill.Span{{Start: len(c.Prefix), End: len(c.Prefix)}},
			Mode:   infill.ModeComplete,
			Params: p,
		})
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		got := ""
		if len(res.Candidates) > 0 && len(res.Candidates[0].Edits) > 0 {
			got = res.Candidates[0].Edits[0].NewText
		}
		if got == c.Middle {
			em++
		}
		es += editSimilarity(got, c.Middle)
		if testing.Verbose() {
			t.Logf("want %q\n got %q", c.Middle, got)
		}
	}
	n := float64(len(cases))
	em, es = em/n, es/n
	t.Logf("built-in model on %d held-out lines: exact match %.1f%%, edit similarity %.3f", len(cases), 100*em, es)
	if *update {
		q := quality{
			Cases: len(cases), ExactMatch: em, EditSimilarity: es,
			MinExactMatch: max(0, em-0.05), MinEditSimilarity: max(0, es-0.05),
		}
		b, _ := json.MarshalIndent(q, "", "  ")
		if err := os.WriteFile(qualityFile, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	b, err := os.ReadFile(qualityFile)
	if err != nil {
		t.Fatalf("%v (run go test -run Quality -update)", err)
	}
	var q quality
	if err := json.Unmarshal(b, &q); err != nil {
		t.Fatalf("%s: %v", qualityFile, err)
	}
	if em < q.MinExactMatch {
		t.Errorf("exact match %.1f%% < floor %.1f%% (measured %.1f%% when the model was committed)", 100*em, 100*q.MinExactMatch, 100*q.ExactMatch)
	}
	if es < q.MinEditSimilarity {
		t.Errorf("edit similarity %.3f < floor %.3f (measured %.3f when the model was committed)", es, q.MinEditSimilarity, q.EditSimilarity)
	}
}

// lineCases reads n single-line cases spread evenly over the file.
func lineCases(path string, n int) ([]evalCase, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var all []evalCase
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var c evalCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if c.Kind == "line" {
			all = append(all, c)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(all) < n {
		return nil, fmt.Errorf("%s: %d line cases, want %d", path, len(all), n)
	}
	out := make([]evalCase, n)
	for i := range out {
		out[i] = all[i*len(all)/n]
	}
	return out, nil
}

// editSimilarity is 1 - Levenshtein distance / the longer length, over runes.
func editSimilarity(a, b string) float64 {
	ra, rb := []rune(a), []rune(b)
	if len(ra) == 0 && len(rb) == 0 {
		return 1
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			sub := prev[j-1]
			if ra[i-1] != rb[j-1] {
				sub++
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, sub)
		}
		prev, cur = cur, prev
	}
	return 1 - float64(prev[len(rb)])/float64(max(len(ra), len(rb)))
}
