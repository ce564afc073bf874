package cuda

import (
	"slices"
	"unsafe"
)

// profiler times every launch of an eager run between a pair of events, so
// that a GPU run can say where a step's time goes (TestGPUProfile). Off
// (nil) by default; launches inside a graph capture are not timed.
type profiler struct {
	pool []uintptr // idle events
	recs []profRec
}

type profRec struct {
	name       string
	start, end uintptr
}

// kernelTime is the device time of one kernel, or one product shape, over
// a profiled run.
type kernelTime struct {
	name  string
	calls int
	ms    float64
}

func (d *Device) profEvent() (uintptr, error) {
	p := d.prof
	if n := len(p.pool); n > 0 {
		ev := p.pool[n-1]
		p.pool = p.pool[:n-1]
		return ev, nil
	}
	var ev uintptr
	err := d.drv.call("cuEventCreate", d.drv.cuEventCreate, uintptr(unsafe.Pointer(&ev)), 0)
	return ev, err
}

// profBegin records a launch's start event; 0 when not profiling.
func (d *Device) profBegin() (uintptr, error) {
	if d.prof == nil || d.capturing {
		return 0, nil
	}
	ev, err := d.profEvent()
	if err != nil {
		return 0, err
	}
	return ev, d.drv.call("cuEventRecord", d.drv.cuEventRecord, ev, d.stream)
}

// profEnd records the end event of the launch begun at start.
func (d *Device) profEnd(name string, start uintptr) error {
	if start == 0 {
		return nil
	}
	ev, err := d.profEvent()
	if err != nil {
		return err
	}
	if err := d.drv.call("cuEventRecord", d.drv.cuEventRecord, ev, d.stream); err != nil {
		return err
	}
	d.prof.recs = append(d.prof.recs, profRec{name, start, ev})
	return nil
}

// profCollect waits for the stream and sums the recorded launches by name,
// largest first, and forgets them. Device bound, profiling on.
func (d *Device) profCollect() ([]kernelTime, error) {
	if err := d.sync(); err != nil {
		return nil, err
	}
	by := map[string]*kernelTime{}
	var out []kernelTime
	for _, r := range d.prof.recs {
		var ms float32
		if err := d.drv.call("cuEventElapsedTime", d.drv.cuEventElapsedTime, uintptr(unsafe.Pointer(&ms)), r.start, r.end); err != nil {
			return nil, err
		}
		k := by[r.name]
		if k == nil {
			k = &kernelTime{name: r.name}
			by[r.name] = k
		}
		k.calls++
		k.ms += float64(ms)
		d.prof.pool = append(d.prof.pool, r.start, r.end)
	}
	d.prof.recs = nil
	for _, k := range by {
		out = append(out, *k)
	}
	slices.SortFunc(out, func(a, b kernelTime) int {
		switch {
		case a.ms > b.ms:
			return -1
		case a.ms < b.ms:
			return 1
		}
		return 0
	})
	return out, nil
}

// profStart turns profiling on and profStop off (releasing its events).
// Device bound.
func (d *Device) profStart() { d.prof = &profiler{} }

func (d *Device) profStop() {
	if d.prof == nil {
		return
	}
	for _, r := range d.prof.recs {
		d.prof.pool = append(d.prof.pool, r.start, r.end)
	}
	for _, ev := range d.prof.pool {
		d.drv.call("cuEventDestroy_v2", d.drv.cuEventDestroy, ev)
	}
	d.prof = nil
}
