package kernels

import (
	"fmt"
	"math/rand/v2"
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
		for b.Loop() {
			Attention(out, d, q, d, k, d, v, d, n, n, d, 0.125, ws)
		}
		b.ReportMetric(4*n*n*d*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
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
