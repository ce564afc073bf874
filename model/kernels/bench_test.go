package kernels

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

// benchShapes are transformer products: a small model's layers, the 0.5B
// Qwen2 shapes (hidden 896, intermediate 4864) and a vocabulary head.
var benchShapes = []struct{ n, k int }{
	{256, 256}, {1024, 256}, {4096, 1024}, {8192, 512},
	{896, 896}, {4864, 896}, {896, 4864},
}

func BenchmarkLinear(b *testing.B) {
	for _, s := range benchShapes {
		for _, dt := range []dtype{dtF32, dtBF16, dtF16} {
			r := rand.New(rand.NewPCG(1, 2))
			w, raw := weights(r, dt, s.n, s.k)
			l := newLinearOf(dt, w, raw, s.n, s.k)
			for _, m := range []int{1, 16, 64, 512} {
				x := randF32(r, m*s.k)
				y := make([]float32, m*s.n)
				b.Run(fmt.Sprintf("%s/m%d/k%d/n%d", dt, m, s.k, s.n), func(b *testing.B) {
					for b.Loop() {
						l.Forward(y, x, m)
					}
					flops := 2 * float64(m) * float64(s.n) * float64(s.k) * float64(b.N)
					b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				})
			}
		}
	}
}

// BenchmarkAttention is one head (single goroutine) and 14 heads over 2
// kv heads (Qwen2-0.5B) on the default pool, 512 tokens, head size 64.
func BenchmarkAttention(b *testing.B) {
	const n, d = 512, 64
	r := rand.New(rand.NewPCG(1, 2))
	b.Run("head", func(b *testing.B) {
		q, k, v := randF32(r, n*d), randF32(r, n*d), randF32(r, n*d)
		out := make([]float32, n*d)
		ws := new(AttentionWorkspace)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cpu0 := threadCPU()
		for b.Loop() {
			Attention(out, d, q, d, k, d, v, d, n, n, d, 0.125, ws)
		}
		b.ReportMetric(4*n*n*d*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		reportCPUGFLOPS(b, 4*n*n*d*float64(b.N), cpu0)
	})
	// The built-in model's full pass: the 2 query heads of a kv head
	// stacked, 1024 rows over 512 keys.
	b.Run("builtin-group", func(b *testing.B) {
		q, k, v := randF32(r, 2*n*d), randF32(r, n*d), randF32(r, n*d)
		out := make([]float32, 2*n*d)
		ws := new(AttentionWorkspace)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cpu0 := threadCPU()
		for b.Loop() {
			Attention(out, d, q, d, k, d, v, d, 2*n, n, d, 0.125, ws)
		}
		b.ReportMetric(8*n*n*d*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		reportCPUGFLOPS(b, 8*n*n*d*float64(b.N), cpu0)
	})
	b.Run("qwen2-0.5b", func(b *testing.B) {
		const heads, kvHeads = 14, 2
		q, out := randF32(r, n*heads*d), make([]float32, n*heads*d)
		k, v := randF32(r, n*kvHeads*d), randF32(r, n*kvHeads*d)
		kv := func(g int) ([]float32, int, []float32, int) { return k[g*d:], kvHeads * d, v[g*d:], kvHeads * d }
		p := DefaultPool()
		for b.Loop() {
			p.MultiHeadAttention(out, heads*d, q, heads*d, kv, n, n, heads, kvHeads, d, 0.125)
		}
		b.ReportMetric(4*n*n*d*heads*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
}

// builtinShapes are the products of the built-in model (hidden 256, 8
// layers): fused q/k/v, attention output, fused gate/up, down, and the
// vocabulary head.
var builtinShapes = []struct {
	name string
	n, k int
}{
	{"qkv", 512, 256}, {"o", 256, 256}, {"gateup", 1344, 256}, {"down", 256, 672}, {"head", 8192, 256},
}

// BenchmarkLinearBuiltin times the built-in model's bf16 products at the
// row counts of whole passes (512 and 1024 positions) on the default pool,
// on the path DIFFILL_KERNELS chooses. GFLOP/cpu-s is over the process's
// CPU time, all workers together: divided by the cores' microkernel
// ceiling (BenchmarkMicroKernel) it is the product's efficiency, and it
// varies far less than GFLOP/s on a busy machine.
func BenchmarkLinearBuiltin(b *testing.B) {
	for _, s := range builtinShapes {
		r := rand.New(rand.NewPCG(1, 2))
		_, raw := weights(r, dtBF16, s.n, s.k)
		l := NewLinearBF16(raw, s.n, s.k)
		for _, m := range []int{512, 1024} {
			x := randF32(r, m*s.k)
			y := make([]float32, m*s.n)
			b.Run(fmt.Sprintf("%s/m%d", s.name, m), func(b *testing.B) {
				cpu0 := processCPU()
				for b.Loop() {
					l.Forward(y, x, m)
				}
				flops := 2 * float64(m*s.n*s.k) * float64(b.N)
				b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				if d := processCPU() - cpu0; cpu0 > 0 && d > 0 {
					b.ReportMetric(flops/d.Seconds()/1e9, "GFLOP/cpu-s")
				}
			})
		}
	}
}

// BenchmarkLinearSteps times the built-in model's bf16 products at the
// row counts of a decoding step (M = 16 to 48 recomputed positions) and
// of one token (14 and 28: whole 14-row microkernel blocks). "hot" runs
// one Linear again and again, its weights in cache; "cold" rotates over
// copies holding 16 MiB of weights in all, as a model step does (its
// weights come from L3 or memory). Weight GB/s is the bf16 weight bytes
// of one call over its time.
func BenchmarkLinearSteps(b *testing.B) {
	for _, s := range builtinShapes {
		r := rand.New(rand.NewPCG(1, 2))
		_, raw := weights(r, dtBF16, s.n, s.k)
		ls := []*Linear{NewLinearBF16(raw, s.n, s.k)}
		for len(ls)*s.n*s.k*2 < 16<<20 {
			ls = append(ls, NewLinearBF16(raw, s.n, s.k))
		}
		for _, m := range []int{1, 14, 16, 28, 32, 48} {
			x := randF32(r, m*s.k)
			y := make([]float32, m*s.n)
			for _, cold := range []bool{false, true} {
				name := "hot"
				if cold {
					name = "cold"
				}
				b.Run(fmt.Sprintf("%s/m%d/%s", s.name, m, name), func(b *testing.B) {
					i := 0
					for b.Loop() {
						ls[i].Forward(y, x, m)
						if cold {
							i = (i + 1) % len(ls)
						}
					}
					sec := b.Elapsed().Seconds()
					b.ReportMetric(2*float64(m*s.n*s.k)*float64(b.N)/sec/1e9, "GFLOP/s")
					b.ReportMetric(2*float64(s.n*s.k)*float64(b.N)/sec/1e9, "wGB/s")
				})
			}
		}
	}
}
