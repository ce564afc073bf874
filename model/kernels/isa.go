package kernels

import "golang.org/x/sys/cpu"

// An isa names the instruction set a kernel path uses. The matrix multiply
// packs weights for the isa chosen when a Linear is made, so a Linear
// keeps running the path it was packed for.
type isa int

const (
	isaGeneric isa = iota // pure Go
	isaAVX2               // AVX2 + FMA (+ F16C for f16 weights)
	isaAVX512             // AVX-512 F + BW
)

func (s isa) String() string {
	switch s {
	case isaAVX2:
		return "avx2"
	case isaAVX512:
		return "avx512"
	}
	return "go"
}

// bestISA is what this CPU supports, found once at start-up.
var bestISA = detectISA()

// curISA is the path new Linears and the vector kernels take. Only tests
// change it (to hold each path to the reference); it starts as bestISA.
var curISA = bestISA

func detectISA() isa {
	if !haveAsm {
		return isaGeneric
	}
	x := cpu.X86
	switch {
	case x.HasAVX512F && x.HasAVX512BW && x.HasAVX2 && x.HasFMA:
		return isaAVX512
	case x.HasAVX2 && x.HasFMA:
		return isaAVX2
	}
	return isaGeneric
}

// hasF16C reports whether the AVX2 path may convert f16 in-kernel.
var hasF16C = cpu.X86.HasF16C

// supportedISAs lists the paths this machine can run, best last.
func supportedISAs() []isa {
	out := []isa{isaGeneric}
	for s := isaAVX2; s <= bestISA; s++ {
		out = append(out, s)
	}
	return out
}

// ISA reports the instruction set the kernels use on this machine:
// "avx512", "avx2" or "go".
func ISA() string { return bestISA.String() }
