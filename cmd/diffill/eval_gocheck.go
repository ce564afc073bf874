package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/diffill/diffill/infill/gocheck"
	"github.com/diffill/diffill/infill/workspace"
)

// caseDoc is a case's document for the Go checks: its text with the span
// at at, and its package as loaded (nil without a path).
func caseDoc(ctx context.Context, sess *workspace.Session, c *evalCase, text string, at int) gocheck.Doc {
	d := gocheck.Doc{Path: c.Path, Text: text, Start: at, End: at}
	if c.Path != "" {
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		d.Pkg = sess.For(c.Path).Wait(wctx, c.Path)
		cancel()
	}
	return d
}

// checkStat is one run's answers under the Go checks, per kind.
type checkStat struct {
	Name  string                `json:"name"`
	Kinds map[string]*kindCheck `json:"kinds"`
	// Shown is, for Go-aware runs, what ghost text would show at each
	// confidence threshold, as the server gates it: every Go check passed; for the
	// others, every non-empty answer.
	Shown []shownStat `json:"shown"`
}

type kindCheck struct {
	N         int     `json:"n"`
	Parse     float64 `json:"parse"`      // share of answers that parse in place
	TypeCheck float64 `json:"type_check"` // share that parse and whose names resolve, no type errors
	Clean     float64 `json:"clean"`      // share that pass every check
	// TrueParse and TrueTypeCheck are the same for the true middles.
	TrueParse     float64 `json:"true_parse"`
	TrueTypeCheck float64 `json:"true_type_check"`
	// Sources counts the Go-aware run's answers by source.
	Sources map[string]int `json:"sources,omitempty"`
}

type shownStat struct {
	Threshold float64 `json:"threshold"`
	Coverage  float64 `json:"coverage"`  // share of cases that show an answer
	Precision float64 `json:"precision"` // exact match among those shown
	Parse     float64 `json:"parse"`     // share of shown answers that parse
	TypeCheck float64 `json:"type_check"`
}

// shownThresholds are the ghost-text thresholds reported.
var shownThresholds = []float64{0, 0.04, 0.05, 0.06, 0.07, 0.08, 0.1, 0.15, 0.2, 0.3}

// checkRuns runs the Go checks on every run's answer and on the true
// middle of each case with a path.
func checkRuns(ctx context.Context, sess *workspace.Session, cs []*evalCase, runs []*evalScore) []*checkStat {
	type caseCheck struct {
		c    *gocheck.Checker
		kind string
		ok   bool
	}
	checks := make([]caseCheck, len(cs))
	truth := map[string]*kindCheck{}
	for i, c := range cs {
		if c.Path == "" {
			continue
		}
		d := caseDoc(ctx, sess, c, c.Prefix+c.Suffix, len(c.Prefix))
		checks[i] = caseCheck{c: gocheck.New(d), kind: c.kind(), ok: true}
		v := checks[i].c.Check(c.Middle)
		for _, k := range []string{"all", c.kind()} {
			st := truth[k]
			if st == nil {
				st = &kindCheck{}
				truth[k] = st
			}
			st.N++
			st.TrueParse += b2f(v.Parses)
			st.TrueTypeCheck += b2f(v.Parses && len(v.Unresolved) == 0 && len(v.TypeErrors) == 0)
		}
	}
	var out []*checkStat
	for _, r := range runs {
		cst := &checkStat{Name: r.Name, Kinds: map[string]*kindCheck{}}
		verdicts := make([]gocheck.Verdict, len(cs))
		for i := range cs {
			if !checks[i].ok {
				continue
			}
			v := checks[i].c.Check(r.answers[i])
			verdicts[i] = v
			for _, k := range []string{"all", checks[i].kind} {
				st := cst.Kinds[k]
				if st == nil {
					st = &kindCheck{N: 0, Sources: map[string]int{}}
					cst.Kinds[k] = st
				}
				st.N++
				st.Parse += b2f(v.Parses)
				st.TypeCheck += b2f(v.Parses && len(v.Unresolved) == 0 && len(v.TypeErrors) == 0)
				st.Clean += b2f(v.OK())
				if r.goaware {
					st.Sources[r.sources[i]]++
				}
			}
		}
		for k, st := range cst.Kinds {
			if st.N > 0 {
				st.Parse /= float64(st.N)
				st.TypeCheck /= float64(st.N)
				st.Clean /= float64(st.N)
				st.TrueParse = truth[k].TrueParse / float64(truth[k].N)
				st.TrueTypeCheck = truth[k].TrueTypeCheck / float64(truth[k].N)
			}
		}
		ths := []float64{0}
		if r.goaware {
			ths = shownThresholds
		}
		for _, th := range ths {
			var n, shown, exact, parse, tc int
			for i := range cs {
				if !checks[i].ok {
					continue
				}
				n++
				v := verdicts[i]
				if strings.TrimSpace(r.answers[i]) == "" || r.goaware && (!v.OK() || r.confs[i] <= 0 || r.confs[i] < th) {
					continue
				}
				shown++
				exact += b2i(r.exact[i])
				parse += b2i(v.Parses)
				tc += b2i(v.Parses && len(v.Unresolved) == 0 && len(v.TypeErrors) == 0)
			}
			s := shownStat{Threshold: th}
			if n > 0 {
				s.Coverage = float64(shown) / float64(n)
			}
			if shown > 0 {
				s.Precision = float64(exact) / float64(shown)
				s.Parse = float64(parse) / float64(shown)
				s.TypeCheck = float64(tc) / float64(shown)
			}
			cst.Shown = append(cst.Shown, s)
		}
		out = append(out, cst)
	}
	return out
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (r *evalReport) printChecks(w io.Writer) {
	if len(r.Checks) == 0 {
		return
	}
	fmt.Fprintf(w, "\nGo checks of the answers in place (parse / type-check / all checks %%; the true middles: parse / type-check)\n")
	var kinds []string
	for k := range r.Checks[0].Kinds {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool { return kinds[i] == "all" || kinds[j] != "all" && kinds[i] < kinds[j] })
	for _, k := range kinds {
		fmt.Fprintf(w, "%-8s", k)
		for _, c := range r.Checks {
			if st := c.Kinds[k]; st != nil {
				fmt.Fprintf(w, "  %s %5.1f / %5.1f / %5.1f", c.Name, 100*st.Parse, 100*st.TypeCheck, 100*st.Clean)
			}
		}
		if st := r.Checks[0].Kinds[k]; st != nil {
			fmt.Fprintf(w, "  true %5.1f / %5.1f", 100*st.TrueParse, 100*st.TrueTypeCheck)
		}
		fmt.Fprintln(w)
	}
	for _, c := range r.Checks {
		if st := c.Kinds["all"]; st != nil && len(st.Sources) > 0 {
			fmt.Fprintf(w, "%s answers by source: %v\n", c.Name, st.Sources)
		}
	}
	fmt.Fprintf(w, "\nghost text shown (threshold: coverage %% / exact-match precision %% / parse %% / type-check %% of shown)\n")
	for _, c := range r.Checks {
		for _, s := range c.Shown {
			fmt.Fprintf(w, "%-6s %.2f: %5.1f / %5.1f / %5.1f / %5.1f\n", c.Name, s.Threshold, 100*s.Coverage, 100*s.Precision, 100*s.Parse, 100*s.TypeCheck)
		}
	}
}

// candidateFeatures is one candidate of a case, for calibration.
type candidateFeatures struct {
	Case       string  `json:"case"`
	Kind       string  `json:"kind"`
	Rank       int     `json:"rank"`
	Source     string  `json:"source"`
	Model      float64 `json:"model"`
	Confidence float64 `json:"confidence"`
	Parses     bool    `json:"parses"`
	Unresolved int     `json:"unresolved"`
	TypeErrors int     `json:"type_errors"`
	Repeats    bool    `json:"repeats"`
	DupSuffix  bool    `json:"dup_suffix"`
	Bytes      int     `json:"bytes"`
	Lines      int     `json:"lines"`
	Exact      bool    `json:"exact"`
	Votes      int     `json:"votes"`
	Cursor     bool    `json:"cursor"` // text before the span on its line
}

// writeFeatures writes each of a case's candidates with every check run
// (Suggest type-checks only until one passes).
func writeFeatures(enc *json.Encoder, c *evalCase, d gocheck.Doc, as []gocheck.Answer) {
	ch := gocheck.New(d)
	for i, a := range as {
		v := a.Verdict
		if !v.Typed {
			ch.CheckTypes(a.Text, &v)
		}
		enc.Encode(candidateFeatures{
			Case: c.Path + ":" + strconv.Itoa(len(c.Prefix)), Kind: c.kind(), Rank: i, Source: a.Source, Model: a.Model,
			Confidence: a.Confidence, Parses: v.Parses, Unresolved: len(v.Unresolved), TypeErrors: len(v.TypeErrors),
			Repeats: v.Repeats != "", DupSuffix: v.DupSuffix, Bytes: len(a.Text), Lines: strings.Count(a.Text, "\n") + 1,
			Exact: normalize(a.Text) == normalize(c.Middle), Votes: a.Votes,
			Cursor: strings.TrimSpace(c.Prefix[strings.LastIndexByte(c.Prefix, '\n')+1:]) != "",
		})
	}
}
