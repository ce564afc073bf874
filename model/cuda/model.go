package cuda

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"

	"gorgonia.org/tensor"

	"github.com/diffill/diffill/model"
)

// Backend runs a model.Model on a CUDA device (model.StatsBackend).
type Backend struct {
	dev     *Device
	ownsDev bool // Close closes dev (Attach opened it)
	eng     *Engine
	cfg     model.Config
}

var _ model.StatsBackend = (*Backend)(nil)

// Select decides where m runs. device is "cpu", "cuda" or "auto" (""
// reads DIFFILL_DEVICE, default auto). With auto, a machine without a usable
// GPU (no driver, no device, too little memory) keeps the CPU and logf gets
// one line saying why; with cuda that is an error. It returns the device
// the model runs on.
func Select(m *model.Model, device string, opt Options, logf func(format string, a ...any)) (string, error) {
	if device == "" {
		device = os.Getenv("DIFFILL_DEVICE")
	}
	switch device {
	case "", "auto", "cuda", "gpu":
	case "cpu":
		return "cpu", nil
	default:
		return "", fmt.Errorf("device %q: want cpu, cuda or auto", device)
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if opt.Logf == nil {
		opt.Logf = logf
	}
	b, err := Attach(m, opt)
	if err != nil {
		if device == "cuda" || device == "gpu" || !errors.Is(err, ErrUnavailable) {
			return "", err
		}
		logf("diffill: GPU not used (%v); running on the CPU", err)
		return "cpu", nil
	}
	for _, n := range b.dev.Notes {
		logf("diffill: %s", n)
	}
	logf("diffill: running on %s", b)
	return b.String(), nil
}

// Attach opens the GPU, uploads m's weights and routes m's forward pass to
// it. The model's Close releases the device.
func Attach(m *model.Model, opt Options) (*Backend, error) {
	d, err := Open()
	if err != nil {
		return nil, err
	}
	b, err := AttachTo(d, m, opt)
	if err != nil {
		d.Close()
		return nil, err
	}
	b.ownsDev = true
	return b, nil
}

// AttachTo is Attach on an open device, which stays open after the model closes.
func AttachTo(d *Device, m *model.Model, opt Options) (*Backend, error) {
	cfg, w, err := fromModel(m)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	// The upload reads the checkpoint's mapped bytes: under the model's
	// fault guard, so that a weights file truncated meanwhile is an error.
	var e *Engine
	err = m.GuardFaults(func() error {
		var err error
		e, err = NewEngine(d, cfg, w, opt)
		return err
	})
	if err != nil {
		return nil, err
	}
	b := &Backend{dev: d, eng: e, cfg: m.Config}
	m.SetBackend(b)
	return b, nil
}

// fromModel maps a loaded checkpoint onto the engine's shape and weights.
func fromModel(m *model.Model) (Config, *Weights, error) {
	c := m.Config
	cfg := Config{
		Vocab: c.Vocab, Hidden: c.Hidden, Layers: c.Layers, Heads: c.Heads, KVHeads: c.KVHeads,
		HeadDim: c.HeadDim, Intermediate: c.Intermediate, RopeTheta: c.RopeTheta, NormEps: c.NormEps,
		EmbedScale: c.EmbedScale, LogitScale: c.LogitScale,
		InvFreq: model.RopeInvFreq(c.RopeTheta, c.HeadDim),
	}
	ts, err := m.Tensors()
	if err != nil {
		return cfg, nil, err
	}
	conv := func(t model.Tensor) (Tensor, error) {
		if t.Data == nil {
			return Tensor{}, nil
		}
		var dt DType
		switch t.DType {
		case "BF16":
			dt = BF16
		case "F16":
			dt = F16
		case "F32":
			dt = F32
		default:
			return Tensor{}, fmt.Errorf("tensor %s: dtype %s", t.Name, t.DType)
		}
		return Tensor{DType: dt, Shape: t.Shape, Data: t.Data}, nil
	}
	w := &Weights{}
	var errs []error
	add := func(dst *Tensor, t model.Tensor) {
		v, err := conv(t)
		errs = append(errs, err)
		*dst = v
	}
	add(&w.Embed, ts.Embed)
	add(&w.FinalNorm, ts.Norm)
	add(&w.Head, ts.Head)
	for _, l := range ts.Layers {
		var d LayerWeights
		add(&d.AttnNorm, l.AttnNorm)
		add(&d.Q, l.Q)
		add(&d.K, l.K)
		add(&d.V, l.V)
		add(&d.O, l.O)
		add(&d.QBias, l.QBias)
		add(&d.KBias, l.KBias)
		add(&d.VBias, l.VBias)
		add(&d.MLPNorm, l.MLPNorm)
		add(&d.Gate, l.Gate)
		add(&d.Up, l.Up)
		add(&d.Down, l.Down)
		w.Layers = append(w.Layers, d)
	}
	return cfg, w, errors.Join(errs...)
}

// Engine is the engine behind the backend (for benchmarks and tests).
func (b *Backend) Engine() *Engine { return b.eng }

// Device is the GPU.
func (b *Backend) Device() *Device { return b.dev }

func (b *Backend) String() string {
	if b.dev == nil {
		return "cuda: emulator"
	}
	return "cuda: " + b.dev.String()
}

// Close frees the device memory and releases the GPU.
func (b *Backend) Close() error {
	err := b.eng.Close()
	if b.ownsDev {
		err = errors.Join(err, b.dev.Close())
	}
	return err
}

// devCache is a model.DeviceCache over an engine cache. Device memory is
// invisible to Go's GC, so a cache dropped without Free is freed by a
// cleanup when the model.Cache holding it is collected.
type devCache struct{ c *Cache }

func wrapCache(c *Cache) *devCache {
	d := &devCache{c: c}
	runtime.AddCleanup(d, func(c *Cache) { c.e.deferFree(c) }, c)
	return d
}

func (d *devCache) Len() int                    { return d.c.Len() }
func (d *devCache) Reset()                      { d.c.Reset() }
func (d *devCache) Shift(from, delta int) error { return d.c.Shift(from, delta) }
func (d *devCache) Clone() (model.DeviceCache, error) {
	c, err := d.c.Clone()
	if err != nil {
		return nil, err
	}
	return wrapCache(c), nil
}

// NewCache allocates a device cache.
func (b *Backend) NewCache(capacity int) (model.DeviceCache, error) {
	c, err := b.eng.NewCache(capacity)
	if err != nil {
		return nil, err
	}
	return wrapCache(c), nil
}

func (b *Backend) batch(mb *model.Batch) (*Batch, error) {
	if mb == nil {
		return nil, errors.New("nil batch")
	}
	cb := &Batch{Tokens: mb.Tokens, Compute: mb.Compute, Logits: mb.Logits}
	if mb.Cache != nil {
		d, ok := mb.Cache.Device().(*devCache)
		if !ok {
			return nil, errors.New("cuda: the batch's cache is not on this device")
		}
		cb.Cache = d.c
	}
	if b.cfg.MaxPositions > 0 && len(mb.Tokens) > b.cfg.MaxPositions {
		return nil, fmt.Errorf("sequence of %d tokens exceeds the model's %d positions", len(mb.Tokens), b.cfg.MaxPositions)
	}
	return cb, nil
}

// rows is the number of logits rows a batch returns.
func rows(b *Batch) int {
	switch {
	case b.Logits != nil:
		return len(b.Logits)
	case b.Compute != nil:
		return len(b.Compute)
	}
	return len(b.Tokens)
}

// ForwardBatch runs the batches one after another on the device.
func (b *Backend) ForwardBatch(ctx context.Context, batches []*model.Batch) ([]*tensor.Dense, error) {
	out := make([]*tensor.Dense, len(batches))
	V := b.cfg.Vocab
	for i, mb := range batches {
		cb, err := b.batch(mb)
		if err != nil {
			return nil, batchErr(i, len(batches), err)
		}
		n := rows(cb)
		if n == 0 {
			if err := b.eng.Forward(ctx, cb, nil); err != nil {
				return nil, batchErr(i, len(batches), err)
			}
			out[i] = tensor.New(tensor.WithShape(0, V), tensor.Of(tensor.Float32))
			continue
		}
		logits := make([]float32, n*V)
		if err := b.eng.Forward(ctx, cb, logits); err != nil {
			return nil, batchErr(i, len(batches), err)
		}
		out[i] = tensor.New(tensor.WithShape(n, V), tensor.WithBacking(logits))
	}
	return out, nil
}

func batchErr(i, n int, err error) error {
	if n > 1 {
		return fmt.Errorf("batch %d: %w", i, err)
	}
	return err
}

// ForwardStats runs b and reduces each returned row on the device.
func (b *Backend) ForwardStats(ctx context.Context, mb *model.Batch, opt model.StatsOptions) ([]model.TokenStats, error) {
	cb, err := b.batch(mb)
	if err != nil {
		return nil, err
	}
	st := make([]TokenStats, rows(cb))
	so := StatsOptions{Temperature: opt.Temperature, Banned: opt.Banned, RowBanned: opt.RowBanned, Score: opt.Score}
	if err := b.eng.Stats(ctx, cb, so, st); err != nil {
		return nil, err
	}
	out := make([]model.TokenStats, len(st))
	for i, s := range st {
		out[i] = model.TokenStats(s)
	}
	return out, nil
}
