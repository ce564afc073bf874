//go:build linux

package kernels

import (
	"syscall"
	"time"
)

// threadCPU returns the CPU time of the calling OS thread (lock the
// goroutine to it first). On a machine shared with other work it counts
// only the time the thread ran, so figures over it vary far less than
// wall-clock ones.
func threadCPU() time.Duration {
	const rusageThread = 1 // RUSAGE_THREAD
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// processCPU returns the CPU time of the whole process (all threads, so
// the pool's workers too).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
