//go:build !unix

package main

import "time"

// processCPU is unknown here: the CPU-time columns then stay empty.
func processCPU() time.Duration { return 0 }
