package cuda

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"unsafe"

	"github.com/diffill/diffill/model"
)

// Tests on a real GPU. Without one they skip, unless DIFFILL_CUDA_REQUIRE=1
// (set by gpu_check.sh), where a missing GPU is a failure. Every output
// buffer is poisoned (all bits set: NaN in float32 and bf16) before the
// kernel that must write it, and inputs are fresh random data.

var gpu struct {
	once sync.Once
	d    *Device
	err  error
}

func openGPU(t *testing.T) *Device {
	t.Helper()
	gpu.once.Do(func() { gpu.d, gpu.err = Open() })
	if gpu.err != nil {
		if os.Getenv("DIFFILL_CUDA_REQUIRE") == "1" {
			t.Fatalf("DIFFILL_CUDA_REQUIRE=1 but no GPU: %v", gpu.err)
		}
		t.Skipf("no GPU: %v", gpu.err)
	}
	return gpu.d
}

func TestGPUOpen(t *testing.T) {
	d := openGPU(t)
	t.Logf("device %s, driver %d, cuBLAS %q, graphs %v, notes %v", d, d.Driver, d.BLAS, d.drv.hasGraphs(), d.Notes)
	if d.BLAS == "" && os.Getenv("DIFFILL_CUDA_REQUIRE") == "1" {
		t.Errorf("cuBLAS did not load (%v): products run on the fallback kernel", d.Notes)
	}
}

// devHarness runs single kernels on a backend: the GPU, or the CPU build of
// kernels.cu (TestKernelsCPU).
type devHarness struct {
	t        *testing.T
	be       backend
	blas     bool                   // gemm is cuBLAS (or its emulation)
	fallback func(g gemmArgs) error // the project's own product kernel
	alloc    []devptr
}

func harness(t *testing.T) *devHarness {
	d := openGPU(t)
	return &devHarness{t: t, be: d, blas: d.blas != nil, fallback: d.gemmFallback}
}

// bind starts a subtest: t.Run runs it on a new goroutine, which may sit on
// any OS thread, so each subtest binds the device itself (binding in the
// parent left the subtests on threads without the context: every driver
// call failed with CUDA_ERROR_INVALID_CONTEXT on the H100). The returned
// function frees the subtest's buffers and releases the device.
func (h *devHarness) bind(t *testing.T) func() {
	t.Helper()
	h.t = t
	release, err := h.be.bind()
	if err != nil {
		t.Fatal(err)
	}
	return func() {
		for _, p := range h.alloc {
			if err := h.be.free(p); err != nil {
				t.Errorf("free: %v", err)
			}
		}
		h.alloc = nil
		release()
	}
}

func (h *devHarness) buf(bytes int) devptr {
	h.t.Helper()
	bytes = (bytes + 3) &^ 3 // whole words, for the poison
	p, err := h.be.alloc(bytes)
	if err != nil {
		h.t.Fatal(err)
	}
	h.alloc = append(h.alloc, p)
	if err := h.be.fill32(p, 0xffffffff, bytes/4); err != nil { // poison
		h.t.Fatal(err)
	}
	return p
}

func up[T any](h *devHarness, s []T) devptr {
	h.t.Helper()
	var z T
	n := len(s) * int(unsafe.Sizeof(z))
	p := h.buf(n)
	if err := h.be.upload(p, unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), n)); err != nil {
		h.t.Fatal(err)
	}
	return p
}

func down[T any](h *devHarness, p devptr, n int) []T {
	h.t.Helper()
	out := make([]T, n)
	var z T
	if err := h.be.download(unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), n*int(unsafe.Sizeof(z))), p); err != nil {
		h.t.Fatal(err)
	}
	return out
}

// kvCache makes a poisoned two-layer cache of capy positions with kc and
// vc (when not nil) as layer 1's keys and values, and its descriptor (the
// kernels' kv_at). It returns the descriptor and layer 1's keys' address
// (values follow at span floats).
func (h *devHarness) kvCache(kv, capy, hd int, kc, vc []float32) (desc, k1 devptr, span int) {
	h.t.Helper()
	span = kv * capy * hd
	buf := h.buf(4 * 4 * span)
	k1 = buf + devptr(4*2*span)
	for i, s := range [][]float32{kc, vc} {
		if s != nil {
			if err := h.be.upload(k1+devptr(4*i*span), unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), 4*len(s))); err != nil {
				h.t.Fatal(err)
			}
		}
	}
	return up(h, []int64{int64(buf), int64(capy)}), k1, span
}

func (h *devHarness) launch(name string, grid, block dim3, smem int, args ...karg) {
	h.t.Helper()
	if err := h.be.launch(name, grid, block, smem, args); err != nil {
		h.t.Fatal(err)
	}
	if err := h.be.sync(); err != nil {
		h.t.Fatalf("%s: %v", name, err)
	}
}

func randF32(r *rand.Rand, n int, scale float64) []float32 {
	f := make([]float32, n)
	for i := range f {
		f[i] = float32(r.NormFloat64() * scale)
	}
	return f
}

func randBF16(r *rand.Rand, n int, scale float64) []uint16 {
	b := make([]uint16, n)
	for i := range b {
		b[i] = f32ToBF16(float32(r.NormFloat64() * scale))
	}
	return b
}

// closeF32 compares element-wise: |got-want| <= tol*(|want|+floor); NaN fails.
func closeF32(t *testing.T, what string, got, want []float32, tol, floor float64) {
	t.Helper()
	worst := 0.0
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(g) || math.IsInf(g, 0) && !math.IsInf(w, 0) {
			t.Fatalf("%s: element %d is %v (want %v): unwritten or wrong", what, i, g, w)
		}
		if math.IsInf(w, 0) && g == w {
			continue
		}
		e := math.Abs(g-w) / (math.Abs(w) + floor)
		worst = max(worst, e)
		if e > tol {
			t.Fatalf("%s: element %d: got %v, want %v (error %.2e > %.0e)", what, i, g, w, e, tol)
		}
	}
	t.Logf("%s: %d elements, worst scaled error %.2e", what, len(want), worst)
}

// joinSplit reconstructs hi + lo.
func joinSplit(hi, lo []uint16) []float32 {
	f := make([]float32, len(hi))
	for i := range hi {
		f[i] = bf16ToF32(hi[i])
		if lo != nil {
			f[i] += bf16ToF32(lo[i])
		}
	}
	return f
}

func TestGPUKernels(t *testing.T) {
	kernelTests(t, harness(t), 1)
}

// kernelTests holds every kernel to its Go reference on fresh random data
// with poisoned outputs. scale shrinks the sizes (the CPU build is slow).
func kernelTests(t *testing.T, h *devHarness, scale int) {
	r := rand.New(rand.NewPCG(uint64(os.Getpid()), 1))
	sz := func(n int) int { return max(1, n/scale) }

	t.Run("embed_gather", func(t *testing.T) {
		defer h.bind(t)()
		V, H, n := 1000, 896, sz(70)
		emb := randBF16(r, V*H, 1)
		ids := make([]int32, n)
		for i := range ids {
			ids[i] = int32(r.IntN(V))
		}
		x := h.buf(n * H * 4)
		h.launch("embed_gather", d1(n), d1(rowBlock), 0, pArg(x), pArg(up(h, emb)), pArg(up(h, ids)), iArg(n), iArg(H), fArg(1.5))
		want := make([]float32, n*H)
		refEmbed(want, emb, ids, n, H, 1.5)
		closeF32(t, "embed", down[float32](h, x, n*H), want, 0, 1)
	})

	t.Run("add_rmsnorm", func(t *testing.T) {
		defer h.bind(t)()
		for _, H := range []int{64, 896} {
			n := sz(37)
			x, y, y2, w := randF32(r, n*H, 3), randF32(r, n*H, 1), randF32(r, n*H, 0.01), randF32(r, H, 1)
			rows := []int32{int32(n - 1), 0, int32(n / 2)}
			for _, v := range []struct {
				y, y2, rows bool
			}{{false, false, false}, {false, false, true}, {true, false, false}, {true, true, false}, {true, true, true}} {
				m := n
				var rp, yp, y2p devptr
				var rr []int32
				var yy, yy2 []float32
				if v.rows {
					m, rp, rr = len(rows), up(h, rows), rows
				}
				if v.y {
					yp, yy = up(h, y), y
				}
				if v.y2 {
					y2p, yy2 = up(h, y2), y2
				}
				xp := up(h, x)
				hi, lo := h.buf(m*H*2), h.buf(m*H*2)
				h.launch("add_rmsnorm", d1(m), d1(rowBlock), 0, pArg(hi), pArg(lo), pArg(xp), pArg(yp), pArg(y2p), pArg(rp), pArg(up(h, w)), iArg(m), iArg(H), fArg(1e-6))
				wx := append([]float32(nil), x...)
				wh, wl := make([]uint16, m*H), make([]uint16, m*H)
				refAddRMSNorm(wh, wl, wx, yy, yy2, rr, w, m, H, 1e-6)
				what := fmt.Sprintf("add_rmsnorm %+v", v)
				closeF32(t, what+" hi+lo", joinSplit(down[uint16](h, hi, m*H), down[uint16](h, lo, m*H)), joinSplit(wh, wl), 4e-5, 1e-3)
				closeF32(t, what+" x", down[float32](h, xp, n*H), wx, 0, 1)
			}
		}
	})

	t.Run("qkv_rope", func(t *testing.T) {
		defer h.bind(t)()
		for _, shape := range [][3]int{{14, 2, 64}, {4, 1, 40}, {32, 8, 128}} {
			heads, kv, hd := shape[0], shape[1], shape[2]
			n, capy := sz(70), 1100
			width := (heads + 2*kv) * hd
			qkv, qkv2, bias := randF32(r, n*width, 1), randF32(r, n*width, 0.01), randF32(r, width, 0.5)
			pos := make([]int32, n)
			for i, p := range r.Perm(capy)[:n] {
				pos[i] = int32(p)
			}
			inv := ropeInvFreq(hd, 1e6)
			for _, extra := range []bool{false, true} { // without, then with the remainder product and a bias
				q := h.buf(n * heads * hd * 4)
				desc, kc, span := h.kvCache(kv, capy, hd, nil, nil)
				vc := kc + devptr(4*span)
				var bp, p2 devptr
				var bb, q2 []float32
				if extra {
					bp, bb, p2, q2 = up(h, bias), bias, up(h, qkv2), qkv2
				}
				h.launch("qkv_rope", d1(n), d1(rowBlock), 0, pArg(q), pArg(desc), iArg(1), pArg(up(h, qkv)), pArg(p2), pArg(bp), pArg(up(h, pos)),
					pArg(up(h, inv)), iArg(n), iArg(heads), iArg(kv), iArg(hd))
				wq, wk, wv := make([]float32, n*heads*hd), make([]float32, kv*capy*hd), make([]float32, kv*capy*hd)
				refQKVRope(wq, wk, wv, qkv, q2, bb, pos, inv, n, heads, kv, hd, capy)
				closeF32(t, "q", down[float32](h, q, len(wq)), wq, 1e-5, 0.1)
				gk, gv := down[float32](h, kc, len(wk)), down[float32](h, vc, len(wv))
				// only the written slots are defined
				var sk, sv, rk, rv []float32
				for g := 0; g < kv; g++ {
					for _, p := range pos {
						o := (g*capy + int(p)) * hd
						sk, rk = append(sk, gk[o:o+hd]...), append(rk, wk[o:o+hd]...)
						sv, rv = append(sv, gv[o:o+hd]...), append(rv, wv[o:o+hd]...)
					}
				}
				closeF32(t, "k", sk, rk, 1e-5, 0.1)
				closeF32(t, "v", sv, rv, 1e-6, 1e-2)
				for i, w := range down[uint32](h, kc-devptr(4*2*span), 2*span) {
					if w != 0xffffffff {
						t.Fatalf("layer 0 written at %d", i)
					}
				}
			}
		}
	})

	t.Run("attention", func(t *testing.T) {
		defer h.bind(t)()
		for _, c := range []struct{ n, heads, kv, hd, L int }{{70, 14, 2, 64, 1090}, {5, 32, 8, 128, 33}, {9, 4, 1, 40, 7}, {64, 14, 2, 64, 1088}, {11, 6, 3, 6, 50}} {
			c.n, c.L = sz(c.n), max(sz(c.L), min(c.L, 40))
			capy := c.L + 10
			q := randF32(r, c.n*c.heads*c.hd, 1)
			kc, vc := randF32(r, c.kv*capy*c.hd, 1), randF32(r, c.kv*capy*c.hd, 1)
			scale := float32(1 / math.Sqrt(float64(c.hd)))
			desc, _, _ := h.kvCache(c.kv, capy, c.hd, kc, vc)
			hi, lo := h.buf(c.n*c.heads*c.hd*2), h.buf(c.n*c.heads*c.hd*2)
			h.launch("attention", d2(c.heads, ceilDiv(c.n, attWarps)), d1(32*attWarps), attSmemBytes(c.hd),
				pArg(hi), pArg(lo), pArg(up(h, q)), pArg(desc), iArg(1), iArg(c.n), iArg(c.heads), iArg(c.kv),
				iArg(c.hd), iArg(c.L), fArg(scale))
			m := c.n * c.heads * c.hd
			wh, wl := make([]uint16, m), make([]uint16, m)
			refAttention(wh, wl, q, kc, vc, c.n, c.heads, c.kv, c.hd, c.L, capy, scale)
			want := joinSplit(wh, wl)
			closeF32(t, "attention hi+lo", joinSplit(down[uint16](h, hi, m), down[uint16](h, lo, m)), want, 1e-4, 1e-2)
			// split-K: the engine's choice, and 3 chunks
			s0, ch0 := attSplits(c.n, c.L, c.heads)
			for _, sc := range [][2]int{{s0, ch0}, {ceilDiv(c.L, ceilDiv(ceilDiv(c.L, 3), attKeys)*attKeys), ceilDiv(ceilDiv(c.L, 3), attKeys) * attKeys}} {
				splits, chunk := sc[0], sc[1]
				part, ml := h.buf(splits*m*4), h.buf(splits*c.n*c.heads*2*4)
				h.launch("attention_part", dim3{c.heads, ceilDiv(c.n, attWarps), splits}, d1(32*attWarps), attSmemBytes(c.hd),
					pArg(part), pArg(ml), pArg(up(h, q)), pArg(desc), iArg(1), iArg(c.n), iArg(c.heads), iArg(c.kv),
					iArg(c.hd), iArg(c.L), fArg(scale), iArg(chunk))
				hi2, lo2 := h.buf(m*2), h.buf(m*2)
				h.launch("attention_combine", d2(c.n, 3), d1(32), 0, pArg(hi2), pArg(lo2), pArg(part), pArg(ml), iArg(c.n), iArg(c.heads), iArg(c.hd), iArg(splits))
				closeF32(t, fmt.Sprintf("split attention (%d chunks of %d)", splits, chunk), joinSplit(down[uint16](h, hi2, m), down[uint16](h, lo2, m)), want, 1e-4, 1e-2)
			}
			// attention_tiles: one chunk straight to hi/lo, the engine's split, 3 chunks
			kernel, tq, tk, _ := attTile(c.hd)
			tiles, s1, ch1 := attTileSplits(c.n, c.L, c.heads, c.kv, tq, tk)
			ch3 := ceilDiv(ceilDiv(c.L, 3), tk) * tk
			for _, sc := range [][2]int{{1, ceilDiv(c.L, tk) * tk}, {s1, ch1}, {ceilDiv(c.L, ch3), ch3}} {
				splits, chunk := sc[0], sc[1]
				hi2, lo2 := h.buf(m*2), h.buf(m*2)
				var part, ml devptr
				if splits > 1 {
					part, ml = h.buf(splits*m*4), h.buf(splits*c.n*c.heads*2*4)
				}
				h.launch(kernel, dim3{tiles, c.kv, splits}, d1(256), 0,
					pArg(hi2), pArg(lo2), pArg(part), pArg(ml), pArg(up(h, q)), pArg(desc), iArg(1), iArg(c.n), iArg(c.heads),
					iArg(c.kv), iArg(c.hd), iArg(c.L), fArg(scale), iArg(chunk))
				if splits > 1 {
					h.launch("attention_combine", d2(c.n, c.heads), d1(combineBlock), 0, pArg(hi2), pArg(lo2), pArg(part), pArg(ml), iArg(c.n), iArg(c.heads), iArg(c.hd), iArg(splits))
				}
				closeF32(t, fmt.Sprintf("%s (%d chunks of %d)", kernel, splits, chunk), joinSplit(down[uint16](h, hi2, m), down[uint16](h, lo2, m)), want, 1e-4, 1e-2)
			}
		}
	})

	t.Run("swiglu", func(t *testing.T) {
		defer h.bind(t)()
		n, inter := sz(33), 4864
		gu, gu2 := randF32(r, n*2*inter, 2), randF32(r, n*2*inter, 0.01)
		for _, extra := range []bool{false, true} {
			var p2 devptr
			var g2 []float32
			if extra {
				p2, g2 = up(h, gu2), gu2
			}
			hi, lo := h.buf(n*inter*2), h.buf(n*inter*2)
			h.launch("swiglu", d1(n), d1(rowBlock), 0, pArg(hi), pArg(lo), pArg(up(h, gu)), pArg(p2), iArg(n), iArg(inter))
			wh, wl := make([]uint16, n*inter), make([]uint16, n*inter)
			refSwiGLU(wh, wl, gu, g2, n, inter)
			closeF32(t, "swiglu hi+lo", joinSplit(down[uint16](h, hi, n*inter), down[uint16](h, lo, n*inter)), joinSplit(wh, wl), 4e-5, 1e-3)
		}
	})

	t.Run("add_into", func(t *testing.T) {
		defer h.bind(t)()
		count := 3*151936 + 17
		y, x := randF32(r, count, 1), randF32(r, count, 1)
		py := up(h, y)
		h.launch("add_into", d1(min(ceilDiv(count, 1024), 4096)), d1(1024), 0, pArg(py), pArg(up(h, x)), lArg(count))
		want := make([]float32, count)
		for i := range want {
			want[i] = y[i] + x[i]
		}
		closeF32(t, "add_into", down[float32](h, py, count), want, 0, 1)
	})

	t.Run("rope_rotate", func(t *testing.T) {
		defer h.bind(t)()
		kv, hd, capy, from, count, delta := 2, 64, 300, 40, 200, -17
		k := randF32(r, kv*capy*hd, 1)
		inv := ropeInvFreq(hd, 10000)
		p := up(h, k)
		h.launch("rope_rotate", d2(count, kv), d1(64), 0, pArg(p), pArg(up(h, inv)), iArg(kv), iArg(hd), iArg(capy), iArg(from), iArg(count), iArg(delta))
		want := append([]float32(nil), k...)
		refRopeRotate(want, inv, kv, hd, capy, from, count, delta)
		closeF32(t, "rope_rotate", down[float32](h, p, len(k)), want, 1e-5, 0.1)
	})

	t.Run("ban_and_row_stats", func(t *testing.T) {
		defer h.bind(t)()
		n, V := 5, 151936
		logits := randF32(r, n*V, 3)
		logits[2*V+77] = 40                 // a peaked row
		logits[3*V+5], logits[3*V+6] = 9, 9 // a tie
		ids := []int32{77, 1, 2, 3, 151935}
		offsets := []int32{0, 0, 2, 2, 4, 5} // row 2 bans 1 and 2 (not 77), row 4 bans 151935
		score := []int32{10, -1, 77, 6, 151935}
		for _, split := range []bool{false, true} {
			// split: the logits arrive as two products to add (precise mode's head)
			lp := up(h, logits)
			var l2 devptr
			sum := logits
			if split {
				a, b := make([]float32, len(logits)), make([]float32, len(logits))
				for i, v := range logits {
					b[i] = float32(r.NormFloat64() * 1e-3)
					a[i] = v - b[i]
				}
				lp, l2 = up(h, a), up(h, b)
				sum = make([]float32, len(logits))
				for i := range sum {
					sum[i] = a[i] + b[i]
				}
			}
			h.launch("ban_tokens", d1(n), d1(32), 0, pArg(lp), pArg(up(h, ids)), pArg(up(h, offsets)), iArg(n), iArg(V))
			got := make([]TokenStats, n)
			want := append([]float32(nil), sum...)
			refBanTokens(want, ids, offsets, n, V)
			ws := refRowStats(want, score, n, V, 1/0.8)
			for _, slices := range []int{1, 3, statSplits(n, V), 40} {
				part := h.buf(slices * n * 8 * 4)
				h.launch("row_stats_part", d2(n, slices), d1(rowBlock), 0, pArg(part), pArg(lp), pArg(l2), iArg(n), iArg(V), fArg(1/0.8), iArg(slices))
				st := h.buf(n * statsWords * 4)
				s := func(k int) karg { return pArg(st + devptr(4*k*n)) }
				h.launch("row_stats_merge", d1(n), d1(32), 0, s(0), s(1), s(2), s(3), s(4), s(5), pArg(part), pArg(lp), pArg(l2), pArg(up(h, score)),
					iArg(n), iArg(V), fArg(1/0.8), iArg(slices))
				decodeStats(down[byte](h, st, n*statsWords*4), got)
				for i := range ws {
					g, w := got[i], ws[i]
					if g.Top1 != w.Top1 || g.Top2 != w.Top2 || math.Abs(float64(g.P1-w.P1)) > 1e-5*(1+float64(w.P1)) ||
						math.Abs(float64(g.P2-w.P2)) > 1e-5 || math.Abs(float64(g.Entropy-w.Entropy)) > 1e-4 ||
						!(g.ScoreLogP == w.ScoreLogP || math.Abs(float64(g.ScoreLogP-w.ScoreLogP)) < 1e-4) {
						t.Fatalf("split %v, %d slices, row %d: got %+v, want %+v", split, slices, i, g, w)
					}
				}
			}
		}
	})

	t.Run("gemm", func(t *testing.T) {
		defer h.bind(t)()
		for _, c := range []struct{ rows, n, k int }{{64, 2048, 896}, {5, 70, 33}, {128, 512, 896}, {3, 151936, 64}} {
			c.rows, c.n = sz(c.rows), sz(c.n)
			x, w := randBF16(r, c.rows*c.k, 1), randBF16(r, c.n*c.k, 1)
			y0 := randF32(r, c.rows*c.n, 1)
			for _, ab := range [][2]float32{{1, 0}, {0.5, 1}} {
				g := gemmArgs{transA: true, m: c.n, n: c.rows, k: c.k, a: up(h, w), lda: c.k, b: up(h, x), ldb: c.k,
					alpha: ab[0], beta: ab[1], c: up(h, y0), ldc: c.n}
				want := append([]float32(nil), y0...)
				wt, xt := w, x
				refGemmEx(gemmArgs{transA: true, m: c.n, n: c.rows, k: c.k, lda: c.k, ldb: c.k, alpha: ab[0], beta: ab[1], ldc: c.n}, wt, xt, want)
				if h.blas {
					if err := h.be.gemm(g); err != nil {
						t.Fatal(err)
					}
					if err := h.be.sync(); err != nil {
						t.Fatal(err)
					}
					closeF32(t, "cublasGemmEx", down[float32](h, g.c, len(want)), want, 1e-4, math.Sqrt(float64(c.k)))
				}
				g.c = up(h, y0)
				if err := h.fallback(g); err != nil {
					t.Fatal(err)
				}
				if err := h.be.sync(); err != nil {
					t.Fatal(err)
				}
				closeF32(t, "gemm_bf16 fallback", down[float32](h, g.c, len(want)), want, 1e-4, math.Sqrt(float64(c.k)))
			}
		}
	})
}

// TestGPUEngine runs the engine on the device against the float64
// reference forward (both precisions), then cached steps and graph replays
// against eager runs, and the device stats against the host reduction.
func TestGPUEngine(t *testing.T) {
	d := openGPU(t)
	ctx := context.Background()
	for _, tc := range tinyConfigs {
		for _, prec := range []Precision{Precise, Fast} {
			t.Run(tc.name+"/"+prec.String(), func(t *testing.T) {
				w := testModel(tc.cfg, tc.dt, tc.bias, tc.untied, 41)
				e, err := NewEngine(d, tc.cfg, w, Options{Precision: prec, Logf: t.Logf})
				if err != nil {
					t.Fatal(err)
				}
				defer e.Close()
				r := rand.New(rand.NewPCG(42, uint64(prec)))
				for rep := 0; rep < 3; rep++ { // the third call replays a graph
					tokens := randomTokens(r, 45, tc.cfg.Vocab)
					want := refForward(tc.cfg, w, tokens)
					got := make([]float32, len(tokens)*tc.cfg.Vocab)
					if err := e.Forward(ctx, &Batch{Tokens: tokens}, got); err != nil {
						t.Fatal(err)
					}
					tol := 1e-4
					if prec == Fast {
						tol = 1e-2
					}
					re := relErr(got, want)
					t.Logf("call %d: relative error %.3g", rep, re)
					if re > tol {
						t.Fatalf("call %d: relative error %.3g > %.0e", rep, re, tol)
					}
				}
				if len(e.graphs) != 1 {
					t.Errorf("%d graphs captured after 3 calls of one shape, want 1", len(e.graphs))
				}
			})
		}
	}
	t.Run("cached steps and stats", func(t *testing.T) {
		tc := tinyConfigs[0]
		w := testModel(tc.cfg, tc.dt, tc.bias, tc.untied, 43)
		e, err := NewEngine(d, tc.cfg, w, Options{Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		eager, err := NewEngine(d, tc.cfg, w, Options{NoGraphs: true})
		if err != nil {
			t.Fatal(err)
		}
		defer eager.Close()
		r := rand.New(rand.NewPCG(44, 44))
		tokens := randomTokens(r, 200, tc.cfg.Vocab)
		c1, _ := e.NewCache(256)
		c2, _ := eager.NewCache(256)
		if err := e.Forward(ctx, &Batch{Tokens: tokens, Logits: []int{}, Cache: c1}, nil); err != nil {
			t.Fatal(err)
		}
		if err := eager.Forward(ctx, &Batch{Tokens: tokens, Logits: []int{}, Cache: c2}, nil); err != nil {
			t.Fatal(err)
		}
		compute := allPositions(64)
		for i := range compute {
			compute[i] += 100
		}
		for step := 0; step < 5; step++ {
			tokens[100+r.IntN(64)] = int32(r.IntN(tc.cfg.Vocab))
			a := make([]float32, 64*tc.cfg.Vocab)
			b := make([]float32, 64*tc.cfg.Vocab)
			if err := e.Forward(ctx, &Batch{Tokens: tokens, Compute: compute, Cache: c1}, a); err != nil {
				t.Fatal(err)
			}
			if err := eager.Forward(ctx, &Batch{Tokens: tokens, Compute: compute, Cache: c2}, b); err != nil {
				t.Fatal(err)
			}
			for i := range a {
				if a[i] != b[i] {
					t.Fatalf("step %d: graph replay and eager differ at %d: %v vs %v", step, i, a[i], b[i])
				}
			}
			so := StatsOptions{Temperature: 0.9, Banned: []int32{1}, Score: make([]int32, 64)}
			for i := range so.Score {
				so.Score[i] = tokens[100+i]
			}
			st := make([]TokenStats, 64)
			for rep := 0; rep < 2; rep++ {
				if err := e.Stats(ctx, &Batch{Tokens: tokens, Compute: compute, Cache: c1}, so, st); err != nil {
					t.Fatal(err)
				}
			}
			ids, offsets := []int32{}, []int32{0}
			for i := 0; i < 64; i++ {
				ids = append(ids, 1)
				offsets = append(offsets, int32(len(ids)))
			}
			refBanTokens(b, ids, offsets, 64, tc.cfg.Vocab)
			ws := refRowStats(b, so.Score, 64, tc.cfg.Vocab, 1/0.9)
			for i := range ws {
				g, w := st[i], ws[i]
				if g.Top1 != w.Top1 || math.Abs(float64(g.P1-w.P1)) > 1e-4 || math.Abs(float64(g.Entropy-w.Entropy)) > 1e-3 ||
					math.Abs(float64(g.ScoreLogP-w.ScoreLogP)) > 1e-3 {
					t.Fatalf("step %d row %d: stats %+v, host %+v", step, i, g, w)
				}
			}
		}
	})
}

func attachGPU(t *testing.T, m *model.Model, opt Options) *Backend {
	t.Helper()
	opt.Logf = t.Logf
	b, err := AttachTo(openGPU(t), m, opt)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGPUModelGoldens(t *testing.T) {
	openGPU(t)
	checkModelGoldens(t, attachGPU)
}

func TestGPUModelStats(t *testing.T) {
	openGPU(t)
	checkModelStats(t, attachGPU)
}

func TestGPUSelect(t *testing.T) {
	openGPU(t)
	m, err := model.Load(tinyDir("qwen2-tiny-bf16"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	dev, err := Select(m, "auto", Options{}, t.Logf)
	if err != nil || m.Backend() == nil {
		t.Fatalf("auto with a GPU: %q, %v", dev, err)
	}
	if _, err := m.Forward(context.Background(), &model.Batch{Tokens: []int32{3, 4, 5}}); err != nil {
		t.Fatal(err)
	}
}
