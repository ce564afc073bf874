package kernels

import (
	"fmt"
	"math"
)

// Vector kernels. Each takes the lengths from its first slice argument and
// panics if another is shorter. On amd64 they run in assembly; the AVX2
// versions leave a tail of fewer than 8 elements to the Go loops below.

func checkLen(op string, n int, lens ...int) {
	for _, l := range lens {
		if l < n {
			panic(fmt.Sprintf("kernels: %s: slice of %d elements, need %d", op, l, n))
		}
	}
}

// Dot returns Σ a[i]·b[i] over len(a) elements.
func Dot(a, b []float32) float32 {
	n := len(a)
	checkLen("Dot", n, len(b))
	if n == 0 {
		return 0
	}
	switch curISA {
	case isaAVX512:
		return dotAVX512(&a[0], &b[0], n)
	case isaAVX2:
		m := n &^ 7
		var s float32
		if m > 0 {
			s = dotAVX2(&a[0], &b[0], m)
		}
		return s + dotGo(a[m:], b[m:n])
	}
	return dotGo(a, b[:n])
}

func dotGo(a, b []float32) float32 {
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// Axpy sets y[i] += alpha·x[i] over len(x) elements.
func Axpy(alpha float32, x, y []float32) {
	n := len(x)
	checkLen("Axpy", n, len(y))
	if n == 0 {
		return
	}
	switch curISA {
	case isaAVX512:
		axpyAVX512(alpha, &x[0], &y[0], n)
		return
	case isaAVX2:
		m := n &^ 7
		if m > 0 {
			axpyAVX2(alpha, &x[0], &y[0], m)
		}
		x, y = x[m:], y[m:]
	}
	axpyGo(alpha, x, y)
}

func axpyGo(alpha float32, x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += alpha * v
	}
}

// Add sets dst[i] += src[i] over len(src) elements (a residual connection).
func Add(dst, src []float32) { Axpy(1, src, dst) }

// Scale sets x[i] *= s.
func Scale(x []float32, s float32) { mulScale(x, x, nil, s) }

// mulScale sets dst[i] = x[i]·w[i]·s over len(x) elements; w nil means ones.
func mulScale(dst, x, w []float32, s float32) {
	n := len(x)
	checkLen("mulScale", n, len(dst))
	if w != nil {
		checkLen("mulScale", n, len(w))
	}
	if n == 0 {
		return
	}
	var wp *float32
	if w != nil {
		wp = &w[0]
	}
	switch curISA {
	case isaAVX512:
		mulScaleAVX512(&dst[0], &x[0], wp, s, n)
		return
	case isaAVX2:
		m := n &^ 7
		if m > 0 {
			mulScaleAVX2(&dst[0], &x[0], wp, s, m)
		}
		dst, x = dst[m:], x[m:]
		if w != nil {
			w = w[m:]
		}
	}
	mulScaleGo(dst, x, w, s)
}

func mulScaleGo(dst, x, w []float32, s float32) {
	dst = dst[:len(x)]
	if w == nil {
		for i, v := range x {
			dst[i] = v * s
		}
		return
	}
	w = w[:len(x)]
	for i, v := range x {
		dst[i] = v * s * w[i]
	}
}

// Max returns the largest element of x (which must not be empty).
func Max(x []float32) float32 {
	n := len(x)
	if n == 0 {
		panic("kernels: Max of nothing")
	}
	switch curISA {
	case isaAVX512:
		return maxAVX512(&x[0], n)
	case isaAVX2:
		if m := n &^ 7; m > 0 {
			return max(maxAVX2(&x[0], m), maxGo(x[m:], x[0]))
		}
	}
	return maxGo(x, x[0])
}

func maxGo(x []float32, m float32) float32 {
	for _, v := range x {
		m = max(m, v)
	}
	return m
}

// expSum sets x[i] = exp(x[i]·scale - sub) and returns Σ x[i].
func expSum(x []float32, scale, sub float32) float32 {
	n := len(x)
	if n == 0 {
		return 0
	}
	switch curISA {
	case isaAVX512:
		return expSumAVX512(&x[0], n, scale, sub)
	case isaAVX2:
		m := n &^ 7
		var s float32
		if m > 0 {
			s = expSumAVX2(&x[0], m, scale, sub)
		}
		return s + expSumGo(x[m:], scale, sub)
	}
	return expSumGo(x, scale, sub)
}

func expSumGo(x []float32, scale, sub float32) float32 {
	var s float32
	for i, v := range x {
		e := float32(math.Exp(float64(v*scale - sub)))
		x[i] = e
		s += e
	}
	return s
}

// Softmax sets x = softmax(scale·x) in place: x[i] = exp(scale·x[i] - m) /
// Σ exp(scale·x[j] - m), with m the largest scale·x[j] so nothing
// overflows. scale must be positive (attention's 1/√d).
func Softmax(x []float32, scale float32) {
	if len(x) == 0 {
		return
	}
	mulScale(x, x, nil, SoftmaxExp(x, scale))
}

// SoftmaxExp is Softmax without the division, two passes over x instead
// of three: it sets x[i] = exp(scale·x[i] - m), m the largest scale·x[j],
// and returns 1/Σ x[i]. Attention uses it to scale each output row (head
// size floats) by the returned factor instead of every score. x must not
// be empty; scale must be positive.
func SoftmaxExp(x []float32, scale float32) float32 {
	if len(x) == 0 {
		panic("kernels: SoftmaxExp of nothing")
	}
	return 1 / ExpSum(x, scale, Max(x)*scale)
}

// ExpSum sets x[i] = exp(scale·x[i] - m) and returns Σ x[i], for callers
// that already know m = max(scale·x) (or anything at least as large, so
// nothing overflows): one pass over x. scale must be positive.
func ExpSum(x []float32, scale, m float32) float32 {
	if !(scale > 0) {
		panic(fmt.Sprintf("kernels: Softmax scale %g is not positive", scale))
	}
	return expSum(x, scale, m)
}

// RMSNorm sets out[i] = x[i] / rms(x) · w[i] over len(x) elements, with
// rms(x) = √(Σx²/n + eps). out may be x.
func RMSNorm(out, x, w []float32, eps float32) {
	n := len(x)
	checkLen("RMSNorm", n, len(out), len(w))
	if n == 0 {
		return
	}
	ss := Dot(x, x)
	s := float32(1 / math.Sqrt(float64(ss)/float64(n)+float64(eps)))
	mulScale(out, x, w, s)
}

// SwiGLU sets out[i] = silu(gate[i])·up[i], silu(g) = g/(1+e^-g), over
// len(gate) elements. out may be gate or up.
func SwiGLU(out, gate, up []float32) {
	n := len(gate)
	checkLen("SwiGLU", n, len(out), len(up))
	if n == 0 {
		return
	}
	switch curISA {
	case isaAVX512:
		swigluAVX512(&out[0], &gate[0], &up[0], n)
		return
	case isaAVX2:
		m := n &^ 7
		if m > 0 {
			swigluAVX2(&out[0], &gate[0], &up[0], m)
		}
		out, gate, up = out[m:], gate[m:], up[m:]
	}
	swigluGo(out, gate, up)
}

func swigluGo(out, gate, up []float32) {
	out, up = out[:len(gate)], up[:len(gate)]
	for i, g := range gate {
		out[i] = g / (1 + float32(math.Exp(float64(-g)))) * up[i]
	}
}

// RoPE rotates every head of x by its position's angles, in transformers'
// rotate_half convention: x holds len(x)/(2·len(cos)) heads of 2·len(cos)
// floats, and dimension i of a head pairs with i + len(cos). The assembly
// rounds each product before the sum, as Go code built for the default
// GOAMD64=v1 does (no FMA), so the paths give the same bits there.
func RoPE(x, cos, sin []float32) {
	half := len(cos)
	checkLen("RoPE", half, len(sin))
	if half == 0 {
		return
	}
	if len(x)%(2*half) != 0 {
		panic(fmt.Sprintf("kernels: RoPE: %d floats are not whole heads of %d", len(x), 2*half))
	}
	heads := len(x) / (2 * half)
	if heads > 0 && curISA != isaGeneric && half%8 == 0 {
		ropeAVX2(&x[0], &cos[0], &sin[0], half, heads)
		return
	}
	for h := range heads {
		ropeGo(x[2*h*half:(2*h+2)*half], cos, sin)
	}
}

func ropeGo(x, cos, sin []float32) {
	half := len(cos)
	x1, x2 := x[:half], x[half:2*half]
	sin = sin[:half]
	for i := range half {
		a, b := x1[i], x2[i]
		x1[i] = a*cos[i] - b*sin[i]
		x2[i] = b*cos[i] + a*sin[i]
	}
}
