package infill

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/diffill/diffill/model"
	"github.com/diffill/diffill/model/tokenizer"
)

// The tiny checkpoints of package model: random weights in the real
// published layouts, so outputs are arbitrary but deterministic. The tests
// check the engine's contracts, not the quality of its answers.
type tiny struct {
	name string
	m    *model.Model
	tok  *tokenizer.Tokenizer
}

var (
	tinyOnce   sync.Once
	tinyModels map[string]*tiny
	tinyErr    error
)

func loadTiny(t testing.TB, name string) *tiny {
	t.Helper()
	tinyOnce.Do(func() {
		tinyModels = map[string]*tiny{}
		for _, n := range []string{"qwen2-tiny", "llada-tiny"} {
			dir := filepath.Join("..", "model", "testdata", n)
			m, err := model.Load(dir)
			if err != nil {
				tinyErr = err
				return
			}
			tok, err := tokenizer.Load(dir)
			if err != nil {
				tinyErr = err
				return
			}
			tinyModels[n] = &tiny{n, m, tok}
		}
		// The same Qwen2 weights read as a Dream-family model: logits at
		// i predict token i+1. The forward pass is the same; only the
		// engine's reading of it changes.
		dir := filepath.Join("..", "model", "testdata", "qwen2-tiny")
		m, err := model.Load(dir)
		if err != nil {
			tinyErr = err
			return
		}
		m.Config.ShiftLogits = true
		tinyModels["qwen2-tiny-shift"] = &tiny{"qwen2-tiny-shift", m, tinyModels["qwen2-tiny"].tok}
	})
	if tinyErr != nil {
		t.Fatalf("loading tiny checkpoints: %v", tinyErr)
	}
	return tinyModels[name]
}

var allTiny = []string{"qwen2-tiny", "llada-tiny", "qwen2-tiny-shift"}

const goDoc = `package main

import "fmt"

// Sum adds up xs.
func Sum(xs []int) int {
	total := 0
	for _, x := range xs {
		total += x
	}
	return total
}

func main() {
	fmt.Println(Sum([]int{1, 2, 3}))
}
`

// point returns the offset just after the first occurrence of s in goDoc.
func point(t testing.TB, s string) int {
	i := strings.Index(goDoc, s)
	if i < 0 {
		t.Fatalf("%q not in the document", s)
	}
	return i + len(s)
}

func rangeOf(t testing.TB, s string) Span {
	i := strings.Index(goDoc, s)
	if i < 0 {
		t.Fatalf("%q not in the document", s)
	}
	return Span{i, i + len(s)}
}

// checkEdits checks what every answer must satisfy: one edit per span, at
// the span, and text outside the spans untouched.
func checkEdits(t *testing.T, req *Request, res *Result, spans []Span) {
	t.Helper()
	if len(res.Candidates) == 0 {
		t.Fatal("no candidates")
	}
	for _, c := range res.Candidates {
		if len(c.Edits) != len(spans) {
			t.Fatalf("%d edits for %d spans", len(c.Edits), len(spans))
		}
		if c.Confidence <= 0 || c.Confidence > 1 {
			t.Fatalf("confidence %v outside (0, 1]", c.Confidence)
		}
		out := Apply(req.Text, c.Edits)
		last, pos := 0, 0
		for i, e := range c.Edits {
			if e.Start != spans[i].Start || e.End != spans[i].End {
				t.Fatalf("edit %d at [%d, %d), span at [%d, %d)", i, e.Start, e.End, spans[i].Start, spans[i].End)
			}
			keep := req.Text[last:e.Start]
			if out[pos:pos+len(keep)] != keep {
				t.Fatalf("text before span %d changed", i)
			}
			pos += len(keep) + len(e.NewText)
			last = e.End
			if strings.Contains(e.NewText, "<|mask|>") || strings.Contains(e.NewText, "<|pad|>") {
				t.Fatalf("special token text in answer %q", e.NewText)
			}
		}
		if out[pos:] != req.Text[last:] {
			t.Fatal("text after the last span changed")
		}
	}
}

func holesDoc() (string, []Span) {
	doc := strings.Replace(goDoc, "total := 0", "total := ???", 1)
	doc = strings.Replace(doc, "return total", "return ???", 1)
	var spans []Span
	for i := 0; ; {
		j := strings.Index(doc[i:], "???")
		if j < 0 {
			break
		}
		spans = append(spans, Span{i + j, i + j + 3})
		i += j + 3
	}
	return doc, spans
}

// requests returns one request per mode, and the spans each edits.
func requests(t *testing.T) map[string]struct {
	req   Request
	spans []Span
} {
	holes, holeSpans := holesDoc()
	p := DefaultParams()
	p.MaxTokens = 6
	at := point(t, "total += ")
	rw := rangeOf(t, "total += x")
	return map[string]struct {
		req   Request
		spans []Span
	}{
		"complete":  {Request{Text: goDoc, Spans: []Span{{at, at}}, Mode: ModeComplete, Params: p}, []Span{{at, at}}},
		"infill":    {Request{Text: goDoc, Spans: []Span{rw}, Mode: ModeInfill, Params: p}, []Span{rw}},
		"rewrite":   {Request{Text: goDoc, Spans: []Span{rw}, Mode: ModeRewrite, Params: p}, []Span{rw}},
		"holes":     {Request{Text: holes, Mode: ModeFillHoles, Params: p}, holeSpans},
		"two-spans": {Request{Text: goDoc, Spans: []Span{rangeOf(t, "Sum(xs []int)"), {at, at}}, Mode: ModeInfill, Params: p}, []Span{rangeOf(t, "Sum(xs []int)"), {at, at}}},
	}
}

func TestModesOnTinyCheckpoints(t *testing.T) {
	for _, name := range allTiny {
		tm := loadTiny(t, name)
		for mode, tc := range requests(t) {
			t.Run(name+"/"+mode, func(t *testing.T) {
				e := NewEngine(tm.m)
				req := tc.req
				res, err := e.Run(context.Background(), &req)
				if err != nil {
					t.Fatal(err)
				}
				checkEdits(t, &req, res, tc.spans)
				// Same seed, fresh engine: same answer.
				res2, err := NewEngine(tm.m, WithCache(false)).Run(context.Background(), &req)
				if err != nil {
					t.Fatal(err)
				}
				_ = res2
				res3, err := NewEngine(tm.m).Run(context.Background(), &req)
				if err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(res3) != fmt.Sprint(res) {
					t.Fatalf("not deterministic:\n%v\n%v", res, res3)
				}
				// Steps that recompute only masks and new tokens.
				req.Params.Recompute = "masks"
				res4, err := NewEngine(tm.m).Run(context.Background(), &req)
				if err != nil {
					t.Fatal(err)
				}
				checkEdits(t, &req, res4, tc.spans)
			})
		}
	}
}

// decodeOne runs a decoder directly, to look at its final canvas.
func decodeOne(t *testing.T, e *Engine, req *Request) *decoder {
	t.Helper()
	d := newDecoders(t, e, req)[0]
	if e.opt.cache {
		e.prime(d, nil)
	}
	if err := run(context.Background(), e.net, []*decoder{d}, nil); err != nil {
		t.Fatal(err)
	}
	return d
}

// newDecoders plans a request's decoders (one per length variant) without
// running them.
func newDecoders(t *testing.T, e *Engine, req *Request) []*decoder {
	t.Helper()
	p, err := resolveParams(req.Params)
	if err != nil {
		t.Fatal(err)
	}
	spans, mode, err := e.resolveSpans(req, p)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := e.makePlan(p, mode)
	if err != nil {
		t.Fatal(err)
	}
	base, err := e.layout(req.Text, spans, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e.variants(base, spans, p, pl)
}

func TestSamplersAndSchedules(t *testing.T) {
	tm := loadTiny(t, "llada-tiny")
	at := point(t, "total += ")
	for _, smp := range []string{"confidence", "margin", "entropy", "random"} {
		for _, sch := range []string{"fixed", "dream", "threshold"} {
			for _, steps := range []int{0, 3} {
				for _, temp := range []float64{0, 0.8} {
					name := fmt.Sprintf("%s/%s/steps%d/t%g", smp, sch, steps, temp)
					t.Run(name, func(t *testing.T) {
						p := DefaultParams()
						p.Sampler, p.Schedule, p.Steps, p.Temperature, p.MaxTokens = smp, sch, steps, temp, 8
						p.TopK = 50
						req := &Request{Text: goDoc, Spans: []Span{{at, at}}, Mode: ModeInfill, Params: p}
						var calls int
						req.OnStep = func(Step) { calls++ }
						e := NewEngine(tm.m)
						d := decodeOne(t, e, req)
						for pos, m := range d.masked {
							if m {
								t.Fatalf("mask left at %d", pos)
							}
						}
						if steps > 0 && d.steps > steps {
							t.Fatalf("%d steps, want at most %d", d.steps, steps)
						}
						if d.steps > 8 {
							t.Fatalf("%d steps for 8 masks", d.steps)
						}
						res, err := e.Run(context.Background(), req)
						if err != nil {
							t.Fatal(err)
						}
						checkEdits(t, req, res, []Span{{at, at}})
					})
				}
			}
		}
	}
}

func TestSeedDeterminism(t *testing.T) {
	tm := loadTiny(t, "qwen2-tiny")
	at := point(t, "total += ")
	run := func(seed uint64) string {
		p := DefaultParams()
		p.Temperature, p.Seed, p.MaxTokens = 1.5, seed, 12
		req := &Request{Text: goDoc, Spans: []Span{{at, at}}, Mode: ModeInfill, Params: p}
		res, err := NewEngine(tm.m).Run(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		return res.Candidates[0].Edits[0].NewText
	}
	a, b := run(1), run(1)
	if a != b {
		t.Fatalf("seed 1 gave %q then %q", a, b)
	}
	differ := false
	for s := uint64(2); s < 8 && !differ; s++ {
		differ = run(s) != a
	}
	if !differ {
		t.Fatal("seeds 1..7 all gave the same sample at temperature 1.5")
	}
}

func TestStreaming(t *testing.T) {
	for _, name := range allTiny {
		tm := loadTiny(t, name)
		holes, spans := holesDoc()
		p := DefaultParams()
		p.MaxTokens, p.Schedule, p.Steps = 6, "fixed", 4
		var steps []Step
		req := &Request{Text: holes, Mode: ModeFillHoles, Params: p, OnStep: func(s Step) { steps = append(steps, s) }}
		if _, err := NewEngine(tm.m).Run(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		if len(steps) != 4 {
			t.Fatalf("%s: %d steps reported, want 4", name, len(steps))
		}
		for i, s := range steps {
			if s.Done != i+1 || s.Total != 4 || len(s.Texts) != len(spans) {
				t.Fatalf("%s: step %d: %+v", name, i, s)
			}
		}
	}
}

// slowNetwork delays every pass, so that a test can cancel mid-decode.
type slowNetwork struct {
	network
	delay time.Duration
}

func (s slowNetwork) forward(ctx context.Context, ps []*pass) ([][]float32, error) {
	time.Sleep(s.delay)
	return s.network.forward(ctx, ps)
}

func TestCancelWithinAStep(t *testing.T) {
	tm := loadTiny(t, "qwen2-tiny")
	before := runtime.NumGoroutine()
	at := point(t, "total += ")
	p := DefaultParams()
	p.MaxTokens, p.Schedule = 16, "fixed"
	e := NewEngine(tm.m)
	ctx, cancel := context.WithCancel(context.Background())
	stepsAfter := 0
	cancelled := false
	req := &Request{Text: goDoc, Spans: []Span{{at, at}}, Mode: ModeInfill, Params: p, OnStep: func(s Step) {
		if cancelled {
			stepsAfter++
		}
		if s.Done == 3 {
			cancel()
			cancelled = true
		}
	}}
	_, err := e.Run(ctx, req)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run after cancel: %v, want context.Canceled", err)
	}
	if stepsAfter != 0 {
		t.Fatalf("%d steps ran after the cancel", stepsAfter)
	}
	// Cancel from another goroutine while a pass runs.
	e2 := newEngine(slowNetwork{modelNetwork{tm.m}, 20 * time.Millisecond}, tm.tok, false)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	req.OnStep = nil
	start := time.Now()
	if _, err := e2.Run(ctx2, req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run past deadline: %v", err)
	}
	_ = start
	// The engine still works after a cancelled run.
	req.OnStep = nil
	if _, err := e.Run(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines before, %d after", before, n)
	}
}

// sameResult compares answers exactly and confidences to float32
// rounding: a pass over fewer rows may sum in another order.
func sameResult(a, b *Result) bool {
	if len(a.Candidates) != len(b.Candidates) {
		return false
	}
	for i, c := range a.Candidates {
		d := b.Candidates[i]
		if fmt.Sprint(c.Edits) != fmt.Sprint(d.Edits) || math.Abs(c.Confidence-d.Confidence) > 1e-5*c.Confidence {
			return false
		}
	}
	return true
}

// countingNetwork counts the positions the model computes.
type countingNetwork struct {
	network
	computed *int
}

func (c countingNetwork) forward(ctx context.Context, ps []*pass) ([][]float32, error) {
	for _, p := range ps {
		if p.compute == nil {
			*c.computed += len(p.tokens)
		} else {
			*c.computed += len(p.compute)
		}
	}
	return c.network.forward(ctx, ps)
}

func TestCacheMatchesNoCache(t *testing.T) {
	for _, name := range allTiny {
		tm := loadTiny(t, name)
		for mode, tc := range requests(t) {
			req := tc.req
			// One step: the first pass is the whole canvas either way.
			req.Params.Steps = 1
			a, err := NewEngine(tm.m, WithCache(false)).Run(context.Background(), &req)
			if err != nil {
				t.Fatal(err)
			}
			b, err := NewEngine(tm.m).Run(context.Background(), &req)
			if err != nil {
				t.Fatal(err)
			}
			// (Rewrite scores the existing tokens first: its one denoising
			// step then reads context computed with them, by design.)
			if mode != "rewrite" && !sameResult(a, b) {
				t.Fatalf("%s/%s: cache changed a one-step answer:\n%v\n%v", name, mode, a, b)
			}
			// The same request again on a warm engine: nothing changed,
			// so the reused cache gives the same answer as the cold run,
			// for much less work.
			req.Params.Steps = 0
			var n int
			e := newEngine(countingNetwork{modelNetwork{tm.m}, &n}, tm.tok, tm.m.Config.Family == model.LLaDA)
			cold, err := e.Run(context.Background(), &req)
			if err != nil {
				t.Fatal(err)
			}
			coldN := n
			n = 0
			warm, err := e.Run(context.Background(), &req)
			if err != nil {
				t.Fatal(err)
			}
			if !sameResult(cold, warm) {
				t.Fatalf("%s/%s: warm answer differs:\n%v\n%v", name, mode, cold, warm)
			}
			if n >= coldN {
				t.Fatalf("%s/%s: warm run computed %d positions, cold %d", name, mode, n, coldN)
			}
		}
	}
}

func TestReuseAfterKeystroke(t *testing.T) {
	tm := loadTiny(t, "qwen2-tiny")
	var n int
	e := newEngine(countingNetwork{modelNetwork{tm.m}, &n}, tm.tok, false)
	at := point(t, "total += ")
	p := DefaultParams()
	p.MaxTokens = 8
	req := &Request{Text: goDoc, Spans: []Span{{at, at}}, Mode: ModeComplete, Params: p}
	if _, err := e.Run(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	// Type "x" at the cursor: the text after it moves by one byte.
	typed := goDoc[:at] + "x" + goDoc[at:]
	n = 0
	req2 := &Request{Text: typed, Spans: []Span{{at + 1, at + 1}}, Mode: ModeComplete, Params: p}
	res, err := e.Run(context.Background(), req2)
	if err != nil {
		t.Fatal(err)
	}
	checkEdits(t, req2, res, []Span{{at + 1, at + 1}})
	warm := n
	n = 0
	e.Reset()
	if _, err := e.Run(context.Background(), req2); err != nil {
		t.Fatal(err)
	}
	if warm >= n {
		t.Fatalf("after a keystroke the engine computed %d positions, %d from scratch", warm, n)
	}
	// An edit before the window start changes everything: no reuse, and
	// still a valid answer.
	other := "// a new first line\n" + typed
	req3 := &Request{Text: other, Spans: []Span{{at + 1 + 20, at + 1 + 20}}, Mode: ModeComplete, Params: p}
	res, err = e.Run(context.Background(), req3)
	if err != nil {
		t.Fatal(err)
	}
	checkEdits(t, req3, res, req3.Spans)
}

func TestRewriteStrengthOneIsInfill(t *testing.T) {
	for _, name := range allTiny {
		tm := loadTiny(t, name)
		sp := rangeOf(t, "total += x")
		p := DefaultParams()
		p.Strength = 1
		a, err := NewEngine(tm.m).Run(context.Background(), &Request{Text: goDoc, Spans: []Span{sp}, Mode: ModeRewrite, Params: p})
		if err != nil {
			t.Fatal(err)
		}
		b, err := NewEngine(tm.m).Run(context.Background(), &Request{Text: goDoc, Spans: []Span{sp}, Mode: ModeInfill, Params: p})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("%s: rewrite at strength 1 %v, infill %v", name, a, b)
		}
	}
}

func TestRewriteKeepsUnmaskedTokens(t *testing.T) {
	tm := loadTiny(t, "llada-tiny")
	sp := rangeOf(t, "for _, x := range xs {\n\t\ttotal += x\n\t}")
	p := DefaultParams()
	p.Strength = 0.25
	e := NewEngine(tm.m)
	req := &Request{Text: goDoc, Spans: []Span{sp}, Mode: ModeRewrite, Params: p}
	d := decodeOne(t, e, req)
	orig := tm.tok.EncodeOrdinary(goDoc[sp.Start:sp.End])
	s := d.spans[0]
	if s.n != len(orig) {
		t.Fatalf("rewrite changed the length: %d tokens, had %d", s.n, len(orig))
	}
	same := 0
	for i, id := range orig {
		if d.tokens[s.pos+i] == id {
			same++
		}
	}
	remask := (len(orig) + 3) / 4
	if same < len(orig)-remask {
		t.Fatalf("%d of %d tokens kept, want at least %d", same, len(orig), len(orig)-remask)
	}
}

// padLovingNetwork raises the pad logit everywhere: a model eager to end
// every span at once, as the experiment in issue 3 was.
type padLovingNetwork struct {
	network
	pad   int32
	boost float32
}

func (n padLovingNetwork) forward(ctx context.Context, ps []*pass) ([][]float32, error) {
	out, err := n.network.forward(ctx, ps)
	if err != nil {
		return nil, err
	}
	v := n.info().vocab
	for _, rows := range out {
		for r := 0; r < len(rows)/v; r++ {
			rows[r*v+int(n.pad)] += n.boost
		}
	}
	return out, nil
}

func TestLengthPolicies(t *testing.T) {
	tm := loadTiny(t, "qwen2-tiny")
	at := point(t, "total += ")
	for _, boost := range []float32{0, 4} {
		for _, pol := range []string{"pad", "fixed", "multi"} {
			p := DefaultParams()
			p.Length, p.MaxTokens = pol, 10
			req := &Request{Text: goDoc, Spans: []Span{{at, at}}, Mode: ModeInfill, Params: p}
			net := padLovingNetwork{modelNetwork{tm.m}, tm.m.Config.PadID, boost}
			e := newEngine(net, tm.tok, false)
			decs := newDecoders(t, e, req)
			if pol == "multi" && len(decs) < 2 {
				t.Fatalf("multi: %d decoders", len(decs))
			}
			// After every step, in every span: no content after an end,
			// so a span only ever ends from the right.
			check := func(d *decoder) {
				for _, s := range d.spans {
					ended := false
					for q := s.pos; q < s.pos+s.n; q++ {
						end := !d.masked[q] && d.isEnd(d.tokens[q])
						if pol == "fixed" && end {
							t.Fatalf("fixed: end token at %d", q-s.pos)
						}
						if ended && !end {
							t.Fatalf("%s boost %g step %d: %v after an end at %d", pol, boost, d.steps, d.tokens[s.pos:s.pos+s.n], q-s.pos)
						}
						ended = ended || end
					}
				}
			}
			for _, d := range decs {
				d.cache = e.net.newCache(len(d.tokens))
			}
			watch := func(*decoder) {
				for _, d := range decs {
					check(d)
				}
			}
			if err := run(context.Background(), e.net, decs, watch); err != nil {
				t.Fatal(err)
			}
			watch(nil)
			res, err := e.Run(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			checkEdits(t, req, res, req.Spans)
		}
	}
}

func TestExpandPolicy(t *testing.T) {
	tm := loadTiny(t, "qwen2-tiny")
	// Read the tiny model as a DreamOn-style model whose expand token is
	// some ordinary token the random weights often predict.
	m2, err := model.Load(filepath.Join("..", "model", "testdata", "qwen2-tiny"))
	if err != nil {
		t.Fatal(err)
	}
	at := point(t, "total += ")
	counts := map[int32]int{}
	{
		p := DefaultParams()
		p.Length, p.MaxTokens = "fixed", 16
		d := decodeOne(t, NewEngine(tm.m), &Request{Text: goDoc, Spans: []Span{{at, at}}, Mode: ModeInfill, Params: p})
		for q := d.spans[0].pos; q < d.spans[0].pos+d.spans[0].n; q++ {
			counts[d.tokens[q]]++
		}
	}
	var frequent int32 = -1
	for id, c := range counts {
		if frequent < 0 || c > counts[frequent] || c == counts[frequent] && id < frequent {
			frequent = id
		}
	}
	m2.Config.ExpandID = frequent
	for _, cap := range []int{4, 40} {
		p := DefaultParams()
		p.MaxTokens = cap // auto picks expand for a model with an expand token
		req := &Request{Text: goDoc, Spans: []Span{{at, at}}, Mode: ModeInfill, Params: p}
		e := NewEngine(m2)
		d := decodeOne(t, e, req)
		s := d.spans[0]
		if s.n > cap {
			t.Fatalf("cap %d: span grew to %d", cap, s.n)
		}
		if cap == 40 && d.grown == 0 {
			t.Fatal("the span never grew")
		}
		for q := s.pos; q < s.pos+s.n; q++ {
			if d.masked[q] || d.tokens[q] == frequent || d.isEnd(d.tokens[q]) {
				t.Fatalf("cap %d: token %d left at %d", cap, d.tokens[q], q-s.pos)
			}
		}
		res, err := e.Run(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		checkEdits(t, req, res, req.Spans)
	}
}

func TestCandidatesDistinct(t *testing.T) {
	tm := loadTiny(t, "llada-tiny")
	at := point(t, "total += ")
	for _, temp := range []float64{0, 1} {
		p := DefaultParams()
		p.Candidates, p.Temperature, p.MaxTokens = 3, temp, 12
		req := &Request{Text: goDoc, Spans: []Span{{at, at}}, Mode: ModeInfill, Params: p}
		res, err := NewEngine(tm.m).Run(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		checkEdits(t, req, res, req.Spans)
		if len(res.Candidates) > 3 {
			t.Fatalf("%d candidates, asked 3", len(res.Candidates))
		}
		seen := map[string]bool{}
		for i, c := range res.Candidates {
			if seen[c.Edits[0].NewText] {
				t.Fatalf("duplicate candidate %q", c.Edits[0].NewText)
			}
			seen[c.Edits[0].NewText] = true
			if i > 0 && c.Confidence > res.Candidates[i-1].Confidence {
				t.Fatal("candidates not sorted by confidence")
			}
		}
	}
}

func TestBlocks(t *testing.T) {
	for _, name := range allTiny {
		tm := loadTiny(t, name)
		holes, spans := holesDoc()
		p := DefaultParams()
		p.MaxTokens, p.BlockSize, p.Schedule, p.Steps = 12, 4, "fixed", 6
		var steps int
		req := &Request{Text: holes, Mode: ModeFillHoles, Params: p, OnStep: func(Step) { steps++ }}
		res, err := NewEngine(tm.m).Run(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		checkEdits(t, req, res, spans)
		if steps != 6 {
			t.Fatalf("%s: %d steps for 3 blocks of 2 steps", name, steps)
		}
	}
}

func TestBadRequests(t *testing.T) {
	tm := loadTiny(t, "qwen2-tiny")
	e := NewEngine(tm.m)
	for name, req := range map[string]*Request{
		"no spans":        {Text: goDoc, Mode: ModeInfill},
		"out of range":    {Text: "abc", Spans: []Span{{2, 9}}, Mode: ModeInfill},
		"overlap":         {Text: goDoc, Spans: []Span{{5, 9}, {7, 12}}, Mode: ModeInfill},
		"complete range":  {Text: goDoc, Spans: []Span{{5, 9}}, Mode: ModeComplete},
		"no holes":        {Text: goDoc, Mode: ModeFillHoles},
		"bad sampler":     {Text: goDoc, Spans: []Span{{5, 5}}, Mode: ModeInfill, Params: Params{Sampler: "best"}},
		"bad schedule":    {Text: goDoc, Spans: []Span{{5, 5}}, Mode: ModeInfill, Params: Params{Schedule: "fast"}},
		"expand no token": {Text: goDoc, Spans: []Span{{5, 5}}, Mode: ModeInfill, Params: Params{Length: "expand"}},
		"empty rewrite":   {Text: goDoc, Spans: []Span{{5, 5}}, Mode: ModeRewrite},
		"inside a rune":   {Text: "s := \"héllo\"", Spans: []Span{{8, 8}}, Mode: ModeComplete},
		"end in a rune":   {Text: "s := \"日本\"", Spans: []Span{{6, 10}}, Mode: ModeInfill},
		"bad end thresh":  {Text: goDoc, Spans: []Span{{5, 5}}, Mode: ModeInfill, Params: Params{EndThreshold: 1.5}},
	} {
		if _, err := e.Run(context.Background(), req); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	// On either side of a character, and anywhere in bytes that are not
	// UTF-8, a span is fine.
	for name, req := range map[string]*Request{
		"before a rune": {Text: "s := \"héllo\"", Spans: []Span{{7, 7}}, Mode: ModeComplete},
		"after a rune":  {Text: "s := \"héllo\"", Spans: []Span{{9, 9}}, Mode: ModeComplete},
		"invalid UTF-8": {Text: "s := \"\xe6\x97\"", Spans: []Span{{7, 8}}, Mode: ModeInfill},
	} {
		if _, err := e.Run(context.Background(), req); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestHealingPartialWord(t *testing.T) {
	for _, tc := range []struct{ before, want string }{
		{"\ttot", "tot"},
		{"x := fo", " fo"},
		{"x := 12", ""},
		{"f(", ""},
		{"a.b_c9", "b_c9"},
	} {
		if got := partialWord(tc.before); got != tc.want {
			t.Errorf("partialWord(%q) = %q, want %q", tc.before, got, tc.want)
		}
	}
	for _, name := range allTiny {
		tm := loadTiny(t, name)
		doc := strings.Replace(goDoc, "total += x", "tot", 1)
		at := strings.Index(doc, "\ttot\n") + len("\ttot")
		p := DefaultParams()
		p.MaxTokens = 8
		req := &Request{Text: doc, Spans: []Span{{at, at}}, Mode: ModeComplete, Params: p}
		e := NewEngine(tm.m)
		d := decodeOne(t, e, req)
		first := d.tokens[d.spans[0].pos]
		if b := string(tm.tok.TokenBytes(first)); !strings.HasPrefix(b, "tot") && !d.isEnd(first) {
			t.Fatalf("%s: first token %q does not continue \"tot\"", name, b)
		}
		// The canvas holds the document up to the word's start.
		pre := tm.tok.Decode(d.tokens[:d.spans[0].pos])
		if !strings.HasSuffix(pre, "\t") || strings.HasSuffix(pre, "tot") {
			t.Fatalf("%s: canvas prefix ends %q", name, pre[len(pre)-5:])
		}
		res, err := e.Run(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		checkEdits(t, req, res, req.Spans)
	}
}

// TestWindowStaysPut types a line at the cursor of a document longer than
// the context budget: the canvas must keep its first tokens (so the cache
// holds) until the prefix outgrows its budget by the slack.
func TestWindowStaysPut(t *testing.T) {
	tm := loadTiny(t, "qwen2-tiny")
	var n int
	e := newEngine(countingNetwork{modelNetwork{tm.m}, &n}, tm.tok, false)
	var b strings.Builder
	for i := 0; i < 60; i++ {
		fmt.Fprintf(&b, "\tx%d := f(%d)\n", i, i)
	}
	doc := "func f() {\n" + b.String()
	suffix := "\n}\n"
	p := DefaultParams()
	p.MaxTokens, p.ContextTokens = 4, 200
	typed := "\ty := g(a, b, c)\n\tz := h(y, y, y)\n\tw := y + z"
	var firsts []string
	moved := 0
	for k := 1; k <= len(typed); k++ {
		text := doc + typed[:k] + suffix
		at := len(doc) + k
		req := &Request{Text: text, Spans: []Span{{at, at}}, Mode: ModeInfill, Params: p}
		n = 0
		if _, err := e.Run(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		c, err := e.layout(text, mustSpans(t, e, req), mustParams(t, req), &e.win)
		if err != nil {
			t.Fatal(err)
		}
		first := fmt.Sprint(c.tokens[:8])
		if len(firsts) > 0 && first != firsts[len(firsts)-1] {
			moved++
		}
		firsts = append(firsts, first)
		if k > 1 && n > len(c.tokens)/2 {
			t.Errorf("keystroke %d computed %d positions of %d", k, n, len(c.tokens))
		}
	}
	if moved > 0 {
		t.Fatalf("the window start moved %d times in %d keystrokes", moved, len(typed))
	}
}

func mustParams(t *testing.T, req *Request) Params {
	p, err := resolveParams(req.Params)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustSpans(t *testing.T, e *Engine, req *Request) []spanPlan {
	sp, _, err := e.resolveSpans(req, mustParams(t, req))
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// endAfterNetwork makes the model propose the span's end (pad) from
// canvas position `from` on, with probability q there rising by 0.03 a
// position to the right (a model is surer of an end the further it is
// from the content), and almost never before it; EOS never.

type endAfterNetwork struct {
	network
	pad, eos, mask int32
	from           int
	q              float64
}

func (n *endAfterNetwork) forward(ctx context.Context, ps []*pass) ([][]float32, error) {
	out, err := n.network.forward(ctx, ps)
	if err != nil {
		return nil, err
	}
	v := n.info().vocab
	for k, rows := range out {
		for r, pos := range ps[k].logits {
			row := rows[r*v : (r+1)*v]
			row[n.eos], row[n.mask] = negInf32, negInf32 // the mask: banned anyway
			// Σ exp over the other tokens, then the pad logit that gives
			// probability q: e^z / (e^z + S) = q.
			var s float64
			for t, z := range row {
				if t != int(n.pad) && t != int(n.eos) {
					s += math.Exp(float64(z))
				}
			}
			q := n.q + 0.03*float64(pos-n.from)
			if pos < n.from {
				q = 1e-4
			}
			row[n.pad] = float32(math.Log(q/(1-q)) + math.Log(s))
		}
	}
	return out, nil
}

func TestEndThreshold(t *testing.T) {
	tm := loadTiny(t, "qwen2-tiny")
	at := point(t, "total += ")
	const masks, content = 10, 3
	steps := map[float64]int{}
	for _, et := range []float64{0.5, 1} {
		p := DefaultParams()
		p.Length, p.MaxTokens, p.EndThreshold = "pad", masks, et
		req := &Request{Text: goDoc, Spans: []Span{{at, at}}, Mode: ModeInfill, Params: p}
		net := &endAfterNetwork{network: modelNetwork{tm.m}, pad: tm.m.Config.PadID, eos: tm.m.Config.EOSID, mask: tm.m.Config.MaskID, q: 0.6}
		e := newEngine(net, tm.tok, false)
		decs := newDecoders(t, e, req)
		d := decs[0]
		sp := d.spans[0]
		net.from = sp.pos + content
		if err := run(context.Background(), e.net, decs[:1], nil); err != nil {
			t.Fatal(err)
		}
		ends := 0
		for q := sp.pos; q < sp.pos+sp.n; q++ {
			if d.isEnd(d.tokens[q]) {
				ends++
			}
		}
		t.Logf("end threshold %g: %d steps, %d of %d positions ended: %v (span at %d, from %d)", et, d.steps, ends, sp.n, d.tokens[sp.pos:sp.pos+sp.n], sp.pos, net.from)
		if ends != masks-content {
			t.Errorf("end threshold %g: %d positions ended, want %d (the model ends the span after %d tokens)", et, ends, masks-content, content)
		}
		steps[et] = d.steps
	}
	// 0.6-0.78 < 0.9, the content threshold: without the end threshold
	// each end costs a step of its own (committed from the right, the
	// surest first); with it the first step ends the span, and only the
	// content takes steps.
	if steps[1] < masks-content {
		t.Errorf("end threshold 1: %d steps, want at least %d (one per end)", steps[1], masks-content)
	}
	if steps[0.5] > content+1 {
		t.Errorf("end threshold 0.5: %d steps, want at most %d (the ends at once, then the content)", steps[0.5], content+1)
	}
}

func TestClosingRest(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"return len(⁁)", ")"},
		{"x := []int{⁁}", "}"},
		{"fmt.Println(\"⁁\")", "\")"},
		{"re := regexp.MustCompile(`⁁`)  ", "`)"}, // blanks at the end stay
		{"{Name: f(⁁),", "),"},
		{"return len(⁁", ""},          // nothing after the cursor
		{"f(⁁)   ", ")"},              // trailing blanks
		{"f(⁁, b)", ""},               // the user's code, not the editor's
		{"s := \"⁁\" + x", ""},        // more code after the quote
		{"return len(⁁)\nfoo()", ")"}, // stops at the line end
		{"⁁   ", ""},
		{"\t⁁}", ""},     // a block's "}" on its own line
		{"x\n\t⁁})", ""}, // the same, not on the first line
		{"\tf(⁁)", ")"},
	} {
		i := strings.Index(tc.line, "⁁")
		text := tc.line[:i] + tc.line[i+len("⁁"):]
		if got := text[i:ClosingRest(text, i)]; got != tc.want {
			t.Errorf("ClosingRest(%q) covers %q, want %q", tc.line, got, tc.want)
		}
	}
}

// TestCompleteThroughClosers: a completion whose span covers the closers
// an editor auto-inserted replaces them, and whatever the model wrote, the
// line it leaves keeps every closer, in order, and closes what they
// closed (the tiny models write noise: only the shape is checked here).
func TestCompleteThroughClosers(t *testing.T) {
	docs := []string{
		"package a\n\nfunc (a *stack) empty() bool {\n\treturn len(⁁)\n}\n",
		"package a\n\nfunc f() {\n\tx := []int{⁁}\n\t_ = x\n}\n",
		"package a\n\nfunc f() {\n\tfmt.Println(\"⁁\")\n}\n",
		"package a\n\nvar re = regexp.MustCompile(`⁁`)\n",
	}
	for _, name := range allTiny {
		tm := loadTiny(t, name)
		e := NewEngine(tm.m)
		for _, doc := range docs {
			at := strings.Index(doc, "⁁")
			text := doc[:at] + doc[at+len("⁁"):]
			end := ClosingRest(text, at)
			if end == at {
				t.Fatalf("no closers found after the cursor in %q", doc)
			}
			req := &Request{Text: text, Spans: []Span{{at, end}}, Mode: ModeComplete, Params: DefaultParams()}
			req.Params.Candidates = 2
			res, err := e.Run(context.Background(), req)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			checkEdits(t, req, res, req.Spans)
			closing := text[at:end]
			open := openBrackets(text[:at])
			for _, c := range res.Candidates {
				got := c.Edits[0].NewText
				if !isSubsequence(closing, got) {
					t.Errorf("%s: %q for %q drops some of the closers %q", name, got, doc, closing)
				}
				if !open.after(got).same(open.after(closing)) || unmatchedClosers(open, got) > 0 {
					t.Errorf("%s: %q for %q does not close the line as %q did", name, got, doc, closing)
				}
			}
		}
	}
}
