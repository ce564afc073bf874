package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// withISA runs f once per instruction-set path this machine supports,
// with new Linears and the vector kernels forced onto that path.
func withISA(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	for _, s := range supportedISAs() {
		t.Run(s.String(), func(t *testing.T) {
			old := curISA
			curISA = s
			defer func() { curISA = old }()
			f(t)
		})
	}
}

func randF32(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// weights returns random weights as the kernel will see them (rounded to
// the dtype) and in the raw form the constructor takes.
func weights(r *rand.Rand, dt dtype, n, k int) (exact []float32, raw []uint16) {
	exact = randF32(r, n*k)
	if dt == dtF32 {
		return exact, nil
	}
	raw = make([]uint16, n*k)
	for i, v := range exact {
		if dt == dtBF16 {
			raw[i] = F32ToBF16(v)
			exact[i] = BF16ToF32(raw[i])
		} else {
			raw[i] = f32ToF16(v)
			exact[i] = F16ToF32(raw[i])
		}
	}
	return exact, raw
}

func newLinearOf(dt dtype, exact []float32, raw []uint16, n, k int, opts ...Option) *Linear {
	switch dt {
	case dtBF16:
		return NewLinearBF16(raw, n, k, opts...)
	case dtF16:
		return NewLinearF16(raw, n, k, opts...)
	}
	return NewLinearF32(exact, n, k, opts...)
}

// checkProduct holds y (m×n, row stride ldy) to the float64 product of x
// (m×k) and w ([n][k]): |y - ref| <= tol·Σ|x·w| per element, the bound a
// float32 sum of k terms meets whatever its order.
func checkProduct(t *testing.T, y []float32, ldy int, x, w []float32, m, n, k int, tol float64) {
	t.Helper()
	bad := 0
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var ref, mag float64
			for p := 0; p < k; p++ {
				v := float64(x[i*k+p]) * float64(w[j*k+p])
				ref += v
				mag += math.Abs(v)
			}
			got := float64(y[i*ldy+j])
			if math.Abs(got-ref) > tol*mag || math.IsNaN(got) {
				if bad < 5 {
					t.Errorf("y[%d][%d] = %g, want %g (±%g)", i, j, got, ref, tol*mag)
				}
				bad++
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d elements wrong", bad, m*n)
	}
}

func TestLinearForward(t *testing.T) {
	shapes := []struct{ m, n, k int }{
		{1, 1, 1}, {1, 7, 3}, {3, 33, 5}, {14, 32, 16}, {15, 31, 17}, {16, 64, 64},
		{29, 100, 129}, {64, 48, 200}, {5, 257, 3}, {13, 96, 1001},
		{70, 65, 385}, {2, 40, 900}, {20, 45, 900}, // k blocks and a ragged panel
		{230, 40, 70}, // enough rows to widen bf16 panels once per k block
	}
	if !testing.Short() {
		shapes = append(shapes, struct{ m, n, k int }{130, 300, 1100})
	}
	withISA(t, func(t *testing.T) {
		for _, dt := range []dtype{dtF32, dtBF16, dtF16} {
			for _, s := range shapes {
				t.Run(fmt.Sprintf("%v/%dx%dx%d", dt, s.m, s.n, s.k), func(t *testing.T) {
					r := rand.New(rand.NewPCG(uint64(s.m), uint64(s.n*1000+s.k)))
					w, raw := weights(r, dt, s.n, s.k)
					x := randF32(r, s.m*s.k)
					l := newLinearOf(dt, w, raw, s.n, s.k)
					if l.isa != curISA {
						t.Fatalf("Linear packed for %v, want %v", l.isa, curISA)
					}
					y := make([]float32, s.m*s.n)
					for i := range y {
						y[i] = float32(math.NaN()) // Forward must overwrite
					}
					l.Forward(y, x, s.m)
					checkProduct(t, y, s.n, x, w, s.m, s.n, s.k, 1e-5)
				})
			}
		}
	})
}

// TestLinearPools runs the same product on pools of several sizes (the
// task split differs) and concurrently from several goroutines.
func TestLinearPools(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	m, n, k := 37, 333, 260
	w := randF32(r, n*k)
	x := randF32(r, m*k)
	for _, workers := range []int{1, 2, 3, 8} {
		p := NewPool(workers)
		l := NewLinearF32(w, n, k, WithPool(p))
		done := make(chan []float32)
		for range 4 {
			go func() {
				y := make([]float32, m*n)
				l.Forward(y, x, m)
				done <- y
			}()
		}
		for range 4 {
			checkProduct(t, <-done, n, x, w, m, n, k, 1e-5)
		}
		p.Close()
		y := make([]float32, m*n)
		l.Forward(y, x, m) // after Close: runs on the caller
		checkProduct(t, y, n, x, w, m, n, k, 1e-5)
	}
}

func TestMatMul(t *testing.T) {
	withISA(t, func(t *testing.T) {
		for _, s := range []struct{ m, n, k int }{{1, 1, 1}, {7, 9, 11}, {33, 70, 64}, {64, 64, 513}} {
			r := rand.New(rand.NewPCG(3, uint64(s.n)))
			a := randF32(r, s.m*s.k)
			bt := randF32(r, s.n*s.k) // [n][k]
			b := make([]float32, s.k*s.n)
			for i := 0; i < s.n; i++ {
				for j := 0; j < s.k; j++ {
					b[j*s.n+i] = bt[i*s.k+j]
				}
			}
			c := make([]float32, s.m*s.n)
			MatMul(c, a, bt, s.m, s.n, s.k, true)
			checkProduct(t, c, s.n, a, bt, s.m, s.n, s.k, 1e-5)
			clear(c)
			MatMul(c, a, b, s.m, s.n, s.k, false)
			checkProduct(t, c, s.n, a, bt, s.m, s.n, s.k, 1e-5)
		}
	})
}

func TestConvert(t *testing.T) {
	// Every f16 value against math/big-free reference arithmetic.
	for h := 0; h < 1<<16; h++ {
		got := F16ToF32(uint16(h))
		sign := 1.0
		if h&0x8000 != 0 {
			sign = -1
		}
		e, f := (h>>10)&0x1f, float64(h&0x3ff)
		var want float64
		switch {
		case e == 0:
			want = sign * f * math.Pow(2, -24)
		case e == 31 && f == 0:
			want = math.Inf(int(sign))
		case e == 31:
			if !math.IsNaN(float64(got)) {
				t.Fatalf("F16ToF32(%#04x) = %g, want NaN", h, got)
			}
			continue
		default:
			want = sign * (1 + f/1024) * math.Pow(2, float64(e-15))
		}
		if float64(got) != want || math.Signbit(float64(got)) != (sign < 0) {
			t.Fatalf("F16ToF32(%#04x) = %g, want %g", h, got, want)
		}
	}
	for _, c := range []struct {
		f float32
		b uint16
	}{{1, 0x3f80}, {-2, 0xc000}, {1.00390625, 0x3f80}, {1.01171875, 0x3f82}, {float32(math.Inf(1)), 0x7f80}} {
		if got := F32ToBF16(c.f); got != c.b {
			t.Errorf("F32ToBF16(%g) = %#04x, want %#04x", c.f, got, c.b)
		}
	}
	if b := F32ToBF16(float32(math.NaN())); !math.IsNaN(float64(BF16ToF32(b))) {
		t.Errorf("F32ToBF16(NaN) = %#04x, not NaN", b)
	}
}

// f32ToF16 rounds to the nearest half (test helper; normal range only).
func f32ToF16(f float32) uint16 {
	if f == 0 {
		return 0
	}
	sign := uint16(0)
	if f < 0 {
		sign, f = 0x8000, -f
	}
	e := math.Floor(math.Log2(float64(f)))
	if e < -14 {
		return sign | uint16(math.RoundToEven(float64(f)*(1<<24)))
	}
	m := math.RoundToEven((float64(f)/math.Pow(2, e) - 1) * 1024)
	if m == 1024 {
		m, e = 0, e+1
	}
	if e > 15 {
		return sign | 0x7c00
	}
	return sign | uint16(e+15)<<10 | uint16(m)
}

// TestF16WithoutF16C: on an AVX2 machine without F16C, f16 weights are
// widened to float32 at construction instead of in the kernel.
func TestF16WithoutF16C(t *testing.T) {
	if bestISA < isaAVX2 {
		t.Skip("no AVX2 on this machine")
	}
	oldISA, oldF16C := curISA, hasF16C
	curISA, hasF16C = isaAVX2, false
	defer func() { curISA, hasF16C = oldISA, oldF16C }()
	r := rand.New(rand.NewPCG(2, 3))
	const m, n, k = 5, 40, 33
	w, raw := weights(r, dtF16, n, k)
	l := NewLinearF16(raw, n, k)
	if l.dt != dtF32 {
		t.Fatalf("packed as %v, want f32", l.dt)
	}
	x := randF32(r, m*k)
	y := make([]float32, m*n)
	l.Forward(y, x, m)
	checkProduct(t, y, n, x, w, m, n, k, 1e-5)
}

// TestPlanRows: every row is in exactly one block, in order, with as few
// blocks as any split over the kernels' row counts can have (found here by
// dynamic programming, independently of planRows).
func TestPlanRows(t *testing.T) {
	for _, s := range supportedISAs() {
		for _, dt := range []dtype{dtF32, dtBF16, dtF16} {
			kerns := kernelsFor(s, dt)
			fewest := []int{0} // fewest[m]: the fewest blocks covering m rows
			for m := 1; m <= 200; m++ {
				best := m + 1
				for _, k := range kerns {
					if k.mr <= m {
						best = min(best, fewest[m-k.mr]+1)
					}
				}
				fewest = append(fewest, best)
			}
			for m := 1; m <= 200; m++ {
				p := planRows(m, kerns)
				if p.len() > fewest[m] {
					t.Errorf("%v/%v m=%d: %d blocks, %d would do", s, dt, m, p.len(), fewest[m])
				}
				r := 0
				for i := range p.len() {
					b := p.at(i)
					if b.r0 != r || b.k.fn == nil {
						t.Fatalf("%v/%v m=%d: block %d starts at %d, want %d", s, dt, m, i, b.r0, r)
					}
					r += b.k.mr
				}
				if r != m {
					t.Fatalf("%v/%v m=%d: blocks cover %d rows", s, dt, m, r)
				}
			}
		}
	}
}

// TestForwardAllocs: a product allocates nothing once its pool and
// scratch are warm, on one goroutine and on the pool, widening or not,
// with a ragged last panel.
func TestForwardAllocs(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("coverage and the race detector allocate")
	}
	r := rand.New(rand.NewPCG(4, 5))
	p := NewPool(2)
	defer p.Close()
	for _, pool := range []*Pool{nil, p} {
		for _, s := range []struct{ m, n, k int }{{1, 512, 256}, {16, 1344, 256}, {32, 250, 672}, {300, 100, 64}} {
			_, raw := weights(r, dtBF16, s.n, s.k)
			l := NewLinearBF16(raw, s.n, s.k, WithPool(pool))
			if pool == nil {
				l.pool = nil
			}
			x, y := randF32(r, s.m*s.k), make([]float32, s.m*s.n)
			if a := testing.AllocsPerRun(20, func() { l.Forward(y, x, s.m) }); a > 0 {
				t.Errorf("pool %d workers, %dx%dx%d: %.1f allocations per Forward", pool.Workers(), s.m, s.n, s.k, a)
			}
		}
	}
	if a := testing.AllocsPerRun(20, func() { p.run(8, noopRunner{}) }); a > 0 {
		t.Errorf("Pool.run: %.1f allocations per call", a)
	}
}

type noopRunner struct{}

func (noopRunner) run(int) {}
