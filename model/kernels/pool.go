package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// A Pool is a fixed set of worker goroutines that run the parallel parts of
// the kernels. Starting goroutines per call would cost more than a small
// matrix-vector product takes, so workers persist and park between calls.
//
// A Pool is safe for concurrent use: calls that overlap share the workers,
// and each call's own goroutine also works, so a call never waits for
// workers busy elsewhere.
type Pool struct {
	n    int       // goroutines that work on a call, the caller included
	jobs chan *job // offers of work to idle workers
	quit chan struct{}

	closed atomic.Bool
	once   sync.Once

	attn sync.Pool // *AttentionWorkspace, reused across MultiHeadAttention calls
	bufs sync.Pool // *[]float32, widened weight panels of gemm tasks
}

// scratch returns a float32 buffer of length n, reused across calls.
func (p *Pool) scratch(n int) []float32 {
	if p != nil {
		if b, ok := p.bufs.Get().(*[]float32); ok && cap(*b) >= n {
			return (*b)[:n]
		}
	}
	return alignedF32(n)
}

// putScratch hands a buffer from scratch back for reuse.
func (p *Pool) putScratch(b []float32) {
	if p != nil {
		p.bufs.Put(&b)
	}
}

// A job is one Run call: n items handed out one at a time.
type job struct {
	next atomic.Int64
	n    int64
	fn   func(i int)
	wg   sync.WaitGroup
}

// NewPool starts a pool that runs calls on n goroutines (the caller plus
// n-1 workers). n <= 0 means runtime.GOMAXPROCS(0).
func NewPool(n int) *Pool {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	p := &Pool{n: n, jobs: make(chan *job, n), quit: make(chan struct{})}
	for i := 1; i < n; i++ {
		go p.worker()
	}
	return p
}

// defaultPool is the pool Linears use unless given one. It is created on
// first use and never changes after.
var defaultPool = sync.OnceValue(func() *Pool { return NewPool(0) })

// DefaultPool returns the shared pool sized to GOMAXPROCS at its first use.
func DefaultPool() *Pool { return defaultPool() }

// Workers reports how many goroutines a call may run on, the caller
// included. A nil Pool runs everything on the caller.
func (p *Pool) Workers() int {
	if p == nil {
		return 1
	}
	return p.n
}

// Close stops the workers. Calls after Close run on the caller's goroutine.
// Close must not be called on DefaultPool.
func (p *Pool) Close() {
	p.once.Do(func() {
		p.closed.Store(true)
		close(p.quit)
	})
}

func (p *Pool) worker() {
	for {
		select {
		case j := <-p.jobs:
			j.work()
		case <-p.quit:
			return
		}
	}
}

func (j *job) work() {
	for {
		i := j.next.Add(1) - 1
		if i >= j.n {
			return
		}
		j.fn(int(i))
		j.wg.Done()
	}
}

// Run calls fn(i) for every i in [0, n) on the pool's goroutines and returns
// when all calls have returned. Items are handed out in order, one at a
// time, so uneven items balance themselves.
func (p *Pool) Run(n int, fn func(i int)) {
	if n <= 0 {
		return
	}
	if n == 1 || p == nil || p.n == 1 || p.closed.Load() {
		for i := 0; i < n; i++ {
			fn(i)
		}
		return
	}
	j := &job{n: int64(n), fn: fn}
	j.wg.Add(n)
	for w := 0; w < p.n-1 && w < n-1; w++ {
		select {
		case p.jobs <- j:
		default: // every worker already has an offer pending; go on without
		}
	}
	j.work()
	j.wg.Wait()
}
