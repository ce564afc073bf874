package infill

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/diffill/diffill/model/builtin"
)

var update = flag.Bool("update", false, "measure the built-in model and rewrite testdata/smoke.json")

// smokeFloor is what the smoke evaluation measured with the committed
// model and engine, and the floors it holds later runs to.
type smokeFloor struct {
	Cases             int     `json:"cases"`
	ExactMatch        float64 `json:"exact_match"`
	EditSimilarity    float64 `json:"edit_similarity"`
	MinExactMatch     float64 `json:"min_exact_match"`
	MinEditSimilarity float64 `json:"min_edit_similarity"`
	Note              string  `json:"note,omitempty"`
}

const smokeFile = "testdata/smoke.json"

// TestSmokeEval runs the engine with its defaults and the built-in model
// over 100 held-out Go cases (80 single lines, 20 blocks of 2-4 lines, from
// files the model was not trained on; model/train/testdata/heldout.jsonl),
// infilling at the cursor with no oracle length, as `diffill eval` does.
// It fails when exact match or edit similarity drops below the floors in
// testdata/smoke.json, which `go test -run SmokeEval -update` sets from a
// run (measured minus a margin).
func TestSmokeEval(t *testing.T) {
	if testing.Short() && !*update {
		t.Skip("-short: skipping the smoke evaluation of the built-in model")
	}
	m, err := builtin.Load()
	if err != nil {
		t.Skipf("no built-in model: %v", err)
	}
	cases := heldoutCases(t, "../model/train/testdata/heldout.jsonl", 80, 20)
	e := NewEngine(m)
	var em, es float64
	for i, c := range cases {
		at := len(c.Prefix)
		res, err := e.Run(context.Background(), &Request{
			Text:   c.Prefix + c.Suffix,
			Spans:  []Span{{at, at}},
			Mode:   ModeInfill,
			Params: DefaultParams(),
		})
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		got := res.Candidates[0].Edits[0].NewText
		if strings.TrimSpace(got) == strings.TrimSpace(c.Middle) {
			em++
		}
		es += editSim(strings.TrimSpace(got), strings.TrimSpace(c.Middle))
		if testing.Verbose() {
			t.Logf("%s: want %q\n got %q", c.Kind, c.Middle, got)
		}
	}
	n := float64(len(cases))
	em, es = em/n, es/n
	t.Logf("built-in model, engine defaults, %d held-out cases: exact match %.1f%%, edit similarity %.3f", len(cases), 100*em, es)
	if *update {
		f := smokeFloor{Cases: len(cases), ExactMatch: em, EditSimilarity: es,
			MinExactMatch: max(0, em-0.05), MinEditSimilarity: max(0, es-0.05)}
		b, _ := json.MarshalIndent(f, "", "  ")
		if err := os.WriteFile(smokeFile, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	b, err := os.ReadFile(smokeFile)
	if err != nil {
		t.Fatalf("%v (go test -run SmokeEval -update writes it)", err)
	}
	var f smokeFloor
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", smokeFile, err)
	}
	if em < f.MinExactMatch {
		t.Errorf("exact match %.1f%% < floor %.1f%% (%.1f%% measured when the floor was set)", 100*em, 100*f.MinExactMatch, 100*f.ExactMatch)
	}
	if es < f.MinEditSimilarity {
		t.Errorf("edit similarity %.3f < floor %.3f (%.3f measured when the floor was set)", es, f.MinEditSimilarity, f.EditSimilarity)
	}
}

type heldoutCase struct {
	Prefix, Suffix, Middle, Kind string
}

// heldoutCases reads nLine line cases and nBlock block cases, spread
// evenly over the file.
func heldoutCases(t *testing.T, path string, nLine, nBlock int) []heldoutCase {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	byKind := map[string][]heldoutCase{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var c heldoutCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		byKind[c.Kind] = append(byKind[c.Kind], c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	var out []heldoutCase
	for kind, n := range map[string]int{"line": nLine, "block": nBlock} {
		all := byKind[kind]
		if len(all) < n {
			t.Fatalf("%s: %d %s cases, want %d", path, len(all), kind, n)
		}
		for i := range n {
			out = append(out, all[i*len(all)/n])
		}
	}
	return out
}

// editSim is 1 - Levenshtein distance / the longer length, over runes.
func editSim(a, b string) float64 {
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
