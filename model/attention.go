package model

import (
	"math"

	"github.com/diffill/diffill/model/kernels"
)

// Attention on the CPU. Every query attends to every key of its sequence
// (no causal mask). The query heads that share a kv head are stacked into
// one matrix, so that the kv head's keys and values, which the kernels
// pack into panels before multiplying, are packed once for all of them.
//
// A denoising step recomputes a few positions against many cached ones.
// Packing the cached keys and values again at every step costs about as
// much as the step's attention itself, so a Cache keeps them packed: a
// packedSet of the positions a cached step does not compute, made and
// packed by the first such step and kept while they stay unchanged. A step
// then packs only the positions outside the set ("loose", its own among
// them) and joins the two parts of the softmax. A full pass attends as
// above: making a set there would cost it more than the first step saves
// (measured: +6% on a cold 1024-token pass of the built-in model).

// minAttnRows is the fewest stacked query rows an attention task takes when
// a kv head's rows are split across tasks: each task packs the head's keys
// and values anew, which costs about what scoring a few dozen rows does.
const minAttnRows = 256

// minPackedRows is the fewest stacked query rows of a task over a packed
// set, whose tasks share the packing: a few row blocks of the kernels.
const minPackedRows = 64

// packedChunk is the number of query rows a task scores at a time, which
// keeps their scores in the core's cache.
const packedChunk = 64

// attnTask is a share of attention: stacked query rows [j0, j1) of kv head
// g's group in run ri, where stacked row j is query head g·group + j/nq at
// the run's query j%nq.
type attnTask struct {
	ri     int
	g      int
	qrows  []int // global rows of the run's queries; nil: the run's rows in order
	nq     int   // the run's queries
	out0   int   // output row of the run's first query
	stack  int   // stacked row of the group's first query in scratch.qs and .os
	j0, j1 int
	// Over a packed set: offsets of the task's scratch in scratch.sc
	// (scores), .ob (loose outputs) and .wt (part weights).
	sc, ob, wt int
}

// packedKV are one layer's keys and values of one kv head at a set of
// positions, packed for the kernels: keys as a [n][headDim] matrix (scores
// = q·keysᵀ), values transposed as [headDim][n] (output = p·valsᵀ). The
// Linears run on the calling goroutine: attention tasks are the parallel
// unit.
type packedKV struct {
	keys, vals *kernels.Linear
}

// packKV packs the keys and values (rows of headDim floats) of positions.
func packKV(k, v []float32, positions []int, d int, serial *kernels.Pool) packedKV {
	n := len(positions)
	kb := make([]float32, n*d)
	vt := make([]float32, d*n)
	for j, p := range positions {
		copy(kb[j*d:(j+1)*d], k[p*d:])
		for e, x := range v[p*d : (p+1)*d] {
			vt[e*n+j] = x
		}
	}
	return packedKV{
		keys: kernels.NewLinearF32(kb, n, d, kernels.WithPool(serial)),
		vals: kernels.NewLinearF32(vt, d, n, kernels.WithPool(serial)),
	}
}

// packedSet is a set of a Cache's positions whose keys and values are kept
// packed, layer by layer as passes first need them. A pass that writes any
// of its positions drops it (Cache.packedFor), so its packed layers always
// match the cache. Once every layer is packed it is immutable and clones
// share it.
type packedSet struct {
	in     []bool       // in[p]: position p is in the set
	pos    []int        // the positions, ascending
	layers [][]packedKV // [layer][kvHead]; nil until packed
}

// complete reports whether every layer is packed.
func (s *packedSet) complete() bool {
	for _, l := range s.layers {
		if l == nil {
			return false
		}
	}
	return true
}

// packedFor returns the packed set for a cached step over T positions that
// computes compute, and the positions of [0, T) outside it, ascending. It
// keeps the current set when the step writes none of its positions and
// leaves few outside it, and otherwise makes a new one of every position
// the step does not compute.
func (c *Cache) packedFor(T int, compute []int) (set *packedSet, loose []int) {
	c.dropPacked(T, compute)
	if set = c.packed; set != nil && T-len(set.pos) > maxLoose(T) {
		set = nil
	}
	if set == nil {
		set = &packedSet{in: make([]bool, T), layers: make([][]packedKV, c.layers)}
		for p := range set.in {
			set.in[p] = true
		}
		for _, p := range compute {
			set.in[p] = false
		}
		set.pos = make([]int, 0, T-len(compute))
		for p, in := range set.in {
			if in {
				set.pos = append(set.pos, p)
			}
		}
		c.packed = set
	}
	loose = make([]int, 0, T-len(set.pos))
	for p := 0; p < T; p++ {
		if p >= len(set.in) || !set.in[p] {
			loose = append(loose, p)
		}
	}
	return set, loose
}

// dropPacked forgets the packed set when a pass over T positions that
// computes compute (nil: all) would make it stale.
func (c *Cache) dropPacked(T int, compute []int) {
	set := c.packed
	if set == nil {
		return
	}
	if compute == nil || len(set.in) > T {
		c.packed = nil
		return
	}
	for _, p := range compute {
		if p < len(set.in) && set.in[p] {
			c.packed = nil
			return
		}
	}
}

// maxLoose is the most positions a pass over T positions leaves outside the
// packed set before it packs a new one: each loose position costs a step
// what packing it once costs.
func maxLoose(T int) int { return max(64, T/8) }

// usePacked reports whether a pass over T positions that computes n of them
// (all: computeAll) attends over a packed set: a cached step over a long
// enough sequence.
func usePacked(T, n int, computeAll bool) bool {
	return !computeAll && T >= 256 && 4*n <= T
}

// attend computes full (non-causal) attention for the queries of every run
// over all its positions' keys and values, writing out [queries][heads·
// headDim], one row per query: every computed row, or in the last layer
// (last) only the rows whose logits are returned. q comes from the fused
// projection qkv. A kv head's rows are split over several tasks when there
// are fewer kv heads than workers to keep busy.
func (m *Model) attend(s *scratch, pool *kernels.Pool, out, qkv []float32, runs []seqRun, layer int, last bool) {
	cfg := &m.Config
	d := cfg.HeadDim
	group := cfg.Heads / cfg.KVHeads
	want := (2*pool.Workers() + cfg.KVHeads - 1) / cfg.KVHeads // tasks per kv head
	tasks := s.tasks[:0]
	out0, sc, ob, wt := 0, 0, 0, 0
	packing := false
	for ri := range runs {
		r := &runs[ri]
		var qrows []int
		nq := len(r.pos)
		if last {
			qrows, nq = r.logits, len(r.logits)
		}
		if nq == 0 {
			continue
		}
		R := group * nq
		split := max(1, min(want, R/minAttnRows))
		if r.packed != nil {
			split = max(1, min(want, R/minPackedRows))
			packing = true
		}
		for g := 0; g < cfg.KVHeads; g++ {
			for p := 0; p < split; p++ {
				t := attnTask{ri: ri, g: g, qrows: qrows, nq: nq, out0: out0,
					stack: out0*cfg.Heads + g*R, j0: p * R / split, j1: (p + 1) * R / split}
				if r.packed != nil {
					n := min(t.j1-t.j0, packedChunk)
					t.sc, t.ob, t.wt = sc, ob, wt
					sc += n * r.T // the packed and the loose scores of a row: T in all
					ob += n * d
					wt += 2 * n
				}
				tasks = append(tasks, t)
			}
		}
		out0 += nq
	}
	s.tasks = tasks
	if len(s.ws) < len(tasks) {
		s.ws = append(s.ws, make([]kernels.AttentionWorkspace, len(tasks)-len(s.ws))...)
	}
	if packing {
		m.packLayer(s, pool, runs, layer)
	}
	fit(&s.sc, sc)
	fit(&s.ob, ob)
	fit(&s.wt, wt)
	pool.Run(len(tasks), func(ti int) {
		t := &tasks[ti]
		r := &runs[t.ri]
		if r.packed == nil && t.qrows == nil {
			m.attendInPlace(t, r, layer, out, qkv, &s.ws[ti])
			return
		}
		qg := s.qs[(t.stack+t.j0)*d : (t.stack+t.j1)*d]
		og := s.os[(t.stack+t.j0)*d : (t.stack+t.j1)*d]
		for j := t.j0; j < t.j1; j++ {
			head, i := t.g*group+j/t.nq, j%t.nq
			row := r.row0 + i
			if t.qrows != nil {
				row = t.qrows[i]
			}
			copy(qg[(j-t.j0)*d:][:d], qkv[row*(cfg.Heads+2*cfg.KVHeads)*d+head*d:])
		}
		if r.packed != nil {
			for j0 := 0; j0 < t.j1-t.j0; j0 += packedChunk {
				j1 := min(j0+packedChunk, t.j1-t.j0)
				m.attendPacked(s, t, r, layer, og[j0*d:j1*d], qg[j0*d:j1*d])
			}
		} else {
			k, v, _ := r.store(layer, t.g, cfg)
			kernels.Attention(og, d, qg, d, k, d, v, d, t.j1-t.j0, r.T, d, m.attnScale(), &s.ws[ti])
		}
		qd := cfg.Heads * d
		for j := t.j0; j < t.j1; j++ {
			head, i := t.g*group+j/t.nq, j%t.nq
			copy(out[(t.out0+i)*qd+head*d:][:d], og[(j-t.j0)*d:])
		}
	})
}

// attendInPlace is task t of a pass without a packed set over all of a
// run's rows: its kv head's keys and values packed once, then each query
// head's share of rows attended straight from qkv into out (row strides
// of the fused projection and of out), with no gathering into stacked
// rows and back (which cost 1-3% of a full pass in copies).
func (m *Model) attendInPlace(t *attnTask, r *seqRun, layer int, out, qkv []float32, ws *kernels.AttentionWorkspace) {
	cfg := &m.Config
	d := cfg.HeadDim
	group := cfg.Heads / cfg.KVHeads
	width, qd := (cfg.Heads+2*cfg.KVHeads)*d, cfg.Heads*d
	k, v, _ := r.store(layer, t.g, cfg)
	keys, vals := ws.Pack(k, d, v, d, r.T, d)
	for j := t.j0; j < t.j1; {
		head, i := t.g*group+j/t.nq, j%t.nq
		n := min(t.j1-j, t.nq-i) // rows of this query head in the task
		ws.Attend(out[(t.out0+i)*qd+head*d:], qd, qkv[(r.row0+i)*width+head*d:], width, keys, vals, n, m.attnScale())
		j += n
	}
}

func (m *Model) attnScale() float32 { return float32(1 / math.Sqrt(float64(m.Config.HeadDim))) }

// packLayer packs, for the runs over a packed set, the set's keys and
// values at layer if no pass has yet, and this pass's loose positions
// (whose keys and values the pass has just stored) into scratch.loose.
func (m *Model) packLayer(s *scratch, pool *kernels.Pool, runs []seqRun, layer int) {
	kvh := m.Config.KVHeads
	loose := fit(&s.loose, len(runs)*kvh)
	if len(s.looseWS) < len(loose) {
		s.looseWS = append(s.looseWS, make([]kernels.AttentionWorkspace, len(loose)-len(s.looseWS))...)
	}
	for ri := range runs {
		if set := runs[ri].packed; set != nil && set.layers[layer] == nil {
			set.layers[layer] = make([]packedKV, kvh)
		}
	}
	pool.Run(len(runs)*kvh, func(i int) {
		r, g := &runs[i/kvh], i%kvh
		if r.packed == nil {
			return
		}
		k, v, _ := r.store(layer, g, &m.Config)
		if pk := &r.packed.layers[layer][g]; pk.keys == nil {
			*pk = packKV(k, v, r.packed.pos, m.Config.HeadDim, m.serial)
		}
		loose[i] = packedKV{}
		if len(r.loose) > 0 {
			// Packed into memory the scratch keeps: this runs at every
			// layer of every step.
			loose[i].keys, loose[i].vals = s.looseWS[i].PackRows(k, v, r.loose, m.Config.HeadDim)
		}
	})
}

// attendPacked is attention of the stacked query rows qg of task t over a
// packed set and the loose positions, into og: each part gets its own
// softmax, and the outputs are summed with the weights that make them one
// softmax over all positions.
func (m *Model) attendPacked(s *scratch, t *attnTask, r *seqRun, layer int, og, qg []float32) {
	d := m.Config.HeadDim
	scale := m.attnScale()
	rows := len(qg) / d
	pk := r.packed.layers[layer][t.g]
	na := pk.keys.N
	sa := s.sc[t.sc : t.sc+rows*na]
	pk.keys.Forward(sa, qg, rows)
	// The step's own positions are never in the packed set
	// (Cache.packedFor), and a task has query rows only when the step
	// computes some: the loose part is never empty.
	lk := s.loose[t.ri*m.Config.KVHeads+t.g]
	nb := lk.keys.N
	sb := s.sc[t.sc+rows*na : t.sc+rows*(na+nb)]
	ob := s.ob[t.ob : t.ob+rows*d]
	wt := s.wt[t.wt : t.wt+2*rows]
	lk.keys.Forward(sb, qg, rows)
	for i := 0; i < rows; i++ {
		a, b := sa[i*na:(i+1)*na], sb[i*nb:(i+1)*nb]
		ma, mb := kernels.Max(a)*scale, kernels.Max(b)*scale
		// Each part becomes e^(x-m) over its own maximum m, with sum Z.
		// Rescaled to the larger maximum M, the parts weigh e^(m-M) each
		// and together sum to Z_a·e^(m_a-M) + Z_b·e^(m_b-M).
		za := float64(kernels.ExpSum(a, scale, ma))
		zb := float64(kernels.ExpSum(b, scale, mb))
		mx := max(ma, mb)
		ea, eb := math.Exp(float64(ma-mx)), math.Exp(float64(mb-mx))
		z := za*ea + zb*eb
		wt[2*i], wt[2*i+1] = float32(ea/z), float32(eb/z)
	}
	pk.vals.Forward(og, sa, rows)
	lk.vals.Forward(ob, sb, rows)
	for i := 0; i < rows; i++ {
		o := og[i*d : (i+1)*d]
		kernels.Scale(o, wt[2*i])
		kernels.Axpy(wt[2*i+1], ob[i*d:(i+1)*d], o)
	}
}
