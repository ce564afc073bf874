package kernels

import (
	"strings"
	"testing"
)

// TestChoosePath: DIFFILL_KERNELS picks any path this machine runs, a path
// it cannot run or an unknown name falls back to the best one and says
// why, and UsePath refuses those without changing the path.
func TestChoosePath(t *testing.T) {
	for _, s := range supportedISAs() {
		got, why := choosePath(" " + strings.ToUpper(s.String()) + " ")
		if got != s || !strings.Contains(why, "forced by "+EnvKernels) {
			t.Errorf("%s=%s: path %v (%s), want %v forced", EnvKernels, s, got, why, s)
		}
	}
	if got, why := choosePath(""); got != bestISA || !strings.Contains(why, "detected") {
		t.Errorf("no %s: path %v (%s), want %v detected", EnvKernels, got, why, bestISA)
	}
	bad := []string{"sse9", "avx", "1"}
	if bestISA < isaAVX512 {
		bad = append(bad, "avx512")
	}
	for _, env := range bad {
		got, why := choosePath(env)
		if got != bestISA || !strings.Contains(why, "ignored") {
			t.Errorf("%s=%s: path %v (%s), want %v with the value ignored", EnvKernels, env, got, why, bestISA)
		}
		old, oldWhy := curISA, curWhy
		if err := UsePath(env, "test"); err == nil {
			t.Errorf("UsePath(%q) accepted", env)
		}
		if curISA != old || curWhy != oldWhy {
			t.Errorf("UsePath(%q) failed but changed the path to %v (%s)", env, curISA, curWhy)
		}
	}
	old, oldWhy := curISA, curWhy
	defer func() { curISA, curWhy = old, oldWhy }()
	if err := UsePath("go", "forced by a test"); err != nil {
		t.Fatal(err)
	}
	p := Path()
	if p.Path != "go" || ISA() != "go" || p.Best != bestISA.String() || p.Why != "forced by a test" {
		t.Errorf("after UsePath(go): %+v, ISA %s", p, ISA())
	}
	if l := NewLinearF32(make([]float32, 4), 2, 2); l.isa != isaGeneric {
		t.Errorf("a Linear made after UsePath(go) runs %v", l.isa)
	}
}
