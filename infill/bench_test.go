package infill

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/diffill/diffill/model"
	"github.com/diffill/diffill/model/builtin"
)

// benchModel is the tiny Qwen2 checkpoint, or the checkpoint directory in
// $DIFFILL_BENCH_MODEL (for timings that mean something).
func benchModel(b *testing.B) *model.Model {
	if dir := os.Getenv("DIFFILL_BENCH_MODEL"); dir != "" {
		m, err := model.Load(dir)
		if err != nil {
			b.Fatal(err)
		}
		return m
	}
	return loadTiny(b, "qwen2-tiny").m
}

// BenchmarkStep times one denoising step over a 16-mask span in a warm
// canvas (the steady state of decoding): a pass over the span positions
// with the context from the cache, then sampling and commits.
func BenchmarkStep(b *testing.B) {
	m := benchModel(b)
	e := NewEngine(m)
	at := point(b, "total += ")
	p := DefaultParams()
	p.MaxTokens, p.Schedule, p.Steps = 16, "fixed", 16
	req := &Request{Text: goDoc, Spans: []Span{{at, at}}, Mode: ModeInfill, Params: p}
	pp, _ := resolveParams(req.Params)
	spans, mode, err := e.resolveSpans(req, pp)
	if err != nil {
		b.Fatal(err)
	}
	pl, _ := e.makePlan(pp, mode)
	base, _ := e.layout(req.Text, spans, pp, nil)
	ctx := context.Background()
	fresh := func() *decoder {
		d := e.variants(base, spans, pp, pl)[0]
		e.prime(d, nil)
		if _, err := e.net.forward(ctx, []*pass{d.nextPass()}); err != nil { // prime the cache
			b.Fatal(err)
		}
		return d
	}
	d := fresh()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if d.done() {
			b.StopTimer()
			d = fresh()
			b.StartTimer()
		}
		out, err := e.net.forward(ctx, []*pass{d.nextPass()})
		if err != nil {
			b.Fatal(err)
		}
		if err := d.apply(out[0]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSampler times the sampler over one row of logits.
func BenchmarkSampler(b *testing.B) {
	const v = 8192
	r := newRNG(1)
	row := make([]float32, v)
	for i := range row {
		row[i] = float32(r.float64()*20 - 10)
	}
	for _, s := range []sampler{{kind: byConfidence}, {kind: byEntropy}, {kind: byConfidence, temperature: 0.7}} {
		b.Run(fmt.Sprintf("%v/t%g", s.kind, s.temperature), func(b *testing.B) {
			buf := make([]float32, v)
			for i := 0; i < b.N; i++ {
				copy(buf, row)
				s.propose(buf, nil, r)
			}
		})
	}
}

// BenchmarkFullPass times the cold start of a request: one pass over a
// whole canvas of n tokens.
func BenchmarkFullPass(b *testing.B) {
	m := benchModel(b)
	net := modelNetwork{m}
	for _, n := range []int{256, 512, 1024} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			toks := make([]int32, n)
			for i := range toks {
				toks[i] = int32(3 + i%200)
			}
			c := net.newCache(n)
			for i := 0; i < b.N; i++ {
				if _, err := net.forward(context.Background(), []*pass{{tokens: toks, logits: []int{n / 2}, cache: c}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLayout times building a canvas (tokenizing the window) for a
// held-out case with the built-in tokenizer: paid by every request.
func BenchmarkLayout(b *testing.B) {
	m, err := builtin.Load()
	if err != nil {
		b.Skip(err)
	}
	e := NewEngine(m)
	c := BenchCases()[0]
	req := &Request{Text: c.Prefix + c.Suffix, Spans: []Span{{len(c.Prefix), len(c.Prefix)}}, Mode: ModeComplete, Params: DefaultParams()}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.Canvas(req); err != nil {
			b.Fatal(err)
		}
	}
}

// lineModel is the model of the one-line latency benchmarks: the one in
// $DIFFILL_BENCH_MODEL, or the built-in one (their timings are the
// editor's).
func lineModel(b *testing.B) *model.Model {
	if os.Getenv("DIFFILL_BENCH_MODEL") != "" {
		return benchModel(b)
	}
	m, err := builtin.Load()
	if err != nil {
		b.Skip(err)
	}
	return m
}

// BenchmarkColdLine times a one-line completion with nothing cached, on a
// held-out case (BenchCases), with the model in $DIFFILL_BENCH_MODEL or
// the built-in one.
func BenchmarkColdLine(b *testing.B) {
	e := NewEngine(lineModel(b))
	c := BenchCases()[1]
	p := DefaultParams()
	p.SingleLine = true
	req := &Request{Text: c.Prefix + c.Suffix, Spans: []Span{{len(c.Prefix), len(c.Prefix)}}, Mode: ModeComplete, Params: p}
	cv, _ := e.Canvas(req)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.Reset()
		if _, err := e.Run(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(cv.Tokens)), "canvas-tokens")
}

// BenchmarkWarmLine times a one-line completion one keystroke after
// another on the same document (the editor's common case): the first
// request fills the engine's cache, the timed one types the middle's first
// character and reuses it. The model is $DIFFILL_BENCH_MODEL or the
// built-in one, the case a held-out one (BenchCases).
func BenchmarkWarmLine(b *testing.B) {
	e := NewEngine(lineModel(b))
	c := BenchCases()[1]
	p := DefaultParams()
	p.SingleLine = true
	at := len(c.Prefix)
	before := &Request{Text: c.Prefix + c.Suffix, Spans: []Span{{at, at}}, Mode: ModeComplete, Params: p}
	typed := &Request{Text: c.Prefix + c.Middle[:1] + c.Suffix, Spans: []Span{{at + 1, at + 1}}, Mode: ModeComplete, Params: p}
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		e.Reset()
		if _, err := e.Run(ctx, before); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := e.Run(ctx, typed); err != nil {
			b.Fatal(err)
		}
	}
}
