package kernels

import (
	"fmt"
	"runtime"
	"testing"
	"time"
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
					runtime.LockOSThread()
					defer runtime.UnlockOSThread()
					cpu0 := threadCPU()
					for b.Loop() {
						mk.fn(&a[0], kc, unsafe.Pointer(&w[0]), &c[0], nr, kc, 1)
					}
					flops := 2 * float64(mk.mr*nr*kc) * float64(b.N)
					b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
					reportCPUGFLOPS(b, flops, cpu0)
				})
			}
		}
	}
}

// reportCPUGFLOPS reports flops over the CPU time the calling thread spent
// since cpu0 (see threadCPU): on a busy machine the closest figure to what
// the code does on an idle one.
func reportCPUGFLOPS(b *testing.B, flops float64, cpu0 time.Duration) {
	if d := threadCPU() - cpu0; cpu0 > 0 && d > 0 {
		b.ReportMetric(flops/d.Seconds()/1e9, "GFLOP/cpu-s")
	}
}
