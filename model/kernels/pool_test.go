package kernels

import (
	"sync"
	"sync/atomic"
	"testing"
)

// TestPoolRun: every item runs exactly once, also when calls overlap and
// nest (a task that itself runs a product on the same pool).
func TestPoolRun(t *testing.T) {
	p := NewPool(3)
	defer p.Close()
	const outer, inner = 20, 50
	var counts [outer][inner]atomic.Int32
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Run(outer, func(i int) {
				p.Run(inner, func(j int) { counts[i][j].Add(1) })
			})
		}()
	}
	wg.Wait()
	for i := range counts {
		for j := range counts[i] {
			if c := counts[i][j].Load(); c != 4 {
				t.Fatalf("item (%d, %d) ran %d times, want 4", i, j, c)
			}
		}
	}
	var nilPool *Pool
	n := 0
	nilPool.Run(5, func(int) { n++ })
	if n != 5 || nilPool.Workers() != 1 {
		t.Fatalf("nil pool ran %d items with %d workers", n, nilPool.Workers())
	}
}
