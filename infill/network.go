package infill

import "context"

// network is what decoding needs from a model: logits at chosen positions
// of token sequences, with a key/value cache. *model.Model provides it
// through modelNetwork; the sampler and schedule never see the model.
type network interface {
	// info describes the model's vocabulary and special tokens.
	info() netInfo
	// forward runs one or more sequences; out[i] holds
	// len(bs[i].logits) rows of info().vocab logits each.
	forward(ctx context.Context, bs []*pass) ([][]float32, error)
	newCache(capacity int) kvCache
}

// kvCache holds keys and values of positions not recomputed by a pass.
type kvCache interface {
	// shift moves the entries of positions >= from by delta, re-rotating
	// keys (RoPE is relative, so a shifted key is the key at its new place).
	shift(from, delta int) error
}

// pass is one forward request over a whole sequence (model.Batch).
type pass struct {
	tokens  []int32
	compute []int // positions recomputed (their K/V written to cache); nil: all
	logits  []int // positions whose logits come back, rows in this order; ⊆ compute
	cache   kvCache
}

// netInfo is what the engine must know of a model.
type netInfo struct {
	vocab int
	// shift: logits at position i predict token i+1 (Dream family).
	shift                       bool
	mask, eos, pad, bos, expand int32 // -1 when absent
	maxPositions                int   // 0: unknown
}
