package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/diffill/diffill/infill"
	"github.com/diffill/diffill/lsp"
	"github.com/diffill/diffill/model"
	"github.com/diffill/diffill/model/builtin"
)

// engineCache loads each (model, device) once for all sessions, as an
// editor with several windows connects several sessions to one server, and
// unloads what no session holds any more.
//
// Sessions get handles (lsp.Engine and io.Closer), not engines: a handle
// names a model, and the cache lends it the loaded engine for one Run at a
// time. So the cache may unload a model between runs — when no handle is
// open (the user switched to another model), when loaded models exceed the
// memory budget (least recently used first; a later run loads it again), or
// when its weight files changed on disk (the next run loads the new ones) —
// and no session ever sees a closed model.
type engineCache struct {
	mu      sync.Mutex
	entries map[string]*modelEntry
	budget  int64 // bytes of weights kept loaded at most (one model always stays)
	logf    func(format string, a ...any)
	// open loads a model; tests replace it.
	open func(dir, device string) (*model.Model, error)
}

// modelEntry is one (model, device) and, while loaded, its engine.
type modelEntry struct {
	key, dir, device string
	handles          int // open handles
	running          int // runs in flight
	lastUse          time.Time

	load    *modelLoad   // nil: not loaded (or unloaded)
	stale   bool         // its files changed: unload when idle, reload on the next run
	retired []*modelLoad // earlier loads that runs still use
}

// modelLoad is one load of a model, which runs may wait for.
type modelLoad struct {
	ready chan struct{}
	m     *model.Model
	eng   *infill.Engine // interactive runs: completions, ghost text
	bg    *infill.Engine // long runs (commands), on the same weights
	gate  gate           // long runs step only while no interactive run is in flight
	err   error
}

// gate lets long runs (a command that denoises for many seconds) give way
// to interactive ones between their steps: each model has two engines (the
// model is safe for concurrent use; an engine serialises its own runs), and
// a long run waits after each step while any interactive run, from any
// session, is in flight. So a completion waits at most one step of a
// command, and the two never split the cores between them.
type gate struct {
	mu     sync.Mutex
	active int
	idle   chan struct{} // closed while active == 0
}

func (g *gate) enter() {
	g.mu.Lock()
	if g.active == 0 {
		g.idle = make(chan struct{})
	}
	g.active++
	g.mu.Unlock()
}

func (g *gate) leave() {
	g.mu.Lock()
	g.active--
	if g.active == 0 {
		close(g.idle)
	}
	g.mu.Unlock()
}

// wait returns when no interactive run is in flight, or ctx ends.
func (g *gate) wait(ctx context.Context) {
	g.mu.Lock()
	idle := g.idle
	busy := g.active > 0
	g.mu.Unlock()
	if !busy {
		return
	}
	select {
	case <-idle:
	case <-ctx.Done():
	}
}

func newEngineCache(logf func(format string, a ...any)) *engineCache {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	c := &engineCache{entries: map[string]*modelEntry{}, budget: defaultModelBudget(), logf: logf}
	c.open = func(dir, device string) (*model.Model, error) {
		var m *model.Model
		var err error
		if dir == "" {
			m, err = builtin.Load()
		} else {
			m, err = loadInfillModel(dir)
		}
		if err != nil {
			return nil, err
		}
		if _, err := attachDevice(m, device, c.logf); err != nil {
			m.Close()
			return nil, err
		}
		return m, nil
	}
	return c
}

// defaultModelBudget is half the machine's memory: room for the model in
// use and one more, and never the whole machine for idle models.
func defaultModelBudget() int64 {
	if n := memTotal(); n > 0 {
		return n / 2
	}
	return 8 << 30
}

// memTotal reads MemTotal from /proc/meminfo (0 where there is none).
func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

// load is the server's lsp.Loader: it checks the settings and loads the
// model, so that a bad setting is reported when it is made, and returns a
// handle on it.
func (c *engineCache) load(ctx context.Context, dir, device string) (lsp.Engine, error) {
	if err := checkDevice(device); err != nil {
		return nil, err
	}
	key := dir + "\x00" + device
	c.mu.Lock()
	e := c.entries[key]
	if e == nil {
		e = &modelEntry{key: key, dir: dir, device: device}
		c.entries[key] = e
	}
	e.handles++
	c.mu.Unlock()
	h := &engineHandle{c: c, e: e}
	_, release, err := c.acquire(ctx, e)
	if err != nil {
		h.Close()
		return nil, err
	}
	release()
	return h, nil
}

// acquire returns e's engine, loading it if needed, and a release to call
// when the run is over.
func (c *engineCache) acquire(ctx context.Context, e *modelEntry) (*modelLoad, func(), error) {
	c.mu.Lock()
	if l := e.load; l != nil && isDone(l.ready) && l.err == nil && l.m.Changed() != nil {
		// New weights on disk: this run and later ones load them; runs
		// still on the old ones finish first (their mapping stays valid
		// unless the file shrank, which they report as an error).
		c.logf("model %s changed on disk: loading it again", modelOrBuiltin(e.dir))
		e.stale = true
	}
	if e.stale || (e.load != nil && isDone(e.load.ready) && e.load.err != nil) {
		// Stale, or failed before: (re)try, since the user may have fixed it.
		c.retire(e)
	}
	leader := e.load == nil
	if leader {
		e.load = &modelLoad{ready: make(chan struct{})}
	}
	l := e.load
	e.running++
	e.lastUse = time.Now()
	c.mu.Unlock()
	if leader {
		l.m, l.err = c.open(e.dir, e.device)
		if l.err == nil {
			l.eng, l.bg = infill.NewEngine(l.m), infill.NewEngine(l.m)
		}
		close(l.ready)
		c.mu.Lock()
		c.evict(e)
		c.mu.Unlock()
	}
	release := func() {
		c.mu.Lock()
		e.running--
		c.unloadIdle(e)
		c.mu.Unlock()
	}
	select {
	case <-l.ready:
	case <-ctx.Done():
		release()
		return nil, nil, ctx.Err()
	}
	if l.err != nil {
		release()
		return nil, nil, l.err
	}
	return l, release, nil
}

// retire detaches e's load so the next run starts another; the old model is
// closed once no run uses it. Called with c.mu held.
func (c *engineCache) retire(e *modelEntry) {
	l := e.load
	e.load, e.stale = nil, false
	if l == nil {
		return
	}
	if e.running == 0 {
		c.closeLoad(l)
		return
	}
	// Runs are still on it: the last release closes it (see unloadIdle).
	e.retired = append(e.retired, l)
}

// unloadIdle closes what e no longer needs once it has no run in flight:
// retired loads, and the current one when no handle is open or its files
// changed. Called with c.mu held.
func (c *engineCache) unloadIdle(e *modelEntry) {
	if e.running > 0 {
		return
	}
	for _, l := range e.retired {
		c.closeLoad(l)
	}
	e.retired = nil
	if e.load != nil && (e.handles == 0 || e.stale) && isDone(e.load.ready) {
		l := e.load
		e.load, e.stale = nil, false
		c.closeLoad(l)
	}
	if e.handles == 0 && e.load == nil {
		delete(c.entries, e.key)
	}
}

// evict unloads idle models, least recently used first, until the loaded
// weights fit the budget; keep (just loaded) stays. Called with c.mu held.
func (c *engineCache) evict(keep *modelEntry) {
	var loaded []*modelEntry
	var total int64
	for _, e := range c.entries {
		if e.load != nil && isDone(e.load.ready) && e.load.err == nil {
			total += e.load.m.FileBytes
			if e != keep && e.running == 0 {
				loaded = append(loaded, e)
			}
		}
	}
	sort.Slice(loaded, func(i, j int) bool { return loaded[i].lastUse.Before(loaded[j].lastUse) })
	for _, e := range loaded {
		if total <= c.budget {
			break
		}
		total -= e.load.m.FileBytes
		c.logf("unloading %s: loaded models exceed the %d MB budget", modelOrBuiltin(e.dir), c.budget>>20)
		l := e.load
		e.load = nil
		c.closeLoad(l)
	}
}

// closeLoad closes a loaded model and gives its memory back to the system
// at once, so that switching models does not leave the process at the size
// of every model it ever ran. Called with c.mu held.
func (c *engineCache) closeLoad(l *modelLoad) {
	if l.m != nil {
		l.m.Close()
		l.m, l.eng, l.bg = nil, nil, nil
	}
	// The packed weights are Go memory: free them now rather than at the
	// next GC cycle's leisure.
	go debug.FreeOSMemory()
}

// loaded lists the models loaded now, for tests and the log.
func (c *engineCache) loaded() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, e := range c.entries {
		if e.load != nil && isDone(e.load.ready) && e.load.err == nil {
			out = append(out, modelOrBuiltin(e.dir))
		}
	}
	sort.Strings(out)
	return out
}

// engineHandle is a session's hold on one model of the cache.
type engineHandle struct {
	c      *engineCache
	e      *modelEntry
	once   sync.Once
	closed atomic.Bool
}

// Run borrows the engine for one interactive request.
func (h *engineHandle) Run(ctx context.Context, req *infill.Request) (*infill.Result, error) {
	return h.run(ctx, req, false)
}

// Background returns the engine for long requests (the server's commands):
// they run on the model's second engine and pause between steps while
// interactive requests run.
func (h *engineHandle) Background() lsp.Engine { return backgroundEngine{h} }

type backgroundEngine struct{ h *engineHandle }

func (b backgroundEngine) Run(ctx context.Context, req *infill.Request) (*infill.Result, error) {
	return b.h.run(ctx, req, true)
}

// run borrows the model for one request. A run that finds the weights
// changed under it is run once more on the reloaded model.
func (h *engineHandle) run(ctx context.Context, req *infill.Request, background bool) (*infill.Result, error) {
	for attempt := 0; ; attempt++ {
		if h.closed.Load() {
			return nil, errors.New("engine handle used after Close")
		}
		l, release, err := h.c.acquire(ctx, h.e)
		if err != nil {
			return nil, err
		}
		eng, r := l.eng, req
		if background {
			eng = l.bg
			// Between steps (OnStep runs on the engine's goroutine, after
			// each step), give way to interactive runs.
			inner := req.OnStep
			cp := *req
			cp.OnStep = func(st infill.Step) {
				if inner != nil {
					inner(st)
				}
				l.gate.wait(ctx)
			}
			r = &cp
		} else {
			l.gate.enter()
		}
		res, err := eng.Run(ctx, r)
		if !background {
			l.gate.leave()
		}
		if errors.Is(err, model.ErrWeightsChanged) {
			h.c.mu.Lock()
			h.e.stale = true
			h.c.mu.Unlock()
			release()
			if attempt == 0 {
				continue
			}
			return nil, fmt.Errorf("%w (reloaded once already)", err)
		}
		release()
		return res, err
	}
}

// Close gives the handle back; the model unloads when no handle holds it.
func (h *engineHandle) Close() error {
	h.once.Do(func() {
		h.closed.Store(true)
		h.c.mu.Lock()
		h.e.handles--
		h.c.unloadIdle(h.e)
		h.c.mu.Unlock()
	})
	return nil
}
