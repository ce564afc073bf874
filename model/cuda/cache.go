package cuda

import (
	"errors"
	"fmt"
)

// Cache holds the keys (rotated) and values of every layer for up to
// capacity positions on the device, in one allocation laid out
// [layer][k|v][kvHead][position][headDim] (float32).
type Cache struct {
	e        *Engine
	id       uint64 // distinguishes caches in the graph keys, never reused
	capacity int
	n        int // positions [0, n) have been written
	buf      devptr
	freed    bool
}

// NewCache allocates a cache for sequences of up to capacity positions.
func (e *Engine) NewCache(capacity int) (*Cache, error) {
	if capacity <= 0 {
		return nil, fmt.Errorf("cuda: cache capacity %d", capacity)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	release, err := e.be.bind()
	if err != nil {
		return nil, err
	}
	defer release()
	return e.newCache(capacity)
}

func (e *Engine) layerCacheBytes(capacity int) int {
	return e.cfg.KVHeads * capacity * e.cfg.HeadDim * 4
}

func (e *Engine) newCache(capacity int) (*Cache, error) {
	bytes := 2 * e.cfg.Layers * e.layerCacheBytes(capacity)
	p, err := e.be.alloc(bytes)
	if err != nil {
		return nil, fmt.Errorf("cuda: cache for %d positions: %w", capacity, err)
	}
	e.nextCache++
	return &Cache{e: e, id: e.nextCache, capacity: capacity, buf: p}, nil
}

func (c *Cache) k(layer int) devptr {
	return c.buf + devptr(2*layer*c.e.layerCacheBytes(c.capacity))
}

func (c *Cache) v(layer int) devptr {
	return c.buf + devptr((2*layer+1)*c.e.layerCacheBytes(c.capacity))
}

// Capacity is the number of positions the cache can hold.
func (c *Cache) Capacity() int { return c.capacity }

// Len is the number of positions written since the last Reset (the longest
// sequence a forward call has used, as moved by Shift).
func (c *Cache) Len() int { return c.n }

// Reset forgets the cached positions (the memory stays allocated).
func (c *Cache) Reset() { c.n = 0 }

// Free releases the device memory; the cache must not be used again.
func (c *Cache) Free() error {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	release, err := c.e.be.bind()
	if err != nil {
		return err
	}
	defer release()
	return c.freeLocked()
}

func (c *Cache) freeLocked() error {
	if c.freed {
		return nil
	}
	c.freed = true
	return c.e.be.free(c.buf)
}

// Clone returns an independent copy.
func (c *Cache) Clone() (*Cache, error) {
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if c.freed {
		return nil, errors.New("cuda: clone of a freed cache")
	}
	release, err := e.be.bind()
	if err != nil {
		return nil, err
	}
	defer release()
	d, err := e.newCache(c.capacity)
	if err != nil {
		return nil, err
	}
	if err := e.be.copyD(d.buf, c.buf, 2*e.cfg.Layers*e.layerCacheBytes(c.capacity)); err != nil {
		d.freeLocked()
		return nil, err
	}
	d.n = c.n
	return d, nil
}

// Shift moves the keys and values of positions [from, Len) by delta
// positions (text inserted or deleted before them) and re-rotates the keys
// by delta, which is exact for RoPE up to rounding: a key at position p
// rotated by delta is the key at p+delta. Positions uncovered by the move
// keep stale values; the caller recomputes them.
func (c *Cache) Shift(from, delta int) error {
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if c.freed {
		return errors.New("cuda: shift of a freed cache")
	}
	if from < 0 || from > c.n || from+delta < 0 || c.n+delta > c.capacity {
		return fmt.Errorf("cuda: shift [%d, %d) by %d outside the cache [0, %d)", from, c.n, delta, c.capacity)
	}
	count := c.n - from
	if delta == 0 || count == 0 {
		c.n += delta
		c.n = max(c.n, 0)
		return nil
	}
	release, err := e.be.bind()
	if err != nil {
		return err
	}
	defer release()
	cfg := e.cfg
	rowBytes := cfg.HeadDim * 4
	span := count * rowBytes
	tmp, err := e.be.alloc(span)
	if err != nil {
		return err
	}
	defer e.be.free(tmp)
	for layer := 0; layer < cfg.Layers; layer++ {
		for _, base := range []devptr{c.k(layer), c.v(layer)} {
			for g := 0; g < cfg.KVHeads; g++ {
				head := base + devptr(g*c.capacity*rowBytes)
				// through a temporary: the two ranges may overlap
				if err := e.be.copyD(tmp, head+devptr(from*rowBytes), span); err != nil {
					return err
				}
				if err := e.be.copyD(head+devptr((from+delta)*rowBytes), tmp, span); err != nil {
					return err
				}
			}
		}
		if err := e.be.launch("rope_rotate", d2(count, cfg.KVHeads), d1(64), 0,
			[]karg{pArg(c.k(layer)), pArg(e.invFreq), iArg(cfg.KVHeads), iArg(cfg.HeadDim), iArg(c.capacity),
				iArg(from + delta), iArg(count), iArg(delta)}); err != nil {
			return err
		}
	}
	c.n += delta
	return e.be.sync()
}
