package model

import (
	"fmt"
	"math"

	"github.com/diffill/diffill/model/kernels"
)

// Cache holds the keys and values of every layer for the positions of one
// sequence, so that a denoising step can recompute only the positions that
// changed and read the rest from here (the dual cache of Fast-dLLM: prefix and
// suffix alike).
//
// Keys are stored after RoPE. Because RoPE rotates each pair of dimensions by
// an angle proportional to the position, moving a key from position p to p+δ
// is one more rotation by δ; Shift uses that to keep the cache when text is
// inserted or deleted before cached positions.
//
// A Cache belongs to the Model that made it and is not safe for concurrent use.
type Cache struct {
	dev DeviceCache // non-nil: the keys and values live on the backend's device (backend.go)

	owner                    *Model
	layers, kvHeads, headDim int
	invFreq                  []float32

	cap   int         // positions allocated
	n     int         // positions 0..n-1 may be valid
	valid []bool      // valid[p]: the K/V at p were computed and not invalidated
	k, v  [][]float32 // per layer: [kvHeads][cap][headDim]
	// packed holds the keys and values of unchanged positions packed for
	// cached steps (attention.go); nil when there are none.
	packed *packedSet
	noPack bool // attend without packed sets (tests hold the packed path to this one)
}

// NewCache returns an empty cache with room for capacity positions; it grows
// when a longer sequence is run.
func (m *Model) NewCache(capacity int) *Cache {
	if c := m.newDeviceCache(capacity); c != nil {
		return c
	}
	c := &Cache{
		owner:   m,
		layers:  m.Config.Layers,
		kvHeads: m.Config.KVHeads,
		headDim: m.Config.HeadDim,
		invFreq: ropeInvFreq(m.Config.RopeTheta, m.Config.HeadDim),
	}
	c.k = make([][]float32, c.layers)
	c.v = make([][]float32, c.layers)
	c.grow(max(capacity, 1))
	return c
}

// Len returns the length of the sequence whose keys and values the cache holds.
func (c *Cache) Len() int {
	if c.dev != nil {
		return c.dev.Len()
	}
	return c.n
}

// Reset empties the cache, keeping its memory.
func (c *Cache) Reset() {
	if c.dev != nil {
		c.dev.Reset()
		return
	}
	c.n = 0
	clear(c.valid)
	c.packed = nil
}

// Clone returns an independent copy.
func (c *Cache) Clone() *Cache {
	if c.dev != nil {
		return c.cloneDevice()
	}
	d := *c
	if c.packed != nil && !c.packed.complete() {
		d.packed = nil // its missing layers would be packed by either copy
	}
	d.valid = append([]bool(nil), c.valid...)
	d.k = make([][]float32, len(c.k))
	d.v = make([][]float32, len(c.v))
	for l := range c.k {
		d.k[l] = append([]float32(nil), c.k[l]...)
		d.v[l] = append([]float32(nil), c.v[l]...)
	}
	return &d
}

// has reports whether position p holds computed keys and values.
func (c *Cache) has(p int) bool { return p < c.n && c.valid[p] }

// compatible reports whether m made the cache: keys of another model, even
// one of the same shape, would be silently wrong.
func (c *Cache) compatible(m *Model) bool { return c.owner == m }

// grow makes room for at least need positions.
func (c *Cache) grow(need int) {
	if need <= c.cap {
		return
	}
	newCap := max(need, 2*c.cap)
	d := c.headDim
	for l := 0; l < c.layers; l++ {
		for _, kv := range []*[]float32{&c.k[l], &c.v[l]} {
			old := *kv
			nw := make([]float32, c.kvHeads*newCap*d)
			if old != nil {
				for g := 0; g < c.kvHeads; g++ {
					copy(nw[g*newCap*d:(g*newCap+c.cap)*d], old[g*c.cap*d:(g+1)*c.cap*d])
				}
			}
			*kv = nw
		}
	}
	valid := make([]bool, newCap)
	copy(valid, c.valid)
	c.valid = valid
	c.cap = newCap
}

// kv returns the key and value rows of kv head g at layer l: [cap][headDim].
func (c *Cache) kv(l, g int) (k, v []float32) {
	d := c.headDim
	return c.k[l][g*c.cap*d : (g+1)*c.cap*d], c.v[l][g*c.cap*d : (g+1)*c.cap*d]
}

// Shift moves the keys and values of positions >= from by delta positions,
// re-rotating the keys, as when delta tokens are inserted (delta > 0) or
// -delta tokens deleted (delta < 0) just before from. Inserted positions
// [from, from+delta) are left uncomputed: the next Forward must include them
// in Compute. Deleted positions are dropped.
func (c *Cache) Shift(from, delta int) error {
	if c.dev != nil {
		return c.dev.Shift(from, delta)
	}
	if from < 0 || from > c.n {
		return fmt.Errorf("cache shift: from %d outside the cached sequence [0, %d]", from, c.n)
	}
	if from+delta < 0 {
		return fmt.Errorf("cache shift: moving position %d by %d", from, delta)
	}
	if delta == 0 {
		return nil
	}
	c.packed = nil
	newN := c.n + delta
	c.grow(newN)
	d := c.headDim
	moved := c.n - from
	dst := from + delta
	// The rotation that moves a key by delta positions.
	half := d / 2
	cos := make([]float32, half)
	sin := make([]float32, half)
	ropeAngles(delta, c.invFreq, cos, sin)
	for l := 0; l < c.layers; l++ {
		for g := 0; g < c.kvHeads; g++ {
			k, v := c.kv(l, g)
			copy(k[dst*d:(dst+moved)*d], k[from*d:c.n*d])
			copy(v[dst*d:(dst+moved)*d], v[from*d:c.n*d])
			kernels.RoPE(k[dst*d:(dst+moved)*d], cos, sin)
		}
	}
	copy(c.valid[dst:dst+moved], c.valid[from:c.n])
	if delta > 0 {
		clear(c.valid[from:dst])
	}
	clear(c.valid[newN:])
	c.n = newN
	return nil
}

// ropeInvFreq returns RoPE's inverse frequencies θ^(-2i/d), i < d/2, computed
// step by step in float32 as transformers computes them (exponent, power,
// reciprocal), so that angles at long positions agree with the checkpoints'
// own code to the last bit as far as possible.
func ropeInvFreq(theta float64, d int) []float32 {
	inv := make([]float32, d/2)
	for i := range inv {
		e := float32(2*i) / float32(d)
		p := float32(math.Pow(theta, float64(e)))
		inv[i] = 1 / p
	}
	return inv
}

// ropeAngles fills cos and sin for position pos. The angle is formed in
// float32, as transformers forms it, so that both agree at long positions.
func ropeAngles(pos int, invFreq, cos, sin []float32) {
	p := float32(pos)
	for i, f := range invFreq {
		a := float64(p * f)
		cos[i] = float32(math.Cos(a))
		sin[i] = float32(math.Sin(a))
	}
}
