package model

import (
	"context"
	"errors"
	"fmt"
	"math"

	"gorgonia.org/tensor"
)

// Backend runs the forward pass on another device (a GPU: package
// model/cuda). Once set, ForwardBatch and NewCache go to it; batches whose
// Cache lives on the host (made before the backend was set, or when the
// device had no room) still run on the CPU.
type Backend interface {
	// ForwardBatch is Model.ForwardBatch on the device; every batch's Cache
	// is nil or a device cache of this backend.
	ForwardBatch(ctx context.Context, batches []*Batch) ([]*tensor.Dense, error)
	// NewCache allocates keys and values for capacity positions on the device.
	NewCache(capacity int) (DeviceCache, error)
	// String names the device, e.g. "cuda: NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB)".
	String() string
	Close() error
}

// DeviceCache is the device side of a Cache made while a Backend is set;
// Cache's methods forward to it.
type DeviceCache interface {
	Len() int
	Reset()
	Clone() (DeviceCache, error)
	Shift(from, delta int) error
}

// StatsBackend is a Backend that also reduces logits to TokenStats on the
// device, so that a decoding step moves a few bytes per position instead of
// whole rows of logits.
type StatsBackend interface {
	Backend
	ForwardStats(ctx context.Context, b *Batch, opt StatsOptions) ([]TokenStats, error)
}

// SetBackend routes the forward pass to b (nil: the CPU). Call it before
// the Model is shared; Close closes the backend.
func (m *Model) SetBackend(b Backend) {
	m.backend = b
	if b != nil {
		m.release = append(m.release, func() error {
			if m.backend == b {
				m.backend = nil
			}
			return b.Close()
		})
	}
}

// Backend returns the backend set by SetBackend, or nil on the CPU.
func (m *Model) Backend() Backend { return m.backend }

// Device names where the forward pass runs: "cpu" or the backend's device.
func (m *Model) Device() string {
	if m.backend == nil {
		return "cpu"
	}
	return m.backend.String()
}

// ForwardBatch runs several sequences in one pass: their computed positions
// share the matrix multiplies, attention stays within each sequence. It
// returns one logits tensor per batch. With a backend set it runs there.
func (m *Model) ForwardBatch(ctx context.Context, batches []*Batch) ([]*tensor.Dense, error) {
	if m.backend != nil && onDevice(batches) {
		return m.backend.ForwardBatch(ctx, batches)
	}
	return m.ForwardCPU(ctx, batches)
}

// ForwardCPU runs ForwardBatch on the CPU whatever the backend (batches
// must not use device caches): the reference a backend is tested against.
func (m *Model) ForwardCPU(ctx context.Context, batches []*Batch) ([]*tensor.Dense, error) {
	for _, b := range batches {
		if b != nil && b.Cache != nil && b.Cache.dev != nil {
			return nil, errors.New("a batch's cache lives on the GPU but the pass runs on the CPU (batches mixing device and host caches, or the backend removed)")
		}
	}
	return m.forwardCPU(ctx, batches)
}

// onDevice reports whether every batch can run on the backend: no cache, or
// a device cache.
func onDevice(batches []*Batch) bool {
	for _, b := range batches {
		if b != nil && b.Cache != nil && b.Cache.dev == nil {
			return false
		}
	}
	return true
}

// Device returns the device side of a cache made while a backend was set,
// or nil for a host cache.
func (c *Cache) Device() DeviceCache { return c.dev }

// newDeviceCache wraps a device cache, or returns nil when there is no
// backend or it has no room (the caller then makes a host cache).
func (m *Model) newDeviceCache(capacity int) *Cache {
	if m.backend == nil {
		return nil
	}
	dc, err := m.backend.NewCache(capacity)
	if err != nil {
		return nil
	}
	return &Cache{dev: dc, owner: m, layers: m.Config.Layers, kvHeads: m.Config.KVHeads, headDim: m.Config.HeadDim,
		invFreq: ropeInvFreq(m.Config.RopeTheta, m.Config.HeadDim)}
}

// cloneDevice clones a device cache; where the device has no room for the
// copy the clone is an empty host cache, so a pass relying on cached
// positions fails with a clear error instead of reading garbage.
func (c *Cache) cloneDevice() *Cache {
	d, err := c.dev.Clone()
	if err == nil {
		e := *c
		e.dev = d
		return &e
	}
	e := &Cache{owner: c.owner, layers: c.layers, kvHeads: c.kvHeads, headDim: c.headDim, invFreq: c.invFreq}
	e.k = make([][]float32, e.layers)
	e.v = make([][]float32, e.layers)
	e.grow(1)
	return e
}

// RopeInvFreq returns the RoPE inverse frequencies the CPU engine rotates
// with, so that a backend rotates by the very same angles.
func RopeInvFreq(theta float64, headDim int) []float32 { return ropeInvFreq(theta, headDim) }

// --- raw weights -----------------------------------------------------------

// Tensor is a checkpoint tensor as stored: raw little-endian elements
// (DType "F32", "BF16" or "F16"), aliasing the mapped file.
type Tensor struct {
	Name  string
	DType string
	Shape []int
	Data  []byte
}

// LayerTensors are one transformer block's tensors in nn.Linear layout
// ([out][in]); the biases have no Data when the family has none.
type LayerTensors struct {
	AttnNorm, Q, K, V, O, QBias, KBias, VBias, MLPNorm, Gate, Up, Down Tensor
}

// Tensors are the weights the forward pass uses, for a backend to upload.
// Head has no Data when the embeddings are tied.
type Tensors struct {
	Embed  Tensor
	Layers []LayerTensors
	Norm   Tensor
	Head   Tensor
}

// Tensors returns the checkpoint's weights by role.
func (m *Model) Tensors() (*Tensors, error) {
	if m.tensors == nil {
		return nil, errors.New("model: weights not available")
	}
	get := func(name string) (Tensor, error) {
		if name == "" {
			return Tensor{}, nil
		}
		t, ok := m.tensors[name]
		if !ok {
			return Tensor{}, fmt.Errorf("model: tensor %q missing", name)
		}
		return Tensor{Name: name, DType: t.DType, Shape: t.Shape, Data: t.Data}, nil
	}
	var ts Tensors
	var err error
	if ts.Embed, err = get(m.lay.embed); err != nil {
		return nil, err
	}
	if ts.Norm, err = get(m.lay.norm); err != nil {
		return nil, err
	}
	if ts.Head, err = get(m.lay.head); err != nil {
		return nil, err
	}
	for i := 0; i < m.Config.Layers; i++ {
		n := m.lay.layer(i)
		var l LayerTensors
		for _, f := range []struct {
			dst  *Tensor
			name string
		}{
			{&l.AttnNorm, n.attnNorm}, {&l.Q, n.q}, {&l.K, n.k}, {&l.V, n.v}, {&l.O, n.o},
			{&l.QBias, n.qBias}, {&l.KBias, n.kBias}, {&l.VBias, n.vBias},
			{&l.MLPNorm, n.mlpNorm}, {&l.Gate, n.gate}, {&l.Up, n.up}, {&l.Down, n.down},
		} {
			if *f.dst, err = get(f.name); err != nil {
				return nil, err
			}
		}
		ts.Layers = append(ts.Layers, l)
	}
	return &ts, nil
}

// --- sampler statistics ----------------------------------------------------

// TokenStats summarises the predictive distribution at one position: what
// the confidence, margin and entropy samplers need, without the logits.
type TokenStats struct {
	Top1, Top2 int32   // most and second most likely tokens (Top2 -1 if none)
	P1, P2     float32 // their probabilities
	Entropy    float32 // of the softmax, in nats
	ScoreLogP  float32 // log-probability of StatsOptions.Score's token (-Inf without one)
}

// StatsOptions shape the distribution ForwardStats summarises.
type StatsOptions struct {
	Temperature float32   // logits are divided by it; 0 means 1
	Banned      []int32   // tokens given probability 0 at every position (e.g. the mask token)
	RowBanned   [][]int32 // more banned tokens per returned row (nil, or one list per row)
	Score       []int32   // per returned row, a token whose log-probability to report (-1: none); nil: none
}

// ForwardStats runs b and summarises the distribution at each returned
// position. On a StatsBackend the reduction runs on the device; otherwise
// it runs here over the logits, with the same result.
func (m *Model) ForwardStats(ctx context.Context, b *Batch, opt StatsOptions) ([]TokenStats, error) {
	if sb, ok := m.backend.(StatsBackend); ok && onDevice([]*Batch{b}) {
		return sb.ForwardStats(ctx, b, opt)
	}
	out, err := m.ForwardBatch(ctx, []*Batch{b})
	if err != nil {
		return nil, err
	}
	logits, ok := out[0].Data().([]float32)
	if !ok && out[0].Shape()[0] != 0 {
		return nil, fmt.Errorf("model: logits of type %T", out[0].Data())
	}
	return RowStats(logits, m.Config.Vocab, opt)
}

// RowStats computes TokenStats over rows of logits ([rows][vocab]) on the
// CPU: the definition the device reduction is held to.
func RowStats(logits []float32, vocab int, opt StatsOptions) ([]TokenStats, error) {
	n := len(logits) / vocab
	if opt.RowBanned != nil && len(opt.RowBanned) != n {
		return nil, fmt.Errorf("model: %d lists of banned tokens for %d rows", len(opt.RowBanned), n)
	}
	if opt.Score != nil && len(opt.Score) != n {
		return nil, fmt.Errorf("model: %d score tokens for %d rows", len(opt.Score), n)
	}
	inv := float32(1)
	if opt.Temperature > 0 {
		inv = 1 / opt.Temperature
	}
	out := make([]TokenStats, n)
	banned := map[int32]bool{}
	for i := range out {
		clear(banned)
		for _, t := range opt.Banned {
			banned[t] = true
		}
		if opt.RowBanned != nil {
			for _, t := range opt.RowBanned[i] {
				banned[t] = true
			}
		}
		row := logits[i*vocab : (i+1)*vocab]
		x := func(j int) float64 { return float64(row[j] * inv) }
		m, i1, i2 := math.Inf(-1), -1, -1
		for j := range row {
			if banned[int32(j)] {
				continue
			}
			v := x(j)
			m = math.Max(m, v)
			switch {
			case i1 < 0 || v > x(i1):
				i2, i1 = i1, j
			case i2 < 0 || v > x(i2):
				i2 = j
			}
		}
		st := TokenStats{Top1: int32(i1), Top2: int32(i2), ScoreLogP: float32(math.Inf(-1))}
		if i1 < 0 {
			out[i] = st
			continue
		}
		var z, t float64
		for j := range row {
			if banned[int32(j)] {
				continue
			}
			e := math.Exp(x(j) - m)
			z += e
			t += e * (x(j) - m)
		}
		st.P1 = float32(math.Exp(x(i1)-m) / z)
		if i2 >= 0 {
			st.P2 = float32(math.Exp(x(i2)-m) / z)
		}
		st.Entropy = float32(math.Log(z) - t/z)
		if opt.Score != nil && opt.Score[i] >= 0 && int(opt.Score[i]) < vocab && !banned[opt.Score[i]] {
			st.ScoreLogP = float32(x(int(opt.Score[i])) - m - math.Log(z))
		}
		out[i] = st
	}
	return out, nil
}
