package cuda

import (
	"math"
)

// Go references of the kernels in kernels.cu, element for element the same
// function (accumulating in float64 where the kernel's order differs). The
// emulator runs them in place of the GPU; the device tests hold the GPU
// kernels to them.

func refEmbed(x []float32, embed []uint16, ids []int32, n, hidden int, scale float32) {
	for i := 0; i < n; i++ {
		for d := 0; d < hidden; d++ {
			x[i*hidden+d] = bf16ToF32(embed[int(ids[i])*hidden+d]) * scale
		}
	}
}

func storeSplit(hi, lo []uint16, i int, v float32) {
	h := f32ToBF16(v)
	hi[i] = h
	if lo != nil {
		lo[i] = f32ToBF16(v - bf16ToF32(h))
	}
}

func refRMSNormF32(out, x, w []float32, n, hidden int, eps float32) {
	for i := 0; i < n; i++ {
		xr := x[i*hidden : (i+1)*hidden]
		var ss float64
		for _, v := range xr {
			ss += float64(v) * float64(v)
		}
		inv := float32(1 / math.Sqrt(ss/float64(hidden)+float64(eps)))
		for d := 0; d < hidden; d++ {
			out[i*hidden+d] = w[d] * (xr[d] * inv)
		}
	}
}

func refAddBias(y, b []float32, n, cols int) {
	for i := 0; i < n; i++ {
		for j := 0; j < cols; j++ {
			y[i*cols+j] += b[j]
		}
	}
}

func ropeAngle(p int, invFreq float32) (s, c float64) {
	a := float32(p) * invFreq // rounded to float32 like the kernel's __fmul_rn
	return math.Sincos(float64(a))
}

func refQKVRope(q, kc, vc, qkv, qkv2, bias []float32, pos []int32, invFreq []float32, n, heads, kvHeads, hd, capacity int) {
	half := hd / 2
	width := (heads + 2*kvHeads) * hd
	for i := 0; i < n; i++ {
		p := int(pos[i])
		row := qkv[i*width : (i+1)*width]
		at := func(c int) float32 {
			v := row[c]
			if qkv2 != nil {
				v += qkv2[i*width+c]
			}
			if bias != nil {
				v += bias[c]
			}
			return v
		}
		for h := 0; h < heads+kvHeads; h++ {
			for j := 0; j < half; j++ {
				c0 := h*hd + j
				x0, x1 := float64(at(c0)), float64(at(c0+half))
				s, c := ropeAngle(p, invFreq[j])
				y0, y1 := float32(x0*c-x1*s), float32(x1*c+x0*s)
				if h < heads {
					q[(i*heads+h)*hd+j], q[(i*heads+h)*hd+j+half] = y0, y1
				} else {
					o := ((h-heads)*capacity + p) * hd
					kc[o+j], kc[o+j+half] = y0, y1
				}
			}
		}
		for g := 0; g < kvHeads; g++ {
			for d := 0; d < hd; d++ {
				vc[(g*capacity+p)*hd+d] = at((heads+kvHeads)*hd + g*hd + d)
			}
		}
	}
}

func refRopeRotate(kc, invFreq []float32, kvHeads, hd, capacity, from, count, delta int) {
	half := hd / 2
	for g := 0; g < kvHeads; g++ {
		for t := 0; t < count; t++ {
			o := (g*capacity + from + t) * hd
			for j := 0; j < half; j++ {
				s, c := ropeAngle(delta, invFreq[j])
				x0, x1 := float64(kc[o+j]), float64(kc[o+j+half])
				kc[o+j], kc[o+j+half] = float32(x0*c-x1*s), float32(x1*c+x0*s)
			}
		}
	}
}

func refAttention(hi, lo []uint16, q, kc, vc []float32, n, heads, kvHeads, hd, L, capacity int, scale float32) {
	rep := heads / kvHeads
	s := make([]float64, L)
	for i := 0; i < n; i++ {
		for h := 0; h < heads; h++ {
			g := h / rep
			qr := q[(i*heads+h)*hd : (i*heads+h+1)*hd]
			m := math.Inf(-1)
			for j := 0; j < L; j++ {
				kr := kc[(g*capacity+j)*hd : (g*capacity+j+1)*hd]
				var dot float64
				for d := range qr {
					dot += float64(qr[d]) * float64(kr[d])
				}
				s[j] = dot * float64(scale)
				m = math.Max(m, s[j])
			}
			var sum float64
			for j := range s[:L] {
				s[j] = math.Exp(s[j] - m)
				sum += s[j]
			}
			for d := 0; d < hd; d++ {
				var acc float64
				for j := 0; j < L; j++ {
					acc += s[j] * float64(vc[(g*capacity+j)*hd+d])
				}
				storeSplit(hi, lo, (i*heads+h)*hd+d, float32(acc/sum))
			}
		}
	}
}

func refSwiGLU(hi, lo []uint16, gu, gu2 []float32, n, inter int) {
	for i := 0; i < n; i++ {
		g, u := gu[i*2*inter:], gu[i*2*inter+inter:]
		for j := 0; j < inter; j++ {
			a, b := float64(g[j]), float64(u[j])
			if gu2 != nil {
				a += float64(gu2[i*2*inter+j])
				b += float64(gu2[i*2*inter+inter+j])
			}
			storeSplit(hi, lo, i*inter+j, float32(a/(1+math.Exp(-a))*b))
		}
	}
}

func refBanTokens(logits []float32, ids, offsets []int32, n, vocab int) {
	for i := 0; i < n; i++ {
		for _, id := range ids[offsets[i]:offsets[i+1]] {
			logits[i*vocab+int(id)] = float32(math.Inf(-1))
		}
	}
}

// refRowStats is the sampler's reduction in float64, ties to the lower index.
func refRowStats(logits []float32, score []int32, n, vocab int, invTemp float32) []TokenStats {
	out := make([]TokenStats, n)
	for i := 0; i < n; i++ {
		row := logits[i*vocab : (i+1)*vocab]
		m := math.Inf(-1)
		i1, i2 := -1, -1
		for j, v := range row {
			x := float64(v * invTemp)
			if math.IsInf(x, -1) {
				continue
			}
			m = math.Max(m, x)
			switch {
			case i1 < 0 || x > float64(row[i1]*invTemp):
				i2, i1 = i1, j
			case i2 < 0 || x > float64(row[i2]*invTemp):
				i2 = j
			}
		}
		var z, t float64
		for _, v := range row {
			x := float64(v * invTemp)
			if math.IsInf(x, -1) {
				continue
			}
			e := math.Exp(x - m)
			z += e
			t += e * (x - m)
		}
		st := TokenStats{Top1: int32(i1), Top2: int32(i2), Entropy: float32(math.Log(z) - t/z)}
		st.P1 = float32(math.Exp(float64(row[i1]*invTemp)-m) / z)
		if i2 >= 0 {
			st.P2 = float32(math.Exp(float64(row[i2]*invTemp)-m) / z)
		}
		st.ScoreLogP = float32(math.Inf(-1))
		if score != nil && score[i] >= 0 {
			st.ScoreLogP = float32(float64(row[score[i]]*invTemp) - m - math.Log(z))
		}
		out[i] = st
	}
	return out
}

func refGatherRows(out, in []float32, rows []int32, n, cols int) {
	for i := 0; i < n; i++ {
		copy(out[i*cols:(i+1)*cols], in[int(rows[i])*cols:(int(rows[i])+1)*cols])
	}
}

// refGemmEx is cublasGemmEx's definition (column-major, alpha 1):
// C[m×n] = op(A)[m×k]·op(B)[k×n] + beta·C, bf16 A and B, float32 C.
func refGemmEx(g gemmArgs, a, b []uint16, c []float32) {
	opA := func(i, p int) float64 { // op(A)[i][p]
		if g.transA {
			return float64(bf16ToF32(a[i*g.lda+p]))
		}
		return float64(bf16ToF32(a[p*g.lda+i]))
	}
	opB := func(p, j int) float64 {
		if g.transB {
			return float64(bf16ToF32(b[p*g.ldb+j]))
		}
		return float64(bf16ToF32(b[j*g.ldb+p]))
	}
	for j := 0; j < g.n; j++ {
		for i := 0; i < g.m; i++ {
			var s float64
			for p := 0; p < g.k; p++ {
				s += opA(i, p) * opB(p, j)
			}
			o := &c[j*g.ldc+i]
			s *= float64(g.alpha)
			if g.beta != 0 {
				s += float64(g.beta) * float64(*o)
			}
			*o = float32(s)
		}
	}
}

// refGemmBF16 is the fallback kernel: y[m][nn] = alpha*x[m][k]·W[nn][k]ᵀ + beta*y.
func refGemmBF16(y []float32, x, w []uint16, m, nn, k int, alpha, beta float32) {
	for i := 0; i < m; i++ {
		for j := 0; j < nn; j++ {
			var s float64
			for p := 0; p < k; p++ {
				s += float64(bf16ToF32(x[i*k+p])) * float64(bf16ToF32(w[j*k+p]))
			}
			o := &y[i*nn+j]
			s *= float64(alpha)
			if beta != 0 {
				s += float64(beta) * float64(*o)
			}
			*o = float32(s)
		}
	}
}

// refAttentionPart is attention_part: for each chunk z, row i, head h over
// keys [z*chunk, min(L, (z+1)*chunk)): running max m, sum l = sum e^(s-m),
// and unnormalised values sum e^(s-m) v.
func refAttentionPart(part, ml, q, kc, vc []float32, n, heads, kvHeads, hd, L, capacity int, scale float32, chunk, splits int) {
	rep := heads / kvHeads
	for z := 0; z < splits; z++ {
		k0, k1 := z*chunk, min(L, (z+1)*chunk)
		for i := 0; i < n; i++ {
			for h := 0; h < heads; h++ {
				g := h / rep
				qr := q[(i*heads+h)*hd : (i*heads+h+1)*hd]
				s := make([]float64, k1-k0)
				m := math.Inf(-1)
				for j := k0; j < k1; j++ {
					var dot float64
					for d := range qr {
						dot += float64(qr[d]) * float64(kc[(g*capacity+j)*hd+d])
					}
					s[j-k0] = dot * float64(scale)
					m = math.Max(m, s[j-k0])
				}
				row := (z*n+i)*heads + h
				var l float64
				for j := range s {
					s[j] = math.Exp(s[j] - m)
					l += s[j]
				}
				for d := 0; d < hd; d++ {
					var acc float64
					for j := k0; j < k1; j++ {
						acc += s[j-k0] * float64(vc[(g*capacity+j)*hd+d])
					}
					part[row*hd+d] = float32(acc)
				}
				ml[2*row], ml[2*row+1] = float32(m), float32(l)
			}
		}
	}
}

func refAttentionCombine(hi, lo []uint16, part, ml []float32, n, heads, hd, splits int) {
	for i := 0; i < n; i++ {
		for h := 0; h < heads; h++ {
			M := math.Inf(-1)
			for z := 0; z < splits; z++ {
				M = math.Max(M, float64(ml[2*((z*n+i)*heads+h)]))
			}
			for d := 0; d < hd; d++ {
				var num, den float64
				for z := 0; z < splits; z++ {
					row := (z*n+i)*heads + h
					f := math.Exp(float64(ml[2*row]) - M)
					den += f * float64(ml[2*row+1])
					num += f * float64(part[row*hd+d])
				}
				storeSplit(hi, lo, (i*heads+h)*hd+d, float32(num/den))
			}
		}
	}
}

func refAddRMSNorm(hi, lo []uint16, x, y, y2 []float32, rows []int32, w []float32, n, hidden int, eps float32) {
	v := make([]float32, hidden)
	for i := 0; i < n; i++ {
		r := i
		if rows != nil {
			r = int(rows[i])
		}
		var ss float64
		for d := range v {
			v[d] = x[r*hidden+d]
			if y != nil {
				if y2 != nil {
					v[d] += y[r*hidden+d] + y2[r*hidden+d]
				} else {
					v[d] += y[r*hidden+d]
				}
			}
			ss += float64(v[d]) * float64(v[d])
		}
		inv := float32(1 / math.Sqrt(ss/float64(hidden)+float64(eps)))
		for d := range v {
			if y != nil && rows == nil {
				x[r*hidden+d] = v[d]
			}
			storeSplit(hi, lo, i*hidden+d, w[d]*(v[d]*inv))
		}
	}
}

// rowStat is row_stats_part's record of one slice of a row.
type rowStat struct {
	m, s, t, v1, v2 float64
	i1, i2          int32
}

func emptyRowStat() rowStat {
	inf := math.Inf(-1)
	return rowStat{m: inf, v1: inf, v2: inf, i1: math.MaxInt32, i2: math.MaxInt32}
}

func better(v float64, i int32, w float64, j int32) bool { return v > w || (v == w && i < j) }

// merge is stat_merge: the (max, sum, entropy term) of the union and its top two.
func (a *rowStat) merge(b rowStat) {
	if b.s > 0 {
		if a.s == 0 {
			a.m, a.s, a.t = b.m, b.s, b.t
		} else {
			m := math.Max(a.m, b.m)
			ea, eb := math.Exp(a.m-m), math.Exp(b.m-m)
			a.t = ea*(a.t+(a.m-m)*a.s) + eb*(b.t+(b.m-m)*b.s)
			a.s = ea*a.s + eb*b.s
			a.m = m
		}
	}
	if better(b.v1, b.i1, a.v1, a.i1) {
		if better(a.v1, a.i1, b.v2, b.i2) {
			a.v2, a.i2 = a.v1, a.i1
		} else {
			a.v2, a.i2 = b.v2, b.i2
		}
		a.v1, a.i1 = b.v1, b.i1
	} else if better(b.v1, b.i1, a.v2, a.i2) {
		a.v2, a.i2 = b.v1, b.i1
	}
}

func refRowStatsPart(part, logits, logits2 []float32, n, vocab int, invTemp float32, splits int) {
	per := (vocab + splits - 1) / splits
	for z := 0; z < splits; z++ {
		for i := 0; i < n; i++ {
			a := emptyRowStat()
			for j := z * per; j < min(vocab, (z+1)*per); j++ {
				v := logits[i*vocab+j]
				if logits2 != nil {
					v += logits2[i*vocab+j]
				}
				x := float64(v * invTemp)
				if math.IsInf(x, -1) {
					continue
				}
				a.merge(rowStat{m: x, s: 1, v1: x, v2: math.Inf(-1), i1: int32(j), i2: math.MaxInt32})
			}
			r := part[(z*n+i)*8:]
			r[0], r[1], r[2], r[3], r[4] = float32(a.m), float32(a.s), float32(a.t), float32(a.v1), float32(a.v2)
			r[5], r[6], r[7] = math.Float32frombits(uint32(a.i1)), math.Float32frombits(uint32(a.i2)), 0
		}
	}
}

func refRowStatsMerge(part, logits, logits2 []float32, score []int32, n, vocab int, invTemp float32, splits int) []TokenStats {
	out := make([]TokenStats, n)
	for i := 0; i < n; i++ {
		a := emptyRowStat()
		for z := 0; z < splits; z++ {
			r := part[(z*n+i)*8:]
			a.merge(rowStat{m: float64(r[0]), s: float64(r[1]), t: float64(r[2]), v1: float64(r[3]), v2: float64(r[4]),
				i1: int32(math.Float32bits(r[5])), i2: int32(math.Float32bits(r[6]))})
		}
		st := TokenStats{Top1: a.i1, Top2: a.i2, ScoreLogP: float32(math.Inf(-1))}
		if a.s > 0 {
			st.P1 = float32(math.Exp(a.v1-a.m) / a.s)
			if !math.IsInf(a.v2, -1) {
				st.P2 = float32(math.Exp(a.v2-a.m) / a.s)
			}
			st.Entropy = float32(math.Log(a.s) - a.t/a.s)
			if score != nil && score[i] >= 0 && int(score[i]) < vocab {
				v := logits[i*vocab+int(score[i])]
				if logits2 != nil {
					v += logits2[i*vocab+int(score[i])]
				}
				st.ScoreLogP = float32(float64(v*invTemp) - a.m - math.Log(a.s))
			}
		}
		out[i] = st
	}
	return out
}
