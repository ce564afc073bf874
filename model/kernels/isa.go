package kernels

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/cpu"
)

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

// EnvKernels is the environment variable that forces a kernel path:
// "avx512", "avx2" or "go" (empty or "auto": the best this CPU runs). It
// is read once, at start-up; UsePath overrides it.
const EnvKernels = "DIFFILL_KERNELS"

// bestISA is what this CPU supports, found once at start-up.
var bestISA = detectISA()

// curISA is the path new Linears and the vector kernels take, and curWhy
// says why it was chosen. They are set at start-up (from EnvKernels, or
// bestISA), by UsePath before any kernel runs, and by tests that hold
// each path to the reference.
var curISA, curWhy = choosePath(os.Getenv(EnvKernels))

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

// parsePath resolves a path name against this machine: the path, or an
// error saying what the machine lacks or which names exist.
func parsePath(name string) (isa, error) {
	var s isa
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "", "auto", "best":
		return bestISA, nil
	case "go", "generic", "purego":
		return isaGeneric, nil
	case "avx2":
		s = isaAVX2
	case "avx512", "avx-512":
		s = isaAVX512
	default:
		return 0, fmt.Errorf("unknown kernel path %q (want avx512, avx2, go or auto)", name)
	}
	if s > bestISA {
		if !haveAsm {
			return 0, fmt.Errorf("kernel path %s: this build has no assembly (purego tag or not amd64); only go runs", s)
		}
		return 0, fmt.Errorf("kernel path %s needs %s; this CPU has %s (best path %s)", s, needs(s), Features(), bestISA)
	}
	return s, nil
}

func needs(s isa) string {
	if s == isaAVX512 {
		return "avx512f, avx512bw, avx2 and fma"
	}
	return "avx2 and fma"
}

// choosePath is the path of a process whose EnvKernels holds env, and why.
// A value that names no path this machine runs falls back to the best one,
// saying so: kernels start before any caller can report an error, and the
// best path gives the same answers.
func choosePath(env string) (isa, string) {
	if strings.TrimSpace(env) == "" {
		return bestISA, "best this CPU runs (detected)"
	}
	s, err := parsePath(env)
	if err != nil {
		return bestISA, fmt.Sprintf("%s=%s ignored: %v; running the best path", EnvKernels, env, err)
	}
	return s, fmt.Sprintf("forced by %s=%s", EnvKernels, env)
}

// UsePath makes the kernels run the named path ("avx512", "avx2", "go", or
// "auto" for the best this CPU runs), for a command-line flag. It must be
// called at start-up, before any Linear is made or kernel runs: a Linear
// keeps the path it was packed for, and the switch is not synchronised.
// A path this CPU cannot run is an error, and nothing changes.
func UsePath(name, why string) error {
	s, err := parsePath(name)
	if err != nil {
		return err
	}
	curISA, curWhy = s, why
	return nil
}

// ISA reports the instruction set the kernels run: "avx512", "avx2" or
// "go".
func ISA() string { return curISA.String() }

// PathInfo says which kernel path runs and why.
type PathInfo struct {
	Path     string // the path new Linears and the vector kernels take
	Best     string // the best path this CPU and build run
	Why      string // detected, forced by EnvKernels or a flag, or a bad value ignored
	Features string // the CPU features the choice depends on, space-separated
	Blocking string // the cache budgets of the matrix multiply (CacheBudgets)
}

// Path reports the kernel path, the best one, why it runs and the CPU
// features looked at.
func Path() PathInfo {
	return PathInfo{Path: curISA.String(), Best: bestISA.String(), Why: curWhy, Features: Features(), Blocking: CacheBudgets()}
}

func (p PathInfo) String() string {
	return fmt.Sprintf("%s path (%s; best here %s; CPU has %s; %s)", p.Path, p.Why, p.Best, p.Features, p.Blocking)
}

// Features lists the x86 features the kernels look at that this CPU has.
func Features() string {
	x := cpu.X86
	var fs []string
	for _, f := range []struct {
		name string
		has  bool
	}{
		{"avx512f", x.HasAVX512F}, {"avx512bw", x.HasAVX512BW}, {"avx512_bf16", x.HasAVX512BF16},
		{"avx512_vnni", x.HasAVX512VNNI}, {"avx2", x.HasAVX2}, {"fma", x.HasFMA}, {"f16c", x.HasF16C},
	} {
		if f.has {
			fs = append(fs, f.name)
		}
	}
	if len(fs) == 0 {
		return "none of avx512f, avx512bw, avx2, fma, f16c"
	}
	return strings.Join(fs, " ")
}
