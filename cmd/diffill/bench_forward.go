package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/diffill/diffill/model"
	"github.com/diffill/diffill/model/kernels"
)

// benchForward prints the model's forward-pass figures: a full pass over a
// 512-token sequence (every position's logits), and a cached denoising step
// that recomputes a 64-token block of a 1024-token sequence (the Fast-dLLM
// dual cache), each as time per pass, tokens/s and GFLOP/s. Sequences are
// cut to the model's positions.
func benchForward(ctx context.Context, w io.Writer, m *model.Model) error {
	cfg := &m.Config
	r := rand.New(rand.NewPCG(1, 2))
	seq := func(n int) []int32 {
		toks := make([]int32, n)
		for i := range toks {
			toks[i] = int32(r.IntN(cfg.Vocab))
			if cfg.MaskID >= 0 && i%4 == 0 {
				toks[i] = cfg.MaskID
			}
		}
		return toks
	}
	limit := func(n int) int {
		if cfg.MaxPositions > 0 {
			return min(n, cfg.MaxPositions)
		}
		return n
	}

	fmt.Fprintf(w, "forward (%s, %s params, %s weights, %s kernels)\n", cfg.Family, humanCount(float64(m.Params)), m.DType, kernels.ISA())
	fmt.Fprintf(w, "  path: %s\n", kernels.Path())

	n := limit(512)
	full := &model.Batch{Tokens: seq(n)}
	d, used, err := timeForward(ctx, m, full)
	if err != nil {
		return err
	}
	fl := cfg.ForwardFLOPs(n, n, n)
	fmt.Fprintf(w, "  full %4d tokens        %9.1f ms  %8.0f tokens/s  %6.1f GFLOP/s  %s\n",
		n, ms(d), float64(n)/d.Seconds(), fl/d.Seconds()/1e9, cpuNote(fl, used))

	T := limit(1024)
	block := min(64, T)
	toks := seq(T)
	cache := m.NewCache(T)
	if _, err := m.Forward(ctx, &model.Batch{Tokens: toks, Cache: cache, Logits: []int{}}); err != nil {
		return err
	}
	compute := make([]int, block)
	start := (T - block) / 2
	for i := range compute {
		compute[i] = start + i
	}
	step := &model.Batch{Tokens: toks, Compute: compute, Cache: cache}
	d, used, err = timeForward(ctx, m, step)
	if err != nil {
		return err
	}
	fl = cfg.ForwardFLOPs(block, T, block)
	fmt.Fprintf(w, "  cached step %d of %4d  %9.1f ms  %8.0f tokens/s  %6.1f GFLOP/s  %s\n",
		block, T, ms(d), float64(block)/d.Seconds(), fl/d.Seconds()/1e9, cpuNote(fl, used))
	return nil
}

// cpuNote gives a pass's CPU time and GFLOP per CPU-second (which other
// work on a shared machine does not inflate), to set beside the kernels'
// GFLOP/cpu-s.
func cpuNote(flops float64, used time.Duration) string {
	if used <= 0 {
		return ""
	}
	return fmt.Sprintf("(%.1f cpu-ms, %.1f GFLOP/cpu-s)", ms(used), flops/used.Seconds()/1e9)
}

// timeForward runs b until a second has passed (at least twice, the first
// run discarded as warm-up when it was quick) and returns the best time
// and the least CPU time (all goroutines; 0 if unknown) of a run.
func timeForward(ctx context.Context, m *model.Model, b *model.Batch) (time.Duration, time.Duration, error) {
	var best, bestCPU time.Duration
	deadline := time.Now().Add(time.Second)
	for i := 0; i < 2 || time.Now().Before(deadline); i++ {
		t0, c0 := time.Now(), processCPU()
		if _, err := m.Forward(ctx, b); err != nil {
			return 0, 0, err
		}
		d, c := time.Since(t0), processCPU()-c0
		if best == 0 || d < best {
			best = d
		}
		if c0 > 0 && (bestCPU == 0 || c < bestCPU) {
			bestCPU = c
		}
		if i >= 1 && d > 5*time.Second {
			break // a large model: two runs are enough
		}
	}
	return best, bestCPU, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
