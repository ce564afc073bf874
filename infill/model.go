package infill

import (
	"context"
	"errors"
	"fmt"

	"github.com/diffill/diffill/model"
)

// Tokenizer is what the engine needs of a tokenizer; *tokenizer.Tokenizer
// has it.
type Tokenizer interface {
	// EncodeOrdinary tokenizes text without matching special tokens, so
	// that "<|mask|>" typed in a document is text, not a mask.
	EncodeOrdinary(s string) []int32
	Decode(ids []int32) string
	TokenBytes(id int32) []byte
}

// NewEngine returns an engine that fills spans with m, tokenizing with the
// checkpoint's own tokenizer (m.Tokenizer) unless WithTokenizer gives one.
// Without either, Run reports the missing tokenizer.
func NewEngine(m *model.Model, opts ...Option) *Engine {
	var o options
	for _, f := range opts {
		f(&o)
	}
	var tok Tokenizer = o.tok
	if tok == nil && m.Tokenizer != nil {
		tok = m.Tokenizer
	}
	if tok == nil {
		return &Engine{err: errors.New("infill: the model has no tokenizer"), lock: make(chan struct{}, 1)}
	}
	return newEngine(modelNetwork{m}, tok, m.Config.Family == model.LLaDA, opts...)
}

// WithTokenizer sets the tokenizer, for a checkpoint that ships none.
func WithTokenizer(t Tokenizer) Option { return func(o *options) { o.tok = t } }

// modelNetwork runs a model.Model for the decoder.
type modelNetwork struct{ m *model.Model }

func (n modelNetwork) info() netInfo {
	c := &n.m.Config
	return netInfo{
		vocab:        c.Vocab,
		shift:        c.ShiftLogits,
		mask:         c.MaskID,
		eos:          c.EOSID,
		pad:          c.PadID,
		bos:          c.BOSID,
		expand:       c.ExpandID,
		maxPositions: c.MaxPositions,
	}
}

func (n modelNetwork) newCache(capacity int) kvCache { return modelCache{n.m.NewCache(capacity)} }

func (n modelNetwork) forward(ctx context.Context, ps []*pass) ([][]float32, error) {
	bs := make([]*model.Batch, len(ps))
	for i, p := range ps {
		b := &model.Batch{Tokens: p.tokens, Compute: p.compute, Logits: p.logits}
		if p.cache != nil {
			b.Cache = p.cache.(modelCache).c
		}
		bs[i] = b
	}
	out, err := n.m.ForwardBatch(ctx, bs)
	if err != nil {
		return nil, fmt.Errorf("infill: model: %w", err)
	}
	rows := make([][]float32, len(out))
	for i, t := range out {
		if len(ps[i].logits) == 0 {
			continue
		}
		d, ok := t.Data().([]float32)
		if !ok {
			return nil, fmt.Errorf("infill: model returned %T logits, want []float32", t.Data())
		}
		rows[i] = d
	}
	return rows, nil
}

// modelCache is a model.Cache for the decoder.
type modelCache struct{ c *model.Cache }

func (c modelCache) shift(from, delta int) error { return c.c.Shift(from, delta) }
