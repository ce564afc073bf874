package cuda

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sort"
	"time"

	"github.com/diffill/diffill/model"
)

// Denoise fills the canvas positions of tokens (which hold the mask token)
// the way a masked-diffusion decoder does, on whatever device m runs: fill
// a cache with one pass, then each step recomputes the canvas against the
// cached context, reads each position's top token and confidence (the
// device reduces the logits when m has a GPU backend), and commits the
// most confident masked positions: perStep of them, or with threshold > 0
// every one whose probability reaches it (at least one). Logits are asked
// for the whole canvas every step so that each step has the same shape and
// replays one CUDA graph. It returns the number of steps.
func Denoise(ctx context.Context, m *model.Model, tokens []int32, canvas []int, perStep int, threshold float32) (int, error) {
	mask := m.Config.MaskID
	if mask < 0 {
		return 0, errors.New("denoise: the model has no mask token")
	}
	if perStep < 1 {
		perStep = 1
	}
	cache := m.NewCache(len(tokens))
	if _, err := m.Forward(ctx, &model.Batch{Tokens: tokens, Cache: cache, Logits: []int{}}); err != nil {
		return 0, err
	}
	masked := map[int]bool{}
	for _, p := range canvas {
		if tokens[p] == mask {
			masked[p] = true
		}
	}
	opt := model.StatsOptions{Banned: []int32{mask}}
	steps := 0
	for len(masked) > 0 {
		st, err := m.ForwardStats(ctx, &model.Batch{Tokens: tokens, Compute: canvas, Logits: canvas, Cache: cache}, opt)
		if err != nil {
			return steps, err
		}
		steps++
		type cand struct {
			pos int
			st  model.TokenStats
		}
		var cs []cand
		for i, p := range canvas {
			if masked[p] {
				cs = append(cs, cand{p, st[i]})
			}
		}
		sort.SliceStable(cs, func(a, b int) bool {
			if cs[a].st.P1 != cs[b].st.P1 {
				return cs[a].st.P1 > cs[b].st.P1
			}
			return cs[a].pos < cs[b].pos
		})
		n := min(perStep, len(cs))
		if threshold > 0 {
			n = 1
			for n < len(cs) && cs[n].st.P1 >= threshold {
				n++
			}
		}
		for _, c := range cs[:n] {
			tokens[c.pos] = c.st.Top1
			delete(masked, c.pos)
		}
	}
	return steps, nil
}

// BenchOptions describe the infill that Bench times.
type BenchOptions struct {
	Context, Canvas int       // tokens of context before the canvas, and canvas length (1024, 64)
	PerStep         []int     // tokens committed per step, one setting each (e.g. 1, 4)
	Thresholds      []float32 // confidence-threshold settings (e.g. 0.9)
	Repeats         int       // infills per setting; the median is reported
	Bandwidth       float64   // bytes/s for the weight-read floor (3.0e12 measured on an H100)
}

// BenchResult is one setting's figures.
type BenchResult struct {
	Setting       string
	Steps         int
	TokensPerStep float64
	InfillMs      float64 // one whole infill: prefill and every step
	PrefillMs     float64
	StepMs        float64 // per denoising step, after the prefill
	TokensPerSec  float64 // canvas tokens / infill time
	FloorMs       float64 // weight bytes / bandwidth: the least one step can take
}

// Bench times Denoise on m: prefill once, then steps over a canvas of masks
// after random context tokens, for each setting.
func Bench(ctx context.Context, m *model.Model, opt BenchOptions) ([]BenchResult, error) {
	if opt.Repeats < 1 {
		opt.Repeats = 3
	}
	if opt.Bandwidth == 0 {
		opt.Bandwidth = 3.0e12
	}
	var weightBytes int64
	if b, ok := m.Backend().(*Backend); ok {
		weightBytes = b.eng.WeightBytes()
	} else if ts, err := m.Tensors(); err == nil {
		weightBytes = int64(len(ts.Embed.Data) + len(ts.Head.Data) + len(ts.Norm.Data))
		for _, l := range ts.Layers {
			for _, t := range []model.Tensor{l.AttnNorm, l.Q, l.K, l.V, l.O, l.QBias, l.KBias, l.VBias, l.MLPNorm, l.Gate, l.Up, l.Down} {
				weightBytes += int64(len(t.Data))
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	L := opt.Context + opt.Canvas
	if mp := m.Config.MaxPositions; mp > 0 && L > mp {
		return nil, fmt.Errorf("bench: %d positions exceed the model's %d", L, mp)
	}
	base := make([]int32, L)
	for i := range base {
		base[i] = int32(r.IntN(m.Config.Vocab))
		if i >= opt.Context {
			base[i] = m.Config.MaskID
		}
	}
	canvas := make([]int, opt.Canvas)
	for i := range canvas {
		canvas[i] = opt.Context + i
	}
	type setting struct {
		name      string
		perStep   int
		threshold float32
	}
	var settings []setting
	for _, k := range opt.PerStep {
		settings = append(settings, setting{fmt.Sprintf("%d token/step", k), k, 0})
	}
	for _, th := range opt.Thresholds {
		settings = append(settings, setting{fmt.Sprintf("threshold %.2g", th), 1, th})
	}
	var out []BenchResult
	for _, s := range settings {
		// warm-up: module load, graph capture of this shape
		if _, err := Denoise(ctx, m, slices.Clone(base), canvas, s.perStep, s.threshold); err != nil {
			return nil, err
		}
		var infill, prefill []float64
		steps := 0
		for i := 0; i < opt.Repeats; i++ {
			t0 := time.Now()
			c := m.NewCache(L)
			if _, err := m.Forward(ctx, &model.Batch{Tokens: slices.Clone(base), Cache: c, Logits: []int{}}); err != nil {
				return nil, err
			}
			prefill = append(prefill, ms(time.Since(t0)))
			t1 := time.Now()
			n, err := Denoise(ctx, m, slices.Clone(base), canvas, s.perStep, s.threshold)
			if err != nil {
				return nil, err
			}
			infill = append(infill, ms(time.Since(t1)))
			steps = n
		}
		in, pre := median(infill), median(prefill)
		res := BenchResult{
			Setting: s.name, Steps: steps, TokensPerStep: float64(opt.Canvas) / float64(steps),
			InfillMs: in, PrefillMs: pre, StepMs: (in - pre) / float64(steps),
			TokensPerSec: float64(opt.Canvas) / (in / 1000),
			FloorMs:      float64(weightBytes) / opt.Bandwidth * 1000,
		}
		out = append(out, res)
	}
	return out, nil
}

// WriteBenchTable prints results as a table.
func WriteBenchTable(w io.Writer, device string, rs []BenchResult) {
	fmt.Fprintf(w, "%-26s %6s %8s %10s %10s %10s %11s %9s %8s\n", "diffill "+device, "steps", "tok/step", "infill ms", "prefill ms", "step ms", "tokens/s", "floor ms", "step/floor")
	for _, r := range rs {
		fmt.Fprintf(w, "%-26s %6d %8.2f %10.2f %10.2f %10.3f %11.1f %9.3f %8.1fx\n", r.Setting, r.Steps, r.TokensPerStep,
			r.InfillMs, r.PrefillMs, r.StepMs, r.TokensPerSec, r.FloorMs, r.StepMs/r.FloorMs)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(x []float64) float64 {
	s := slices.Clone(x)
	slices.Sort(s)
	return s[len(s)/2]
}
