package cuda

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"unsafe"
)

// Config is the shape of a Qwen2- or LLaDA-style bidirectional transformer
// (both reduce to: RMSNorm, GQA attention with rotate-half RoPE and optional
// QKV bias, SwiGLU, final RMSNorm, head).
type Config struct {
	Vocab, Hidden, Layers, Heads, KVHeads, HeadDim, Intermediate int
	RopeTheta, NormEps                                           float64
	// EmbedScale multiplies the embeddings and LogitScale the logits
	// (LLaDA's input_emb_norm and scale_logits); 0 means 1.
	EmbedScale, LogitScale float32
	// InvFreq, when set, are RoPE's inverse frequencies (HeadDim/2 of
	// them): the CPU engine's own, so that both rotate by the same angles.
	InvFreq []float32
}

func (c Config) embedScale() float32 {
	if c.EmbedScale == 0 {
		return 1
	}
	return c.EmbedScale
}

func (c Config) logitScale() float32 {
	if c.LogitScale == 0 {
		return 1
	}
	return c.LogitScale
}

func (c Config) validate() error {
	switch {
	case c.Vocab <= 0 || c.Hidden <= 0 || c.Layers <= 0 || c.Heads <= 0 || c.KVHeads <= 0 || c.Intermediate <= 0:
		return fmt.Errorf("cuda: bad shape %+v", c)
	case c.Heads%c.KVHeads != 0:
		return fmt.Errorf("cuda: %d heads not a multiple of %d kv heads", c.Heads, c.KVHeads)
	case c.HeadDim <= 0 || c.HeadDim%2 != 0 || c.HeadDim > attMaxHeadDim:
		return fmt.Errorf("cuda: head dim %d: the attention kernel takes even sizes up to %d", c.HeadDim, attMaxHeadDim)
	case c.Vocab > math.MaxInt32/4 || c.Hidden > 1<<20 || c.Intermediate > 1<<22:
		return fmt.Errorf("cuda: shape %+v too large", c)
	case c.RopeTheta <= 0:
		return fmt.Errorf("cuda: rope theta %v", c.RopeTheta)
	case c.InvFreq != nil && len(c.InvFreq) != c.HeadDim/2:
		return fmt.Errorf("cuda: %d RoPE frequencies for head dim %d", len(c.InvFreq), c.HeadDim)
	}
	return nil
}

func (c Config) qkvDim() int { return (c.Heads + 2*c.KVHeads) * c.HeadDim }

// DType is a weight element type as stored in a checkpoint.
type DType int

const (
	BF16 DType = iota
	F16
	F32
)

func (t DType) size() int {
	if t == F32 {
		return 4
	}
	return 2
}

// Tensor is a checkpoint tensor: raw little-endian elements, row-major.
type Tensor struct {
	DType DType
	Shape []int
	Data  []byte
}

func (t Tensor) present() bool { return t.Data != nil }

// LayerWeights are one transformer block's tensors in nn.Linear layout
// ([out][in]). Biases are optional.
type LayerWeights struct {
	AttnNorm, Q, K, V, O, MLPNorm, Gate, Up, Down Tensor
	QBias, KBias, VBias                           Tensor
}

// Weights are the tensors of a whole model. A Head without data is tied to Embed.
type Weights struct {
	Embed     Tensor
	Layers    []LayerWeights
	FinalNorm Tensor
	Head      Tensor
}

// Precision selects how activations enter the bf16 matrix products.
type Precision int

const (
	// Precise splits each activation x into bf16 hi + lo and multiplies
	// both (two cuBLAS calls, the second reading the weights from L2 for all
	// but the head): about 16 mantissa bits, so logits track the float32
	// CPU engine to ~1e-5 and near-ties keep their order.
	Precise Precision = iota
	// Fast rounds activations to bf16 once: the usual bf16 inference
	// error (~1e-3 relative), half the matrix work.
	Fast
)

func (p Precision) String() string {
	if p == Fast {
		return "fast"
	}
	return "precise"
}

// Options tune an Engine.
type Options struct {
	Precision Precision
	NoGraphs  bool                          // run every launch eagerly (no CUDA graph replay)
	Logf      func(format string, a ...any) // one line per notable event (graph fallback); nil: silent

	// warpAttention runs the attention one warp per query row and head
	// (attention, attention_part: the kernels of the first GPU run, ~6x
	// slower at a step's shape) instead of attention_gqa: for tests and
	// comparisons.
	warpAttention bool
}

const (
	attWarps      = 8 // ATT_WARPS in kernels.cu
	attKeys       = 32
	attMaxHeadDim = 128
	attMaxBlocks  = 2048 // split-K target: about 2 waves of 8 blocks on 132 SMs
	maxGraphs     = 8

	// attention_gqa and attention_gqa128 (attTile) split the keys into
	// chunks of at least two tiles until about attTileBlocks blocks run (2
	// per SM on an H100).
	attTileBlocks = 256

	// row_stats_part slices each row's vocabulary until about statBlocks
	// blocks run, each slice at least statMinSlice logits.
	statBlocks   = 1024
	statMinSlice = 2048
)

// Engine runs the forward pass of one model on a device. Its methods are
// safe for concurrent use (they serialise).
type Engine struct {
	be  backend
	cfg Config
	opt Options

	embed, head, finalNorm, invFreq devptr
	layers                          []devLayer
	weightBytes                     int64

	mu         sync.Mutex
	ws         workspace
	scratch    *Cache
	graphs     map[graphKey]*graphEntry
	seen       map[graphKey]int
	tick       uint64
	noGraphs   bool
	allocs     []devptr // weights, freed by Close
	hostInts   []int32
	statsBytes []byte

	pendingMu sync.Mutex
	pending   []*Cache // dropped caches, freed at the next call (reap)
}

// deferFree queues a cache whose owner was collected; it may run on any
// goroutine, so it only records.
func (e *Engine) deferFree(c *Cache) {
	e.pendingMu.Lock()
	e.pending = append(e.pending, c)
	e.pendingMu.Unlock()
}

// reap frees the queued caches (engine locked and bound).
func (e *Engine) reap() {
	e.pendingMu.Lock()
	p := e.pending
	e.pending = nil
	e.pendingMu.Unlock()
	for _, c := range p {
		if err := c.freeLocked(); err != nil {
			e.logf("cuda: freeing a dropped cache: %v", err)
		}
	}
}

type devLayer struct {
	attnNorm, mlpNorm, qkv, qkvBias, o, gu, down devptr
}

type workspace struct {
	rows, logitRows, ints32 int
	x, qkv, q, gu, hi       devptr // hi: bf16 activations (precise: then their remainders)
	res                     devptr // precise: the o and down products of hi and lo, added to x by the next norm
	logits, ints, stats     devptr
	statPart                devptr // row_stats_part's slice records
	attPart                 devptr // attention_part's chunks: values, then (max, sum) pairs
	bytes                   int64
}

// NewEngine uploads the weights (bf16 matrices, float32 vectors) and checks
// that the device has room for them and a working set.
func NewEngine(d *Device, cfg Config, w *Weights, opt Options) (*Engine, error) {
	if d == nil {
		return nil, errors.New("cuda: nil device")
	}
	return newEngine(d, cfg, w, opt)
}

func newEngine(be backend, cfg Config, w *Weights, opt Options) (*Engine, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := checkWeights(cfg, w); err != nil {
		return nil, err
	}
	e := &Engine{be: be, cfg: cfg, opt: opt, noGraphs: opt.NoGraphs, graphs: map[graphKey]*graphEntry{}, seen: map[graphKey]int{}}
	release, err := be.bind()
	if err != nil {
		return nil, err
	}
	defer release()
	need := weightBytes(cfg, w) + 64<<20
	if free, total, err := be.memInfo(); err != nil {
		return nil, err
	} else if uint64(need) > free {
		return nil, fmt.Errorf("%w: model needs %.2f GiB on the device, %.2f of %.2f GiB free", ErrUnavailable,
			float64(need)/(1<<30), float64(free)/(1<<30), float64(total)/(1<<30))
	}
	if err := e.upload(w); err != nil {
		e.freeAll()
		return nil, err
	}
	return e, nil
}

func (e *Engine) logf(format string, a ...any) {
	if e.opt.Logf != nil {
		e.opt.Logf(format, a...)
	}
}

// Config returns the model shape.
func (e *Engine) Config() Config { return e.cfg }

// WeightBytes is the device memory the weights take: what one forward pass
// must read at least once.
func (e *Engine) WeightBytes() int64 { return e.weightBytes }

func checkWeights(c Config, w *Weights) error {
	if w == nil {
		return errors.New("cuda: nil weights")
	}
	want := func(name string, t Tensor, shape ...int) error {
		if !t.present() {
			return fmt.Errorf("cuda: tensor %s missing", name)
		}
		if len(t.Shape) != len(shape) {
			return fmt.Errorf("cuda: tensor %s has shape %v, want %v", name, t.Shape, shape)
		}
		n := 1
		for i := range shape {
			if t.Shape[i] != shape[i] {
				return fmt.Errorf("cuda: tensor %s has shape %v, want %v", name, t.Shape, shape)
			}
			n *= shape[i]
		}
		if len(t.Data) != n*t.DType.size() {
			return fmt.Errorf("cuda: tensor %s has %d bytes, shape %v needs %d", name, len(t.Data), shape, n*t.DType.size())
		}
		return nil
	}
	opt := func(name string, t Tensor, shape ...int) error {
		if !t.present() {
			return nil
		}
		return want(name, t, shape...)
	}
	H, qd, kd := c.Hidden, c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	if err := want("embed", w.Embed, c.Vocab, H); err != nil {
		return err
	}
	if err := want("final norm", w.FinalNorm, H); err != nil {
		return err
	}
	if err := opt("head", w.Head, c.Vocab, H); err != nil {
		return err
	}
	if len(w.Layers) != c.Layers {
		return fmt.Errorf("cuda: %d layers of weights, config says %d", len(w.Layers), c.Layers)
	}
	for i, l := range w.Layers {
		p := fmt.Sprintf("layer %d ", i)
		for _, t := range []struct {
			name  string
			t     Tensor
			shape []int
		}{
			{"attn norm", l.AttnNorm, []int{H}}, {"q", l.Q, []int{qd, H}}, {"k", l.K, []int{kd, H}},
			{"v", l.V, []int{kd, H}}, {"o", l.O, []int{H, qd}}, {"mlp norm", l.MLPNorm, []int{H}},
			{"gate", l.Gate, []int{c.Intermediate, H}}, {"up", l.Up, []int{c.Intermediate, H}},
			{"down", l.Down, []int{H, c.Intermediate}},
		} {
			if err := want(p+t.name, t.t, t.shape...); err != nil {
				return err
			}
		}
		for _, t := range []struct {
			name string
			t    Tensor
			n    int
		}{{"q bias", l.QBias, qd}, {"k bias", l.KBias, kd}, {"v bias", l.VBias, kd}} {
			if err := opt(p+t.name, t.t, t.n); err != nil {
				return err
			}
		}
	}
	return nil
}

// weightBytes is the device footprint of the weights: bf16 matrices,
// float32 vectors.
func weightBytes(c Config, w *Weights) int64 {
	H := int64(c.Hidden)
	per := int64(c.qkvDim())*H*2 + H*int64(c.Heads*c.HeadDim)*2 + 3*H*int64(c.Intermediate)*2 + 2*H*4 + int64(c.qkvDim())*4
	n := int64(c.Layers)*per + int64(c.Vocab)*H*2 + H*4 + int64(c.HeadDim)*2
	if w.Head.present() {
		n += int64(c.Vocab) * H * 2
	}
	return n
}

func (e *Engine) allocUp(b []byte) (devptr, error) {
	p, err := e.be.alloc(len(b))
	if err != nil {
		return 0, err
	}
	e.allocs = append(e.allocs, p)
	e.weightBytes += int64(len(b))
	return p, e.be.upload(p, b)
}

func (e *Engine) upload(w *Weights) error {
	c := e.cfg
	var err error
	if e.embed, err = e.allocUp(toBF16(w.Embed)); err != nil {
		return err
	}
	e.head = e.embed
	if w.Head.present() {
		if e.head, err = e.allocUp(toBF16(w.Head)); err != nil {
			return err
		}
	}
	if e.finalNorm, err = e.allocUp(f32Bytes(toF32(w.FinalNorm))); err != nil {
		return err
	}
	inv := c.InvFreq
	if inv == nil {
		inv = ropeInvFreq(c.HeadDim, c.RopeTheta)
	}
	if e.invFreq, err = e.allocUp(f32Bytes(inv)); err != nil {
		return err
	}
	for i := range w.Layers {
		l := &w.Layers[i]
		var d devLayer
		if d.attnNorm, err = e.allocUp(f32Bytes(toF32(l.AttnNorm))); err != nil {
			return err
		}
		if d.mlpNorm, err = e.allocUp(f32Bytes(toF32(l.MLPNorm))); err != nil {
			return err
		}
		if d.qkv, err = e.allocUp(concatBF16(l.Q, l.K, l.V)); err != nil {
			return err
		}
		if l.QBias.present() || l.KBias.present() || l.VBias.present() {
			b := make([]float32, 0, c.qkvDim())
			for _, t := range []struct {
				t Tensor
				n int
			}{{l.QBias, c.Heads * c.HeadDim}, {l.KBias, c.KVHeads * c.HeadDim}, {l.VBias, c.KVHeads * c.HeadDim}} {
				if t.t.present() {
					b = append(b, toF32(t.t)...)
				} else {
					b = append(b, make([]float32, t.n)...)
				}
			}
			if d.qkvBias, err = e.allocUp(f32Bytes(b)); err != nil {
				return err
			}
		}
		if d.o, err = e.allocUp(toBF16(l.O)); err != nil {
			return err
		}
		if d.gu, err = e.allocUp(concatBF16(l.Gate, l.Up)); err != nil {
			return err
		}
		if d.down, err = e.allocUp(toBF16(l.Down)); err != nil {
			return err
		}
		e.layers = append(e.layers, d)
	}
	return e.be.sync()
}

// Close frees the engine's device memory.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	release, err := e.be.bind()
	if err != nil {
		return err
	}
	defer release()
	return e.freeAll()
}

func (e *Engine) freeAll() error {
	var errs []error
	e.dropGraphs()
	if e.scratch != nil {
		errs = append(errs, e.scratch.freeLocked())
		e.scratch = nil
	}
	errs = append(errs, e.freeWorkspace())
	for _, p := range e.allocs {
		errs = append(errs, e.be.free(p))
	}
	e.allocs = nil
	return errors.Join(errs...)
}

// --- workspace -------------------------------------------------------------

func (e *Engine) freeWorkspace() error {
	w := &e.ws
	var errs []error
	for _, p := range []devptr{w.x, w.qkv, w.q, w.gu, w.hi, w.res, w.logits, w.stats, w.statPart, w.ints, w.attPart} {
		errs = append(errs, e.be.free(p))
	}
	*w = workspace{}
	return errors.Join(errs...)
}

func grow(need, have int) int {
	n := max(have, 64)
	for n < need {
		n *= 2
	}
	return n
}

// ensureWorkspace sizes the activation buffers for rows computed positions,
// logitRows returned rows and ints index words; growing them invalidates
// captured graphs (their pointers are baked in).
func (e *Engine) ensureWorkspace(rows, logitRows, ints int) error {
	if rows <= e.ws.rows && logitRows <= e.ws.logitRows && ints <= e.ws.ints32 {
		return nil
	}
	rows, logitRows, ints = grow(rows, e.ws.rows), grow(logitRows, e.ws.logitRows), grow(ints, e.ws.ints32)
	e.dropGraphs()
	if err := e.freeWorkspace(); err != nil {
		return err
	}
	c := e.cfg
	wide := max(c.Hidden, c.Heads*c.HeadDim, c.Intermediate)
	w := workspace{rows: rows, logitRows: logitRows, ints32: ints}
	halves := 1 // precise mode keeps hi and lo activations, and their products, one after the other
	if e.opt.Precision == Precise {
		halves = 2
	}
	for _, b := range []struct {
		p     *devptr
		bytes int
	}{
		{&w.x, rows * c.Hidden * 4},
		{&w.qkv, halves * rows * c.qkvDim() * 4},
		{&w.q, rows * c.Heads * c.HeadDim * 4},
		{&w.gu, halves * rows * 2 * c.Intermediate * 4},
		{&w.hi, halves * rows * wide * 2},
		{&w.res, (halves - 1) * 2 * rows * c.Hidden * 4}, // hi and lo products
		{&w.logits, halves * logitRows * c.Vocab * 4},
		{&w.stats, logitRows * statsWords * 4},
		{&w.statPart, statPartFloats(logitRows) * 4},
		{&w.ints, ints * 4},
		{&w.attPart, attPartFloats(c, rows) * 4},
	} {
		p, err := e.be.alloc(b.bytes)
		if err != nil {
			e.ws = w
			e.freeWorkspace()
			return err
		}
		*b.p = p
		w.bytes += int64(b.bytes)
	}
	e.ws = w
	return nil
}

// --- forward ---------------------------------------------------------------

// Batch is one forward call, with the meaning of model.Batch: Tokens is the
// whole sequence (RoPE position i = index i); Compute lists the positions
// recomputed (nil: all), whose keys and values are written to Cache; Logits
// lists positions (each in Compute) whose rows are returned, nil meaning all
// of Compute in its order; Cache holds the keys and values of every other
// position and may be nil only when Compute is nil.
type Batch struct {
	Tokens  []int32
	Compute []int
	Logits  []int
	Cache   *Cache
}

// TokenStats summarises the predictive distribution at one position.
type TokenStats struct {
	Top1, Top2 int32   // most and second most likely tokens (Top2 -1 if none)
	P1, P2     float32 // their probabilities
	Entropy    float32 // of the softmax, in nats
	ScoreLogP  float32 // log-probability of StatsOptions.Score's token (-Inf without one)
}

// StatsOptions shape the distribution that Stats summarises.
type StatsOptions struct {
	Temperature float32   // logits are divided by it; 0 means 1
	Banned      []int32   // token ids given probability 0 at every position (e.g. the mask token)
	RowBanned   [][]int32 // more ids per returned row (nil, or one list per row)
	Score       []int32   // per returned row, a token whose log-probability to report (-1: none); nil: none
}

const statsWords = 6 // top1, top2, p1, p2, entropy, score log-prob

type plan struct {
	m, nl, l int
	cache    *Cache
	stats    bool
	invTemp  float32
	desc     devptr // the cache's descriptor: int64 address, int64 capacity (kv_at in kernels.cu)
	ids, pos devptr // int32 [m]
	rows     devptr // int32 [nl]: index into the computed rows
	score    devptr // int32 [nl]
	offsets  devptr // int32 [nl+1] into banned
	banned   devptr
}

// graphKey is what a captured step bakes in besides the workspace and the
// weights. Not the cache: kernels find it through the descriptor uploaded
// with each call's indices, so one graph serves every cache (a new request,
// a cloned or grown cache) without a new capture.
type graphKey struct {
	m, nl, l int
	stats    bool
	invTemp  uint32
}

type graphEntry struct {
	g    graph
	used uint64
}

// Forward runs the model and writes the logits of the returned rows into out
// ([rows][Vocab], row-major).
func (e *Engine) Forward(ctx context.Context, b *Batch, out []float32) error {
	return e.run(ctx, b, nil, out, nil)
}

// Stats runs the model and summarises the distribution of each returned row
// on the device: 24 bytes per position come back instead of the logits.
func (e *Engine) Stats(ctx context.Context, b *Batch, so StatsOptions, out []TokenStats) error {
	check := func(id int32) error {
		if id < 0 || int(id) >= e.cfg.Vocab {
			return fmt.Errorf("cuda: banned token %d outside the vocabulary", id)
		}
		return nil
	}
	for _, id := range so.Banned {
		if err := check(id); err != nil {
			return err
		}
	}
	for _, r := range so.RowBanned {
		for _, id := range r {
			if err := check(id); err != nil {
				return err
			}
		}
	}
	if so.Temperature < 0 || math.IsNaN(float64(so.Temperature)) || math.IsInf(float64(so.Temperature), 0) {
		return fmt.Errorf("cuda: temperature %v", so.Temperature)
	}
	return e.run(ctx, b, &so, nil, out)
}

func (e *Engine) run(ctx context.Context, b *Batch, so *StatsOptions, logits []float32, stats []TokenStats) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	release, err := e.be.bind()
	if err != nil {
		return err
	}
	defer release()
	e.reap()

	p, compute, err := e.prepare(b, so, len(logits), len(stats))
	if err != nil {
		return err
	}
	if err := e.execute(p); err != nil {
		p.cache.invalidate(compute)
		return err
	}
	p.cache.written(compute, p.l)
	if p.nl == 0 {
		return e.be.sync()
	}
	if so == nil {
		return e.be.download(unsafe.Slice((*byte)(unsafe.Pointer(&logits[0])), len(logits)*4), e.ws.logits)
	}
	buf := e.statsBytes[:p.nl*statsWords*4]
	if err := e.be.download(buf, e.ws.stats); err != nil {
		return err
	}
	decodeStats(buf, stats)
	return nil
}

// decodeStats unpacks row_stats_merge's output: int32 top1[n], top2[n], float32
// p1[n], p2[n], entropy[n], scoreLogp[n].
func decodeStats(buf []byte, out []TokenStats) {
	n := len(out)
	i32 := func(k, i int) int32 {
		o := (k*n + i) * 4
		return int32(uint32(buf[o]) | uint32(buf[o+1])<<8 | uint32(buf[o+2])<<16 | uint32(buf[o+3])<<24)
	}
	f32 := func(k, i int) float32 { return math.Float32frombits(uint32(i32(k, i))) }
	for i := range out {
		t2 := i32(1, i)
		if t2 == math.MaxInt32 {
			t2 = -1
		}
		out[i] = TokenStats{Top1: i32(0, i), Top2: t2, P1: f32(2, i), P2: f32(3, i), Entropy: f32(4, i), ScoreLogP: f32(5, i)}
	}
}

// prepare validates a batch, uploads its indices and returns the plan of
// the launches and the computed positions.
func (e *Engine) prepare(b *Batch, so *StatsOptions, nLogits, nStats int) (*plan, []int, error) {
	c := e.cfg
	if b == nil {
		return nil, nil, errors.New("cuda: nil batch")
	}
	L := len(b.Tokens)
	if L == 0 {
		return nil, nil, errors.New("cuda: empty sequence")
	}
	for i, t := range b.Tokens {
		if t < 0 || int(t) >= c.Vocab {
			return nil, nil, fmt.Errorf("cuda: token %d at position %d outside the vocabulary (%d)", t, i, c.Vocab)
		}
	}
	compute := b.Compute
	if compute == nil {
		compute = make([]int, L)
		for i := range compute {
			compute[i] = i
		}
	} else if b.Cache == nil {
		return nil, nil, errors.New("cuda: Compute without a Cache for the other positions")
	}
	M := len(compute)
	if M == 0 {
		return nil, nil, errors.New("cuda: nothing to compute (empty Compute)")
	}
	row := make(map[int]int, M)
	for i, p := range compute {
		if p < 0 || p >= L {
			return nil, nil, fmt.Errorf("cuda: compute position %d outside the sequence [0, %d)", p, L)
		}
		if _, dup := row[p]; dup {
			return nil, nil, fmt.Errorf("cuda: compute position %d listed twice", p)
		}
		row[p] = i
	}
	logitPos := b.Logits
	if logitPos == nil {
		logitPos = compute
	}
	nl := len(logitPos)
	if so == nil && nLogits != nl*c.Vocab {
		return nil, nil, fmt.Errorf("cuda: out has %d floats, want %d", nLogits, nl*c.Vocab)
	}
	if so != nil {
		if nStats != nl {
			return nil, nil, fmt.Errorf("cuda: out has %d entries, want %d", nStats, nl)
		}
		if so.RowBanned != nil && len(so.RowBanned) != nl {
			return nil, nil, fmt.Errorf("cuda: %d lists of banned tokens for %d rows", len(so.RowBanned), nl)
		}
		if so.Score != nil && len(so.Score) != nl {
			return nil, nil, fmt.Errorf("cuda: %d score tokens for %d rows", len(so.Score), nl)
		}
		for _, t := range so.Score {
			if t >= int32(c.Vocab) {
				return nil, nil, fmt.Errorf("cuda: score token %d outside the vocabulary", t)
			}
		}
	}

	cache := b.Cache
	if cache == nil {
		if e.scratch == nil || e.scratch.freed {
			s, err := e.newCache(max(L, 256))
			if err != nil {
				return nil, nil, err
			}
			e.scratch = s
		}
		cache = e.scratch
	}
	if cache.e != e {
		return nil, nil, errors.New("cuda: the cache belongs to another engine")
	}
	if cache.freed {
		return nil, nil, errors.New("cuda: the cache was freed")
	}
	if b.Cache != nil {
		for p := 0; p < L; p++ {
			if _, ok := row[p]; !ok && !cache.has(p) {
				return nil, nil, fmt.Errorf("cuda: position %d is neither computed nor cached (cache holds %d positions)", p, cache.n)
			}
		}
	}
	if err := cache.grow(L); err != nil {
		return nil, nil, err
	}

	// index words: cache descriptor (2 int64), ids[M] pos[M] rows[nl] score[nl] offsets[nl+1] banned[...]
	ints := append(e.hostInts[:0], int32(uint32(cache.buf)), int32(uint32(uint64(cache.buf)>>32)), int32(cache.capacity), 0)
	for _, q := range compute {
		ints = append(ints, b.Tokens[q])
	}
	for _, q := range compute {
		ints = append(ints, int32(q))
	}
	for _, q := range logitPos {
		r, ok := row[q]
		if !ok {
			return nil, nil, fmt.Errorf("cuda: logits position %d is not computed", q)
		}
		ints = append(ints, int32(r))
	}
	p := &plan{m: M, nl: nl, l: L, cache: cache, stats: so != nil, invTemp: 1}
	if so != nil {
		for i := 0; i < nl; i++ {
			s := int32(-1)
			if so.Score != nil {
				s = so.Score[i]
			}
			ints = append(ints, s)
		}
		off := int32(0)
		for i := 0; i <= nl; i++ {
			ints = append(ints, off)
			if i < nl {
				off += int32(len(so.Banned))
				if so.RowBanned != nil {
					off += int32(len(so.RowBanned[i]))
				}
			}
		}
		for i := 0; i < nl; i++ {
			ints = append(ints, so.Banned...)
			if so.RowBanned != nil {
				ints = append(ints, so.RowBanned[i]...)
			}
		}
		if so.Temperature > 0 {
			p.invTemp = 1 / so.Temperature
		}
	}
	e.hostInts = ints
	if err := e.ensureWorkspace(M, nl, len(ints)); err != nil {
		return nil, nil, err
	}
	if cap(e.statsBytes) < nl*statsWords*4 {
		e.statsBytes = make([]byte, e.ws.logitRows*statsWords*4)
	}
	base := e.ws.ints
	p.desc = base
	p.ids = base + devptr(4*descWords)
	p.pos = p.ids + devptr(4*M)
	p.rows = p.pos + devptr(4*M)
	p.score = p.rows + devptr(4*nl)
	p.offsets = p.score + devptr(4*nl)
	p.banned = p.offsets + devptr(4*(nl+1))
	if err := e.be.upload(base, unsafe.Slice((*byte)(unsafe.Pointer(&ints[0])), len(ints)*4)); err != nil {
		return nil, nil, err
	}
	return p, compute, nil
}

// execute runs the launches of a plan: replayed from a CUDA graph when the
// same shape has been seen before, else eagerly.
func (e *Engine) execute(p *plan) error {
	if e.noGraphs {
		return e.launchAll(p)
	}
	key := graphKey{m: p.m, nl: p.nl, l: p.l, stats: p.stats, invTemp: math.Float32bits(p.invTemp)}
	e.tick++
	if ge, ok := e.graphs[key]; ok {
		ge.used = e.tick
		return ge.g.launch()
	}
	e.seen[key]++
	if e.seen[key] < 2 { // a shape seen once may never recur: not worth a capture
		return e.launchAll(p)
	}
	g, err := e.capture(p)
	if err != nil {
		e.noGraphs = true
		e.logf("cuda: graph capture failed, running launches eagerly: %v", err)
		return e.launchAll(p)
	}
	if len(e.graphs) >= maxGraphs {
		var oldest graphKey
		var t uint64 = math.MaxUint64
		for k, ge := range e.graphs {
			if ge.used < t {
				oldest, t = k, ge.used
			}
		}
		e.graphs[oldest].g.destroy()
		delete(e.graphs, oldest)
	}
	e.graphs[key] = &graphEntry{g: g, used: e.tick}
	delete(e.seen, key)
	return g.launch()
}

func (e *Engine) capture(p *plan) (graph, error) {
	if err := e.be.beginCapture(); err != nil {
		return nil, err
	}
	lerr := e.launchAll(p)
	g, err := e.be.endCapture()
	if lerr != nil {
		if g != nil {
			g.destroy()
		}
		return nil, lerr
	}
	return g, err
}

func (e *Engine) dropGraphs() {
	for k, ge := range e.graphs {
		ge.g.destroy()
		delete(e.graphs, k)
	}
	clear(e.seen)
}

const (
	rowBlock  = 256 // threads for the per-row kernels
	descWords = 4   // int32 words of a cache descriptor

	// attention_combine: one block per (row, head), a thread per dimension
	// (two for head dims over 64).
	combineBlock = 64
)

// launchAll issues one forward pass (and the reductions of Stats): only
// device work, so that it can be captured into a graph.
//
// Precise mode keeps each activation as bf16 hi and lo halves stored one
// after the other (lo = hi + rows*width). Every product runs once over both
// halves (2*rows columns, the weights read once): where a kernel consumes
// the result (qkv, gate|up, the head) it adds the two halves' products; the
// o and down products go to ws.res and the next norm (add_rmsnorm) adds
// both into the residual stream. Fast mode accumulates o and down into the
// residual with beta 1.
func (e *Engine) launchAll(p *plan) error {
	c, w := e.cfg, &e.ws
	be := e.be
	H, M := c.Hidden, p.m
	eps := float32(c.NormEps)
	precise := e.opt.Precision == Precise
	lo := func(rows, width int) devptr { // the remainder half after hi
		if !precise {
			return 0
		}
		return w.hi + devptr(2*rows*width)
	}
	second := func(buf devptr, rows, width int) devptr { // the remainder product after the hi product
		if !precise {
			return 0
		}
		return buf + devptr(4*rows*width)
	}
	// pending is a product not yet added to the residual (precise mode).
	pending := false
	norm := func(n int, rows, weight devptr) error {
		var y, y2 devptr
		if pending {
			y, y2 = w.res, second(w.res, M, H)
			pending = false
		}
		return be.launch("add_rmsnorm", d1(n), d1(rowBlock), 0,
			[]karg{pArg(w.hi), pArg(lo(n, H)), pArg(w.x), pArg(y), pArg(y2), pArg(rows), pArg(weight), iArg(n), iArg(H), fArg(eps)})
	}
	residual := func(wt devptr, k int) error { // x += (hi, lo)·Wᵀ
		if !precise {
			return e.gemmRows(w.x, w.hi, wt, M, H, k, 1, 1)
		}
		pending = true
		return e.linearOnce(w.res, w.hi, wt, M, H, k, 1)
	}
	if err := be.launch("embed_gather", d1(M), d1(rowBlock), 0,
		[]karg{pArg(w.x), pArg(e.embed), pArg(p.ids), iArg(M), iArg(H), fArg(c.embedScale())}); err != nil {
		return err
	}
	qd, I := c.Heads*c.HeadDim, c.Intermediate
	scale := float32(1 / math.Sqrt(float64(c.HeadDim)))
	for li, l := range e.layers {
		if err := norm(M, 0, l.attnNorm); err != nil {
			return err
		}
		if err := e.linearOnce(w.qkv, w.hi, l.qkv, M, c.qkvDim(), H, 1); err != nil {
			return err
		}
		if err := be.launch("qkv_rope", d1(M), d1(rowBlock), 0,
			[]karg{pArg(w.q), pArg(p.desc), iArg(li), pArg(w.qkv), pArg(second(w.qkv, M, c.qkvDim())), pArg(l.qkvBias),
				pArg(p.pos), pArg(e.invFreq), iArg(M), iArg(c.Heads), iArg(c.KVHeads), iArg(c.HeadDim)}); err != nil {
			return err
		}
		if err := e.attention(p, li, w.hi, lo(M, qd), scale); err != nil {
			return err
		}
		if err := residual(l.o, qd); err != nil {
			return err
		}
		if err := norm(M, 0, l.mlpNorm); err != nil {
			return err
		}
		if err := e.linearOnce(w.gu, w.hi, l.gu, M, 2*I, H, 1); err != nil {
			return err
		}
		if err := be.launch("swiglu", d1(M), d1(rowBlock), 0,
			[]karg{pArg(w.hi), pArg(lo(M, I)), pArg(w.gu), pArg(second(w.gu, M, 2*I)), iArg(M), iArg(I)}); err != nil {
			return err
		}
		if err := residual(l.down, I); err != nil {
			return err
		}
	}
	if p.nl == 0 {
		return nil // the last layer's down product only feeds the logits
	}
	n := p.nl
	if err := norm(n, p.rows, e.finalNorm); err != nil {
		return err
	}
	if err := e.linearOnce(w.logits, w.hi, e.head, n, c.Vocab, H, c.logitScale()); err != nil {
		return err
	}
	logits2 := second(w.logits, n, c.Vocab)
	if !p.stats {
		if logits2 == 0 {
			return nil
		}
		count := n * c.Vocab
		return be.launch("add_into", d1(min(ceilDiv(count, 1024), 4096)), d1(1024), 0,
			[]karg{pArg(w.logits), pArg(logits2), lArg(count)})
	}
	if err := be.launch("ban_tokens", d1(n), d1(32), 0,
		[]karg{pArg(w.logits), pArg(p.banned), pArg(p.offsets), iArg(n), iArg(c.Vocab)}); err != nil {
		return err
	}
	splits := statSplits(n, c.Vocab)
	if err := be.launch("row_stats_part", d2(n, splits), d1(rowBlock), 0,
		[]karg{pArg(w.statPart), pArg(w.logits), pArg(logits2), iArg(n), iArg(c.Vocab), fArg(p.invTemp), iArg(splits)}); err != nil {
		return err
	}
	st := func(k int) karg { return pArg(w.stats + devptr(4*k*n)) }
	return be.launch("row_stats_merge", d1(n), d1(32), 0,
		[]karg{st(0), st(1), st(2), st(3), st(4), st(5), pArg(w.statPart), pArg(w.logits), pArg(logits2), pArg(p.score),
			iArg(n), iArg(c.Vocab), fArg(p.invTemp), iArg(splits)})
}

// statSplits is how many slices row_stats_part cuts each of n rows of
// vocab logits into: enough that about statBlocks blocks run (one block per
// row leaves most of an H100 idle for a 64-row step), none under
// statMinSlice logits.
func statSplits(n, vocab int) int {
	return max(1, min(ceilDiv(statBlocks, n), ceilDiv(vocab, statMinSlice)))
}

// statPartFloats bounds row_stats_part's records for up to rows rows:
// splits*rows <= (statBlocks/rows + 1)*rows.
func statPartFloats(rows int) int { return 8 * (statBlocks + rows) }

// attSplits chooses how many key chunks each (query tile, head) of the
// attention is split into: one block per tile and head leaves most of the
// chip idle when few rows attend over many keys (a denoising step: 64 rows,
// a thousand keys), so the keys are cut into chunks of at least 4 tiles
// until about 2048 blocks run. It returns the number of chunks and their
// length.
func attSplits(rows, keys, heads int) (splits, chunk int) {
	base := heads * ceilDiv(rows, attWarps)
	splits = max(1, min(ceilDiv(keys, 4*attKeys), attMaxBlocks/base))
	chunk = ceilDiv(ceilDiv(keys, splits), attKeys) * attKeys
	return ceilDiv(keys, chunk), chunk
}

// attTile is the attention_tiles kernel (kernels.cu) for head dim hd: its
// name, query vectors per block, keys per tile and head dims held.
func attTile(hd int) (kernel string, tq, tk, td int) {
	if hd <= 64 {
		return "attention_gqa", 64, 32, 64
	}
	return "attention_gqa128", 32, 16, 128
}

// attTileSplits is attention_tiles' grid: query tiles per kv group, and how
// many key chunks of what length (a multiple of tk, at least two tiles) so
// that about attTileBlocks blocks run. A denoising step (64 rows of 14
// heads, 2 kv heads, 1088 keys) is 7 tiles x 2 groups x 17 chunks of 64
// keys; a 1088-row prefill 119 x 2 x 2.
func attTileSplits(rows, keys, heads, kvHeads, tq, tk int) (tiles, splits, chunk int) {
	tiles = ceilDiv(rows*(heads/kvHeads), tq)
	splits = max(1, min(ceilDiv(keys, 2*tk), ceilDiv(attTileBlocks, tiles*kvHeads)))
	chunk = ceilDiv(ceilDiv(keys, splits), tk) * tk
	return tiles, ceilDiv(keys, chunk), chunk
}

// attPartFloats bounds the attention's split-K scratch for up to rows
// query rows: splits * rows * heads * (hd + 2) floats. attention_part:
// splits * heads * ceil(rows/8) <= max(attMaxBlocks, heads * ceil(rows/8));
// attention_tiles: splits <= attTileBlocks/base + 1 with base >= rows*heads/tq.
func attPartFloats(c Config, rows int) int {
	part := attWarps * max(attMaxBlocks, c.Heads*ceilDiv(rows, attWarps))
	_, tq, _, _ := attTile(c.HeadDim)
	tile := attTileBlocks*tq + rows*c.Heads
	return max(part, tile) * (c.HeadDim + 2)
}

// attention launches the attention of the plan's rows over its keys,
// split over key chunks when that fills the chip better: attention_tiles
// (query tiles of a kv group sharing its key tiles), or with
// Options.warpAttention one warp per query row and head.
func (e *Engine) attention(p *plan, layer int, hi, lo devptr, scale float32) error {
	c, w := e.cfg, &e.ws
	if !e.opt.warpAttention {
		kernel, tq, tk, _ := attTile(c.HeadDim)
		tiles, splits, chunk := attTileSplits(p.m, p.l, c.Heads, c.KVHeads, tq, tk)
		var part, ml devptr
		if splits > 1 {
			part, ml = w.attPart, w.attPart+devptr(4*splits*p.m*c.Heads*c.HeadDim)
		}
		if err := e.be.launch(kernel, dim3{tiles, c.KVHeads, splits}, d1(256), 0,
			[]karg{pArg(hi), pArg(lo), pArg(part), pArg(ml), pArg(w.q), pArg(p.desc), iArg(layer), iArg(p.m), iArg(c.Heads),
				iArg(c.KVHeads), iArg(c.HeadDim), iArg(p.l), fArg(scale), iArg(chunk)}); err != nil {
			return err
		}
		if splits == 1 {
			return nil
		}
		return e.be.launch("attention_combine", d2(p.m, c.Heads), d1(combineBlock), 0,
			[]karg{pArg(hi), pArg(lo), pArg(part), pArg(ml), iArg(p.m), iArg(c.Heads), iArg(c.HeadDim), iArg(splits)})
	}
	smem := attSmemBytes(c.HeadDim)
	splits, chunk := attSplits(p.m, p.l, c.Heads)
	tiles := ceilDiv(p.m, attWarps)
	if splits == 1 {
		return e.be.launch("attention", d2(c.Heads, tiles), d1(32*attWarps), smem,
			[]karg{pArg(hi), pArg(lo), pArg(w.q), pArg(p.desc), iArg(layer), iArg(p.m), iArg(c.Heads), iArg(c.KVHeads),
				iArg(c.HeadDim), iArg(p.l), fArg(scale)})
	}
	ml := w.attPart + devptr(4*splits*p.m*c.Heads*c.HeadDim)
	if err := e.be.launch("attention_part", dim3{c.Heads, tiles, splits}, d1(32*attWarps), smem,
		[]karg{pArg(w.attPart), pArg(ml), pArg(w.q), pArg(p.desc), iArg(layer), iArg(p.m), iArg(c.Heads), iArg(c.KVHeads),
			iArg(c.HeadDim), iArg(p.l), fArg(scale), iArg(chunk)}); err != nil {
		return err
	}
	return e.be.launch("attention_combine", d2(p.m, c.Heads), d1(combineBlock), 0,
		[]karg{pArg(hi), pArg(lo), pArg(w.attPart), pArg(ml), iArg(p.m), iArg(c.Heads), iArg(c.HeadDim), iArg(splits)})
}

// gemmRows computes y[m][n] = alpha·x[m][k]·W[n][k]ᵀ (+ y when beta is 1)
// for row-major x and W. In cuBLAS's column-major terms that is yᵀ[n×m] =
// W·xᵀ: A = W read transposed (lda = k), B = xᵀ (ldb = k), C = yᵀ (ldc = n).
func (e *Engine) gemmRows(y, x, w devptr, m, n, k int, alpha, beta float32) error {
	return e.be.gemm(gemmArgs{transA: true, m: n, n: m, k: k, a: w, lda: k, b: x, ldb: k, alpha: alpha, beta: beta, c: y, ldc: n})
}

// linearOnce multiplies the activations (in precise mode hi and lo, 2m rows
// one after the other) in one product: y holds m (or 2m) rows.
func (e *Engine) linearOnce(y, x, w devptr, m, n, k int, alpha float32) error {
	if e.opt.Precision == Precise {
		m *= 2
	}
	return e.gemmRows(y, x, w, m, n, k, alpha, 0)
}

// attSmemBytes is the attention kernel's dynamic shared memory: a key tile
// with an odd row stride, a value tile and one query row per warp.
func attSmemBytes(hd int) int {
	return 4 * (attKeys*(hd|1) + attKeys*hd + attWarps*hd)
}

// --- host-side conversions -------------------------------------------------

// ropeInvFreq is θ^(-2i/d) formed as transformers forms it (exponent and
// reciprocal in float32); Config.InvFreq overrides it with the CPU engine's.
func ropeInvFreq(hd int, theta float64) []float32 {
	f := make([]float32, hd/2)
	for i := range f {
		e := float32(2*i) / float32(hd)
		f[i] = 1 / float32(math.Pow(theta, float64(e)))
	}
	return f
}

func f32Bytes(f []float32) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&f[0])), len(f)*4)
}

// toF32 widens a vector tensor to float32.
func toF32(t Tensor) []float32 {
	n := len(t.Data) / t.DType.size()
	f := make([]float32, n)
	for i := range f {
		switch t.DType {
		case BF16:
			f[i] = math.Float32frombits(uint32(le16(t.Data, i)) << 16)
		case F16:
			f[i] = f16ToF32(le16(t.Data, i))
		case F32:
			f[i] = math.Float32frombits(le32(t.Data, i))
		}
	}
	return f
}

// toBF16 returns the tensor's elements as bf16 bytes: as stored for bf16,
// rounded to nearest even otherwise.
func toBF16(t Tensor) []byte {
	if t.DType == BF16 {
		return t.Data
	}
	n := len(t.Data) / t.DType.size()
	out := make([]byte, 2*n)
	for i := 0; i < n; i++ {
		var f float32
		if t.DType == F16 {
			f = f16ToF32(le16(t.Data, i))
		} else {
			f = math.Float32frombits(le32(t.Data, i))
		}
		b := f32ToBF16(f)
		out[2*i], out[2*i+1] = byte(b), byte(b>>8)
	}
	return out
}

func concatBF16(ts ...Tensor) []byte {
	var out []byte
	for _, t := range ts {
		out = append(out, toBF16(t)...)
	}
	return out
}

func le16(b []byte, i int) uint16 { return uint16(b[2*i]) | uint16(b[2*i+1])<<8 }
func le32(b []byte, i int) uint32 {
	return uint32(b[4*i]) | uint32(b[4*i+1])<<8 | uint32(b[4*i+2])<<16 | uint32(b[4*i+3])<<24
}

// f32ToBF16 rounds to nearest even, keeping NaN a NaN (same as f2bf in kernels.cu).
func f32ToBF16(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 0x40
	}
	u += 0x7fff + (u>>16)&1
	return uint16(u >> 16)
}

func bf16ToF32(b uint16) float32 { return math.Float32frombits(uint32(b) << 16) }

func f16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal
		f := float32(mant) / 1024 / 16384
		if sign != 0 {
			f = -f
		}
		return f
	case exp == 31:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
}
