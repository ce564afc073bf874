// Package kernels holds diffill's CPU compute kernels: matrix multiply over
// packed float32 or bf16 weights, and the small vector operations of a
// transformer layer. Everything works on raw slices; callers own memory.
package kernels

// Linear is a weight matrix W of shape [N, K] (PyTorch nn.Linear layout:
// one row per output feature), prepared for repeated products Y = X·Wᵀ.
type Linear struct {
	N, K int
	w    []float32 // row-major [N][K]
}

// NewLinearF32 prepares float32 weights w ([N][K], row-major).
func NewLinearF32(w []float32, n, k int) *Linear {
	return &Linear{N: n, K: k, w: w}
}

// NewLinearBF16 prepares bfloat16 weights w ([N][K], row-major, raw bits).
func NewLinearBF16(w []uint16, n, k int) *Linear {
	f := make([]float32, len(w))
	for i, b := range w {
		f[i] = BF16ToF32(b)
	}
	return &Linear{N: n, K: k, w: f}
}

// Forward computes y[m][N] = x[m][K] · Wᵀ. y is overwritten.
func (l *Linear) Forward(y, x []float32, m int) {
	for i := 0; i < m; i++ {
		xi := x[i*l.K : (i+1)*l.K]
		yi := y[i*l.N : (i+1)*l.N]
		for j := 0; j < l.N; j++ {
			wj := l.w[j*l.K : (j+1)*l.K]
			var s float32
			for p, v := range xi {
				s += v * wj[p]
			}
			yi[j] = s
		}
	}
}
