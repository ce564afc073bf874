package model

import (
	"context"
	"fmt"

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
	// A cached step attends over the cache's packed set and the positions
	// outside it (attention.go); packed is nil otherwise.
	packed *packedSet
	loose  []int
}

// scratch is the working memory of one forward pass. Passes take it from
// Model.scratch and give it back, so that a decoding step allocates little
// beyond the logits it returns.
type scratch struct {
	x, hn, tmp []float32 // [rows][hidden]: residual stream, its norm, a block's output
	qkv        []float32 // [rows][(heads+2·kvHeads)·headDim]
	att        []float32 // [rows][heads·headDim]
	gu         []float32 // [rows][2·intermediate]: gate and up
	act        []float32 // [rows][intermediate]
	cos, sin   []float32 // [rows][headDim/2]: RoPE angles of each row
	qs, os     []float32 // [rows·heads][headDim]: query heads stacked by kv head, their outputs
	kv         []float32 // keys and values of the runs without a cache
	rowRun     []int32   // run of each row
	rowPos     []int     // position of each row
	logitRows  []int     // rows whose logits are returned, over all runs
	sel        []float32 // [logit rows][hidden]: their residual stream in the last layer
	tasks      []attnTask
	ws         []kernels.AttentionWorkspace // one per attention task
	loose      []packedKV                   // per run and kv head: the loose positions packed
	looseWS    []kernels.AttentionWorkspace // per run and kv head: the memory loose holds
	sc, ob, wt []float32                    // attention over a packed set: scores, loose outputs, part weights
}

// fit returns (*s)[:n], reallocating when the capacity is short. Contents
// are not cleared: every buffer is written before it is read.
func fit[T any](s *[]T, n int) []T {
	if cap(*s) < n {
		*s = make([]T, n)
	}
	return (*s)[:n]
}

// forwardCPU is ForwardBatch (backend.go) on the CPU: several sequences in
// one pass, their computed positions sharing the matrix multiplies,
// attention within each sequence; one logits tensor per batch.
//
// The last layer runs its attention output, MLP and the head only for the
// rows whose logits are returned: the other rows need nothing of it but
// their keys and values.
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

	s, _ := m.scratch.Get().(*scratch)
	if s == nil {
		s = new(scratch)
	}
	defer m.scratch.Put(s)
	pool := kernels.DefaultPool()

	h, d := cfg.Hidden, cfg.HeadDim
	qd, kvd := cfg.Heads*d, cfg.KVHeads*d
	width := qd + 2*kvd
	half := d / 2
	inter := cfg.Intermediate
	eps := float32(cfg.NormEps)

	kvFloats := 0
	for i := range runs {
		if runs[i].cache == nil {
			kvFloats += 2 * runs[i].T * kvd
		}
	}
	kv := fit(&s.kv, kvFloats)
	rowRun := fit(&s.rowRun, rows)
	rowPos := fit(&s.rowPos, rows)
	logitRows := fit(&s.logitRows, nlogits)[:0]
	for i := range runs {
		r := &runs[i]
		if c := r.cache; c != nil {
			// Positions being recomputed are invalid until the pass
			// completes, so a cancelled pass leaves no half-written keys
			// behind.
			c.grow(r.T)
			for _, p := range r.pos {
				c.valid[p] = false
			}
			if !c.noPack && usePacked(r.T, len(r.pos), r.b.Compute == nil) {
				r.packed, r.loose = c.packedFor(r.T, r.pos)
			} else {
				c.dropPacked(r.T, r.b.Compute)
			}
		} else {
			n := r.T * kvd
			r.k, r.v, kv = kv[:n:n], kv[n:2*n:2*n], kv[2*n:]
		}
		for j, p := range r.pos {
			rowRun[r.row0+j] = int32(i)
			rowPos[r.row0+j] = p
		}
		logitRows = append(logitRows, r.logits...)
	}

	x := fit(&s.x, rows*h)
	hn := fit(&s.hn, rows*h)
	tmp := fit(&s.tmp, rows*h)
	qkv := fit(&s.qkv, rows*width)
	att := fit(&s.att, rows*qd)
	gu := fit(&s.gu, rows*2*inter)
	act := fit(&s.act, rows*inter)
	cos := fit(&s.cos, rows*half)
	sin := fit(&s.sin, rows*half)
	fit(&s.qs, rows*qd)
	fit(&s.os, rows*qd)

	// Embeddings, RoPE angles (shared by all layers) and the first norm.
	inv := ropeInvFreq(cfg.RopeTheta, d)
	// The embedding table may be a file mapping: its rows are gathered on
	// this goroutine, where a fault becomes an error (see guardFaults).
	err := m.guardFaults(func() error {
		for i := 0; i < rows; i++ {
			m.embed.row(x[i*h:(i+1)*h], runs[rowRun[i]].b.Tokens[rowPos[i]])
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	rowsParallel(pool, rows, h, func(r0, r1 int) {
		for i := r0; i < r1; i++ {
			row := x[i*h : (i+1)*h]
			if cfg.EmbedScale != 1 {
				kernels.Scale(row, cfg.EmbedScale)
			}
			ropeAngles(rowPos[i], inv, cos[i*half:(i+1)*half], sin[i*half:(i+1)*half])
			kernels.RMSNorm(hn[i*h:(i+1)*h], row, m.layers[0].attnNorm, eps)
		}
	})

	resid := x // the residual stream of the rows still carried
	n := rows  // their number
	for li := range m.layers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		l := &m.layers[li]
		last := li == len(m.layers)-1

		// Attention block. hn holds the normed input of every row.
		l.qkv.Forward(qkv, hn, rows)
		rowsParallel(pool, rows, width, func(r0, r1 int) {
			for i := r0; i < r1; i++ {
				row := qkv[i*width : (i+1)*width]
				if l.qkvBias != nil {
					kernels.Add(row, l.qkvBias)
				}
				c, sn := cos[i*half:(i+1)*half], sin[i*half:(i+1)*half]
				for hd := 0; hd < cfg.Heads+cfg.KVHeads; hd++ {
					ropeRotate(row[hd*d:(hd+1)*d], c, sn)
				}
				run, p := &runs[rowRun[i]], rowPos[i]
				for g := 0; g < cfg.KVHeads; g++ {
					kc, vc, _ := run.store(li, g, cfg)
					copy(kc[p*d:(p+1)*d], row[qd+g*d:])
					copy(vc[p*d:(p+1)*d], row[qd+kvd+g*d:])
				}
			}
		})
		if last {
			if nlogits == 0 {
				break // the keys and values were all this layer owed
			}
			n = nlogits
		}
		m.attend(s, pool, att, qkv, runs, li, last)
		l.o.Forward(tmp, att, n)
		if last {
			// From here on only the rows whose logits are returned.
			resid = fit(&s.sel, n*h)
			for j, row := range logitRows {
				copy(resid[j*h:(j+1)*h], x[row*h:(row+1)*h])
			}
		}
		rowsParallel(pool, n, h, func(r0, r1 int) {
			for i := r0; i < r1; i++ {
				xr := resid[i*h : (i+1)*h]
				kernels.Add(xr, tmp[i*h:(i+1)*h])
				kernels.RMSNorm(hn[i*h:(i+1)*h], xr, l.mlpNorm, eps)
			}
		})

		// MLP block.
		l.gateUp.Forward(gu, hn, n)
		rowsParallel(pool, n, inter, func(r0, r1 int) {
			for i := r0; i < r1; i++ {
				g := gu[2*i*inter : (2*i+1)*inter]
				u := gu[(2*i+1)*inter : (2*i+2)*inter]
				kernels.SwiGLU(act[i*inter:(i+1)*inter], g, u)
			}
		})
		l.down.Forward(tmp, act, n)
		norm := m.norm
		if !last {
			norm = m.layers[li+1].attnNorm
		}
		rowsParallel(pool, n, h, func(r0, r1 int) {
			for i := r0; i < r1; i++ {
				xr := resid[i*h : (i+1)*h]
				kernels.Add(xr, tmp[i*h:(i+1)*h])
				kernels.RMSNorm(hn[i*h:(i+1)*h], xr, norm, eps)
			}
		})
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// Head, for the rows whose logits are wanted: hn holds them normed.
	logits := make([]float32, nlogits*cfg.Vocab)
	m.head.Forward(logits, hn, nlogits)
	if cfg.LogitScale != 1 {
		kernels.Scale(logits, cfg.LogitScale)
	}

	out := make([]*tensor.Dense, len(runs))
	at := 0
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
		r.k, r.v = nil, nil // scratch memory, not to outlive the pass
	}
	clear(s.loose)
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

// rowsParallel runs f over [0, rows) in chunks on the pool's workers. A
// pass of fewer than parallelMin elements (rows × width) runs on the
// caller: waking the workers would cost more than it saves.
func rowsParallel(pool *kernels.Pool, rows, width int, f func(r0, r1 int)) {
	w := pool.Workers()
	if w <= 1 || rows < 2 || rows*width < parallelMin {
		f(0, rows)
		return
	}
	chunks := min(rows, 4*w)
	pool.Run(chunks, func(c int) { f(c*rows/chunks, (c+1)*rows/chunks) })
}

// parallelMin is the size of an element-wise pass (floats) from which it is
// spread over the workers.
const parallelMin = 1 << 16
