//go:build unix

package kernels

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPoolFaultReachesCaller: a worker that faults reading a file mapping
// whose file shrank (SIGBUS) does not kill the process: the fault comes
// back to Run's caller as a panic it can recover (the model turns it into
// ErrWeightsChanged).
func TestPoolFaultReachesCaller(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w")
	const size = 1 << 20
	if err := os.WriteFile(path, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(data)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	p := NewPool(4)
	defer p.Close()
	var got any
	func() {
		// The caller's own share of the items may fault too; as the
		// model's loader does, it asks for faults as panics.
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() { got = recover() }()
		// 64 items: the workers take most of them.
		sink := make([]byte, 64)
		p.Run(64, func(i int) { sink[i] = data[i*(size/64)] })
	}()
	if _, ok := got.(interface{ Addr() uintptr }); !ok {
		t.Fatalf("Run over a truncated mapping: recovered %v, want a fault", got)
	}
}
