// Package kernels holds diffill's CPU compute kernels: matrix multiply over
// packed float32, bf16 or f16 weights, and the vector operations of a
// transformer layer (dot, axpy, softmax, RMSNorm, SwiGLU, attention).
// Everything works on raw slices; callers own memory.
//
// The hot loops are Go assembly for AVX-512 and AVX2+FMA, chosen at run
// time from the CPU's features, with a pure-Go path for other machines
// (and for the purego build tag). ISA reports which path runs.
package kernels

import (
	"fmt"
	"unsafe"
)

// Linear is a weight matrix W of shape [N, K] (PyTorch nn.Linear layout:
// one row per output feature), packed for repeated products Y = X·Wᵀ.
//
// The weights are copied at construction into column panels nr wide
// (32 for AVX-512, 16 otherwise), each stored k-major, the layout the
// microkernels stream. bf16 and f16 weights stay 16-bit in the panels and
// are widened inside the kernel, which halves the memory traffic of the
// bandwidth-bound small-M products. A Linear is immutable and safe for
// concurrent use.
type Linear struct {
	N, K int

	dt     dtype
	isa    isa
	nr     int       // panel width
	panels int       // ceil(N / nr)
	f32    []float32 // packed panels, dt == dtF32: [panels][K][nr]
	u16    []uint16  // packed panels, bf16 or f16
	pool   *Pool
	kerns  []microKernel // fewest rows first
}

// An Option configures a Linear.
type Option func(*options)

type options struct{ pool *Pool }

// WithPool makes the Linear run on p instead of DefaultPool.
func WithPool(p *Pool) Option { return func(o *options) { o.pool = p } }

// NewLinearF32 packs float32 weights w ([n][k], row-major).
func NewLinearF32(w []float32, n, k int, opts ...Option) *Linear {
	checkWeights(len(w), n, k)
	l := newLinear(dtF32, n, k, curISA, opts)
	packPanels(l.f32, w, k, l, false)
	return l
}

// NewLinearBF16 packs bfloat16 weights w ([n][k], row-major, raw bits).
func NewLinearBF16(w []uint16, n, k int, opts ...Option) *Linear {
	checkWeights(len(w), n, k)
	l := newLinear(dtBF16, n, k, curISA, opts)
	packPanels(l.u16, w, k, l, true)
	return l
}

// NewLinearF16 packs IEEE half-precision weights w ([n][k], row-major, raw
// bits).
func NewLinearF16(w []uint16, n, k int, opts ...Option) *Linear {
	checkWeights(len(w), n, k)
	if curISA == isaAVX2 && !hasF16C {
		// No in-kernel conversion on this CPU: widen once here.
		f := make([]float32, n*k)
		F16ToF32s(f, w[:n*k])
		return NewLinearF32(f, n, k, opts...)
	}
	l := newLinear(dtF16, n, k, curISA, opts)
	packPanels(l.u16, w, k, l, false)
	return l
}

func checkWeights(have, n, k int) {
	if n <= 0 || k <= 0 {
		panic(fmt.Sprintf("kernels: Linear shape [%d, %d] is empty", n, k))
	}
	if have < n*k {
		panic(fmt.Sprintf("kernels: Linear [%d, %d] needs %d weights, got %d", n, k, n*k, have))
	}
}

func newLinear(dt dtype, n, k int, s isa, opts []Option) *Linear {
	var o options
	for _, f := range opts {
		f(&o)
	}
	if o.pool == nil {
		o.pool = DefaultPool()
	}
	l := &Linear{N: n, K: k, dt: dt, isa: s, pool: o.pool}
	switch s {
	case isaAVX512:
		l.nr = 32
	default:
		l.nr = 16
	}
	l.kerns = kernelsFor(s, dt)
	l.panels = (n + l.nr - 1) / l.nr
	size := l.panels * k * l.nr
	if dt == dtF32 {
		l.f32 = alignedF32(size)
	} else {
		l.u16 = alignedU16(size)
	}
	return l
}

// DType reports the weight type the panels hold: "f32", "bf16" or "f16".
func (l *Linear) DType() string { return l.dt.String() }

// packPanels fills dst with the panels of w ([N][K], row stride ldw).
// Columns of the last panel past N are left as they were (zero in a new
// Linear): the kernel computes them aside and drops them. Each panel is
// its own item for the pool: packing a large model is a pass over all its
// weights. With pairs, lane j of each 32-bit pair holds columns j and
// j+nr/2 of the panel, so that one shift and one mask widen a whole bf16
// row in the kernel.
func packPanels[T float32 | uint16](dst, w []T, ldw int, l *Linear, pairs bool) {
	nr, k, n := l.nr, l.K, l.N
	half := nr / 2
	// A panel is a transpose of nr rows of w. It goes kStep columns at a
	// time through a buffer that stays in L1, so that reads and writes are
	// both sequential.
	const kStep = 64
	var order [32]int // where column c of the panel goes within a k row
	for c := range nr {
		order[c] = c
		if pairs {
			order[c] = c%half*2 + c/half
		}
	}
	l.pool.Run(l.panels, func(p int) {
		cols := min(nr, n-p*nr)
		var buf [kStep * 32]T
		for k0 := 0; k0 < k; k0 += kStep {
			kn := min(k, k0+kStep) - k0
			for c := 0; c < cols; c++ {
				src := w[(p*nr+c)*ldw+k0:][:kn]
				o := order[c]
				for kk, v := range src {
					buf[kk*nr+o] = v
				}
			}
			copy(dst[(p*k+k0)*nr:][:kn*nr], buf[:kn*nr])
		}
	})
}

// Forward computes y[m][N] = x[m][K] · Wᵀ, overwriting y. It runs on the
// Linear's pool. y and x must not overlap.
func (l *Linear) Forward(y, x []float32, m int) {
	if m <= 0 {
		return
	}
	if len(x) < m*l.K || len(y) < m*l.N {
		panic(fmt.Sprintf("kernels: Forward of [%d, %d]·[%d, %d]ᵀ: x has %d floats (need %d), y has %d (need %d)",
			m, l.K, l.N, l.K, len(x), m*l.K, len(y), m*l.N))
	}
	l.gemm(y, l.N, x, l.K, m)
}

func alignedF32(n int) []float32 {
	b := make([]float32, n+16)
	off := int(uintptr(unsafe.Pointer(&b[0])) & 63 / 4)
	if off != 0 {
		off = 16 - off
	}
	return b[off : off+n : off+n]
}

func alignedU16(n int) []uint16 {
	b := make([]uint16, n+32)
	off := int(uintptr(unsafe.Pointer(&b[0])) & 63 / 2)
	if off != 0 {
		off = 32 - off
	}
	return b[off : off+n : off+n]
}
