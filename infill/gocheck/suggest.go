package gocheck

import (
	"context"
	"math"
	"sort"
	"strings"

	"github.com/diffill/diffill/infill"
)

// Answer is one checked candidate for a span.
type Answer struct {
	Text    string
	Source  string // "model" (a decode), "copy" (the rest of a line of the file or package)
	Verdict Verdict
	// Model is the engine's confidence for a decode (geometric mean
	// probability of its tokens), 0 for a copy.
	Model float64
	// Votes is how many sources wrote this text (decodes, copied lines).
	Votes int
	// Score orders the candidates (see score).
	Score float64
	// Confidence is the calibrated estimate that the answer is what the
	// user wants (see confidence); 0 when it does not parse in place.
	Confidence float64
}

// SuggestOptions are the knobs of Suggest.
type SuggestOptions struct {
	// Decodes is how many decodes (at different lengths) the engine is
	// asked for. 0: 3.
	Decodes int
	// Copies is the most copied continuations offered. 0: 3; <0: none.
	Copies int
}

// Runner decodes requests (an *infill.Engine).
type Runner interface {
	Run(ctx context.Context, req *infill.Request) (*infill.Result, error)
}

// Suggest decodes req (one span, at d's span), adds the copied
// continuations of the line being typed, checks every candidate in place
// and returns them best first: those that parse, then those whose names
// resolve, then the highest score. req.Params.Candidates is overridden.
func Suggest(ctx context.Context, eng Runner, req *infill.Request, d Doc, o SuggestOptions) ([]Answer, error) {
	if o.Decodes <= 0 {
		o.Decodes = 3
	}
	if o.Copies == 0 {
		o.Copies = 3
	}
	r := *req
	r.Params.Candidates = o.Decodes
	res, err := eng.Run(ctx, &r)
	if err != nil {
		return nil, err
	}
	c := New(d)
	var out []Answer
	at := map[string]int{} // text -> index in out
	add := func(text, source string, model float64) {
		if strings.TrimSpace(text) == "" {
			return
		}
		if i, ok := at[text]; ok {
			// A copy that a decode also wrote has both votes.
			if source == "copy" && out[i].Source == "model" {
				out[i].Source = "copy+model"
			}
			out[i].Votes++
			return
		}
		at[text] = len(out)
		out = append(out, Answer{Text: text, Source: source, Model: model, Votes: 1, Verdict: c.CheckSyntax(text)})
	}
	for _, cand := range res.Candidates {
		if len(cand.Edits) == 1 {
			add(cand.Edits[0].NewText, "model", cand.Confidence)
		}
	}
	// A decode that does not parse may have a beginning that does (the
	// model went on past the end of the answer): its longest such prefix
	// is a candidate too.
	for i, n := 0, len(out); i < n; i++ {
		if !out[i].Verdict.Parses {
			if t := c.ParsingPrefix(out[i].Text); t != "" {
				add(t, "trim", out[i].Model)
			}
		}
	}
	if o.Copies > 0 {
		for _, t := range CopyLines(d, o.Copies) {
			add(t, "copy", 0)
		}
	}
	ls := strings.LastIndexByte(d.Text[:d.Start], '\n') + 1
	typed := strings.TrimSpace(d.Text[ls:d.Start]) != ""
	order := func() {
		for i := range out {
			out[i].Score = score(out[i])
			out[i].Confidence = confidence(out[i], typed)
		}
		sort.SliceStable(out, func(i, j int) bool {
			a, b := out[i], out[j]
			if ra, rb := rank(a.Verdict), rank(b.Verdict); ra != rb {
				return ra < rb
			}
			return a.Score > b.Score
		})
	}
	order()
	// Type-check best first, until one passes: the rest cannot overtake it.
	for i := range out {
		if !out[i].Verdict.Parses || out[i].Verdict.Repeats != "" || out[i].Verdict.DupSuffix {
			break
		}
		c.CheckTypes(out[i].Text, &out[i].Verdict)
		if out[i].Verdict.OK() {
			break
		}
	}
	order()
	return out, nil
}

// rank orders verdicts: all checks passed, then names that do not resolve
// or type errors, then repetition, then parse failures.
func rank(v Verdict) int {
	switch {
	case !v.Parses:
		return 3
	case v.Repeats != "" || v.DupSuffix:
		return 2
	case len(v.Unresolved) > 0 || len(v.TypeErrors) > 0:
		return 1
	}
	return 0
}

// score orders the candidates of one request: the model's confidence,
// or a fixed weight for a copy, lowered by failed checks. (A logistic fit
// over every candidate ranked worse on the dev set: 16.3% exact at the top
// against 17.2%, seed 7.)
func score(a Answer) float64 {
	if !a.Verdict.Parses {
		return 0
	}
	var p float64
	switch a.Source {
	case "copy+model":
		p = 0.55
	case "copy":
		p = 0.3
	case "trim":
		p = a.Model * 0.25
	default:
		p = a.Model * 0.5
	}
	if len(a.Verdict.Unresolved) > 0 || len(a.Verdict.TypeErrors) > 0 {
		p *= 0.3
	}
	if a.Verdict.Repeats != "" || a.Verdict.DupSuffix {
		p *= 0.1
	}
	return p
}

// confidence is the calibrated probability that an answer is exactly
// what the user wants: a logistic model over its source, the model's
// confidence, the checks, its length and whether the line has text before
// the span, fitted on the best answers of 240 dev-set cases (diffill eval
// --workspace zap, gonum, tensor, protobuf --cases 80 --seed 7 --snippets
// copy --go --go-decodes 1 --go-features; the figures are checked on the
// default seed's cases). An answer that fails the parse check is never
// right in place: 0.
func confidence(a Answer, typed bool) float64 {
	if !a.Verdict.Parses {
		return 0
	}
	z := 0.908
	switch a.Source {
	case "copy":
		z += 0.245
	case "copy+model":
		z += 0.681
	case "trim":
		z -= 0.659
	}
	if a.Source != "copy" {
		z += 1.300 * math.Log(max(a.Model, 1e-3))
	}
	if len(a.Verdict.Unresolved) > 0 {
		z -= 0.942
	}
	if len(a.Verdict.TypeErrors) > 0 {
		z -= 0.826
	}
	if a.Verdict.Repeats != "" || a.Verdict.DupSuffix {
		z -= 0.041
	}
	z -= 0.709 * math.Log(1+float64(len(a.Text)))
	if strings.Contains(a.Text, "\n") {
		z += 0.061
	}
	if typed {
		z += 0.357
	}
	return 1 / (1 + math.Exp(-z))
}

// CopyLines returns up to n continuations of the line being typed copied
// from elsewhere: the rest of each line of the document (nearest the span
// first), then of the package's other files, that starts with what the
// line has before the span (its indentation aside). None when the line is
// blank before the span.
func CopyLines(d Doc, n int) []string {
	ls := strings.LastIndexByte(d.Text[:d.Start], '\n') + 1
	typed := strings.TrimLeft(d.Text[ls:d.Start], " \t")
	if strings.TrimSpace(typed) == "" || strings.ContainsRune(d.Text[ls:d.Start], '\n') {
		return nil
	}
	type hit struct {
		rest string
		dist int
	}
	var hits []hit
	scan := func(text string, at int, far int) {
		// Each occurrence of the typed text that starts a line (after its
		// indentation), found with strings.Index rather than line by line.
		for from := 0; ; {
			i := strings.Index(text[from:], typed)
			if i < 0 {
				return
			}
			i += from
			from = i + 1
			lineStart := i
			for lineStart > 0 && (text[lineStart-1] == ' ' || text[lineStart-1] == '\t') {
				lineStart--
			}
			if lineStart > 0 && text[lineStart-1] != '\n' || at >= 0 && lineStart == ls {
				continue
			}
			e := strings.IndexByte(text[i:], '\n')
			if e < 0 {
				e = len(text) - i
			}
			rest := strings.TrimRight(text[i+len(typed):i+e], " \t\r")
			if rest == "" {
				continue
			}
			dist := far
			if at >= 0 {
				dist = abs(i - at)
			}
			hits = append(hits, hit{rest, dist})
		}
	}
	scan(d.Text, ls, 0)
	if d.Pkg != nil {
		for _, f := range d.Pkg.Files {
			if f.Text != "" && !samePath(f.Path, d.Path) {
				scan(f.Text, -1, 1<<30)
			}
		}
	}
	sort.SliceStable(hits, func(i, j int) bool { return hits[i].dist < hits[j].dist })
	var out []string
	seen := map[string]bool{}
	for _, h := range hits {
		if h.rest != "" && !seen[h.rest] {
			seen[h.rest] = true
			out = append(out, h.rest)
			if len(out) == n {
				break
			}
		}
	}
	return out
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
