package model

import (
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/diffill/diffill/model/kernels"
)

// refModel is a plain float64 Qwen2 forward pass over the checkpoint's raw
// tensors, written for reading, not speed: the fast path (fused
// projections, packed attention, parallel row passes, the last layer
// reduced to the returned rows) is held to it on sequences long enough to
// take every one of those paths, which the tiny golden checkpoints are not.
type refModel struct {
	cfg    Config
	embed  [][]float64
	layers []refLayer
	norm   []float64
}

type refLayer struct {
	attnNorm, mlpNorm, qb, kb, vb []float64
	q, k, v, o, gate, up, down    [][]float64
}

func refTensor(t testing.TB, x Tensor) []float64 {
	t.Helper()
	n := 1
	for _, s := range x.Shape {
		n *= s
	}
	out := make([]float64, n)
	for i := range out {
		switch x.DType {
		case "F32":
			out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(x.Data[4*i:])))
		case "BF16":
			out[i] = float64(kernels.BF16ToF32(binary.LittleEndian.Uint16(x.Data[2*i:])))
		default:
			t.Fatalf("%s: dtype %s", x.Name, x.DType)
		}
	}
	return out
}

func refMatrix(t testing.TB, x Tensor) [][]float64 {
	flat := refTensor(t, x)
	rows := make([][]float64, x.Shape[0])
	for i := range rows {
		rows[i] = flat[i*x.Shape[1] : (i+1)*x.Shape[1]]
	}
	return rows
}

func newRefModel(t testing.TB, m *Model) *refModel {
	t.Helper()
	ts, err := m.Tensors()
	if err != nil {
		t.Fatal(err)
	}
	if ts.Head.Data != nil {
		t.Fatal("refModel handles tied embeddings only")
	}
	r := &refModel{cfg: m.Config, embed: refMatrix(t, ts.Embed), norm: refTensor(t, ts.Norm)}
	for _, l := range ts.Layers {
		r.layers = append(r.layers, refLayer{
			attnNorm: refTensor(t, l.AttnNorm), mlpNorm: refTensor(t, l.MLPNorm),
			qb: refTensor(t, l.QBias), kb: refTensor(t, l.KBias), vb: refTensor(t, l.VBias),
			q: refMatrix(t, l.Q), k: refMatrix(t, l.K), v: refMatrix(t, l.V), o: refMatrix(t, l.O),
			gate: refMatrix(t, l.Gate), up: refMatrix(t, l.Up), down: refMatrix(t, l.Down),
		})
	}
	return r
}

func refLinear(w [][]float64, b, x []float64) []float64 {
	y := make([]float64, len(w))
	for i, row := range w {
		for j, v := range row {
			y[i] += v * x[j]
		}
		if b != nil {
			y[i] += b[i]
		}
	}
	return y
}

func refRMSNorm(x, w []float64, eps float64) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	s := 1 / math.Sqrt(ss/float64(len(x))+eps)
	y := make([]float64, len(x))
	for i := range x {
		y[i] = x[i] * s * w[i]
	}
	return y
}

// refRope rotates each head of x (rotate_half pairing) for position p.
func refRope(x []float64, d int, p int, theta float64) {
	half := d / 2
	for h := 0; h < len(x)/d; h++ {
		v := x[h*d : (h+1)*d]
		for i := 0; i < half; i++ {
			a := float64(p) * math.Pow(theta, -float64(2*i)/float64(d))
			c, s := math.Cos(a), math.Sin(a)
			v[i], v[i+half] = v[i]*c-v[i+half]*s, v[i+half]*c+v[i]*s
		}
	}
}

// logits returns the logits of every position of toks, [T][vocab].
func (r *refModel) logits(toks []int32) [][]float64 {
	c := &r.cfg
	T, d := len(toks), c.HeadDim
	group := c.Heads / c.KVHeads
	x := make([][]float64, T)
	for i, tok := range toks {
		x[i] = append([]float64(nil), r.embed[tok]...)
	}
	for _, l := range r.layers {
		q, k, v := make([][]float64, T), make([][]float64, T), make([][]float64, T)
		for i := range x {
			hn := refRMSNorm(x[i], l.attnNorm, c.NormEps)
			q[i], k[i], v[i] = refLinear(l.q, l.qb, hn), refLinear(l.k, l.kb, hn), refLinear(l.v, l.vb, hn)
			refRope(q[i], d, i, c.RopeTheta)
			refRope(k[i], d, i, c.RopeTheta)
		}
		for i := range x {
			att := make([]float64, c.Heads*d)
			for h := 0; h < c.Heads; h++ {
				g := h / group
				s := make([]float64, T)
				mx := math.Inf(-1)
				for j := range s {
					for e := 0; e < d; e++ {
						s[j] += q[i][h*d+e] * k[j][g*d+e]
					}
					s[j] /= math.Sqrt(float64(d))
					mx = math.Max(mx, s[j])
				}
				var z float64
				for j := range s {
					s[j] = math.Exp(s[j] - mx)
					z += s[j]
				}
				for j := range s {
					for e := 0; e < d; e++ {
						att[h*d+e] += s[j] / z * v[j][g*d+e]
					}
				}
			}
			o := refLinear(l.o, nil, att)
			for e := range x[i] {
				x[i][e] += o[e]
			}
		}
		for i := range x {
			hn := refRMSNorm(x[i], l.mlpNorm, c.NormEps)
			g, u := refLinear(l.gate, nil, hn), refLinear(l.up, nil, hn)
			for e := range g {
				g[e] = g[e] / (1 + math.Exp(-g[e])) * u[e]
			}
			dn := refLinear(l.down, nil, g)
			for e := range x[i] {
				x[i][e] += dn[e]
			}
		}
	}
	out := make([][]float64, T)
	for i := range x {
		out[i] = refLinear(r.embed, nil, refRMSNorm(x[i], r.norm, c.NormEps))
	}
	return out
}

// checkRows compares got ([len(positions)][vocab]) with the reference rows of
// positions: max relative error (over each row's largest logit) and the
// argmax wherever the reference's top two are not a near tie.
func checkRows(t *testing.T, what string, got []float32, ref [][]float64, positions []int) {
	t.Helper()
	V := len(ref[0])
	if len(got) != len(positions)*V {
		t.Fatalf("%s: %d logits, want %d rows of %d", what, len(got), len(positions), V)
	}
	var worst float64
	for i, p := range positions {
		want, row := ref[p], got[i*V:(i+1)*V]
		var diff, scale float64
		best, second := 0, -1
		for j, w := range want {
			diff = math.Max(diff, math.Abs(float64(row[j])-w))
			scale = math.Max(scale, math.Abs(w))
			switch {
			case w > want[best]:
				best, second = j, best
			case j != best && (second < 0 || w > want[second]):
				second = j
			}
		}
		worst = math.Max(worst, diff/scale)
		if want[best]-want[second] > 1e-3*scale && argmax(row) != best {
			t.Errorf("%s: position %d: argmax %d, reference %d", what, p, argmax(row), best)
		}
	}
	t.Logf("%s: %d rows, max relative error %.2e", what, len(positions), worst)
	if worst > 1e-4 {
		t.Errorf("%s: max relative error %.2e > 1e-4", what, worst)
	}
}

// TestForwardLongAgainstReference runs sequences long enough that attention
// splits a kv head's queries over tasks and the row passes run in parallel,
// as full passes, batched passes, cached steps and passes that return a
// few rows or none, and holds each to the float64 reference.
func TestForwardLongAgainstReference(t *testing.T) {
	if testing.Short() {
		t.Skip("float64 reference forward over 400 tokens")
	}
	shape := benchShape{vocab: 512, hidden: 128, layers: 2, heads: 4, kvHeads: 2, inter: 512, tied: true}
	for _, dtype := range []string{"F32", "BF16"} {
		t.Run(dtype, func(t *testing.T) {
			m, err := LoadFiles(randomCheckpoint(shape, dtype, 11))
			if err != nil {
				t.Fatal(err)
			}
			ref := newRefModel(t, m)
			rnd := rand.New(rand.NewPCG(5, 6))
			a := randomTokens(rnd, 320, m.Config.Vocab)
			b := randomTokens(rnd, 300, m.Config.Vocab)
			refA, refB := ref.logits(a), ref.logits(b)
			all := func(n int) []int {
				p := make([]int, n)
				for i := range p {
					p[i] = i
				}
				return p
			}
			ctx := context.Background()

			// Full pass over every position, filling a cache.
			cache := m.NewCache(16)
			checkRows(t, "full", logitsOf(t, m, &Batch{Tokens: a, Cache: cache}), refA, all(len(a)))

			// A cached step, computed out of order, a few rows returned
			// (one twice).
			compute := []int{210, 200, 207, 201, 202, 203, 204, 205, 206, 208, 209, 319, 0}
			want := []int{319, 203, 0, 203}
			checkRows(t, "cached step", logitsOf(t, m, &Batch{Tokens: a, Compute: compute, Logits: want, Cache: cache}), refA, want)

			// Two sequences in one pass: a few rows of one, and of the
			// other, filling its cache, the rows of its span; then cached
			// steps over the span, every computed row returned.
			wantA := []int{5, 310, 17}
			stepB := []int{150, 151, 152, 153, 154, 155, 156, 157}
			cacheB := m.NewCache(len(b))
			outs, err := m.ForwardBatch(ctx, []*Batch{
				{Tokens: a, Logits: wantA},
				{Tokens: b, Cache: cacheB, Logits: stepB[2:]},
			})
			if err != nil {
				t.Fatal(err)
			}
			checkRows(t, "batch: rows of a", outs[0].Data().([]float32), refA, wantA)
			checkRows(t, "batch: rows of b", outs[1].Data().([]float32), refB, stepB[2:])
			checkRows(t, "cached step of b", logitsOf(t, m, &Batch{Tokens: b, Compute: stepB[2:], Cache: cacheB}), refB, stepB[2:])
			if set := cacheB.packed; set == nil || set.in[152] || !set.in[150] {
				t.Fatal("the cached step packed no set, or one holding the positions it computes")
			}
			checkRows(t, "wider cached step of b", logitsOf(t, m, &Batch{Tokens: b, Compute: stepB, Cache: cacheB}), refB, stepB)
			testPackedSet(t, m, b, refB, cacheB, stepB)
		})
	}
}

// testPackedSet follows a cached step over toks (whose reference logits are
// want) with steps that keep, drop and share the cache's packed keys and
// values. Steps over changed tokens read keys and values cached for the old
// ones, as cached steps do, so they are held to a twin cache that attends
// without packed sets.
func testPackedSet(t *testing.T, m *Model, toks []int32, want [][]float64, cache *Cache, step []int) {
	set := cache.packed
	if set == nil {
		t.Fatal("a cached step of a long sequence made no packed set")
	}
	twin := cache.Clone()
	twin.packed, twin.noPack = nil, true
	same := func(what string, b *Batch, twinCache *Cache) {
		t.Helper()
		got := logitsOf(t, m, b)
		tb := *b
		tb.Cache = twinCache
		plain := logitsOf(t, m, &tb)
		rel := maxRel(got, plain)
		t.Logf("%s: packed and plain attention differ by %.2e", what, rel)
		if rel > 1e-5 {
			t.Errorf("%s: packed and plain attention differ by %.2e", what, rel)
		}
		if twinCache.packed != nil {
			t.Errorf("%s: the twin made a packed set", what)
		}
	}

	checkRows(t, "same step again", logitsOf(t, m, &Batch{Tokens: toks, Compute: step, Cache: cache}), want, step)
	if cache.packed != set {
		t.Error("the same step again packed a new set")
	}

	// A clone shares the set; a step on it that changes a packed position
	// drops the clone's set only.
	clone, twinClone := cache.Clone(), twin.Clone()
	changed := append([]int32(nil), toks...)
	changed[40] = 3 + (changed[40]-2)%int32(m.Config.Vocab-3)
	stepC := append([]int{40}, step...)
	if clone.packed != set {
		t.Error("a clone of a cache with a packed set does not share it")
	}
	same("clone, a packed position changed", &Batch{Tokens: changed, Compute: stepC, Cache: clone}, twinClone)
	if clone.packed == set || clone.packed == nil || clone.packed.in[40] {
		t.Error("changing a packed position kept the set, or packed the position")
	}
	if cache.packed != set {
		t.Error("a step on the clone changed the original's set")
	}
	checkRows(t, "original after the clone's step", logitsOf(t, m, &Batch{Tokens: toks, Compute: step, Cache: cache}), want, step)

	// Three tokens inserted before the step's positions: the shifted cache
	// holds no packed set, and the next step makes one.
	const at, n = 100, 3
	for _, c := range []*Cache{cache, twin} {
		if err := c.Shift(at, n); err != nil {
			t.Fatal(err)
		}
	}
	if cache.packed != nil {
		t.Error("Shift kept the packed set")
	}
	grown := append(append(append([]int32(nil), toks[:at]...), 5, 6, 7), toks[at:]...)
	stepG := []int{at, at + 1, at + 2}
	for _, p := range step {
		stepG = append(stepG, p+n)
	}
	same("after Shift", &Batch{Tokens: grown, Compute: stepG, Cache: cache}, twin)
	if cache.packed == nil {
		t.Error("the step after Shift made no packed set")
	}
	// A step over a part of the last one (a masks-only step) keeps the set
	// and attends over the rest as loose positions.
	set = cache.packed
	same("part of the last step", &Batch{Tokens: grown, Compute: stepG[2:6], Cache: cache}, twin)
	if cache.packed != set {
		t.Error("a step over part of the last one packed a new set")
	}
	// A step over the sequence grown by more positions than a step may
	// leave outside the set: a new one.
	set = cache.packed
	longer := append(append([]int32(nil), grown...), make([]int32, maxLoose(len(grown)))...)
	stepL := append([]int(nil), stepG...)
	for p := len(grown); p < len(longer); p++ {
		longer[p] = 3 + int32(p)%int32(m.Config.Vocab-3)
		stepL = append(stepL, p)
	}
	same("longer sequence", &Batch{Tokens: longer, Compute: stepL, Logits: stepL[:5], Cache: cache}, twin)
	if cache.packed == set {
		t.Errorf("a step leaving %d positions loose kept the set", len(longer)-len(set.pos))
	}
}
