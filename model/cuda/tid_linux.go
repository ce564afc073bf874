package cuda

import "syscall"

// osThreadID is the calling OS thread's id (gettid).
func osThreadID() int { return syscall.Gettid() }
