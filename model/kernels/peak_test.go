package kernels

import (
	"testing"
	"time"
)

func TestPeakGFLOPS(t *testing.T) {
	withISA(t, func(t *testing.T) {
		if g := PeakGFLOPS(DefaultPool(), 5*time.Millisecond); !(g > 0) {
			t.Fatalf("PeakGFLOPS = %g", g)
		}
	})
}
