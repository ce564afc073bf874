//go:build !amd64 || purego

package kernels

const haveAsm = false

var asmKernels [isaAVX512 + 1][numDTypes][]microKernel

func dotAVX512(a, b *float32, n int) float32                     { panic("no asm") }
func axpyAVX512(alpha float32, x, y *float32, n int)             { panic("no asm") }
func mulScaleAVX512(dst, x, w *float32, s float32, n int)        { panic("no asm") }
func maxAVX512(x *float32, n int) float32                        { panic("no asm") }
func expSumAVX512(x *float32, n int, scale, sub float32) float32 { panic("no asm") }
func swigluAVX512(out, gate, up *float32, n int)                 { panic("no asm") }
func dotAVX2(a, b *float32, n int) float32                       { panic("no asm") }
func axpyAVX2(alpha float32, x, y *float32, n int)               { panic("no asm") }
func mulScaleAVX2(dst, x, w *float32, s float32, n int)          { panic("no asm") }
func maxAVX2(x *float32, n int) float32                          { panic("no asm") }
func expSumAVX2(x *float32, n int, scale, sub float32) float32   { panic("no asm") }
func swigluAVX2(out, gate, up *float32, n int)                   { panic("no asm") }

func ropeAVX2(x, cos, sin *float32, half, heads int) { panic("no asm") }

func widenBF16AVX512(dst *float32, src *uint16, rows int) { panic("no asm") }
func widenF16AVX512(dst *float32, src *uint16, rows int)  { panic("no asm") }
func widenBF16AVX2(dst *float32, src *uint16, rows int)   { panic("no asm") }
func widenF16AVX2(dst *float32, src *uint16, rows int)    { panic("no asm") }
