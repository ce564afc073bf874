package cuda

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// A CUDA context is current per OS thread, and goroutines move between
// threads: a driver call made from a goroutine that did not make the
// context current on its thread fails with CUDA_ERROR_INVALID_CONTEXT, or
// works by accident where an earlier call left the context current on that
// thread. So every use of the device happens inside a binding: the
// goroutine is locked to its thread, the context is made current there,
// and each driver operation checks that it runs on the bound thread, which
// turns a missing bind into the same clear error on every run.

// binding is the lock and the owning thread shared by the device and its
// emulator.
type binding struct {
	mu    sync.Mutex   // one user at a time: the stream and the launch slots are shared
	owner atomic.Int64 // OS thread id of the bound goroutine; 0 while unbound
}

// lock serialises, pins the goroutine to its thread and records the thread.
// makeCurrent runs on that thread before the binding counts as held.
func (b *binding) lock(makeCurrent func() error) (release func(), err error) {
	b.mu.Lock()
	runtime.LockOSThread()
	if makeCurrent != nil {
		if err := makeCurrent(); err != nil {
			runtime.UnlockOSThread()
			b.mu.Unlock()
			return nil, err
		}
	}
	b.owner.Store(int64(osThreadID()))
	return func() {
		b.owner.Store(0)
		runtime.UnlockOSThread()
		b.mu.Unlock()
	}, nil
}

// held reports an error unless the caller is the bound goroutine (its
// thread is locked, so no other goroutine runs on it meanwhile).
func (b *binding) held(call string) error {
	owner, tid := b.owner.Load(), int64(osThreadID())
	if owner != 0 && owner == tid {
		return nil
	}
	if owner == 0 {
		return fmt.Errorf("cuda: %s on OS thread %d with the device not bound: driver calls must run inside bind, which makes the context current on the calling thread", call, tid)
	}
	return fmt.Errorf("cuda: %s on OS thread %d, but the device is bound on thread %d (another goroutine): driver calls must run on the goroutine that holds bind", call, tid, owner)
}
