package cuda

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/diffill/diffill/model"
)

// The checks gpu_check.sh runs on the GPU machine over checkpoints it makes
// there with transformers (DIFFILL_CUDA_CKPTS, comma-separated directories;
// each may hold ref.json + ref_logits.bin: transformers' float32 logits of
// every position of a few token sequences, full non-causal attention), and
// the benchmark (DIFFILL_CUDA_BENCH: a checkpoint directory).

type refFile struct {
	Vocab int       `json:"vocab"`
	Cases [][]int32 `json:"cases"` // token ids; logits of every position follow in order
}

func readRef(t *testing.T, dir string) (*refFile, []float32) {
	t.Helper()
	js, err := os.ReadFile(filepath.Join(dir, "ref.json"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var rf refFile
	if err := json.Unmarshal(js, &rf); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(filepath.Join(dir, "ref_logits.bin"))
	if err != nil {
		t.Fatal(err)
	}
	f := make([]float32, len(bin)/4)
	for i := range f {
		f[i] = math.Float32frombits(binary.LittleEndian.Uint32(bin[4*i:]))
	}
	return &rf, f
}

func TestGPUCheckpoints(t *testing.T) {
	env := os.Getenv("DIFFILL_CUDA_CKPTS")
	if env == "" {
		t.Skip("DIFFILL_CUDA_CKPTS not set (gpu_check.sh sets it)")
	}
	openGPU(t)
	checkCheckpoints(t, strings.Split(env, ","), attachGPU)
}

// checkCheckpoints holds the backend to each directory's reference logits
// and to the CPU engine, and decodes greedily on both.
func checkCheckpoints(t *testing.T, dirs []string, attach attachFunc) {
	ctx := context.Background()
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			cpu, err := model.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer cpu.Close()
			V := cpu.Config.Vocab
			rf, ref := readRef(t, dir)
			var cpuLogits [][]float32 // the CPU engine's logits per reference case, computed once
			if rf != nil {
				for _, toks := range rf.Cases {
					c, err := cpu.Forward(ctx, &model.Batch{Tokens: toks})
					if err != nil {
						t.Fatal(err)
					}
					cl := c.Data().([]float32)
					cpuLogits = append(cpuLogits, cl)
				}
			}
			for _, prec := range []Precision{Precise, Fast} {
				m, err := model.Load(dir)
				if err != nil {
					t.Fatal(err)
				}
				attach(t, m, Options{Precision: prec})
				tol := 1e-2 // bf16 weights: the METHOD's bf16 band is 1e-3..1e-2
				if rf != nil {
					var gotAll, cpuAll []float32
					off := 0
					for i, toks := range rf.Cases {
						out, err := m.Forward(ctx, &model.Batch{Tokens: toks})
						if err != nil {
							t.Fatal(err)
						}
						got := out.Data().([]float32)
						want := ref[off : off+len(toks)*V]
						off += len(toks) * V
						cl := cpuLogits[i]
						rel, agree := compare(got, want, V)
						relC, agreeC := compare(got, cl, V)
						relCR, agreeCR := compare(cl, want, V)
						t.Logf("%s case %d (%d tokens): GPU vs transformers %.2e (argmax %.4f); GPU vs CPU %.2e (argmax %.4f); CPU vs transformers %.2e (argmax %.4f)",
							prec, i, len(toks), rel, agree, relC, agreeC, relCR, agreeCR)
						gotAll = append(gotAll, got...)
						cpuAll = append(cpuAll, cl...)
					}
					rel, agree := compare(gotAll, ref[:off], V)
					relC, agreeC := compare(gotAll, cpuAll, V)
					t.Logf("RESULT %s %s: %d positions: vs transformers rel %.2e argmax %.4f | vs CPU rel %.2e argmax %.4f",
						filepath.Base(dir), prec, off/V, rel, agree, relC, agreeC)
					if rel > tol || relC > tol {
						t.Errorf("%s: relative error %.2e (transformers), %.2e (CPU) > %.0e", prec, rel, relC, tol)
					}
					if prec == Precise && (agree < 0.999 || agreeC < 0.999) {
						t.Errorf("%s: argmax agreement %.4f (transformers), %.4f (CPU) < 0.999", prec, agree, agreeC)
					}
				}
				if prec == Precise {
					greedy(t, ctx, cpu, m)
				}
				m.Close()
			}
		})
	}
}

// greedy decodes the same canvas one token per step on the CPU and on the
// GPU; the tokens must be the same.
func greedy(t *testing.T, ctx context.Context, cpu, gpu *model.Model) {
	t.Helper()
	ctxLen, canvasLen := 64, 32
	if cpu.Params > 100e6 { // keep the CPU side of a 0.5B model to seconds
		ctxLen, canvasLen = 192, 16
	}
	if mp := cpu.Config.MaxPositions; mp > 0 && ctxLen+canvasLen > mp {
		ctxLen = mp - canvasLen
	}
	r := rand.New(rand.NewPCG(51, 51))
	toks := randomTokens(r, ctxLen+canvasLen, cpu.Config.Vocab)
	var canvas []int
	for i := ctxLen; i < ctxLen+canvasLen; i++ {
		toks[i] = cpu.Config.MaskID
		canvas = append(canvas, i)
	}
	a, b := slices.Clone(toks), slices.Clone(toks)
	sa, err := Denoise(ctx, cpu, a, canvas, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := Denoise(ctx, gpu, b, canvas, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	diff := 0
	for _, p := range canvas {
		if a[p] != b[p] {
			diff++
		}
	}
	t.Logf("RESULT greedy decode %d tokens after %d context: CPU %d steps, GPU %d steps, %d tokens differ", canvasLen, ctxLen, sa, sb, diff)
	if diff > 0 {
		t.Errorf("greedy decode: %d of %d tokens differ\nCPU %v\nGPU %v", diff, canvasLen, a[ctxLen:], b[ctxLen:])
	}
}

func TestGPUBench(t *testing.T) {
	dir := os.Getenv("DIFFILL_CUDA_BENCH")
	if dir == "" {
		t.Skip("DIFFILL_CUDA_BENCH not set (gpu_check.sh sets it)")
	}
	d := openGPU(t)
	ctx := context.Background()
	var all []map[string]any
	for _, prec := range []Precision{Precise, Fast} {
		m, err := model.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := AttachTo(d, m, Options{Precision: prec, Logf: t.Logf}); err != nil {
			t.Fatal(err)
		}
		rs, err := Bench(ctx, m, BenchOptions{Context: 1024, Canvas: 64, PerStep: []int{1, 2, 4, 8}, Thresholds: []float32{0.9}, Repeats: 3})
		if err != nil {
			t.Fatal(err)
		}
		var sb strings.Builder
		WriteBenchTable(&sb, prec.String(), rs)
		t.Logf("%s\n%s", d, sb.String())
		for _, r := range rs {
			all = append(all, map[string]any{"engine": "diffill", "precision": prec.String(), "device": d.String(), "result": r})
		}
		m.Close()
	}
	if out := os.Getenv("DIFFILL_CUDA_BENCH_OUT"); out != "" {
		b, _ := json.MarshalIndent(all, "", " ")
		if err := os.WriteFile(out, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCheckpointsEmulated runs the checkpoint check of the GPU run on the
// emulated backend, with reference files written here the way
// gpu_check.py writes them (ref.json, ref_logits.bin), from the CPU engine.
func TestCheckpointsEmulated(t *testing.T) {
	dir := t.TempDir()
	src := tinyDir("qwen2-tiny-bf16")
	for _, f := range []string{"config.json", "model.safetensors", "tokenizer.json"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(81, 81))
	rf := refFile{Vocab: m.Config.Vocab}
	var bin []byte
	for _, n := range []int{20, 33} {
		toks := randomTokens(r, n, m.Config.Vocab)
		out, err := m.Forward(context.Background(), &model.Batch{Tokens: toks})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range out.Data().([]float32) {
			bin = binary.LittleEndian.AppendUint32(bin, math.Float32bits(v))
		}
		rf.Cases = append(rf.Cases, toks)
	}
	m.Close()
	js, _ := json.Marshal(rf)
	if err := os.WriteFile(filepath.Join(dir, "ref.json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ref_logits.bin"), bin, 0o644); err != nil {
		t.Fatal(err)
	}
	checkCheckpoints(t, []string{dir}, attachEmu)
}

// TestGPUProfile says where the benchmark's time goes on the GPU
// (DIFFILL_CUDA_BENCH: a checkpoint; gpu_check.sh runs it): a 1088-position
// prefill and one denoising step (64 rows over 1088 keys, device stats),
// run eagerly with an event pair around every launch and summed by kernel
// and product shape; then wall-clock times of the graph-replayed step and
// prefill and of the eager step. Its lines start with PROFILE.
func TestGPUProfile(t *testing.T) {
	dir := os.Getenv("DIFFILL_CUDA_BENCH")
	if dir == "" {
		t.Skip("DIFFILL_CUDA_BENCH not set (gpu_check.sh sets it)")
	}
	d := openGPU(t)
	m, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	cfg, w, err := fromModel(m)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const ctxLen, canvasLen = 1024, 64
	L := ctxLen + canvasLen
	r := rand.New(rand.NewPCG(3, 3))
	tokens := randomTokens(r, L, cfg.Vocab)
	canvas := make([]int, canvasLen)
	var so StatsOptions
	for i := range canvas {
		canvas[i] = ctxLen + i
		if mask := m.Config.MaskID; mask >= 0 {
			tokens[ctxLen+i] = mask
			so.Banned = []int32{mask}
		}
	}
	st := make([]TokenStats, canvasLen)
	for _, prec := range []Precision{Precise, Fast} {
		eager, err := NewEngine(d, cfg, w, Options{Precision: prec, NoGraphs: true})
		if err != nil {
			t.Fatal(err)
		}
		graphed, err := NewEngine(d, cfg, w, Options{Precision: prec, Logf: t.Logf})
		if err != nil {
			eager.Close()
			t.Fatal(err)
		}
		c1, err1 := eager.NewCache(L)
		c2, err2 := graphed.NewCache(L)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		prefill := func(e *Engine, c *Cache) error {
			return e.Forward(ctx, &Batch{Tokens: tokens, Logits: []int{}, Cache: c}, nil)
		}
		step := func(e *Engine, c *Cache) error {
			return e.Stats(ctx, &Batch{Tokens: tokens, Compute: canvas, Logits: canvas, Cache: c}, so, st)
		}
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(prefill(eager, c1)) // warm-up: cuBLAS picks its kernels
		must(step(eager, c1))
		profiled := func(what string, run func() error) {
			release, err := d.bind()
			must(err)
			d.profStart()
			release()
			runErr := run()
			release, err = d.bind()
			must(err)
			times, err := d.profCollect()
			d.profStop()
			release()
			must(errors.Join(runErr, err))
			var sb strings.Builder
			total, calls := 0.0, 0
			for _, k := range times {
				total += k.ms
				calls += k.calls
				fmt.Fprintf(&sb, "PROFILE %s %s: %-44s %4d calls %8.3f ms %8.1f us/call\n", prec, what, k.name, k.calls, k.ms, 1000*k.ms/float64(k.calls))
			}
			fmt.Fprintf(&sb, "PROFILE %s %s: %-44s %4d calls %8.3f ms (device time, eager)", prec, what, "total", calls, total)
			t.Logf("%s\n%s", d, sb.String())
		}
		profiled("prefill", func() error { return prefill(eager, c1) })
		profiled("step", func() error { return step(eager, c1) })
		if prec == Precise { // the first GPU run's attention, for comparison
			warp, err := NewEngine(d, cfg, w, Options{Precision: prec, NoGraphs: true, warpAttention: true})
			must(err)
			c3, err := warp.NewCache(L)
			must(err)
			must(prefill(warp, c3))
			must(step(warp, c3))
			profiled("step, warp attention", func() error { return step(warp, c3) })
			must(warp.Close())
		}
		wall := func(n int, run func() error) float64 {
			t0 := time.Now()
			for i := 0; i < n; i++ {
				must(run())
			}
			return float64(time.Since(t0).Microseconds()) / 1000 / float64(n)
		}
		for i := 0; i < 3; i++ { // the second call of a shape captures its graph
			must(prefill(graphed, c2))
			must(step(graphed, c2))
		}
		gs := wall(50, func() error { return step(graphed, c2) })
		gp := wall(5, func() error { return prefill(graphed, c2) })
		es := wall(10, func() error { return step(eager, c1) })
		t.Logf("PROFILE %s wall clock: graph step %.3f ms, graph prefill %.3f ms, eager step %.3f ms (%d graphs)", prec, gs, gp, es, len(graphed.graphs))
		must(errors.Join(eager.Close(), graphed.Close()))
	}
}
