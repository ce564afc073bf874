package kernels

import (
	"fmt"
	"sync"
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

// Cache blocking: l1Budget and l2Budget (cachesize.go) bound a tile's rows
// of A (mr × kc floats) and a group of panels (kc × nb·nr weights). Long
// walks down M (up to chunkRows rows) beat short ones by 10-25%, as each
// group is then fetched from memory (and 16-bit weights widened) fewer
// times. In rows, not blocks: 64 blocks were ~900 rows of 14-row AVX-512
// blocks but only 384 of 6-row AVX2 ones, which split a 512-row product
// in two chunks that each widened every panel.
const chunkRows = 900

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

// A rowPlan splits m rows into microkernel-sized blocks without
// allocating: full blocks of the largest kernel, then the rest greedily,
// largest first (at most maxTail blocks). Each block is a pass of its
// kernel over the weights, and this split has the fewest. An even split
// of as many blocks (16 rows as 8+8 rather than 14+2) measured 3-5%
// slower with weights from L3: the 14-row pass hides the fetch of each
// panel behind more arithmetic, and the 2-row pass finds it in cache.
type rowPlan struct {
	full  int         // blocks of big
	big   microKernel // the largest kernel
	tail  [maxTail]microKernel
	ntail int
}

const maxTail = 6

func planRows(m int, kerns []microKernel) rowPlan {
	big := kerns[len(kerns)-1]
	p := rowPlan{big: big, full: m / big.mr}
	p.tail, p.ntail = greedy(m-p.full*big.mr, kerns)
	return p
}

// greedy splits r rows (fewer than the largest kernel's) largest kernel
// first.
func greedy(r int, kerns []microKernel) (t [maxTail]microKernel, n int) {
	for i := len(kerns) - 1; i >= 0 && r > 0; i-- {
		for r >= kerns[i].mr {
			t[n] = kerns[i]
			n++
			r -= kerns[i].mr
		}
	}
	return t, n
}

// len is the number of blocks.
func (p *rowPlan) len() int { return p.full + p.ntail }

// at returns block i.
func (p *rowPlan) at(i int) rowBlock {
	if i < p.full {
		return rowBlock{i * p.big.mr, p.big}
	}
	r := p.full * p.big.mr
	for _, k := range p.tail[:i-p.full] {
		r += k.mr
	}
	return rowBlock{r, p.tail[i-p.full]}
}

// A gemmTask is one gemm call, split into nchunks × ngroups items for the
// pool. Tasks are recycled through gemmTasks so that a call allocates
// nothing.
type gemmTask struct {
	l                *Linear
	y, x             []float32
	ldy, ldx         int
	plan             rowPlan // blocks run, on 16-bit or (widen) f32 panels
	widen            bool
	kc               int
	nchunks, ngroups int
	base             unsafe.Pointer
	es               int
}

var gemmTasks = sync.Pool{New: func() any { return new(gemmTask) }}

// gemm computes y = x · Wᵀ for m rows, with row strides ldy and ldx.
func (l *Linear) gemm(y []float32, ldy int, x []float32, ldx int, m int) {
	nr, k, es := l.nr, l.K, l.dt.size()
	kerns := l.kerns
	plan := planRows(m, kerns)
	nblocks := plan.len()
	widest := plan.big.mr // rows of the largest block actually used
	if plan.full == 0 {
		widest = plan.tail[0].mr
	}

	// k blocks: as long as a block's rows of A fit l1Budget, split evenly.
	// Few rows (decode steps) make A small: no k blocks then, so each
	// panel streams from memory in one contiguous run.
	kcMax := max(l1Budget/(4*widest), 64)
	nk := (k + kcMax - 1) / kcMax
	kc := (k + nk - 1) / nk
	kc = (kc + 15) &^ 15

	// Panel groups: as many panels as keep kc rows of them in l2Budget.
	// Row chunks: up to chunkRows rows. Both split evenly, so tasks
	// are of a size.
	// Many rows of bf16 or f16 weights: widen each group to float32 once
	// per k block, rather than in every microkernel call down M (in the
	// kernel, conversion costs 8% (bf16) to 16% (f16) of its speed).
	widen := l.dt != dtF32 && l.isa != isaGeneric && nblocks >= widenBlocks[l.dt]
	if widen {
		plan = planRows(m, kernelsFor(l.isa, dtF32))
		if plan.len() != nblocks {
			panic("kernels: f32 and 16-bit row plans differ")
		}
		es = 4
	}
	groupPanels := max(l2Budget/(kc*nr*es), 1)
	ngroups := (l.panels + groupPanels - 1) / groupPanels
	chunkBlocks := max(chunkRows/plan.big.mr, 1)
	nchunks := (nblocks + chunkBlocks - 1) / chunkBlocks
	// Enough tasks that the pool's goroutines finish close together:
	// split N finer first (each task then still walks all its rows), then M.
	if want := 3 * l.pool.Workers(); nchunks*ngroups < want && m*l.N*k >= 1<<16 {
		ngroups = min((want+nchunks-1)/nchunks, l.panels)
		if nchunks*ngroups < want {
			nchunks = min((want+ngroups-1)/ngroups, nblocks)
		}
	}
	t := gemmTasks.Get().(*gemmTask)
	*t = gemmTask{l: l, y: y, x: x, ldy: ldy, ldx: ldx, plan: plan, widen: widen, kc: kc,
		nchunks: nchunks, ngroups: ngroups, es: es}
	if l.dt == dtF32 {
		t.base = unsafe.Pointer(unsafe.SliceData(l.f32))
	} else {
		t.base = unsafe.Pointer(unsafe.SliceData(l.u16))
	}
	l.pool.run(nchunks*ngroups, t)
	*t = gemmTask{}
	gemmTasks.Put(t)
}

// run does item i: one chunk of row blocks times one group of panels.
func (t *gemmTask) run(i int) {
	l := t.l
	nr, k := l.nr, l.K
	chunk, group := i/t.ngroups, i%t.ngroups
	nb := t.plan.len()
	c0, c1 := chunk*nb/t.nchunks, (chunk+1)*nb/t.nchunks
	p0, p1 := group*l.panels/t.ngroups, (group+1)*l.panels/t.ngroups
	var wide []float32
	if t.widen {
		w := getScratch((p1 - p0) * t.kc * nr)
		defer putScratch(w)
		wide = w.f
	}
	var ragged []float32 // the tile aside for a last panel wider than N
	if p1*nr > l.N {
		r := getScratch(t.plan.big.mr * nr)
		defer putScratch(r)
		ragged = r.f
	}
	for k0 := 0; k0 < k; k0 += t.kc {
		kb := min(t.kc, k-k0)
		accum := 0
		if k0 > 0 {
			accum = 1
		}
		if t.widen {
			for p := p0; p < p1; p++ {
				l.widen(wide[(p-p0)*kb*nr:], p, k0, kb)
			}
		}
		// Panel p of this k block starts (p-p0)·stride bytes after bp0.
		// (Only the path taken is computed: an address past the packed
		// weights, even unused, is invalid pointer arithmetic.)
		var bp0 unsafe.Pointer
		var stride int
		if t.widen {
			bp0, stride = unsafe.Pointer(&wide[0]), kb*nr*4
		} else {
			bp0, stride = unsafe.Add(t.base, ((p0*k+k0)*nr)*t.es), k*nr*t.es
		}
		whole := max(min(p1, l.N/nr), p0) // panels [p0, whole) lie inside N
		for c := c0; c < c1; c++ {
			// The hot loop: one kernel call a tile, nothing else.
			b := t.plan.at(c)
			fn, a, ldx, ldy := b.k.fn, &t.x[b.r0*t.ldx+k0], t.ldx, t.ldy
			y := t.y[b.r0*ldy:]
			for p := p0; p < whole; p++ {
				fn(a, ldx, unsafe.Add(bp0, (p-p0)*stride), &y[p*nr], ldy, kb, accum)
			}
			for p := whole; p < p1; p++ {
				t.tile(b, p, unsafe.Add(bp0, (p-p0)*stride), k0, kb, accum, ragged)
			}
		}
	}
}

// tile runs block b's kernel on panel p (at bp), k rows [k0, k0+kb);
// ragged holds a tile when p is a last panel wider than N.
func (t *gemmTask) tile(b rowBlock, p int, bp unsafe.Pointer, k0, kb, accum int, ragged []float32) {
	l, nr := t.l, t.l.nr
	a := &t.x[b.r0*t.ldx+k0]
	if (p+1)*nr <= l.N {
		b.k.fn(a, t.ldx, bp, &t.y[b.r0*t.ldy+p*nr], t.ldy, kb, accum)
		return
	}
	// Ragged last panel: compute the full tile aside, keep the columns
	// that exist.
	tile := ragged[:b.k.mr*nr]
	b.k.fn(a, t.ldx, bp, &tile[0], nr, kb, 0)
	cols := l.N - p*nr
	for r := 0; r < b.k.mr; r++ {
		dst := t.y[(b.r0+r)*t.ldy+p*nr:][:cols]
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
