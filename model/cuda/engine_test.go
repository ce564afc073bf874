package cuda

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// testModel makes random weights whose values are exact in bf16 (so that a
// float32 or float16 checkpoint converts to the device's bf16 without
// rounding and the reference sees the very numbers the engine multiplies).
func testModel(cfg Config, dt DType, bias, untied bool, seed uint64) *Weights {
	r := rand.New(rand.NewPCG(seed, 7))
	mk := func(scale float64, shape ...int) Tensor {
		n := 1
		for _, s := range shape {
			n *= s
		}
		t := Tensor{DType: dt, Shape: shape, Data: make([]byte, n*dt.size())}
		for i := 0; i < n; i++ {
			v := bf16ToF32(f32ToBF16(float32(r.NormFloat64() * scale)))
			switch dt {
			case BF16:
				binary.LittleEndian.PutUint16(t.Data[2*i:], f32ToBF16(v))
			case F16:
				binary.LittleEndian.PutUint16(t.Data[2*i:], f32ToF16(v))
			case F32:
				binary.LittleEndian.PutUint32(t.Data[4*i:], math.Float32bits(v))
			}
		}
		return t
	}
	norm := func(n int) Tensor {
		t := mk(0.1, n)
		f := toF32(t)
		for i := range f {
			f[i] += 1
		}
		return fromF32(dt, f, n)
	}
	H, I := cfg.Hidden, cfg.Intermediate
	qd, kd := cfg.Heads*cfg.HeadDim, cfg.KVHeads*cfg.HeadDim
	w := &Weights{Embed: mk(1, cfg.Vocab, H), FinalNorm: norm(H)}
	if untied {
		w.Head = mk(1/math.Sqrt(float64(H)), cfg.Vocab, H)
	}
	for l := 0; l < cfg.Layers; l++ {
		lw := LayerWeights{
			AttnNorm: norm(H), MLPNorm: norm(H),
			Q: mk(1/math.Sqrt(float64(H)), qd, H), K: mk(1/math.Sqrt(float64(H)), kd, H), V: mk(1/math.Sqrt(float64(H)), kd, H),
			O: mk(1/math.Sqrt(float64(qd)), H, qd), Gate: mk(1/math.Sqrt(float64(H)), I, H), Up: mk(1/math.Sqrt(float64(H)), I, H),
			Down: mk(1/math.Sqrt(float64(I)), H, I),
		}
		if bias {
			lw.QBias, lw.KBias, lw.VBias = mk(0.5, qd), mk(0.5, kd), mk(0.5, kd)
		}
		w.Layers = append(w.Layers, lw)
	}
	return w
}

func fromF32(dt DType, f []float32, shape ...int) Tensor {
	t := Tensor{DType: dt, Shape: shape, Data: make([]byte, len(f)*dt.size())}
	for i, v := range f {
		v = bf16ToF32(f32ToBF16(v))
		switch dt {
		case BF16:
			binary.LittleEndian.PutUint16(t.Data[2*i:], f32ToBF16(v))
		case F16:
			binary.LittleEndian.PutUint16(t.Data[2*i:], f32ToF16(v))
		case F32:
			binary.LittleEndian.PutUint32(t.Data[4*i:], math.Float32bits(v))
		}
	}
	return t
}

// f32ToF16 converts values that are exact in float16 (tests only).
func f32ToF16(f float32) uint16 {
	u := math.Float32bits(f)
	sign := uint16(u>>16) & 0x8000
	exp := int(u>>23&0xff) - 127 + 15
	mant := u & 0x7fffff
	switch {
	case f == 0:
		return sign
	case exp <= 0: // subnormal
		return sign | uint16((mant|0x800000)>>(14-exp))
	case exp >= 31:
		return sign | 0x7c00
	}
	return sign | uint16(exp)<<10 | uint16(mant>>13)
}

// refForward is an independent float64 forward pass over the same weights:
// no fused matrices, no cache, no bf16 activations. It returns the logits
// of every position.
func refForward(c Config, w *Weights, tokens []int32) [][]float64 {
	L, H := len(tokens), c.Hidden
	mat := func(t Tensor) []float64 {
		f := toF32(t)
		d := make([]float64, len(f))
		for i, v := range f {
			d[i] = float64(v)
		}
		return d
	}
	linear := func(x [][]float64, wt []float64, b []float64, n int) [][]float64 {
		y := make([][]float64, len(x))
		for i, xr := range x {
			y[i] = make([]float64, n)
			for j := 0; j < n; j++ {
				var s float64
				for p, v := range xr {
					s += v * wt[j*len(xr)+p]
				}
				if b != nil {
					s += b[j]
				}
				y[i][j] = s
			}
		}
		return y
	}
	norm := func(x [][]float64, wt []float64) [][]float64 {
		y := make([][]float64, len(x))
		for i, xr := range x {
			var ss float64
			for _, v := range xr {
				ss += v * v
			}
			inv := 1 / math.Sqrt(ss/float64(len(xr))+c.NormEps)
			y[i] = make([]float64, len(xr))
			for d, v := range xr {
				y[i][d] = wt[d] * v * inv
			}
		}
		return y
	}
	inv := ropeInvFreq(c.HeadDim, c.RopeTheta)
	rope := func(x []float64, p int) {
		half := len(x) / 2
		for j := 0; j < half; j++ {
			s, co := math.Sincos(float64(float32(p) * inv[j]))
			x0, x1 := x[j], x[j+half]
			x[j], x[j+half] = x0*co-x1*s, x1*co+x0*s
		}
	}
	emb := mat(w.Embed)
	x := make([][]float64, L)
	for i, t := range tokens {
		x[i] = append([]float64(nil), emb[int(t)*H:(int(t)+1)*H]...)
	}
	hd := c.HeadDim
	for _, l := range w.Layers {
		var qb, kb, vb []float64
		if l.QBias.present() {
			qb, kb, vb = mat(l.QBias), mat(l.KBias), mat(l.VBias)
		}
		xn := norm(x, mat(l.AttnNorm))
		q := linear(xn, mat(l.Q), qb, c.Heads*hd)
		k := linear(xn, mat(l.K), kb, c.KVHeads*hd)
		v := linear(xn, mat(l.V), vb, c.KVHeads*hd)
		for i := 0; i < L; i++ {
			for h := 0; h < c.Heads; h++ {
				rope(q[i][h*hd:(h+1)*hd], i)
			}
			for g := 0; g < c.KVHeads; g++ {
				rope(k[i][g*hd:(g+1)*hd], i)
			}
		}
		att := make([][]float64, L)
		for i := 0; i < L; i++ {
			att[i] = make([]float64, c.Heads*hd)
			for h := 0; h < c.Heads; h++ {
				g := h / (c.Heads / c.KVHeads)
				s := make([]float64, L)
				m := math.Inf(-1)
				for j := 0; j < L; j++ {
					for d := 0; d < hd; d++ {
						s[j] += q[i][h*hd+d] * k[j][g*hd+d]
					}
					s[j] /= math.Sqrt(float64(hd))
					m = math.Max(m, s[j])
				}
				var z float64
				for j := range s {
					s[j] = math.Exp(s[j] - m)
					z += s[j]
				}
				for j := 0; j < L; j++ {
					for d := 0; d < hd; d++ {
						att[i][h*hd+d] += s[j] / z * v[j][g*hd+d]
					}
				}
			}
		}
		o := linear(att, mat(l.O), nil, H)
		for i := range x {
			for d := range x[i] {
				x[i][d] += o[i][d]
			}
		}
		xn = norm(x, mat(l.MLPNorm))
		g := linear(xn, mat(l.Gate), nil, c.Intermediate)
		u := linear(xn, mat(l.Up), nil, c.Intermediate)
		for i := range g {
			for j := range g[i] {
				g[i][j] = g[i][j] / (1 + math.Exp(-g[i][j])) * u[i][j]
			}
		}
		dn := linear(g, mat(l.Down), nil, H)
		for i := range x {
			for d := range x[i] {
				x[i][d] += dn[i][d]
			}
		}
	}
	head := w.Head
	if !head.present() {
		head = w.Embed
	}
	return linear(norm(x, mat(w.FinalNorm)), mat(head), nil, c.Vocab)
}

// relErr is ‖got − want‖ / ‖want‖ over whole rows; NaN fails.
func relErr(got []float32, want [][]float64) float64 {
	var num, den float64
	k := 0
	for _, row := range want {
		for _, w := range row {
			g := float64(got[k])
			k++
			if math.IsNaN(g) || math.IsInf(g, 0) {
				return math.Inf(1)
			}
			num += (g - w) * (g - w)
			den += w * w
		}
	}
	return math.Sqrt(num / den)
}

func argmaxRow(r []float64) int {
	b := 0
	for i, v := range r {
		if v > r[b] {
			b = i
		}
	}
	return b
}

var tinyConfigs = []struct {
	name   string
	cfg    Config
	dt     DType
	bias   bool
	untied bool
}{
	{"qwen2-like bf16 tied", Config{Vocab: 97, Hidden: 32, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8, Intermediate: 48, RopeTheta: 10000, NormEps: 1e-6}, BF16, true, false},
	{"llada-like f32 untied MHA", Config{Vocab: 61, Hidden: 48, Layers: 2, Heads: 3, KVHeads: 3, HeadDim: 16, Intermediate: 40, RopeTheta: 500000, NormEps: 1e-5}, F32, false, true},
	{"f16 GQA 4:1 wide head", Config{Vocab: 50, Hidden: 64, Layers: 1, Heads: 4, KVHeads: 1, HeadDim: 40, Intermediate: 64, RopeTheta: 1e6, NormEps: 1e-6}, F16, true, true},
}

func newEmuEngine(t *testing.T, cfg Config, w *Weights, opt Options) (*Engine, *emu) {
	t.Helper()
	m, err := newEmu()
	if err != nil {
		t.Fatal(err)
	}
	e, err := newEngine(m, cfg, w, opt)
	if err != nil {
		t.Fatal(err)
	}
	return e, m
}

func randomTokens(r *rand.Rand, n, vocab int) []int32 {
	t := make([]int32, n)
	for i := range t {
		t[i] = int32(r.IntN(vocab))
	}
	return t
}

func allPositions(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	return p
}

// TestEngineEmulated holds the engine's whole forward pass (run on the
// emulator, i.e. with the kernels' references) to the independent float64
// forward: this checks every buffer, offset, product shape and the cache
// layout without a GPU.
func TestEngineEmulated(t *testing.T) {
	for _, tc := range tinyConfigs {
		for _, prec := range []Precision{Precise, Fast} {
			t.Run(tc.name+"/"+prec.String(), func(t *testing.T) {
				w := testModel(tc.cfg, tc.dt, tc.bias, tc.untied, 1)
				e, _ := newEmuEngine(t, tc.cfg, w, Options{Precision: prec})
				r := rand.New(rand.NewPCG(2, 2))
				tokens := randomTokens(r, 45, tc.cfg.Vocab) // > one key tile of 32
				want := refForward(tc.cfg, w, tokens)
				got := make([]float32, len(tokens)*tc.cfg.Vocab)
				if err := e.Forward(context.Background(), &Batch{Tokens: tokens, Logits: allPositions(len(tokens))}, got); err != nil {
					t.Fatal(err)
				}
				tol := 1e-4
				if prec == Fast {
					tol = 2e-2
				}
				if re := relErr(got, want); re > tol {
					t.Fatalf("relative error %.3g > %.g", re, tol)
				} else {
					t.Logf("relative error %.3g", re)
				}
				if prec == Precise {
					for i, row := range want {
						g := make([]float64, tc.cfg.Vocab)
						for j := range g {
							g[j] = float64(got[i*tc.cfg.Vocab+j])
						}
						if argmaxRow(g) != argmaxRow(row) {
							t.Errorf("position %d: argmax %d, reference %d", i, argmaxRow(g), argmaxRow(row))
						}
					}
				}
			})
		}
	}
}

// TestEngineCachedStep checks the denoising-step use: after a full pass
// fills the cache, recomputing the canvas positions (and asking logits for a
// subset in another order) gives the full pass's logits when the context's
// cached K/V came from the same tokens.
func TestEngineCachedStep(t *testing.T) {
	tc := tinyConfigs[0]
	w := testModel(tc.cfg, tc.dt, tc.bias, tc.untied, 3)
	e, _ := newEmuEngine(t, tc.cfg, w, Options{})
	r := rand.New(rand.NewPCG(4, 4))
	tokens := randomTokens(r, 40, tc.cfg.Vocab)
	ctx := context.Background()
	cache, err := e.NewCache(64)
	if err != nil {
		t.Fatal(err)
	}
	logits := []int{35, 30, 33}
	want := refForward(tc.cfg, w, tokens)
	sub := [][]float64{want[35], want[30], want[33]}
	// an explicit Compute of every position fills the cache
	full := make([]float32, len(logits)*tc.cfg.Vocab)
	if err := e.Forward(ctx, &Batch{Tokens: tokens, Compute: allPositions(len(tokens)), Logits: logits, Cache: cache}, full); err != nil {
		t.Fatal(err)
	}
	if cache.Len() != 40 {
		t.Fatalf("cache.Len() = %d after a 40-token pass", cache.Len())
	}
	if re := relErr(full, sub); re > 1e-4 {
		t.Fatalf("full pass: relative error %.3g", re)
	}
	compute := []int{30, 31, 32, 33, 34, 35, 36, 37}
	got := make([]float32, len(logits)*tc.cfg.Vocab)
	again := make([]float32, len(logits)*tc.cfg.Vocab)
	for _, out := range [][]float32{got, again} {
		if err := e.Forward(ctx, &Batch{Tokens: tokens, Compute: compute, Logits: logits, Cache: cache}, out); err != nil {
			t.Fatal(err)
		}
	}
	if re := relErr(got, sub); re > 1e-4 {
		t.Fatalf("cached step: relative error %.3g", re)
	}
	for i := range got {
		if got[i] != again[i] {
			t.Fatalf("repeated cached step differs at %d: %v vs %v", i, got[i], again[i])
		}
	}
	// A step whose canvas changed must see the change (its own K/V are
	// rewritten) and differ from the old logits.
	tokens[33] = (tokens[33] + 1) % int32(tc.cfg.Vocab)
	if err := e.Forward(ctx, &Batch{Tokens: tokens, Compute: compute, Logits: logits, Cache: cache}, again); err != nil {
		t.Fatal(err)
	}
	same := true
	for i := range got {
		same = same && got[i] == again[i]
	}
	if same {
		t.Fatal("changing a canvas token changed no logit")
	}
}

// TestEngineGraphReplay runs the same shape several times with different
// tokens: from the second call on, launches replay from a captured graph,
// and the results must still follow the new inputs.
func TestEngineGraphReplay(t *testing.T) {
	tc := tinyConfigs[0]
	w := testModel(tc.cfg, tc.dt, tc.bias, tc.untied, 5)
	graphed, m := newEmuEngine(t, tc.cfg, w, Options{})
	eager, _ := newEmuEngine(t, tc.cfg, w, Options{NoGraphs: true})
	r := rand.New(rand.NewPCG(6, 6))
	ctx := context.Background()
	for i := 0; i < 4; i++ {
		tokens := randomTokens(r, 20, tc.cfg.Vocab)
		b := &Batch{Tokens: tokens, Logits: []int{3, 19, 0}}
		a := make([]float32, 3*tc.cfg.Vocab)
		g := make([]float32, 3*tc.cfg.Vocab)
		before := m.launches
		if err := graphed.Forward(ctx, b, g); err != nil {
			t.Fatal(err)
		}
		if err := eager.Forward(ctx, b, a); err != nil {
			t.Fatal(err)
		}
		for j := range a {
			if a[j] != g[j] {
				t.Fatalf("call %d: graph replay differs from eager at %d", i, j)
			}
		}
		if m.launches == before {
			t.Fatalf("call %d launched nothing", i)
		}
	}
	if len(graphed.graphs) != 1 {
		t.Fatalf("%d graphs captured, want 1", len(graphed.graphs))
	}
}

// TestGraphAcrossCaches: a captured step reaches the cache through the
// descriptor uploaded with each call, so one graph serves caches of any
// address and capacity, including one that grew after the capture.
func TestGraphAcrossCaches(t *testing.T) {
	tc := tinyConfigs[0]
	V := tc.cfg.Vocab
	w := testModel(tc.cfg, tc.dt, tc.bias, tc.untied, 9)
	graphed, m := newEmuEngine(t, tc.cfg, w, Options{})
	eager, _ := newEmuEngine(t, tc.cfg, w, Options{NoGraphs: true})
	r := rand.New(rand.NewPCG(10, 10))
	ctx := context.Background()
	type seq struct {
		g, e   *Cache
		tokens []int32
	}
	var seqs []seq
	for i := 0; i < 3; i++ {
		s := seq{tokens: randomTokens(r, 40, V)}
		var err error
		if s.g, err = graphed.NewCache(40 + 8*i); err != nil {
			t.Fatal(err)
		}
		if s.e, err = eager.NewCache(40 + 8*i); err != nil {
			t.Fatal(err)
		}
		for _, p := range []struct {
			e *Engine
			c *Cache
		}{{graphed, s.g}, {eager, s.e}} {
			if err := p.e.Forward(ctx, &Batch{Tokens: s.tokens, Logits: []int{}, Cache: p.c}, nil); err != nil {
				t.Fatal(err)
			}
		}
		seqs = append(seqs, s)
	}
	compute := []int{30, 31, 32, 33, 34, 35, 36, 37}
	a, g := make([]float32, len(compute)*V), make([]float32, len(compute)*V)
	for step := 0; step < 9; step++ {
		s := seqs[step%3]
		if step == 6 { // grow the first sequence's caches: new address, new capacity
			for _, c := range []*Cache{s.g, s.e} {
				release, _ := c.e.be.bind()
				err := c.grow(200)
				release()
				if err != nil {
					t.Fatal(err)
				}
			}
		}
		s.tokens[30+step%8] = int32(r.IntN(V))
		if err := graphed.Forward(ctx, &Batch{Tokens: s.tokens, Compute: compute, Cache: s.g}, g); err != nil {
			t.Fatal(err)
		}
		if err := eager.Forward(ctx, &Batch{Tokens: s.tokens, Compute: compute, Cache: s.e}, a); err != nil {
			t.Fatal(err)
		}
		for j := range a {
			if a[j] != g[j] {
				t.Fatalf("step %d (cache %d): graph replay differs from eager at %d: %v vs %v", step, step%3, j, g[j], a[j])
			}
		}
	}
	if len(graphed.graphs) != 2 || m.replays < 8 {
		t.Fatalf("%d graphs, %d replays: want the prefill's and the step's, replayed from the second use on", len(graphed.graphs), m.replays)
	}
}

// TestEngineStats checks the sampler's device reductions against the same
// reductions over the downloaded logits, with banned tokens (for all rows
// and per row), temperature and a scored token.
func TestEngineStats(t *testing.T) {
	tc := tinyConfigs[1]
	V := tc.cfg.Vocab
	w := testModel(tc.cfg, tc.dt, tc.bias, tc.untied, 7)
	e, _ := newEmuEngine(t, tc.cfg, w, Options{})
	r := rand.New(rand.NewPCG(8, 8))
	tokens := randomTokens(r, 17, V)
	logits := []int{16, 2, 5}
	ctx := context.Background()
	full := make([]float32, len(logits)*V)
	if err := e.Forward(ctx, &Batch{Tokens: tokens, Logits: logits}, full); err != nil {
		t.Fatal(err)
	}
	for _, so := range []StatsOptions{
		{},
		{Temperature: 0.5, Banned: []int32{0, 1, 7}, RowBanned: [][]int32{{3}, nil, {4, 5, 6}}, Score: []int32{9, -1, 0}},
	} {
		want := append([]float32(nil), full...)
		var ids, offsets []int32
		for i := range logits {
			offsets = append(offsets, int32(len(ids)))
			ids = append(ids, so.Banned...)
			if so.RowBanned != nil {
				ids = append(ids, so.RowBanned[i]...)
			}
		}
		offsets = append(offsets, int32(len(ids)))
		refBanTokens(want, ids, offsets, len(logits), V)
		inv := float32(1)
		if so.Temperature > 0 {
			inv = 1 / so.Temperature
		}
		ws := refRowStats(want, so.Score, len(logits), V, inv)
		got := make([]TokenStats, len(logits))
		for rep := 0; rep < 3; rep++ { // the third replays a graph
			if err := e.Stats(ctx, &Batch{Tokens: tokens, Logits: logits}, so, got); err != nil {
				t.Fatal(err)
			}
			for i := range got {
				g, w := got[i], ws[i]
				if g.Top1 != w.Top1 || g.Top2 != w.Top2 || math.Abs(float64(g.P1-w.P1)) > 1e-5 ||
					math.Abs(float64(g.P2-w.P2)) > 1e-5 || math.Abs(float64(g.Entropy-w.Entropy)) > 1e-4 ||
					!(g.ScoreLogP == w.ScoreLogP || math.Abs(float64(g.ScoreLogP-w.ScoreLogP)) < 1e-4) {
					t.Fatalf("%+v row %d: got %+v, want %+v", so, i, g, w)
				}
				banned := append([]int32(nil), so.Banned...)
				if so.RowBanned != nil {
					banned = append(banned, so.RowBanned[i]...)
				}
				for _, b := range banned {
					if g.Top1 == b || g.Top2 == b {
						t.Fatalf("banned token %d chosen: %+v", b, g)
					}
				}
			}
		}
	}
	if err := e.Stats(ctx, &Batch{Tokens: tokens, Logits: logits}, StatsOptions{RowBanned: [][]int32{{1}}}, make([]TokenStats, 3)); err == nil {
		t.Error("RowBanned of the wrong length accepted")
	}
}

// TestCacheShift inserts and deletes tokens in front of cached positions.
// With one layer, K/V depend only on the token and its position, so after
// Shift the moved keys and values must equal a fresh pass's (up to the
// rounding of the re-rotation).
func TestCacheShift(t *testing.T) {
	cfg := tinyConfigs[0].cfg
	cfg.Layers = 1
	w := testModel(cfg, BF16, true, false, 11)
	e, m := newEmuEngine(t, cfg, w, Options{})
	r := rand.New(rand.NewPCG(12, 12))
	ctx := context.Background()
	for _, delta := range []int{5, -3} {
		tokens := randomTokens(r, 26, cfg.Vocab)
		from := 10
		var next []int32
		if delta > 0 {
			next = append(append(append([]int32(nil), tokens[:from]...), randomTokens(r, delta, cfg.Vocab)...), tokens[from:]...)
		} else {
			next = append(append([]int32(nil), tokens[:from+delta]...), tokens[from:]...)
		}
		shifted, _ := e.NewCache(40)
		if err := e.Forward(ctx, &Batch{Tokens: tokens, Logits: []int{}, Cache: shifted}, nil); err != nil {
			t.Fatal(err)
		}
		if err := shifted.Shift(from, delta); err != nil {
			t.Fatal(err)
		}
		if shifted.Len() != len(next) {
			t.Fatalf("Len after shift %d, want %d", shifted.Len(), len(next))
		}
		fresh, _ := e.NewCache(40)
		if err := e.Forward(ctx, &Batch{Tokens: next, Logits: []int{}, Cache: fresh}, nil); err != nil {
			t.Fatal(err)
		}
		hd, capy := cfg.HeadDim, 40
		for _, kv := range []struct {
			name string
			a, b []float32
		}{{"k", m.f32(shifted.k(0)), m.f32(fresh.k(0))}, {"v", m.f32(shifted.v(0)), m.f32(fresh.v(0))}} {
			for g := 0; g < cfg.KVHeads; g++ {
				for p := from + delta; p < len(next); p++ {
					for d := 0; d < hd; d++ {
						a, b := kv.a[(g*capy+p)*hd+d], kv.b[(g*capy+p)*hd+d]
						if math.Abs(float64(a-b)) > 1e-4*(1+math.Abs(float64(b))) {
							t.Fatalf("delta %d: %s head %d position %d dim %d: shifted %v, fresh %v", delta, kv.name, g, p, d, a, b)
						}
					}
				}
			}
		}
		shifted.Free()
		fresh.Free()
	}
	c, _ := e.NewCache(10)
	if err := c.Shift(1, 2); err == nil {
		t.Error("shift from beyond the cached sequence accepted")
	}
	if err := c.Shift(0, 50); err != nil || c.Len() != 50 || c.Capacity() < 50 {
		t.Errorf("shift growing the cache: err %v, len %d, capacity %d", err, c.Len(), c.Capacity())
	}
	if err := c.Shift(3, -4); err == nil {
		t.Error("shift before position 0 accepted")
	}
}

func TestFallbackGemmMatchesCublasForm(t *testing.T) {
	m, err := newEmu()
	if err != nil {
		t.Fatal(err)
	}
	release, _ := m.bind()
	defer release()
	r := rand.New(rand.NewPCG(13, 13))
	rows, n, k := 5, 70, 33 // not multiples of the 64 tile
	up := func(vals int) devptr {
		b := make([]byte, 2*vals)
		for i := 0; i < vals; i++ {
			binary.LittleEndian.PutUint16(b[2*i:], f32ToBF16(float32(r.NormFloat64())))
		}
		p, _ := m.alloc(len(b))
		m.upload(p, b)
		return p
	}
	x, wt := up(rows*k), up(n*k)
	y1, _ := m.alloc(rows * n * 4)
	y2, _ := m.alloc(rows * n * 4)
	for _, beta := range []float32{0, 1} {
		for i := range m.f32(y1)[:rows*n] {
			v := float32(r.NormFloat64())
			m.f32(y1)[i], m.f32(y2)[i] = v, v
		}
		g := gemmArgs{transA: true, m: n, n: rows, k: k, a: wt, lda: k, b: x, ldb: k, beta: beta, c: y1, ldc: n}
		if err := m.gemm(g); err != nil {
			t.Fatal(err)
		}
		g.c = y2
		grid, block, args, err := fallbackLaunch(g)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.launch("gemm_bf16", grid, block, 0, args); err != nil {
			t.Fatal(err)
		}
		a, b := m.f32(y1)[:rows*n], m.f32(y2)[:rows*n]
		for i := range a {
			if math.Abs(float64(a[i]-b[i])) > 1e-5*(1+math.Abs(float64(a[i]))) {
				t.Fatalf("beta %v: element %d: cuBLAS form %v, fallback %v", beta, i, a[i], b[i])
			}
		}
	}
	if _, _, _, err := fallbackLaunch(gemmArgs{transA: false, m: 1, n: 1, k: 1, lda: 1, ldb: 1, ldc: 1}); err == nil {
		t.Fatal("fallback accepted a product shape it does not implement")
	}
}

func TestBatchValidation(t *testing.T) {
	tc := tinyConfigs[0]
	w := testModel(tc.cfg, tc.dt, tc.bias, tc.untied, 1)
	e, _ := newEmuEngine(t, tc.cfg, w, Options{})
	ctx := context.Background()
	cache, _ := e.NewCache(8)
	V := tc.cfg.Vocab
	for name, b := range map[string]*Batch{
		"empty":                {},
		"token out of range":   {Tokens: []int32{1, int32(V)}},
		"negative token":       {Tokens: []int32{-1}},
		"compute no cache":     {Tokens: []int32{1, 2}, Compute: []int{0}},
		"compute out of range": {Tokens: []int32{1, 2}, Compute: []int{2}, Cache: cache},
		"compute duplicate":    {Tokens: []int32{1, 2}, Compute: []int{1, 1}, Cache: cache},
		"logits not computed":  {Tokens: []int32{1, 2}, Compute: []int{1}, Logits: []int{0}, Cache: cache},
		"beyond capacity":      {Tokens: make([]int32, 9), Cache: cache},
		"empty compute":        {Tokens: []int32{1}, Compute: []int{}, Cache: cache},
	} {
		out := make([]float32, len(b.Logits)*V)
		if err := e.Forward(ctx, b, out); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if err := e.Forward(ctx, &Batch{Tokens: []int32{1}, Logits: []int{0}}, make([]float32, 3)); err == nil {
		t.Error("short output accepted")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := e.Forward(cctx, &Batch{Tokens: []int32{1}, Logits: []int{}}, nil); err == nil {
		t.Error("cancelled context ignored")
	}
	if err := e.Stats(ctx, &Batch{Tokens: []int32{1}, Logits: []int{0}}, StatsOptions{Banned: []int32{int32(V)}}, make([]TokenStats, 1)); err == nil {
		t.Error("banned token outside the vocabulary accepted")
	}
}

func TestCheckWeights(t *testing.T) {
	tc := tinyConfigs[0]
	good := func() *Weights { return testModel(tc.cfg, tc.dt, tc.bias, tc.untied, 1) }
	if err := checkWeights(tc.cfg, good()); err != nil {
		t.Fatal(err)
	}
	for name, spoil := range map[string]func(w *Weights){
		"missing q":      func(w *Weights) { w.Layers[1].Q = Tensor{} },
		"wrong shape":    func(w *Weights) { w.Layers[0].Down.Shape = []int{1, 2} },
		"short data":     func(w *Weights) { w.Embed.Data = w.Embed.Data[:10] },
		"layer count":    func(w *Weights) { w.Layers = w.Layers[:1] },
		"bad bias shape": func(w *Weights) { w.Layers[0].KBias.Shape = []int{3} },
	} {
		w := good()
		spoil(w)
		if err := checkWeights(tc.cfg, w); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	bad := tc.cfg
	bad.HeadDim = 7
	if err := bad.validate(); err == nil {
		t.Error("odd head dim accepted")
	}
	bad = tc.cfg
	bad.KVHeads = 3
	if err := bad.validate(); err == nil {
		t.Error("heads not a multiple of kv heads accepted")
	}
}

func TestEngineTooLittleMemory(t *testing.T) {
	tc := tinyConfigs[0]
	m, _ := newEmu()
	m.freeBytes = 1 << 20
	_, err := newEngine(m, tc.cfg, testModel(tc.cfg, tc.dt, tc.bias, tc.untied, 1), Options{})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

// TestCacheGrows runs a sequence longer than the cache: the cache grows and
// keeps what it held (with one layer, K/V depend only on token and position,
// so extending a sequence by computing only the new positions must give the
// full pass's logits).
func TestCacheGrows(t *testing.T) {
	cfg := tinyConfigs[0].cfg
	cfg.Layers = 1
	w := testModel(cfg, BF16, true, false, 21)
	e, _ := newEmuEngine(t, cfg, w, Options{})
	r := rand.New(rand.NewPCG(22, 22))
	ctx := context.Background()
	tokens := randomTokens(r, 30, cfg.Vocab)
	c, _ := e.NewCache(16)
	if err := e.Forward(ctx, &Batch{Tokens: tokens[:12], Logits: []int{}, Cache: c}, nil); err != nil {
		t.Fatal(err)
	}
	var compute []int
	for p := 12; p < 30; p++ {
		compute = append(compute, p)
	}
	got := make([]float32, len(compute)*cfg.Vocab)
	if err := e.Forward(ctx, &Batch{Tokens: tokens, Compute: compute, Cache: c}, got); err != nil {
		t.Fatal(err)
	}
	if c.Capacity() < 30 || c.Len() != 30 {
		t.Fatalf("capacity %d, len %d", c.Capacity(), c.Len())
	}
	want := refForward(cfg, w, tokens)[12:]
	if re := relErr(got, want); re > 1e-4 {
		t.Fatalf("relative error %.3g", re)
	}
}

// TestEngineSplitAttention: a step of few rows over many keys takes the
// split-K attention (attention_part + attention_combine).
func TestEngineSplitAttention(t *testing.T) {
	tc := tinyConfigs[0]
	if s, _ := attSplits(16, 300, tc.cfg.Heads); s < 2 {
		t.Fatalf("attSplits(16, 300) = %d: the test would not split", s)
	}
	w := testModel(tc.cfg, tc.dt, tc.bias, tc.untied, 61)
	e, m := newEmuEngine(t, tc.cfg, w, Options{warpAttention: true})
	r := rand.New(rand.NewPCG(62, 62))
	tokens := randomTokens(r, 300, tc.cfg.Vocab)
	ctx := context.Background()
	c, _ := e.NewCache(300)
	if err := e.Forward(ctx, &Batch{Tokens: tokens, Logits: []int{}, Cache: c}, nil); err != nil {
		t.Fatal(err)
	}
	compute := allPositions(16)
	for i := range compute {
		compute[i] += 200
	}
	got := make([]float32, 16*tc.cfg.Vocab)
	before := m.launches
	if err := e.Forward(ctx, &Batch{Tokens: tokens, Compute: compute, Cache: c}, got); err != nil {
		t.Fatal(err)
	}
	if m.launches-before < 2*tc.cfg.Layers {
		t.Fatalf("%d launches", m.launches-before)
	}
	want := refForward(tc.cfg, w, tokens)[200:216]
	if re := relErr(got, want); re > 1e-4 {
		t.Fatalf("relative error %.3g", re)
	}
}

func TestAttSplits(t *testing.T) {
	for _, c := range []struct{ rows, keys, heads int }{{64, 1088, 14}, {1088, 1088, 14}, {1, 5, 4}, {8, 129, 32}, {64, 32768, 28}} {
		s, chunk := attSplits(c.rows, c.keys, c.heads)
		if s < 1 || chunk%attKeys != 0 || (s-1)*chunk >= c.keys || s*chunk < c.keys {
			t.Errorf("%+v: %d splits of %d", c, s, chunk)
		}
		if s*c.heads*ceilDiv(c.rows, attWarps) > max(attMaxBlocks, c.heads*ceilDiv(c.rows, attWarps)) {
			t.Errorf("%+v: %d splits exceed the scratch bound", c, s)
		}
		t.Logf("%+v: %d splits of %d keys", c, s, chunk)
	}
}

func TestAttTileSplits(t *testing.T) {
	for _, c := range []struct{ rows, keys, heads, kv, hd int }{{64, 1088, 14, 2, 64}, {1088, 1088, 14, 2, 64}, {1, 5, 4, 4, 8},
		{8, 129, 32, 8, 128}, {64, 32768, 28, 4, 128}, {64, 1088, 28, 4, 128}} {
		_, tq, tk, _ := attTile(c.hd)
		tiles, s, chunk := attTileSplits(c.rows, c.keys, c.heads, c.kv, tq, tk)
		if s < 1 || chunk%tk != 0 || (s-1)*chunk >= c.keys || s*chunk < c.keys || tiles*tq < c.rows*c.heads/c.kv {
			t.Errorf("%+v: %d tiles, %d splits of %d", c, tiles, s, chunk)
		}
		if s*c.rows*c.heads > attTileBlocks*tq+c.rows*c.heads {
			t.Errorf("%+v: %d splits exceed the scratch bound", c, s)
		}
		t.Logf("%+v: %d x %d blocks, %d splits of %d keys", c, tiles, c.kv, s, chunk)
	}
}

// TestKernelsCPU runs every kernel test of the GPU run on kernels.cu's own
// code compiled for the CPU (testdata/cpu_shim.h): the kernels' logic
// (indexing, shared-memory tiles, barriers, warp shuffles, the online
// softmax, the reductions) is checked here before any GPU sees it.
func TestKernelsCPU(t *testing.T) {
	m := newNativeEmu(t)
	h := &devHarness{t: t, be: m, blas: true, fallback: func(g gemmArgs) error {
		grid, block, args, err := fallbackLaunch(g)
		if err != nil {
			return err
		}
		return m.launch("gemm_bf16", grid, block, 0, args)
	}}
	kernelTests(t, h, 4)
}

// TestEngineCPUKernels runs the engine (both precisions, graphs, split
// attention, stats) on the CPU build of the kernels against the float64
// reference.
func TestEngineCPUKernels(t *testing.T) {
	m := newNativeEmu(t)
	ctx := context.Background()
	configs := append(tinyConfigs[:len(tinyConfigs):len(tinyConfigs)], tinyConfigs[0])
	configs[len(configs)-1].name = "head dim 96 (attention_gqa128)"
	configs[len(configs)-1].cfg = Config{Vocab: 40, Hidden: 48, Layers: 1, Heads: 4, KVHeads: 2, HeadDim: 96, Intermediate: 32, RopeTheta: 10000, NormEps: 1e-6}
	for i, tc := range configs {
		for _, prec := range []Precision{Precise, Fast} {
			if prec == Fast && i > 0 {
				continue // fast mode differs only in which pointers are NULL: once is enough here
			}
			t.Run(tc.name+"/"+prec.String(), func(t *testing.T) {
				w := testModel(tc.cfg, tc.dt, tc.bias, tc.untied, 71)
				e, err := newEngine(m, tc.cfg, w, Options{Precision: prec})
				if err != nil {
					t.Fatal(err)
				}
				defer e.Close()
				r := rand.New(rand.NewPCG(72, 72))
				tokens := randomTokens(r, 150, tc.cfg.Vocab) // > 128 keys: a cached step splits the attention
				want := refForward(tc.cfg, w, tokens)
				tol := 1e-4
				if prec == Fast {
					tol = 1e-2
				}
				c, _ := e.NewCache(160)
				got := make([]float32, 150*tc.cfg.Vocab)
				if err := e.Forward(ctx, &Batch{Tokens: tokens, Cache: c}, got); err != nil {
					t.Fatal(err)
				}
				if re := relErr(got, want); re > tol {
					t.Fatalf("full pass: relative error %.3g", re)
				}
				compute := []int{140, 141, 142, 143, 144, 145, 146, 147}
				step := make([]float32, len(compute)*tc.cfg.Vocab)
				for rep := 0; rep < 3; rep++ { // the third replays a graph
					if err := e.Forward(ctx, &Batch{Tokens: tokens, Compute: compute, Cache: c}, step); err != nil {
						t.Fatal(err)
					}
					if re := relErr(step, want[140:148]); re > tol {
						t.Fatalf("cached step %d: relative error %.3g", rep, re)
					}
				}
				st := make([]TokenStats, len(compute))
				if err := e.Stats(ctx, &Batch{Tokens: tokens, Compute: compute, Cache: c}, StatsOptions{Banned: []int32{0}}, st); err != nil {
					t.Fatal(err)
				}
				for i, s := range st {
					g := make([]float64, tc.cfg.Vocab)
					copy(g, want[140+i])
					g[0] = math.Inf(-1)
					if prec == Precise && int(s.Top1) != argmaxRow(g) {
						t.Fatalf("stats row %d: top1 %d, reference %d", i, s.Top1, argmaxRow(g))
					}
				}
			})
		}
	}
}
