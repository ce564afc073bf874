package main

import (
	"strings"
	"testing"

	"github.com/diffill/diffill/model/kernels"
)

// TestBenchKernelsFlag: --kernels runs the forward figures on the path it
// names and the output says so and why; a path that does not exist, or
// that this CPU cannot run, is refused with what to use instead.
func TestBenchKernelsFlag(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the model for about two seconds")
	}
	before := kernels.Path()
	t.Cleanup(func() {
		if err := kernels.UsePath(before.Path, before.Why); err != nil {
			t.Error(err)
		}
	})
	code, out, stderr := runMain(t, "bench", "--kernels", "go", "--only", "forward", "--model", tinyModel)
	if code != 0 || !strings.Contains(out, "go kernels") || !strings.Contains(out, "go path (forced by --kernels go; best here "+before.Best) {
		t.Errorf("bench --kernels go: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	code, _, stderr = runMain(t, "bench", "--kernels", "avx3", "--only", "forward", "--model", tinyModel)
	if code != 1 || !strings.Contains(stderr, `unknown kernel path "avx3" (want avx512, avx2, go or auto)`) {
		t.Errorf("bench --kernels avx3: exit %d, stderr %q", code, stderr)
	}
	if before.Best != "avx512" {
		code, _, stderr = runMain(t, "bench", "--kernels", "avx512", "--only", "forward", "--model", tinyModel)
		if code != 1 || !strings.Contains(stderr, "this CPU has") {
			t.Errorf("bench --kernels avx512 on a %s machine: exit %d, stderr %q", before.Best, code, stderr)
		}
	}
}
