package kernels

import (
	"fmt"
	"testing"
	"unsafe"
)

// BenchmarkMicroKernel runs one microkernel on data that stays in L1: the
// ceiling the blocked product can reach on one core.
func BenchmarkMicroKernel(b *testing.B) {
	for _, s := range supportedISAs()[1:] {
		for _, dt := range []dtype{dtF32, dtBF16, dtF16} {
			for _, mk := range asmKernels[s][dt] {
				nr := 32
				if s == isaAVX2 {
					nr = 16
				}
				const kc = 256
				a := make([]float32, mk.mr*kc)
				w := alignedF32(kc * nr)
				c := make([]float32, mk.mr*nr)
				b.Run(fmt.Sprintf("%v/%v/mr%d", s, dt, mk.mr), func(b *testing.B) {
					for b.Loop() {
						mk.fn(&a[0], kc, unsafe.Pointer(&w[0]), &c[0], nr, kc, 1)
					}
					b.ReportMetric(2*float64(mk.mr*nr*kc)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				})
			}
		}
	}
}
