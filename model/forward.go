package model

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"

	"gorgonia.org/tensor"

	"github.com/diffill/diffill/model/kernels"
)

// Batch is one sequence to run.
type Batch struct {
	// Tokens is the whole sequence; the RoPE position of Tokens[i] is i.
	Tokens []int32
	// Compute lists the positions recomputed by this call (nil: all). Their
	// keys and values are written to Cache.
	Compute []int
	// Logits lists the positions whose logits are returned, in this order; each
	// must be in Compute. Nil means all of Compute, in Compute's order.
	Logits []int
	// Cache supplies the keys and values of positions not in Compute, and
	// receives those of Compute. It may be nil only when Compute is nil.
	Cache *Cache
}

// Forward runs the bidirectional transformer over b and returns float32
// logits of shape [len(Logits), Vocab]. Attention is full (no causal mask).
// The context is checked between layers.
func (m *Model) Forward(ctx context.Context, b *Batch) (*tensor.Dense, error) {
	out, err := m.ForwardBatch(ctx, []*Batch{b})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// seqRun is one Batch inside a forward pass.
type seqRun struct {
	b      *Batch
	T      int
	pos    []int // positions computed, one activation row each
	row0   int   // first row of this sequence in the stacked activations
	logits []int // rows (global) whose logits are returned
	cache  *Cache
	// Without a cache every position is computed, so only the current
	// layer's keys and values are needed: [kvHeads][T][headDim].
	k, v []float32
}

// forwardCPU is ForwardBatch (backend.go) on the CPU: several sequences in
// one pass, their computed positions sharing the matrix multiplies,
// attention within each sequence; one logits tensor per batch.
func (m *Model) forwardCPU(ctx context.Context, batches []*Batch) ([]*tensor.Dense, error) {
	cfg := &m.Config
	if len(batches) == 0 {
		return nil, nil
	}
	runs := make([]seqRun, len(batches))
	rows := 0
	nlogits := 0
	seenCache := map[*Cache]bool{}
	for i, b := range batches {
		r := &runs[i]
		if err := m.plan(r, b, rows); err != nil {
			if len(batches) > 1 {
				return nil, fmt.Errorf("batch %d: %w", i, err)
			}
			return nil, err
		}
		if b.Cache != nil {
			if seenCache[b.Cache] {
				return nil, fmt.Errorf("batch %d: shares its cache with another batch", i)
			}
			seenCache[b.Cache] = true
		}
		rows += len(r.pos)
		nlogits += len(r.logits)
	}

	// Positions being recomputed are invalid until the pass completes, so a
	// cancelled pass leaves no half-written keys behind.
	for i := range runs {
		r := &runs[i]
		if r.cache != nil {
			r.cache.grow(r.T)
			for _, p := range r.pos {
				r.cache.valid[p] = false
			}
		} else {
			r.k = make([]float32, cfg.KVHeads*r.T*cfg.HeadDim)
			r.v = make([]float32, cfg.KVHeads*r.T*cfg.HeadDim)
		}
	}

	h, d := cfg.Hidden, cfg.HeadDim
	qd, kvd := cfg.Heads*d, cfg.KVHeads*d
	x := make([]float32, rows*h)
	for i := range runs {
		r := &runs[i]
		for j, p := range r.pos {
			row := x[(r.row0+j)*h : (r.row0+j+1)*h]
			m.embed.row(row, r.b.Tokens[p])
			if cfg.EmbedScale != 1 {
				for k := range row {
					row[k] *= cfg.EmbedScale
				}
			}
		}
	}

	// RoPE angles of every computed row, shared by all layers.
	half := d / 2
	inv := ropeInvFreq(cfg.RopeTheta, d)
	cos := make([]float32, rows*half)
	sin := make([]float32, rows*half)
	for i := range runs {
		r := &runs[i]
		for j, p := range r.pos {
			o := (r.row0 + j) * half
			ropeAngles(p, inv, cos[o:o+half], sin[o:o+half])
		}
	}

	hn := make([]float32, rows*h)
	q := make([]float32, rows*qd)
	k := make([]float32, rows*kvd)
	v := make([]float32, rows*kvd)
	att := make([]float32, rows*qd)
	tmp := make([]float32, rows*h)
	gate := make([]float32, rows*cfg.Intermediate)
	up := make([]float32, rows*cfg.Intermediate)
	eps := cfg.NormEps

	for li := range m.layers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		l := &m.layers[li]

		// Attention block.
		rmsNormRows(hn, x, l.attnNorm, eps, rows)
		l.q.Forward(q, hn, rows)
		l.k.Forward(k, hn, rows)
		l.v.Forward(v, hn, rows)
		addBias(q, l.qBias, rows)
		addBias(k, l.kBias, rows)
		addBias(v, l.vBias, rows)
		parallelRows(rows, func(r0, r1 int) {
			for i := r0; i < r1; i++ {
				c, s := cos[i*half:(i+1)*half], sin[i*half:(i+1)*half]
				for hd := 0; hd < cfg.Heads; hd++ {
					ropeRotate(q[i*qd+hd*d:i*qd+(hd+1)*d], c, s)
				}
				for g := 0; g < cfg.KVHeads; g++ {
					ropeRotate(k[i*kvd+g*d:i*kvd+(g+1)*d], c, s)
				}
			}
		})
		for i := range runs {
			r := &runs[i]
			for g := 0; g < cfg.KVHeads; g++ {
				kc, vc, _ := r.store(li, g, cfg)
				for j, p := range r.pos {
					src := (r.row0+j)*kvd + g*d
					copy(kc[p*d:(p+1)*d], k[src:src+d])
					copy(vc[p*d:(p+1)*d], v[src:src+d])
				}
			}
			m.attend(att, q, r, li)
		}
		l.o.Forward(tmp, att, rows)
		addRows(x, tmp)

		// MLP block.
		rmsNormRows(hn, x, l.mlpNorm, eps, rows)
		l.gate.Forward(gate, hn, rows)
		l.up.Forward(up, hn, rows)
		siluMul(gate, up)
		l.down.Forward(tmp, gate, rows)
		addRows(x, tmp)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// Final norm and head, for the rows whose logits are wanted.
	sel := make([]float32, nlogits*h)
	at := 0
	for i := range runs {
		for _, row := range runs[i].logits {
			copy(sel[at*h:(at+1)*h], x[row*h:(row+1)*h])
			at++
		}
	}
	rmsNormRows(sel, sel, m.norm, eps, nlogits)
	logits := make([]float32, nlogits*cfg.Vocab)
	m.head.Forward(logits, sel, nlogits)
	if cfg.LogitScale != 1 {
		for i := range logits {
			logits[i] *= cfg.LogitScale
		}
	}

	out := make([]*tensor.Dense, len(runs))
	at = 0
	for i := range runs {
		r := &runs[i]
		n := len(r.logits)
		if n == 0 {
			out[i] = tensor.New(tensor.WithShape(0, cfg.Vocab), tensor.Of(tensor.Float32))
		} else {
			out[i] = tensor.New(tensor.WithShape(n, cfg.Vocab),
				tensor.WithBacking(logits[at*cfg.Vocab:(at+n)*cfg.Vocab:(at+n)*cfg.Vocab]))
		}
		at += n
		if c := r.cache; c != nil {
			for _, p := range r.pos {
				c.valid[p] = true
			}
			clear(c.valid[r.T:])
			c.n = r.T
		}
	}
	return out, nil
}

// plan validates b and fills r; row0 is the first activation row of b.
func (m *Model) plan(r *seqRun, b *Batch, row0 int) error {
	cfg := &m.Config
	if b == nil {
		return fmt.Errorf("nil batch")
	}
	T := len(b.Tokens)
	if T == 0 {
		return fmt.Errorf("empty sequence")
	}
	if cfg.MaxPositions > 0 && T > cfg.MaxPositions {
		return fmt.Errorf("sequence of %d tokens exceeds the model's %d positions", T, cfg.MaxPositions)
	}
	for i, t := range b.Tokens {
		if t < 0 || int(t) >= cfg.Vocab {
			return fmt.Errorf("token %d at position %d is outside the vocabulary (%d)", t, i, cfg.Vocab)
		}
	}
	*r = seqRun{b: b, T: T, row0: row0, cache: b.Cache}
	if b.Cache != nil && !b.Cache.compatible(m) {
		return fmt.Errorf("cache was made for another model")
	}
	rowOf := make(map[int]int)
	if b.Compute == nil {
		r.pos = make([]int, T)
		for i := range r.pos {
			r.pos[i] = i
			rowOf[i] = row0 + i
		}
	} else {
		if b.Cache == nil {
			return fmt.Errorf("Compute lists %d positions but there is no Cache for the others", len(b.Compute))
		}
		r.pos = b.Compute
		for j, p := range b.Compute {
			if p < 0 || p >= T {
				return fmt.Errorf("compute position %d outside the sequence [0, %d)", p, T)
			}
			if _, dup := rowOf[p]; dup {
				return fmt.Errorf("compute position %d listed twice", p)
			}
			rowOf[p] = row0 + j
		}
		for p := 0; p < T; p++ {
			if _, ok := rowOf[p]; !ok && !b.Cache.has(p) {
				return fmt.Errorf("position %d is neither computed nor cached (cache holds %d positions)", p, b.Cache.Len())
			}
		}
	}
	if b.Logits == nil {
		r.logits = make([]int, len(r.pos))
		for j := range r.pos {
			r.logits[j] = row0 + j
		}
	} else {
		r.logits = make([]int, len(b.Logits))
		for j, p := range b.Logits {
			row, ok := rowOf[p]
			if !ok {
				return fmt.Errorf("logits position %d is not computed", p)
			}
			r.logits[j] = row
		}
	}
	return nil
}

// store returns the key and value rows of kv head g at layer l, and the row
// stride in positions.
func (r *seqRun) store(l, g int, cfg *Config) (k, v []float32, stride int) {
	if r.cache != nil {
		k, v = r.cache.kv(l, g)
		return k, v, r.cache.cap
	}
	d := cfg.HeadDim
	return r.k[g*r.T*d : (g+1)*r.T*d], r.v[g*r.T*d : (g+1)*r.T*d], r.T
}

// attentionScratch bounds the score matrix one kv head works on at a time.
const attentionScratch = 1 << 21 // floats (8 MiB)

// attend computes full (non-causal) attention for the computed rows of r,
// writing into out [rows][heads*headDim]. Each group of query heads sharing a
// kv head is stacked into one matrix so that scores and outputs are two
// matrix products per group.
func (m *Model) attend(out, q []float32, r *seqRun, layer int) {
	cfg := &m.Config
	d, T := cfg.HeadDim, r.T
	group := cfg.Heads / cfg.KVHeads
	qd := cfg.Heads * d
	n := len(r.pos)
	scale := float32(1 / math.Sqrt(float64(d)))
	chunk := max(1, min(n, attentionScratch/(group*T)))
	qg := make([]float32, group*chunk*d)
	scores := make([]float32, group*chunk*T)
	o := make([]float32, group*chunk*d)
	for g := 0; g < cfg.KVHeads; g++ {
		kc, vc, _ := r.store(layer, g, cfg)
		keys, values := kc[:T*d], vc[:T*d] // [T][d] each
		for c0 := 0; c0 < n; c0 += chunk {
			c := min(chunk, n-c0)
			for hh := 0; hh < group; hh++ {
				head := g*group + hh
				for i := 0; i < c; i++ {
					src := q[(r.row0+c0+i)*qd+head*d:][:d]
					dst := qg[(hh*c+i)*d:][:d]
					copy(dst, src)
				}
			}
			kernels.MatMul(scores, qg, keys, group*c, T, d, true)
			parallelRows(group*c, func(r0, r1 int) {
				for i := r0; i < r1; i++ {
					kernels.Softmax(scores[i*T:(i+1)*T], scale)
				}
			})
			kernels.MatMul(o, scores, values, group*c, d, T, false)
			for hh := 0; hh < group; hh++ {
				head := g*group + hh
				for i := 0; i < c; i++ {
					copy(out[(r.row0+c0+i)*qd+head*d:][:d], o[(hh*c+i)*d:][:d])
				}
			}
		}
	}
}

// rmsNormRows writes w ⊙ x / rms(x) for each of the rows of x into dst (which
// may be x).
func rmsNormRows(dst, x, w []float32, eps float64, rows int) {
	h := len(w)
	parallelRows(rows, func(r0, r1 int) {
		for i := r0; i < r1; i++ {
			kernels.RMSNorm(dst[i*h:(i+1)*h], x[i*h:(i+1)*h], w, float32(eps))
		}
	})
}

func addBias(y, b []float32, rows int) {
	if b == nil {
		return
	}
	n := len(b)
	for i := 0; i < rows; i++ {
		yr := y[i*n : (i+1)*n]
		for j, v := range b {
			yr[j] += v
		}
	}
}

func addRows(x, y []float32) { kernels.Add(x, y) }

// siluMul sets g = silu(g) * u, the SwiGLU gate.
func siluMul(g, u []float32) {
	const chunk = 4096
	parallelRows((len(g)+chunk-1)/chunk, func(r0, r1 int) {
		lo, hi := r0*chunk, min(r1*chunk, len(g))
		kernels.SwiGLU(g[lo:hi], g[lo:hi], u[lo:hi])
	})
}

// parallelRows splits [0, n) across the CPUs for the element-wise steps; the
// matrix multiplies parallelise inside the kernels.
func parallelRows(n int, f func(r0, r1 int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 || n < 8 {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	step := (n + workers - 1) / workers
	for r0 := 0; r0 < n; r0 += step {
		wg.Add(1)
		go func(r0, r1 int) {
			defer wg.Done()
			f(r0, r1)
		}(r0, min(r0+step, n))
	}
	wg.Wait()
}
