package kernels

import "fmt"

// An AttentionWorkspace holds the scratch of Attention: the packed keys and
// values and the score rows. Reusing one across calls avoids allocating
// per head; it must not be used by two calls at once.
type AttentionWorkspace struct {
	keys, vals Linear
	gather     []float32 // PackRows: the rows' keys, then values, contiguous
	scores     []float32
	norm       [attnChunk]float32 // 1/Σ exp of each score row
}

// attnChunk is the number of query rows scored at a time, which bounds the
// score scratch to attnChunk·t floats.
const attnChunk = 64

// Attention computes one attention head without a mask, every query seeing
// every key:
//
//	out[i] = Σ_j softmax_j(scale · q[i]·k[j]) · v[j]
//
// q holds nq rows of headDim floats, ldq apart; k and v hold t rows, ldk and
// ldv apart; out gets nq rows, ldo apart. The scores and the weighted sum
// are two matrix products on the microkernels, with the softmax between.
// It runs on the calling goroutine (run heads in parallel around it, or use
// Pool.MultiHeadAttention). ws may be nil.
func Attention(out []float32, ldo int, q []float32, ldq int, k []float32, ldk int, v []float32, ldv int,
	nq, t, headDim int, scale float32, ws *AttentionWorkspace) {
	if nq <= 0 {
		return
	}
	need := func(name string, s []float32, rows, ld int) {
		if ld < headDim || len(s) < (rows-1)*ld+headDim {
			panic(fmt.Sprintf("kernels: Attention: %s has %d floats, row stride %d; need %d rows of %d", name, len(s), ld, rows, headDim))
		}
	}
	need("q", q, nq, ldq)
	need("out", out, nq, ldo)
	if t <= 0 {
		panic("kernels: Attention over no keys")
	}
	need("k", k, t, ldk)
	need("v", v, t, ldv)
	if ws == nil {
		ws = new(AttentionWorkspace)
	}
	kl, vl := ws.pack(k, ldk, v, ldv, t, headDim)
	ws.attend(out, ldo, q, ldq, kl, vl, nq, scale)
}

// PackRows packs the keys and values of the given rows (each headDim
// floats at row·headDim in k and v) into ws, for attention over those rows
// only: keys as a Linear of N = len(rows) outputs over K = headDim, values
// as one of N = headDim outputs over K = len(rows). The Linears run on the
// calling goroutine and stay valid until ws packs again; ws's memory is
// reused, so a decoding step that packs the same number of rows allocates
// nothing. rows must not be empty.
func (ws *AttentionWorkspace) PackRows(k, v []float32, rows []int, headDim int) (keys, vals *Linear) {
	n := len(rows)
	if n == 0 {
		panic("kernels: PackRows of no rows")
	}
	if cap(ws.gather) < 2*n*headDim {
		ws.gather = make([]float32, 2*n*headDim)
	}
	kb, vb := ws.gather[:n*headDim], ws.gather[n*headDim:2*n*headDim]
	for j, p := range rows {
		copy(kb[j*headDim:(j+1)*headDim], k[p*headDim:(p+1)*headDim])
		copy(vb[j*headDim:(j+1)*headDim], v[p*headDim:(p+1)*headDim])
	}
	return ws.pack(kb, headDim, vb, headDim, n, headDim)
}

// Pack packs t keys and values (rows of headDim floats, ldk and ldv apart)
// into ws, for Attend: several query sets over the same keys (the query
// heads of one kv head) then pack them once. The Linears run on the
// calling goroutine and stay valid until ws packs again.
func (ws *AttentionWorkspace) Pack(k []float32, ldk int, v []float32, ldv int, t, headDim int) (keys, vals *Linear) {
	if t <= 0 {
		panic("kernels: Attention over no keys")
	}
	checkRows("Pack", "k", k, t, ldk, headDim)
	checkRows("Pack", "v", v, t, ldv, headDim)
	return ws.pack(k, ldk, v, ldv, t, headDim)
}

// Attend is Attention over keys and values packed by Pack or PackRows:
// nq query rows (ldq apart) into out (ldo apart), read and written in
// place, so a caller need not gather a head's rows out of a wider matrix.
func (ws *AttentionWorkspace) Attend(out []float32, ldo int, q []float32, ldq int, keys, vals *Linear, nq int, scale float32) {
	if nq <= 0 {
		return
	}
	d := keys.K
	if vals.N != d || vals.K != keys.N {
		panic(fmt.Sprintf("kernels: Attend: keys [%d, %d] and values [%d, %d] do not match", keys.N, keys.K, vals.N, vals.K))
	}
	checkRows("Attend", "q", q, nq, ldq, d)
	checkRows("Attend", "out", out, nq, ldo, d)
	ws.attend(out, ldo, q, ldq, keys, vals, nq, scale)
}

func checkRows(op, name string, s []float32, rows, ld, width int) {
	if ld < width || len(s) < (rows-1)*ld+width {
		panic(fmt.Sprintf("kernels: %s: %s has %d floats, row stride %d; need %d rows of %d", op, name, len(s), ld, rows, width))
	}
}

// pack packs keys as a Linear of N = t outputs over K = headDim (scores
// = q·kᵀ) and values as one of N = headDim outputs over K = t (out = p·v).
func (ws *AttentionWorkspace) pack(k []float32, ldk int, v []float32, ldv int, t, headDim int) (kl, vl *Linear) {
	kl = ws.keys.reuse(dtF32, t, headDim)
	packPanels(kl.f32, k, ldk, kl, false)
	vl = ws.vals.reuse(dtF32, headDim, t)
	packPanelsT(vl.f32, v, ldv, vl)
	return kl, vl
}

// attend computes attention of nq query rows over packed keys and values,
// attnChunk rows of scores at a time. The score rows are exponentiated but
// not normalised: the product with the values is scaled by 1/Σ instead,
// headDim floats a row rather than t (a softmax is then two passes over
// the scores, not three).
func (ws *AttentionWorkspace) attend(out []float32, ldo int, q []float32, ldq int, kl, vl *Linear, nq int, scale float32) {
	t, d := kl.N, vl.N
	rows := min(nq, attnChunk)
	if cap(ws.scores) < rows*t {
		ws.scores = make([]float32, rows*t)
	}
	s := ws.scores[:rows*t]
	for i0 := 0; i0 < nq; i0 += rows {
		c := min(rows, nq-i0)
		kl.gemm(s, t, q[i0*ldq:], ldq, c)
		for i := 0; i < c; i++ {
			ws.norm[i] = SoftmaxExp(s[i*t:(i+1)*t], scale)
		}
		o := out[i0*ldo:]
		vl.gemm(o, ldo, s, t, c)
		for i := 0; i < c; i++ {
			r := o[i*ldo:][:d]
			mulScale(r, r, nil, ws.norm[i])
		}
	}
}

// reuse re-initialises l as an unpacked [n][k] Linear of type dt for the
// current path, keeping its panel memory when large enough, and with no
// pool (it runs on the caller).
func (l *Linear) reuse(dt dtype, n, k int) *Linear {
	f32, u16 := l.f32, l.u16
	*l = Linear{N: n, K: k, dt: dt, isa: curISA}
	l.nr = 16
	if curISA == isaAVX512 {
		l.nr = 32
	}
	l.kerns = kernelsFor(curISA, dt)
	l.panels = (n + l.nr - 1) / l.nr
	size := l.panels * k * l.nr
	if dt == dtF32 {
		if cap(f32) < size {
			f32 = alignedF32(size)
		}
		l.f32 = f32[:size]
	} else {
		if cap(u16) < size {
			u16 = alignedU16(size)
		}
		l.u16 = u16[:size]
	}
	return l
}

// KV returns the keys and values of one kv head and their row strides.
type KV func(kvHead int) (k []float32, ldk int, v []float32, ldv int)

// MultiHeadAttention runs Attention for heads query heads in parallel on p.
// q and out are [nq][heads·headDim] with row strides ldq and ldo (head h
// at column h·headDim); query head h attends with kv head h/(heads/kvHeads)
// (grouped-query attention), whose t rows kv returns.
func (p *Pool) MultiHeadAttention(out []float32, ldo int, q []float32, ldq int, kv KV,
	nq, t, heads, kvHeads, headDim int, scale float32) {
	if nq <= 0 {
		return
	}
	if kvHeads <= 0 || heads%kvHeads != 0 {
		panic(fmt.Sprintf("kernels: MultiHeadAttention: %d heads over %d kv heads", heads, kvHeads))
	}
	group := heads / kvHeads
	// Pack each kv head's keys and values once, then let every (query
	// head, chunk of query rows) task read them.
	packed := make([]AttentionWorkspace, kvHeads)
	p.Run(kvHeads, func(g int) {
		k, ldk, v, ldv := kv(g)
		if len(k) < (t-1)*ldk+headDim || len(v) < (t-1)*ldv+headDim {
			panic(fmt.Sprintf("kernels: MultiHeadAttention: kv head %d holds fewer than %d rows", g, t))
		}
		packed[g].pack(k, ldk, v, ldv, t, headDim)
	})
	need := func(name string, s []float32, ld int) {
		if ld < heads*headDim || len(s) < (nq-1)*ld+heads*headDim {
			panic(fmt.Sprintf("kernels: MultiHeadAttention: %s has %d floats, row stride %d; need %d rows of %d", name, len(s), ld, nq, heads*headDim))
		}
	}
	need("q", q, ldq)
	need("out", out, ldo)
	chunks := (nq + attnChunk - 1) / attnChunk
	p.Run(heads*chunks, func(i int) {
		h, c := i/chunks, i%chunks
		i0 := c * attnChunk
		rows := min(attnChunk, nq-i0)
		var ws *AttentionWorkspace
		if p != nil {
			ws, _ = p.attn.Get().(*AttentionWorkspace)
			defer p.attn.Put(ws)
		}
		if ws == nil {
			ws = new(AttentionWorkspace)
		}
		kv := &packed[h/group]
		ws.attend(out[i0*ldo+h*headDim:], ldo, q[i0*ldq+h*headDim:], ldq, &kv.keys, &kv.vals, rows, scale)
	})
}
