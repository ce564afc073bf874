package cuda

import (
	"errors"
	"fmt"
	"runtime"
	"time"
)

// Cache holds the keys (rotated) and values of every layer for up to
// capacity positions on the device, in one allocation laid out
// [layer][k|v][kvHead][position][headDim] (float32).
//
// Its semantics are model.Cache's: Len is the length of the last sequence
// run; a position is valid once computed and until a Shift uncovers it or a
// shorter sequence drops it; the cache grows when a longer sequence runs.
type Cache struct {
	e        *Engine
	capacity int
	n        int    // the sequence length the cache describes
	valid    []bool // valid[p]: K/V at p computed and not invalidated
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
	e.reap()
	return e.newCache(capacity)
}

func (e *Engine) layerCacheBytes(capacity int) int {
	return e.cfg.KVHeads * capacity * e.cfg.HeadDim * 4
}

func (e *Engine) newCache(capacity int) (*Cache, error) {
	bytes := 2 * e.cfg.Layers * e.layerCacheBytes(capacity)
	p, err := e.be.alloc(bytes)
	for try := 0; err != nil && try < 3; try++ {
		// Caches dropped without Free hold device memory until the GC
		// notices their owners: collect, let the cleanups queue them, free.
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
		e.reap()
		p, err = e.be.alloc(bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("cuda: cache for %d positions: %w", capacity, err)
	}
	return &Cache{e: e, capacity: capacity, buf: p, valid: make([]bool, capacity)}, nil
}

func (c *Cache) has(p int) bool { return p < c.n && c.valid[p] }

// grow makes room for need positions (engine locked and bound): a new
// allocation, the old rows copied per head. (Graphs need no update: they
// reach the cache through the descriptor each call uploads.)
func (c *Cache) grow(need int) error {
	if need <= c.capacity {
		return nil
	}
	e := c.e
	newCap := max(need, 2*c.capacity)
	d, err := e.newCache(newCap)
	if err != nil {
		return err
	}
	rows := c.capacity * e.cfg.HeadDim * 4
	for l := 0; l < e.cfg.Layers; l++ {
		for _, kv := range [][2]devptr{{d.k(l), c.k(l)}, {d.v(l), c.v(l)}} {
			for g := 0; g < e.cfg.KVHeads; g++ {
				if err := e.be.copyD(kv[0]+devptr(g*newCap*e.cfg.HeadDim*4), kv[1]+devptr(g*rows), rows); err != nil {
					d.freeLocked()
					return err
				}
			}
		}
	}
	if err := e.be.sync(); err != nil {
		d.freeLocked()
		return err
	}
	e.be.free(c.buf)
	copy(d.valid, c.valid)
	c.capacity, c.buf, c.valid = d.capacity, d.buf, d.valid
	return nil
}

// written records a completed pass over a sequence of length L.
func (c *Cache) written(compute []int, L int) {
	for _, p := range compute {
		c.valid[p] = true
	}
	clear(c.valid[L:])
	c.n = L
}

// invalidate records a failed pass: the computed positions may be half written.
func (c *Cache) invalidate(compute []int) {
	for _, p := range compute {
		if p < len(c.valid) {
			c.valid[p] = false
		}
	}
}

func (c *Cache) k(layer int) devptr {
	return c.buf + devptr(2*layer*c.e.layerCacheBytes(c.capacity))
}

func (c *Cache) v(layer int) devptr {
	return c.buf + devptr((2*layer+1)*c.e.layerCacheBytes(c.capacity))
}

// Capacity is the number of positions the cache can hold.
func (c *Cache) Capacity() int { return c.capacity }

// Len is the length of the sequence whose keys and values the cache holds.
func (c *Cache) Len() int { return c.n }

// Reset forgets the cached positions (the memory stays allocated).
func (c *Cache) Reset() {
	c.n = 0
	clear(c.valid)
}

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
	copy(d.valid, c.valid)
	return d, nil
}

// Shift moves the keys and values of positions >= from by delta positions,
// re-rotating the keys (a key at p rotated by delta is the key at p+delta),
// as when delta tokens are inserted (delta > 0) or -delta deleted (delta <
// 0) just before from. Inserted positions are left uncomputed: the next
// Forward must include them in Compute.
func (c *Cache) Shift(from, delta int) error {
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if c.freed {
		return errors.New("cuda: shift of a freed cache")
	}
	if from < 0 || from > c.n {
		return fmt.Errorf("cuda: cache shift: from %d outside the cached sequence [0, %d]", from, c.n)
	}
	if from+delta < 0 {
		return fmt.Errorf("cuda: cache shift: moving position %d by %d", from, delta)
	}
	if delta == 0 {
		return nil
	}
	release, err := e.be.bind()
	if err != nil {
		return err
	}
	defer release()
	newN := c.n + delta
	if err := c.grow(newN); err != nil {
		return err
	}
	count := c.n - from
	dst := from + delta
	if count > 0 {
		if err := c.move(from, dst, count, delta); err != nil {
			return err
		}
	}
	copy(c.valid[dst:dst+count], c.valid[from:c.n])
	if delta > 0 {
		clear(c.valid[from:dst])
	}
	clear(c.valid[newN:])
	c.n = newN
	return nil
}

// move copies count positions of every head from from to dst (through a
// temporary: the ranges may overlap) and rotates the moved keys by delta.
func (c *Cache) move(from, dst, count, delta int) error {
	e := c.e
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
				if err := e.be.copyD(tmp, head+devptr(from*rowBytes), span); err != nil {
					return err
				}
				if err := e.be.copyD(head+devptr(dst*rowBytes), tmp, span); err != nil {
					return err
				}
			}
		}
		if err := e.be.launch("rope_rotate", d2(count, cfg.KVHeads), d1(64), 0,
			[]karg{pArg(c.k(layer)), pArg(e.invFreq), iArg(cfg.KVHeads), iArg(cfg.HeadDim), iArg(c.capacity),
				iArg(dst), iArg(count), iArg(delta)}); err != nil {
			return err
		}
	}
	return e.be.sync()
}
