package model_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/diffill/diffill/model"
	"github.com/diffill/diffill/model/builtin"
)

// BenchmarkBuiltin times the two passes an editor request makes with the
// built-in model (8 layers, hidden 256, bf16): the cold pass over a
// 1024-token canvas, filling the cache and returning the logits of a
// 32-token span, and a denoising step that recomputes only that span
// against the cached keys and values.
func BenchmarkBuiltin(b *testing.B) {
	m, err := builtin.Load()
	if err != nil {
		b.Fatal(err)
	}
	const T, span, start = 1024, 32, 600
	r := rand.New(rand.NewPCG(1, 2))
	toks := make([]int32, T)
	for i := range toks {
		toks[i] = int32(3 + r.IntN(m.Config.Vocab-3))
	}
	spanPos := make([]int, span)
	for i := range spanPos {
		spanPos[i] = start + i
		toks[start+i] = m.Config.MaskID
	}
	ctx := context.Background()
	cache := m.NewCache(T)

	// What `diffill bench` calls a full forward: 512 tokens, no cache,
	// every position's logits.
	b.Run("full-512-logits", func(b *testing.B) {
		batch := &model.Batch{Tokens: toks[:512]}
		cpu0 := cpuTime()
		for b.Loop() {
			if _, err := m.Forward(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, cpu0)
		fl := m.Config.ForwardFLOPs(512, 512, 512) * float64(b.N)
		if d := cpuTime() - cpu0; d > 0 {
			b.ReportMetric(fl/d.Seconds()/1e9, "GFLOP/cpu-s")
		}
	})
	b.Run("full-1024", func(b *testing.B) {
		batch := &model.Batch{Tokens: toks, Logits: spanPos, Cache: cache}
		cpu0 := cpuTime()
		for b.Loop() {
			if _, err := m.Forward(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, cpu0)
		b.ReportMetric(float64(T)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
	})
	b.Run("cached-32-of-1024", func(b *testing.B) {
		if _, err := m.Forward(ctx, &model.Batch{Tokens: toks, Logits: []int{}, Cache: cache}); err != nil {
			b.Fatal(err)
		}
		batch := &model.Batch{Tokens: toks, Compute: spanPos, Logits: spanPos, Cache: cache}
		cpu0 := cpuTime()
		for b.Loop() {
			if _, err := m.Forward(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, cpu0)
	})
}

// reportCPU reports the CPU time per operation since cpu0, summed over
// threads: on a shared machine it varies less than the wall time, and
// against the wall time it shows how well the pass spreads over the cores.
func reportCPU(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}
