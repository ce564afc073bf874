package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gorgonia.org/tensor"
)

// TestTensorMatMul plugs the kernels into gorgonia's tensor package and
// holds tensor.MatMul and tensor.MatVecMul to naive products.
func TestTensorMatMul(t *testing.T) {
	old := tensor.WhichBLAS()
	tensor.Use(NewBLAS(nil))
	defer tensor.Use(old)

	r := rand.New(rand.NewPCG(4, 4))
	for _, s := range []struct{ m, n, k int }{{1, 1, 1}, {5, 7, 3}, {64, 100, 70}, {33, 513, 129}} {
		a, bt := randF32(r, s.m*s.k), randF32(r, s.k*s.n) // b as [k][n]
		A := tensor.New(tensor.WithShape(s.m, s.k), tensor.WithBacking(append([]float32(nil), a...)))
		B := tensor.New(tensor.WithShape(s.k, s.n), tensor.WithBacking(append([]float32(nil), bt...)))
		C, err := tensor.MatMul(A, B)
		if err != nil {
			t.Fatal(err)
		}
		w := transpose(bt, s.k, s.n) // [n][k] for checkProduct
		checkProduct(t, C.Data().([]float32), s.n, a, w, s.m, s.n, s.k, 1e-5)

		// A·Bᵀ through a transposed view: Sgemm with tB = Trans.
		Bt := tensor.New(tensor.WithShape(s.n, s.k), tensor.WithBacking(append([]float32(nil), w...)))
		if err := Bt.T(); err != nil {
			t.Fatal(err)
		}
		C2, err := tensor.MatMul(A, Bt)
		if err != nil {
			t.Fatal(err)
		}
		checkProduct(t, C2.Data().([]float32), s.n, a, w, s.m, s.n, s.k, 1e-5)

		x := randF32(r, s.k)
		X := tensor.New(tensor.WithShape(s.k), tensor.WithBacking(append([]float32(nil), x...)))
		Y, err := tensor.MatVecMul(A, X)
		if err != nil {
			t.Fatal(err)
		}
		checkProduct(t, Y.Data().([]float32), 1, a, x, s.m, 1, s.k, 1e-5)
	}
}

func transpose(a []float32, r, c int) []float32 {
	t := make([]float32, r*c)
	for i := 0; i < r; i++ {
		for j := 0; j < c; j++ {
			t[j*r+i] = a[i*c+j]
		}
	}
	return t
}

// TestSgemmArgs covers what tensor does not reach: transposed A, strides,
// alpha and beta, against float64 arithmetic.
func TestSgemmArgs(t *testing.T) {
	b := NewBLAS(nil)
	r := rand.New(rand.NewPCG(8, 8))
	for _, tc := range []struct {
		tA, tB      blas.Transpose
		alpha, beta float32
	}{
		{blas.NoTrans, blas.NoTrans, 1, 0}, {blas.Trans, blas.NoTrans, 1, 0}, {blas.NoTrans, blas.Trans, 2, 0},
		{blas.Trans, blas.Trans, -0.5, 1}, {blas.NoTrans, blas.NoTrans, 1, 0.25}, {blas.NoTrans, blas.Trans, 0, 3},
	} {
		const m, n, k, pad = 19, 45, 37, 3
		t.Run(fmt.Sprintf("%c%c/%g/%g", tc.tA, tc.tB, tc.alpha, tc.beta), func(t *testing.T) {
			ar, ac := m, k
			if tc.tA == blas.Trans {
				ar, ac = k, m
			}
			br, bc := k, n
			if tc.tB == blas.Trans {
				br, bc = n, k
			}
			lda, ldb, ldc := ac+pad, bc+pad, n+pad
			a, bm, c := randF32(r, ar*lda), randF32(r, br*ldb), randF32(r, m*ldc)
			c0 := append([]float32(nil), c...)
			b.Sgemm(tc.tA, tc.tB, m, n, k, tc.alpha, a, lda, bm, ldb, tc.beta, c, ldc)
			at := func(i, p int) float64 { // op(A)[i][p]
				if tc.tA == blas.Trans {
					return float64(a[p*lda+i])
				}
				return float64(a[i*lda+p])
			}
			bt := func(p, j int) float64 {
				if tc.tB == blas.Trans {
					return float64(bm[j*ldb+p])
				}
				return float64(bm[p*ldb+j])
			}
			for i := 0; i < m; i++ {
				for j := 0; j < ldc; j++ {
					got := float64(c[i*ldc+j])
					if j >= n {
						if got != float64(c0[i*ldc+j]) {
							t.Fatalf("c[%d][%d] past n changed", i, j)
						}
						continue
					}
					var ref, mag float64
					for p := 0; p < k; p++ {
						ref += at(i, p) * bt(p, j)
						mag += math.Abs(at(i, p) * bt(p, j))
					}
					want := float64(tc.alpha)*ref + float64(tc.beta)*float64(c0[i*ldc+j])
					scale := math.Abs(float64(tc.alpha))*mag + math.Abs(float64(tc.beta)*float64(c0[i*ldc+j]))
					if !near(float32(got), want, scale, 1e-5) {
						t.Fatalf("c[%d][%d] = %g, want %g", i, j, got, want)
					}
				}
			}
		})
	}
}

func TestSgemv(t *testing.T) {
	b := NewBLAS(nil)
	r := rand.New(rand.NewPCG(9, 9))
	const m, n, lda = 300, 700, 710
	a := randF32(r, m*lda)
	for _, tA := range []blas.Transpose{blas.NoTrans, blas.Trans} {
		for _, beta := range []float32{0, 0.5} {
			lx, ly := n, m
			if tA == blas.Trans {
				lx, ly = m, n
			}
			x, y := randF32(r, lx), randF32(r, ly)
			y0 := append([]float32(nil), y...)
			b.Sgemv(tA, m, n, 1.5, a, lda, x, 1, beta, y, 1)
			for i := 0; i < ly; i++ {
				var ref, mag float64
				for p := 0; p < lx; p++ {
					var av float32
					if tA == blas.Trans {
						av = a[p*lda+i]
					} else {
						av = a[i*lda+p]
					}
					ref += float64(av) * float64(x[p])
					mag += math.Abs(float64(av) * float64(x[p]))
				}
				want := 1.5*ref + float64(beta)*float64(y0[i])
				if !near(y[i], want, 1.5*mag+math.Abs(float64(beta*y0[i])), 1e-5) {
					t.Fatalf("%c beta=%g: y[%d] = %g, want %g", tA, beta, i, y[i], want)
				}
			}
		}
	}
}
