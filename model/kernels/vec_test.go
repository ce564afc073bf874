package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// vecLens covers empty, every tail length of the 8- and 16-lane loops and
// of the unrolled 32- and 64-element loops, and longer vectors.
var vecLens = func() []int {
	var l []int
	for n := 0; n <= 70; n++ {
		l = append(l, n)
	}
	return append(l, 127, 128, 129, 1000, 4099)
}()

// vecInputs returns n random floats scaled by amp, starting at an odd
// offset into their backing array so that no vector load is aligned.
func vecInputs(r *rand.Rand, n int, amp float64) []float32 {
	v := make([]float32, n+1)
	for i := range v {
		v[i] = float32(r.NormFloat64() * amp)
	}
	return v[1:]
}

// near reports whether got is within rel of want, relative to scale.
func near(got float32, want, scale, rel float64) bool {
	return math.Abs(float64(got)-want) <= rel*scale && !math.IsNaN(float64(got))
}

func TestDotAxpy(t *testing.T) {
	withISA(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(5, 6))
		for _, n := range vecLens {
			a, b := vecInputs(r, n, 1), vecInputs(r, n, 1)
			var ref, mag float64
			for i := range a {
				ref += float64(a[i]) * float64(b[i])
				mag += math.Abs(float64(a[i]) * float64(b[i]))
			}
			if got := Dot(a, b); !near(got, ref, mag, 1e-6) {
				t.Errorf("Dot n=%d: %g, want %g", n, got, ref)
			}
			y := append([]float32(nil), b...)
			guard := append(y[:n:n], 42) // Axpy must not write past n
			y = guard[:n]
			Axpy(0.75, a, y)
			for i := range y {
				want := float64(b[i]) + 0.75*float64(a[i])
				if !near(y[i], want, math.Abs(float64(b[i]))+math.Abs(0.75*float64(a[i])), 1e-6) {
					t.Fatalf("Axpy n=%d: y[%d] = %g, want %g", n, i, y[i], want)
				}
			}
			if guard[n] != 42 {
				t.Fatalf("Axpy n=%d wrote past the end", n)
			}
		}
	})
}

func TestSoftmax(t *testing.T) {
	withISA(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(7, 8))
		for _, n := range vecLens[1:] {
			for _, amp := range []float64{1, 30} { // 30: exps far below the max underflow
				x := vecInputs(r, n, amp)
				x[n/2] = 1e4 / float32(amp) // a dominant score must not overflow
				orig := append([]float32(nil), x...)
				const scale = 0.125
				// SoftmaxExp and the scaling by its result must agree
				// with Softmax.
				y := append([]float32(nil), x...)
				inv := SoftmaxExp(y, scale)
				Softmax(x, scale)
				m := math.Inf(-1)
				for _, v := range orig {
					m = math.Max(m, scale*float64(v))
				}
				var sum float64
				for _, v := range orig {
					sum += math.Exp(scale*float64(v) - m)
				}
				for i, v := range orig {
					want := math.Exp(scale*float64(v)-m) / sum
					// 1e-5 relative, or 1e-35 absolute: exp flushes
					// values beneath e^-87 to zero.
					if !near(x[i], want, math.Max(want, 1e-30), 1e-5) {
						t.Fatalf("Softmax n=%d amp=%g: x[%d] = %g, want %g", n, amp, i, x[i], want)
					}
					if got := y[i] * inv; !near(got, want, math.Max(want, 1e-30), 1e-5) {
						t.Fatalf("SoftmaxExp n=%d amp=%g: x[%d]·inv = %g, want %g", n, amp, i, got, want)
					}
				}
			}
		}
	})
}

func TestMax(t *testing.T) {
	withISA(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(9, 10))
		for _, n := range vecLens[1:] {
			for pos := 0; pos < n; pos += max(1, n/7) {
				x := vecInputs(r, n, 1)
				x[pos] = 100
				if got := Max(x); got != 100 {
					t.Fatalf("Max n=%d with the max at %d: %g", n, pos, got)
				}
			}
			x := vecInputs(r, n, 1)
			for i := range x {
				x[i] = -float32(i) - 5 // all negative: the tail must not add zeros
			}
			if got := Max(x); got != -5 {
				t.Fatalf("Max n=%d of negatives: %g, want -5", n, got)
			}
		}
	})
}

func TestRMSNormSwiGLU(t *testing.T) {
	withISA(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(11, 12))
		for _, n := range vecLens[1:] {
			x, w := vecInputs(r, n, 3), vecInputs(r, n, 1)
			out := make([]float32, n)
			const eps = 1e-6
			RMSNorm(out, x, w, eps)
			var ss float64
			for _, v := range x {
				ss += float64(v) * float64(v)
			}
			s := 1 / math.Sqrt(ss/float64(n)+eps)
			for i := range x {
				want := float64(x[i]) * s * float64(w[i])
				if !near(out[i], want, math.Abs(want), 1e-5) {
					t.Fatalf("RMSNorm n=%d: out[%d] = %g, want %g", n, i, out[i], want)
				}
			}

			g, u := vecInputs(r, n, 4), vecInputs(r, n, 1)
			if n > 3 {
				g[0], g[1], g[2] = 120, -120, 0 // exp clamps on both sides
			}
			SwiGLU(out, g, u)
			for i := range g {
				gf := float64(g[i])
				want := gf / (1 + math.Exp(-gf)) * float64(u[i])
				if !near(out[i], want, math.Max(math.Abs(want), 1e-30), 1e-5) {
					t.Fatalf("SwiGLU n=%d: out[%d] = %g, want %g (g=%g u=%g)", n, i, out[i], want, g[i], u[i])
				}
			}
			SwiGLU(g, g, u) // in place
			for i := range g {
				if g[i] != out[i] {
					t.Fatalf("SwiGLU in place n=%d: [%d] %g != %g", n, i, g[i], out[i])
				}
			}
		}
	})
}

func BenchmarkVec(b *testing.B) {
	for _, n := range []int{64, 512, 4864} {
		r := rand.New(rand.NewPCG(1, 2))
		x, y, w := vecInputs(r, n, 1), vecInputs(r, n, 1), vecInputs(r, n, 1)
		out := make([]float32, n)
		run := func(name string, f func()) {
			b.Run(fmt.Sprintf("%s/n%d", name, n), func(b *testing.B) {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				cpu0 := threadCPU()
				for b.Loop() {
					f()
				}
				b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gelem/s")
				if d := threadCPU() - cpu0; cpu0 > 0 && d > 0 {
					b.ReportMetric(float64(n)*float64(b.N)/d.Seconds()/1e9, "Gelem/cpu-s")
				}
			})
		}
		run("dot", func() { Dot(x, y) })
		run("axpy", func() { Axpy(1e-9, x, y) })
		run("softmax", func() { Softmax(out, 0.125) })
		run("rmsnorm", func() { RMSNorm(out, x, w, 1e-6) })
		run("swiglu", func() { SwiGLU(out, x, y) })
	}
}

// ExpSum with a bound above the true maximum gives the same weights up to
// the factor e^(bound - max): what a caller joining two softmax parts
// relies on.
func TestExpSumAnyBound(t *testing.T) {
	x := []float32{0.5, -1, 3, 2.25, 0, -7, 1.5, 2, 0.1, -0.3, 4, 1, 0, 0, 2, 3, 1}
	const scale, extra = 0.5, 1.5
	m := Max(x) * scale
	for _, bound := range []float32{m, m + extra} {
		y := append([]float32(nil), x...)
		sum := ExpSum(y, scale, bound)
		var want float64
		for i, v := range x {
			w := math.Exp(float64(scale*v - bound))
			want += w
			if math.Abs(float64(y[i])-w) > 1e-6*math.Max(1, w) {
				t.Fatalf("bound %g: x[%d] = %g, want %g", bound, i, y[i], w)
			}
		}
		if math.Abs(float64(sum)-want) > 1e-5*want {
			t.Fatalf("bound %g: sum %g, want %g", bound, sum, want)
		}
	}
}

// TestRoPE holds RoPE to a float64 rotation on every path, for head sizes
// the assembly takes (half a multiple of 8) and ones it leaves to Go, one
// head and several; a length that is not whole heads panics.
func TestRoPE(t *testing.T) {
	withISA(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(3, 4))
		for _, half := range []int{8, 32, 64, 5, 12} {
			for _, heads := range []int{1, 6} {
				x := randF32(r, 2*half*heads)
				c, s := make([]float32, half), make([]float32, half)
				for i := range c {
					a := r.Float64() * 2 * math.Pi
					c[i], s[i] = float32(math.Cos(a)), float32(math.Sin(a))
				}
				got := append([]float32(nil), x...)
				RoPE(got, c, s)
				for h := range heads {
					for i := range half {
						a, b := float64(x[2*h*half+i]), float64(x[2*h*half+half+i])
						w1 := a*float64(c[i]) - b*float64(s[i])
						w2 := b*float64(c[i]) + a*float64(s[i])
						g1, g2 := float64(got[2*h*half+i]), float64(got[2*h*half+half+i])
						if math.Abs(g1-w1) > 1e-6*(1+math.Abs(w1)) || math.Abs(g2-w2) > 1e-6*(1+math.Abs(w2)) {
							t.Fatalf("half %d, %d heads: head %d dim %d: (%g, %g), want (%g, %g)", half, heads, h, i, g1, g2, w1, w2)
						}
					}
				}
			}
		}
		defer func() {
			if recover() == nil {
				t.Error("RoPE of 1.5 heads did not panic")
			}
		}()
		RoPE(make([]float32, 24), make([]float32, 8), make([]float32, 8))
	})
}
