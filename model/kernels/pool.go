package kernels

import (
	"runtime"
	"runtime/debug"
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
}

// A scratchBuf is a float32 buffer kept for reuse (a pointer, so that
// sync.Pool holds it without allocating).
type scratchBuf struct{ f []float32 }

// scratchBufs holds scratch buffers of every Pool, the nil one included:
// a cache, not state (any buffer serves any call).
var scratchBufs sync.Pool

// getScratch returns a float32 buffer of length n, reused across calls.
// Hand it back with putScratch.
func getScratch(n int) *scratchBuf {
	b, _ := scratchBufs.Get().(*scratchBuf)
	if b == nil {
		b = new(scratchBuf)
	}
	if cap(b.f) < n {
		b.f = alignedF32(n)
	}
	b.f = b.f[:n]
	return b
}

func putScratch(b *scratchBuf) { scratchBufs.Put(b) }

// A runner is the work of one Run call: run(i) for each item i. Internal
// callers pass a pooled *struct, which keeps Run free of allocations.
type runner interface{ run(i int) }

// funcRunner adapts Run's func argument.
type funcRunner func(i int)

func (f funcRunner) run(i int) { f(i) }

// A job is one Run call: n items handed out one at a time. Jobs are
// recycled through jobPool. Each goroutine that may touch a job holds a
// reference (the caller, and every worker an offer was sent to, from the
// send until it has finished with it); the last to let go recycles it, so
// an offer a worker picks up late never sees the job reused.
type job struct {
	next     atomic.Int64
	n        int64
	r        runner
	wg       sync.WaitGroup
	refs     atomic.Int32
	panicked atomic.Pointer[workerPanic] // the first panic of an item on a worker
}

var jobPool = sync.Pool{New: func() any { return new(job) }}

func (j *job) release() {
	if j.refs.Add(-1) == 0 {
		j.r = nil
		jobPool.Put(j)
	}
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
	// A fault in a worker (reading a weights file that shrank under its
	// mapping, say) becomes a panic here, handed to the caller, rather
	// than a fatal error that kills the process: the caller may turn it
	// into an error (model.ErrWeightsChanged).
	debug.SetPanicOnFault(true)
	for {
		select {
		case j := <-p.jobs:
			j.workGuarded()
			j.release()
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
		j.r.run(int(i))
		j.wg.Done()
	}
}

// workGuarded is work on a worker goroutine: a panic in an item is kept
// for the caller (see Pool.run), and the worker goes on with the rest.
func (j *job) workGuarded() {
	for {
		i := j.next.Add(1) - 1
		if i >= j.n {
			return
		}
		j.runGuarded(int(i))
	}
}

func (j *job) runGuarded(i int) {
	defer func() {
		if r := recover(); r != nil {
			j.panicked.CompareAndSwap(nil, &workerPanic{r})
		}
		j.wg.Done()
	}()
	j.r.run(i)
}

// workerPanic carries a worker's panic to the caller.
type workerPanic struct{ v any }

// Run calls fn(i) for every i in [0, n) on the pool's goroutines and returns
// when all calls have returned. Items are handed out in order, one at a
// time, so uneven items balance themselves.
func (p *Pool) Run(n int, fn func(i int)) { p.run(n, funcRunner(fn)) }

// run is Run over a runner. It allocates nothing.
func (p *Pool) run(n int, r runner) {
	if n <= 0 {
		return
	}
	if n == 1 || p == nil || p.n == 1 || p.closed.Load() {
		for i := 0; i < n; i++ {
			r.run(i)
		}
		return
	}
	j := jobPool.Get().(*job)
	j.next.Store(0)
	j.n, j.r = int64(n), r
	j.refs.Store(1)
	j.wg.Add(n)
	for w := 0; w < p.n-1 && w < n-1; w++ {
		j.refs.Add(1)
		select {
		case p.jobs <- j:
		default: // every worker already has an offer pending; go on without
			j.refs.Add(-1)
			w = p.n // stop offering: the channel is full
		}
	}
	j.work()
	j.wg.Wait()
	wp := j.panicked.Swap(nil)
	j.release()
	if wp != nil {
		panic(wp.v) // on the caller's goroutine, where it can be recovered
	}
}
