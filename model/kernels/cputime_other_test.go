//go:build !linux

package kernels

import "time"

// threadCPU is unknown here: benchmarks then report no CPU-time figure.
func threadCPU() time.Duration { return 0 }

func processCPU() time.Duration { return 0 }
