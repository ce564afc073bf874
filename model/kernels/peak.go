package kernels

import (
	"sync/atomic"
	"time"
	"unsafe"
)

// PeakGFLOPS measures the ceiling of the matrix-multiply microkernel: the
// largest one, on operands that stay in L1, run on every goroutine of p at
// once for about d. No product of this package can beat it on this
// machine, so it is the yardstick for how much blocking and memory cost.
func PeakGFLOPS(p *Pool, d time.Duration) float64 {
	mk := kernelsFor(curISA, dtF32)
	k := mk[len(mk)-1]
	nr := 16
	if curISA == isaAVX512 {
		nr = 32
	}
	const kc = 256
	var flops atomic.Int64
	start := time.Now()
	n := p.Workers()
	p.Run(n, func(int) {
		a := make([]float32, k.mr*kc)
		b := alignedF32(kc * nr)
		c := make([]float32, k.mr*nr)
		calls := 0
		for t0 := time.Now(); time.Since(t0) < d; {
			for range 64 {
				k.fn(&a[0], kc, unsafe.Pointer(&b[0]), &c[0], nr, kc, 1)
			}
			calls += 64
		}
		flops.Add(int64(calls) * 2 * int64(k.mr*nr*kc))
	})
	return float64(flops.Load()) / time.Since(start).Seconds() / 1e9
}
