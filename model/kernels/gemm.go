package kernels

import (
	"fmt"
	"unsafe"
)

// A dtype is the element type of packed weights.
type dtype uint8

const (
	dtF32 dtype = iota
	dtBF16
	dtF16
	numDTypes
)

func (d dtype) String() string {
	return [...]string{"f32", "bf16", "f16"}[d]
}

func (d dtype) size() int {
	if d == dtF32 {
		return 4
	}
	return 2
}

// A kernelFn computes one tile C[mr][nr] (+)= A[mr][kc] · B[kc][nr]: A is
// mr rows of X read in place (row stride lda floats), B one packed panel
// starting at row k0, C rows ldc floats apart. accum != 0 adds to C.
type kernelFn func(a *float32, lda int, b unsafe.Pointer, c *float32, ldc, kc, accum int)

// A microKernel is a kernelFn for a fixed number of rows.
type microKernel struct {
	mr int
	fn kernelFn
}

// Cache blocking. A tile's rows of A (mr × kc floats) should stay in L1
// while the tile walks along a group of panels; the group (kc × nb·nr
// weights) should stay in L2 while row blocks walk down M, with room to
// spare for the rows of C being updated. Measured on a 2 MiB L2: 512 KiB
// groups beat 1 MiB ones, and long walks down M (up to chunkBlocks
// blocks, ~900 rows) beat short ones by 10-25%, as each group is then
// fetched from memory fewer times.
const (
	l1Budget    = 24 << 10
	l2Budget    = 512 << 10
	chunkBlocks = 64
)

func kernelsFor(s isa, dt dtype) []microKernel {
	if s == isaGeneric {
		return genericKernelTab[dt]
	}
	return asmKernels[s][dt]
}

// genericKernelTab holds the pure-Go microkernels for 16-wide panels.
var genericKernelTab = [numDTypes][]microKernel{
	dtF32:  genericKernels(dtF32, 16),
	dtBF16: genericKernels(dtBF16, 16),
	dtF16:  genericKernels(dtF16, 16),
}

// A rowBlock is rows [r0, r0+k.mr) of X and Y, done by one microkernel.
type rowBlock struct {
	r0 int
	k  microKernel
}

// rowBlocks splits m rows into microkernel-sized blocks: as many of the
// largest kernel as fit, then the rest greedily, largest first.
func rowBlocks(m int, kerns []microKernel) []rowBlock {
	var out []rowBlock
	r := 0
	for i := len(kerns) - 1; i >= 0; i-- {
		for m-r >= kerns[i].mr {
			out = append(out, rowBlock{r, kerns[i]})
			r += kerns[i].mr
		}
	}
	return out
}

// gemm computes y = x · Wᵀ for m rows, with row strides ldy and ldx.
func (l *Linear) gemm(y []float32, ldy int, x []float32, ldx int, m int) {
	nr, k, es := l.nr, l.K, l.dt.size()
	kerns := l.kerns
	blocks := rowBlocks(m, kerns)
	maxMR := kerns[len(kerns)-1].mr
	widest := 0 // rows of the largest block actually used
	for _, b := range blocks {
		widest = max(widest, b.k.mr)
	}

	// k blocks: as long as a block's rows of A fit l1Budget, split evenly.
	// Few rows (decode steps) make A small: no k blocks then, so each
	// panel streams from memory in one contiguous run.
	kcMax := max(l1Budget/(4*widest), 64)
	nk := (k + kcMax - 1) / kcMax
	kc := (k + nk - 1) / nk
	kc = (kc + 15) &^ 15

	// Panel groups: as many panels as keep kc rows of them in l2Budget.
	// Row chunks: up to chunkBlocks blocks. Both split evenly, so tasks
	// are of a size.
	// Many rows of bf16 or f16 weights: widen each group to float32 once
	// per k block, rather than in every microkernel call down M (in the
	// kernel, conversion costs 8% (bf16) to 16% (f16) of its speed).
	widen := l.dt != dtF32 && l.isa != isaGeneric && len(blocks) >= widenBlocks[l.dt]
	var blocks32 []rowBlock
	if widen {
		blocks32 = rowBlocks(m, kernelsFor(l.isa, dtF32))
		es = 4
	}
	groupPanels := max(l2Budget/(kc*nr*es), 1)
	ngroups := (l.panels + groupPanels - 1) / groupPanels
	nchunks := (len(blocks) + chunkBlocks - 1) / chunkBlocks
	// Enough tasks that the pool's goroutines finish close together:
	// split N finer first (each task then still walks all its rows), then M.
	if want := 3 * l.pool.Workers(); nchunks*ngroups < want && m*l.N*k >= 1<<16 {
		ngroups = min((want+nchunks-1)/nchunks, l.panels)
		if nchunks*ngroups < want {
			nchunks = min((want+ngroups-1)/ngroups, len(blocks))
		}
	}
	var base unsafe.Pointer
	if l.dt == dtF32 {
		base = unsafe.Pointer(unsafe.SliceData(l.f32))
	} else {
		base = unsafe.Pointer(unsafe.SliceData(l.u16))
	}
	l.pool.Run(nchunks*ngroups, func(t int) {
		chunk, group := t/ngroups, t%ngroups
		c0, c1 := chunk*len(blocks)/nchunks, (chunk+1)*len(blocks)/nchunks
		bl := blocks[c0:c1]
		p0, p1 := group*l.panels/ngroups, (group+1)*l.panels/ngroups
		var tile, wide []float32
		if widen {
			bl = blocks32[c0:c1]
			wide = l.pool.scratch((p1 - p0) * kc * nr)
			defer l.pool.putScratch(wide)
		}
		for k0 := 0; k0 < k; k0 += kc {
			kb := min(kc, k-k0)
			accum := 0
			if k0 > 0 {
				accum = 1
			}
			if widen {
				for p := p0; p < p1; p++ {
					l.widen(wide[(p-p0)*kb*nr:], p, k0, kb)
				}
			}
			for _, b := range bl {
				a := &x[b.r0*ldx+k0]
				for p := p0; p < p1; p++ {
					var bp unsafe.Pointer
					if widen {
						bp = unsafe.Pointer(&wide[(p-p0)*kb*nr])
					} else {
						bp = unsafe.Add(base, ((p*k+k0)*nr)*es)
					}
					if (p+1)*nr <= l.N {
						b.k.fn(a, ldx, bp, &y[b.r0*ldy+p*nr], ldy, kb, accum)
						continue
					}
					// Ragged last panel: compute the full tile aside, keep
					// the columns that exist.
					if tile == nil {
						tile = make([]float32, maxMR*nr)
					}
					b.k.fn(a, ldx, bp, &tile[0], nr, kb, 0)
					cols := l.N - p*nr
					for r := 0; r < b.k.mr; r++ {
						dst := y[(b.r0+r)*ldy+p*nr:][:cols]
						src := tile[r*nr:][:cols]
						if accum != 0 {
							for j, v := range src {
								dst[j] += v
							}
						} else {
							copy(dst, src)
						}
					}
				}
			}
		}
	})
}

// widenBlocks is the number of row blocks (of up to 14 rows) from which
// gemm widens 16-bit weights once per k block instead of in the kernel.
// Measured: f16 gains from 64 rows on (+10-20% at 512), bf16, whose
// in-kernel widening is cheaper, only from about 200 (+5-9% at 512).
var widenBlocks = [numDTypes]int{dtBF16: 16, dtF16: 4}

// widen writes rows [k0, k0+kb) of panel p as float32 into dst.
func (l *Linear) widen(dst []float32, p, k0, kb int) {
	nr := l.nr
	src := l.u16[(p*l.K+k0)*nr : (p*l.K+k0+kb)*nr]
	dst = dst[:kb*nr]
	switch {
	case l.isa == isaAVX512 && l.dt == dtBF16:
		widenBF16AVX512(&dst[0], &src[0], kb)
	case l.isa == isaAVX512:
		widenF16AVX512(&dst[0], &src[0], kb)
	case l.isa == isaAVX2 && l.dt == dtBF16:
		widenBF16AVX2(&dst[0], &src[0], kb)
	default:
		widenF16AVX2(&dst[0], &src[0], kb)
	}
}

// genericKernels are the pure-Go microkernels, for any panel width.
func genericKernels(dt dtype, nr int) []microKernel {
	var out []microKernel
	for _, mr := range []int{1, 2, 4} {
		out = append(out, microKernel{mr, genericKernel(dt, nr, mr)})
	}
	return out
}

func genericKernel(dt dtype, nr, mr int) kernelFn {
	const maxNR = 32
	if nr > maxNR {
		panic("kernels: generic panel too wide")
	}
	half := nr / 2
	return func(ap *float32, lda int, bp unsafe.Pointer, cp *float32, ldc, kc, accum int) {
		a := unsafe.Slice(ap, (mr-1)*lda+kc)
		c := unsafe.Slice(cp, (mr-1)*ldc+nr)
		var acc [4][maxNR]float32
		var row [maxNR]float32
		for kk := 0; kk < kc; kk++ {
			switch dt {
			case dtF32:
				copy(row[:nr], unsafe.Slice((*float32)(bp), kc*nr)[kk*nr:])
			case dtBF16:
				b := unsafe.Slice((*uint16)(bp), kc*nr)[kk*nr:][:nr]
				for j := range half {
					row[j] = BF16ToF32(b[2*j])
					row[j+half] = BF16ToF32(b[2*j+1])
				}
			case dtF16:
				b := unsafe.Slice((*uint16)(bp), kc*nr)[kk*nr:][:nr]
				for j, h := range b {
					row[j] = F16ToF32(h)
				}
			}
			for r := range mr {
				av := a[r*lda+kk]
				ac := &acc[r]
				for j := range nr {
					ac[j] += av * row[j]
				}
			}
		}
		for r := range mr {
			dst := c[r*ldc:][:nr]
			if accum != 0 {
				for j := range dst {
					dst[j] += acc[r][j]
				}
			} else {
				copy(dst, acc[r][:nr])
			}
		}
	}
}

// MatMul computes c[m][n] = a[m][k] · b, where b is [k][n] row-major, or
// [n][k] (so the product is a·bᵀ) when transB. c is overwritten. It packs b
// on every call; for a fixed right-hand side make a Linear once instead.
func MatMul(c, a, b []float32, m, n, k int, transB bool) {
	if len(a) < m*k || len(b) < n*k || len(c) < m*n {
		panic(fmt.Sprintf("kernels: MatMul [%d,%d]·[%d,%d]: a has %d floats, b %d, c %d", m, k, k, n, len(a), len(b), len(c)))
	}
	if m <= 0 || n <= 0 {
		return
	}
	if k == 0 {
		clear(c[:m*n])
		return
	}
	l := newLinear(dtF32, n, k, curISA, nil)
	if transB {
		packPanels(l.f32, b, k, l, false)
	} else {
		packPanelsT(l.f32, b, n, l)
	}
	l.gemm(c, n, a, k, m)
}

// packPanelsT fills dst with the panels of Wᵀ given as w ([K][N], row
// stride ldw): panel rows are then contiguous runs of w.
func packPanelsT(dst, w []float32, ldw int, l *Linear) {
	nr, k, n := l.nr, l.K, l.N
	l.pool.Run(l.panels, func(p int) {
		c0 := p * nr
		cols := min(nr, n-c0)
		for kk := 0; kk < k; kk++ {
			copy(dst[(p*k+kk)*nr:][:cols], w[kk*ldw+c0:][:cols])
		}
	})
}
