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
		for _, dt := range []dtype{dtF32, dtBF16} {
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
