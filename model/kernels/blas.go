package kernels

import (
	"fmt"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// BLAS is an implementation of gorgonia.org/tensor's BLAS interface whose
// single-precision matrix products (Sgemm, Sgemv) run on this package's
// kernels; every other routine is gonum's. Plug it in with
//
//	tensor.Use(kernels.NewBLAS(nil))
//
// so that tensor.MatMul and friends on float32 Dense tensors use it.
type BLAS struct {
	gonum.Implementation
	pool *Pool
}

// NewBLAS returns a BLAS running on p (nil means DefaultPool).
func NewBLAS(p *Pool) *BLAS {
	if p == nil {
		p = DefaultPool()
	}
	return &BLAS{pool: p}
}

// Sgemm computes C = alpha·op(A)·op(B) + beta·C, row-major, with op(A)
// m×k and op(B) k×n. B is packed into panels for the call; a transposed A
// is copied first. When beta is 0, C is not read.
func (b *BLAS) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int,
	bm []float32, ldb int, beta float32, c []float32, ldc int) {
	transA, transB := isTrans(tA), isTrans(tB)
	ar, ac := m, k // A's stored shape
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	checkMat("Sgemm", "a", a, ar, ac, lda)
	checkMat("Sgemm", "b", bm, br, bc, ldb)
	checkMat("Sgemm", "c", c, m, n, ldc)
	if m == 0 || n == 0 {
		return
	}
	if alpha == 0 || k == 0 {
		scaleMat(c, m, n, ldc, beta)
		return
	}
	if transA {
		t := make([]float32, m*k)
		for i := 0; i < k; i++ {
			for j, v := range a[i*lda : i*lda+m] {
				t[j*k+i] = v
			}
		}
		a, lda = t, k
	}
	l := newLinear(dtF32, n, k, curISA, []Option{WithPool(b.pool)})
	if transB {
		packPanels(l.f32, bm, ldb, l, false)
	} else {
		packPanelsT(l.f32, bm, ldb, l)
	}
	if alpha == 1 && beta == 0 {
		l.gemm(c, ldc, a, lda, m)
		return
	}
	t := make([]float32, m*n)
	l.gemm(t, n, a, lda, m)
	for i := 0; i < m; i++ {
		ci, ti := c[i*ldc:i*ldc+n], t[i*n:(i+1)*n]
		if beta == 0 {
			mulScale(ci, ti, nil, alpha)
			continue
		}
		for j, v := range ti {
			ci[j] = alpha*v + beta*ci[j]
		}
	}
}

// Sgemv computes y = alpha·op(A)·x + beta·y with A m×n, row-major. Unit
// strides run on Dot (rows of A) or Axpy (columns of Aᵀ) split across the
// pool; other strides go to gonum.
func (b *BLAS) Sgemv(tA blas.Transpose, m, n int, alpha float32, a []float32, lda int,
	x []float32, incX int, beta float32, y []float32, incY int) {
	if incX != 1 || incY != 1 {
		b.Implementation.Sgemv(tA, m, n, alpha, a, lda, x, incX, beta, y, incY)
		return
	}
	checkMat("Sgemv", "a", a, m, n, lda)
	trans := isTrans(tA)
	lenX, lenY := n, m
	if trans {
		lenX, lenY = m, n
	}
	checkLen("Sgemv", lenX, len(x))
	checkLen("Sgemv", lenY, len(y))
	if m == 0 || n == 0 {
		return
	}
	if alpha == 0 {
		scaleMat(y, 1, lenY, lenY, beta)
		return
	}
	// Chunks of about 64K elements of A each.
	if !trans {
		rows := max(1, (1<<16)/n)
		b.pool.Run((m+rows-1)/rows, func(ch int) {
			for i := ch * rows; i < min(m, (ch+1)*rows); i++ {
				d := alpha * Dot(a[i*lda:i*lda+n], x)
				if beta != 0 {
					d += beta * y[i]
				}
				y[i] = d
			}
		})
		return
	}
	cols := max(256, (1<<16)/m)
	b.pool.Run((n+cols-1)/cols, func(ch int) {
		j0, j1 := ch*cols, min(n, (ch+1)*cols)
		yc := y[j0:j1]
		scaleMat(yc, 1, len(yc), len(yc), beta)
		for i := 0; i < m; i++ {
			Axpy(alpha*x[i], a[i*lda+j0:i*lda+j1], yc)
		}
	})
}

func isTrans(t blas.Transpose) bool {
	switch t {
	case blas.NoTrans:
		return false
	case blas.Trans, blas.ConjTrans:
		return true
	}
	panic(fmt.Sprintf("kernels: bad blas.Transpose %q", rune(t)))
}

// checkMat panics, as BLAS routines do, unless s holds an r×c matrix with
// row stride ld.
func checkMat(op, name string, s []float32, r, c, ld int) {
	if r < 0 || c < 0 || ld < max(1, c) || (r > 0 && c > 0 && len(s) < (r-1)*ld+c) {
		panic(fmt.Sprintf("kernels: %s: %s is %d floats, stride %d; need %d×%d", op, name, len(s), ld, r, c))
	}
}

// scaleMat sets the r×c matrix s (row stride ld) to beta·s; beta 0 clears
// it without reading (so NaNs in s do not survive, as BLAS specifies).
func scaleMat(s []float32, r, c, ld int, beta float32) {
	for i := 0; i < r; i++ {
		row := s[i*ld : i*ld+c]
		switch beta {
		case 0:
			clear(row)
		case 1:
		default:
			Scale(row, beta)
		}
	}
}
