//go:build amd64 && !purego

package kernels

//go:noescape
func dotAVX512(a, b *float32, n int) float32

//go:noescape
func axpyAVX512(alpha float32, x, y *float32, n int)

//go:noescape
func mulScaleAVX512(dst, x, w *float32, s float32, n int)

//go:noescape
func maxAVX512(x *float32, n int) float32

//go:noescape
func expSumAVX512(x *float32, n int, scale, sub float32) float32

//go:noescape
func swigluAVX512(out, gate, up *float32, n int)

//go:noescape
func dotAVX2(a, b *float32, n int) float32

//go:noescape
func axpyAVX2(alpha float32, x, y *float32, n int)

//go:noescape
func mulScaleAVX2(dst, x, w *float32, s float32, n int)

//go:noescape
func maxAVX2(x *float32, n int) float32

//go:noescape
func expSumAVX2(x *float32, n int, scale, sub float32) float32

//go:noescape
func swigluAVX2(out, gate, up *float32, n int)

//go:noescape
func widenBF16AVX512(dst *float32, src *uint16, rows int)

//go:noescape
func widenF16AVX512(dst *float32, src *uint16, rows int)

//go:noescape
func widenBF16AVX2(dst *float32, src *uint16, rows int)

//go:noescape
func widenF16AVX2(dst *float32, src *uint16, rows int)

//go:noescape
func ropeAVX2(x, cos, sin *float32, half, heads int)
