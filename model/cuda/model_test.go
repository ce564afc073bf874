package cuda

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diffill/diffill/model"
)

// The model package's tiny checkpoints (both families, float32 and bf16)
// with golden logits from its independent PyTorch reference.
var tinyDirs = []string{"qwen2-tiny", "qwen2-tiny-bf16", "llada-tiny", "llada-tiny-bf16"}

func tinyDir(name string) string { return filepath.Join("..", "testdata", name) }

type goldenCase struct {
	Name        string  `json:"name"`
	Tokens      []int32 `json:"tokens"`
	CacheTokens []int32 `json:"cache_tokens"`
	Compute     []int   `json:"compute"`
	Logits      []int   `json:"logits"`
	Offset      int     `json:"offset"`
	Rows        int     `json:"rows"`
}

type golden struct {
	Vocab int          `json:"vocab"`
	Cases []goldenCase `json:"cases"`
	data  []float32
}

func readGolden(t *testing.T, dir string) *golden {
	t.Helper()
	js, err := os.ReadFile(filepath.Join(dir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(js, &g); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(filepath.Join(dir, "golden.bin"))
	if err != nil {
		t.Fatal(err)
	}
	g.data = make([]float32, len(bin)/4)
	for i := range g.data {
		g.data[i] = math.Float32frombits(binary.LittleEndian.Uint32(bin[4*i:]))
	}
	return &g
}

// compare returns ‖got−want‖/‖want‖ and the fraction of rows whose argmax agrees.
func compare(got, want []float32, vocab int) (rel, agree float64) {
	var num, den float64
	for i := range want {
		g := float64(got[i])
		if math.IsNaN(g) || math.IsInf(g, 0) {
			return math.Inf(1), 0
		}
		d := g - float64(want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	rows := len(want) / vocab
	same := 0
	for r := 0; r < rows; r++ {
		if argmax32(got[r*vocab:(r+1)*vocab]) == argmax32(want[r*vocab:(r+1)*vocab]) {
			same++
		}
	}
	return math.Sqrt(num / den), float64(same) / float64(max(rows, 1))
}

func argmax32(x []float32) int {
	b := 0
	for i, v := range x {
		if v > x[b] {
			b = i
		}
	}
	return b
}

// attachFunc puts a loaded model on a backend: the emulator here, the GPU in
// the device tests.
type attachFunc func(t *testing.T, m *model.Model, opt Options) *Backend

func attachEmu(t *testing.T, m *model.Model, opt Options) *Backend {
	t.Helper()
	cfg, w, err := fromModel(m)
	if err != nil {
		t.Fatal(err)
	}
	em, err := newEmu()
	if err != nil {
		t.Fatal(err)
	}
	e, err := newEngine(em, cfg, w, opt)
	if err != nil {
		t.Fatal(err)
	}
	b := &Backend{eng: e, cfg: m.Config}
	m.SetBackend(b)
	return b
}

// checkModelGoldens runs every golden case of the tiny checkpoints through
// model.Forward on the backend and holds it to the PyTorch goldens and to
// the CPU engine (ForwardCPU) on the same Model. Weights are bf16 on the
// device: a float32 checkpoint is rounded, so its tolerance is bf16's.
func checkModelGoldens(t *testing.T, attach attachFunc) {
	ctx := context.Background()
	for _, name := range tinyDirs {
		for _, prec := range []Precision{Precise, Fast} {
			t.Run(name+"/"+prec.String(), func(t *testing.T) {
				dir := tinyDir(name)
				m, err := model.Load(dir)
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				attach(t, m, Options{Precision: prec})
				// bf16 weights and the precise split: float32 rounding only;
				// each of a float32 checkpoint rounded to bf16 and fast mode's
				// bf16 activations costs up to 1e-2.
				tol := 1e-4
				switch rounded := m.DType != "BF16"; {
				case rounded && prec == Fast:
					tol = 2e-2
				case rounded || prec == Fast:
					tol = 1e-2
				}
				g := readGolden(t, dir)
				for _, c := range g.Cases {
					b := &model.Batch{Tokens: c.Tokens, Compute: c.Compute, Logits: c.Logits}
					cb := &model.Batch{Tokens: c.Tokens, Compute: c.Compute, Logits: c.Logits}
					if c.CacheTokens != nil {
						b.Cache = m.NewCache(len(c.CacheTokens))
						if b.Cache.Device() == nil {
							t.Fatal("NewCache with a backend made a host cache")
						}
						if _, err := m.Forward(ctx, &model.Batch{Tokens: c.CacheTokens, Cache: b.Cache, Logits: []int{}}); err != nil {
							t.Fatal(err)
						}
						// the CPU twin: a host cache, made before any backend would route it
						cb.Cache = cpuCache(t, m, c.CacheTokens)
					}
					out, err := m.Forward(ctx, b)
					if err != nil {
						t.Fatalf("%s: %v", c.Name, err)
					}
					if s := out.Shape(); s[0] != c.Rows || s[1] != g.Vocab {
						t.Fatalf("%s: shape %v, want [%d %d]", c.Name, s, c.Rows, g.Vocab)
					}
					got := out.Data().([]float32)
					want := g.data[c.Offset : c.Offset+c.Rows*g.Vocab]
					rel, agree := compare(got, want, g.Vocab)
					cpu, err := m.ForwardCPU(ctx, []*model.Batch{cb})
					if err != nil {
						t.Fatal(err)
					}
					relCPU, agreeCPU := compare(got, cpu[0].Data().([]float32), g.Vocab)
					t.Logf("%s: %d rows: vs PyTorch %.2e (argmax %.3f), vs CPU %.2e (argmax %.3f)", c.Name, c.Rows, rel, agree, relCPU, agreeCPU)
					if rel > tol || relCPU > tol {
						t.Errorf("%s: relative error %.2e (PyTorch), %.2e (CPU) > %.0e", c.Name, rel, relCPU, tol)
					}
					if tol <= 1e-4 && (agree < 1 || agreeCPU < 1) {
						t.Errorf("%s: argmax agreement %.3f (PyTorch), %.3f (CPU)", c.Name, agree, agreeCPU)
					}
				}
			})
		}
	}
}

// cpuCache fills a host cache on the CPU engine for tokens.
func cpuCache(t *testing.T, m *model.Model, tokens []int32) *model.Cache {
	t.Helper()
	be := m.Backend()
	m.SetBackend(nil)
	c := m.NewCache(len(tokens))
	m.SetBackend(be)
	if _, err := m.ForwardCPU(context.Background(), []*model.Batch{{Tokens: tokens, Cache: c, Logits: []int{}}}); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestModelGoldensEmulated(t *testing.T) { checkModelGoldens(t, attachEmu) }

// checkModelStats holds ForwardStats on the backend to model.RowStats over
// the CPU engine's logits, and runs a cache through Shift and Clone.
func checkModelStats(t *testing.T, attach attachFunc) {
	ctx := context.Background()
	m, err := model.Load(tinyDir("qwen2-tiny-bf16"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	attach(t, m, Options{})
	V := m.Config.Vocab
	r := rand.New(rand.NewPCG(31, 31))
	tokens := randomTokens(r, 40, V)
	for i := 20; i < 30; i++ {
		tokens[i] = m.Config.MaskID
	}
	logits := []int{25, 20, 29}
	opt := model.StatsOptions{Temperature: 0.7, Banned: []int32{m.Config.MaskID}, RowBanned: [][]int32{{5}, nil, {7, 8}}, Score: []int32{3, -1, 9}}
	got, err := m.ForwardStats(ctx, &model.Batch{Tokens: tokens, Logits: logits}, opt)
	if err != nil {
		t.Fatal(err)
	}
	cpu, err := m.ForwardCPU(ctx, []*model.Batch{{Tokens: tokens, Logits: logits}})
	if err != nil {
		t.Fatal(err)
	}
	want, err := model.RowStats(cpu[0].Data().([]float32), V, opt)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Top1 != w.Top1 || g.Top2 != w.Top2 || math.Abs(float64(g.P1-w.P1)) > 1e-3 || math.Abs(float64(g.P2-w.P2)) > 1e-3 ||
			math.Abs(float64(g.Entropy-w.Entropy)) > 1e-3 || !(g.ScoreLogP == w.ScoreLogP || math.Abs(float64(g.ScoreLogP-w.ScoreLogP)) < 1e-3) {
			t.Errorf("row %d: device %+v, CPU %+v", i, g, w)
		}
	}

	// A cache through the model's API: fill, clone, shift, step.
	c := m.NewCache(48)
	if _, err := m.Forward(ctx, &model.Batch{Tokens: tokens, Cache: c, Logits: []int{}}); err != nil {
		t.Fatal(err)
	}
	d := c.Clone()
	if d.Device() == nil || d.Len() != 40 {
		t.Fatalf("clone: device %v, len %d", d.Device() != nil, d.Len())
	}
	if err := d.Shift(10, 2); err != nil {
		t.Fatal(err)
	}
	if d.Len() != 42 || c.Len() != 40 {
		t.Fatalf("after shifting the clone: clone len %d, original len %d", d.Len(), c.Len())
	}
	next := append(append(append([]int32(nil), tokens[:10]...), 4, 5), tokens[10:]...)
	if _, err := m.Forward(ctx, &model.Batch{Tokens: next, Compute: []int{25}, Cache: d}); err == nil {
		t.Fatal("a pass over uncomputed inserted positions was accepted")
	}
	if _, err := m.Forward(ctx, &model.Batch{Tokens: next, Compute: []int{10, 11, 25}, Cache: d}); err != nil {
		t.Fatal(err)
	}
	c.Reset()
	if c.Len() != 0 {
		t.Fatalf("Len after Reset %d", c.Len())
	}
}

func TestModelStatsEmulated(t *testing.T) { checkModelStats(t, attachEmu) }

func TestSelectCPU(t *testing.T) {
	m, err := model.Load(tinyDir("qwen2-tiny"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if dev, err := Select(m, "cpu", Options{}, nil); err != nil || dev != "cpu" || m.Backend() != nil {
		t.Fatalf("cpu: %q %v", dev, err)
	}
	if _, err := Select(m, "tpu", Options{}, nil); err == nil {
		t.Fatal("unknown device accepted")
	}
	var lines []string
	logf := func(f string, a ...any) { lines = append(lines, f) }
	dev, err := Select(m, "auto", Options{}, logf)
	if err != nil {
		t.Fatal(err)
	}
	if m.Backend() != nil {
		t.Skipf("a GPU is present: %s", dev)
	}
	if dev != "cpu" || len(lines) != 1 {
		t.Fatalf("auto without a GPU: device %q, %d log lines", dev, len(lines))
	}
	if _, err := Select(m, "cuda", Options{}, logf); err == nil {
		t.Fatal("cuda without a GPU did not fail")
	}
}

// TestDenoiseEmulated: the decode loop on the emulated backend (device
// stats, cached steps, one graph per step shape) commits the same tokens as
// on the CPU engine, and Bench runs it.
func TestDenoiseEmulated(t *testing.T) {
	ctx := context.Background()
	cpu, err := model.Load(tinyDir("llada-tiny-bf16"))
	if err != nil {
		t.Fatal(err)
	}
	defer cpu.Close()
	m, err := model.Load(tinyDir("llada-tiny-bf16"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	attachEmu(t, m, Options{})
	greedy(t, ctx, cpu, m)
	rs, err := Bench(ctx, m, BenchOptions{Context: 24, Canvas: 8, PerStep: []int{1, 4}, Thresholds: []float32{0.5}, Repeats: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3 || rs[0].Steps != 8 || rs[1].Steps != 2 || rs[2].Steps < 1 || rs[2].Steps > 8 {
		t.Fatalf("bench results %+v", rs)
	}
	var sb strings.Builder
	WriteBenchTable(&sb, "emulated", rs)
	t.Log("\n" + sb.String())
}
