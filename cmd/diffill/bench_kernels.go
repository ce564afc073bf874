package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/diffill/diffill/model/kernels"
)

// benchKernels prints the matrix-multiply figures of the CPU kernels on
// transformer shapes (a small model's, the 0.5B Qwen2 layers and its
// vocabulary head), for float32 and bf16 weights and for 1 to 512 rows
// (decode steps to whole sequences), as GFLOP/s and percent of peak, and
// multi-head attention over 512 tokens.
//
// Peak is cores × clock × FLOP/cycle, with the clock read from "cpu MHz" in
// /proc/cpuinfo (turbo can run faster, so a kernel can pass 100%) and
// FLOP/cycle from the vector unit (see flopsPerCycle). The measured ceiling
// of the microkernel on L1-resident data is printed beside it.
func benchKernels(ctx context.Context, w io.Writer) error {
	pool := kernels.DefaultPool()
	cpu := readCPUInfo()
	cores := pool.Workers()
	fpc, fpcWhy := flopsPerCycle(cpu, kernels.ISA())
	fmt.Fprintf(w, "kernels (%s path, %s, %d goroutines)\n", kernels.ISA(), cpu.model, cores)
	fmt.Fprintf(w, "  path: %s\n", kernels.Path())
	peak := 0.0
	if cpu.mhz > 0 {
		peak = float64(cores) * cpu.mhz / 1e3 * fpc
		fmt.Fprintf(w, "  peak %.0f GFLOP/s = %d cores × %.0f MHz (cpu MHz, /proc/cpuinfo) × %.0f FLOP/cycle (%s)\n",
			peak, cores, cpu.mhz, fpc, fpcWhy)
	} else {
		fmt.Fprintf(w, "  peak unknown: no cpu MHz in /proc/cpuinfo\n")
	}
	ceiling := 0.0
	for range 3 {
		ceiling = max(ceiling, kernels.PeakGFLOPS(pool, 100*time.Millisecond))
	}
	// Per CPU-second the ceiling is what one core does while it runs, busy
	// machine or not: the yardstick of the cpu-s columns. It is taken as
	// the products' figures are, the best of many short runs (on one
	// goroutine: no wake-ups in the way).
	coreCeiling := 0.0
	for range 30 {
		t0, cpu0 := time.Now(), processCPU()
		gf := kernels.PeakGFLOPS(nil, 5*time.Millisecond)
		wall, used := time.Since(t0), processCPU()-cpu0
		if cpu0 > 0 && used > 0 {
			coreCeiling = max(coreCeiling, gf*wall.Seconds()/used.Seconds())
		}
	}
	fmt.Fprintf(w, "  microkernel ceiling, operands in L1: %.0f GFLOP/s%s; far below peak means a busy machine, above it cores running past the nominal clock\n", ceiling, pct(ceiling, peak))
	if coreCeiling > 0 {
		fmt.Fprintf(w, "  per CPU-second (the time the goroutines ran, which other work on the machine inflates less than wall time): %.0f GFLOP/cpu-s a core\n", coreCeiling)
	}
	fmt.Fprintf(w, "  %-28s %-5s %10s %10s %8s %11s %10s\n", "product (m×k → n)", "dtype", "ms", "GFLOP/s", "% peak", "GFLOP/cpu-s", "weight GB/s")

	type shape struct {
		name string
		k, n int
		ms   []int
		f32  bool
	}
	all := []int{1, 16, 64, 512}
	shapes := []shape{
		{"attn proj", 896, 896, all, true},
		{"mlp up", 896, 4864, all, true},
		{"mlp down", 4864, 896, all, true},
		{"ffn", 1024, 4096, all, true},
		{"head 8k", 512, 8192, all, true},
		// The 0.5B Qwen2 vocabulary head: 136M weights, bf16 only.
		{"head 152k", 896, 151936, []int{1, 64}, false},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range shapes {
		for _, dt := range []string{"f32", "bf16"} {
			if dt == "f32" && !s.f32 {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			l := benchLinear(r, dt, s.n, s.k)
			for _, m := range s.ms {
				x := make([]float32, m*s.k)
				for i := range x {
					x[i] = float32(r.NormFloat64())
				}
				y := make([]float32, m*s.n)
				d, used, err := bestTime(ctx, func() { l.Forward(y, x, m) })
				if err != nil {
					return err
				}
				flops := 2 * float64(m) * float64(s.n) * float64(s.k)
				gf := flops / d.Seconds() / 1e9
				wbytes := float64(s.n * s.k * map[string]int{"f32": 4, "bf16": 2}[dt])
				fmt.Fprintf(w, "  %-28s %-5s %10.3f %10.1f %8s %11s %10.1f\n",
					fmt.Sprintf("%s %d×%d → %d", s.name, m, s.k, s.n), dt,
					float64(d.Microseconds())/1e3, gf, pctCol(gf, peak), cpuCol(flops, used), wbytes/d.Seconds()/1e9)
			}
		}
	}

	// Attention of the 0.5B Qwen2 shape: 14 query heads over 2 kv heads,
	// head size 64, 512 queries over 512 keys.
	const n, heads, kvHeads, hd = 512, 14, 2, 64
	rnd := func(size int) []float32 {
		v := make([]float32, size)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		return v
	}
	q, k, v, out := rnd(n*heads*hd), rnd(n*kvHeads*hd), rnd(n*kvHeads*hd), make([]float32, n*heads*hd)
	kv := func(g int) ([]float32, int, []float32, int) {
		return k[g*hd:], kvHeads * hd, v[g*hd:], kvHeads * hd
	}
	d, used, err := bestTime(ctx, func() {
		pool.MultiHeadAttention(out, heads*hd, q, heads*hd, kv, n, n, heads, kvHeads, hd, 0.125)
	})
	if err != nil {
		return err
	}
	flops := 4 * float64(n) * n * hd * heads
	gf := flops / d.Seconds() / 1e9
	fmt.Fprintf(w, "  %-28s %-5s %10.3f %10.1f %8s %11s\n", "attention 512², 14/2 heads", "f32",
		float64(d.Microseconds())/1e3, gf, pctCol(gf, peak), cpuCol(flops, used))
	return nil
}

// cpuCol is flops over cpu, one run's CPU time, in GFLOP/cpu-s ("-" when
// unknown).
func cpuCol(flops float64, cpu time.Duration) string {
	if cpu <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", flops/cpu.Seconds()/1e9)
}

func benchLinear(r *rand.Rand, dt string, n, k int) *kernels.Linear {
	if dt == "f32" {
		w := make([]float32, n*k)
		for i := range w {
			w[i] = float32(r.NormFloat64()) * 0.05
		}
		return kernels.NewLinearF32(w, n, k)
	}
	w := make([]uint16, n*k)
	for i := range w {
		w[i] = kernels.F32ToBF16(float32(r.NormFloat64()) * 0.05)
	}
	return kernels.NewLinearBF16(w, n, k)
}

// bestTime runs f until it has run at least 3 times and 250 ms, and
// returns its fastest run, and the least CPU time (all goroutines) a run
// took (0 if unknown): on a shared machine the fastest is the least
// disturbed.
func bestTime(ctx context.Context, f func()) (time.Duration, time.Duration, error) {
	f() // warm caches and the pool
	best, bestCPU := time.Duration(1<<63-1), time.Duration(1<<63-1)
	start := time.Now()
	for runs := 0; runs < 3 || time.Since(start) < 250*time.Millisecond; runs++ {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		t, c := time.Now(), processCPU()
		f()
		best = min(best, time.Since(t))
		if c > 0 {
			bestCPU = min(bestCPU, processCPU()-c)
		}
	}
	if bestCPU == time.Duration(1<<63-1) {
		bestCPU = 0
	}
	return best, bestCPU, nil
}

func pct(gf, peak float64) string {
	if peak <= 0 {
		return ""
	}
	return fmt.Sprintf(" (%.0f%% of peak)", 100*gf/peak)
}

func pctCol(gf, peak float64) string {
	if peak <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*gf/peak)
}

type cpuInfo struct {
	vendor, model string
	family        int
	mhz           float64
}

// readCPUInfo reads the first processor's entry of /proc/cpuinfo; fields
// it cannot find stay zero.
func readCPUInfo() cpuInfo {
	ci := cpuInfo{model: runtime.GOARCH}
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ci
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			if sc.Text() == "" && ci.mhz > 0 {
				break // end of the first processor
			}
			continue
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		switch key {
		case "vendor_id":
			ci.vendor = val
		case "model name":
			ci.model = val
		case "cpu family":
			ci.family, _ = strconv.Atoi(val)
		case "cpu MHz":
			ci.mhz, _ = strconv.ParseFloat(val, 64)
		}
	}
	return ci
}

// flopsPerCycle is the float32 FLOP per cycle of one core on the path the
// kernels take: FMA units × lanes × 2. Intel cores with AVX-512 (Xeon
// Scalable) have two 512-bit FMA units: 64. AMD Zen 4 runs AVX-512 on two
// 256-bit units: 32; Zen 5 has full-width units: 64. AVX2 with two FMA
// units: 32.
func flopsPerCycle(ci cpuInfo, isa string) (float64, string) {
	switch isa {
	case "avx512":
		if ci.vendor == "AuthenticAMD" && ci.family < 0x1a {
			return 32, "AVX-512 on two 256-bit FMA units (Zen 4)"
		}
		return 64, "two 512-bit FMA units × 16 lanes × 2"
	case "avx2":
		return 32, "two 256-bit FMA units × 8 lanes × 2"
	}
	return 4, "scalar Go: about 2 FLOP × 2 ports"
}
