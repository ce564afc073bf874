package model

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/diffill/diffill/model/kernels"
)

// benchShape is a Qwen2-layout model shape for benchmarks with random weights.
type benchShape struct {
	vocab, hidden, layers, heads, kvHeads, inter int
	tied                                         bool
}

var (
	// shape10M has about 10M parameters (6M in the layers, 4M embedding).
	shape10M = benchShape{vocab: 16384, hidden: 256, layers: 6, heads: 4, kvHeads: 2, inter: 1024, tied: true}
	// shape05B is Qwen2.5-0.5B's shape (494M parameters).
	shape05B = benchShape{vocab: 151936, hidden: 896, layers: 24, heads: 14, kvHeads: 2, inter: 4864, tied: true}
)

// randomCheckpoint returns config.json and model.safetensors for s with
// random weights stored as dtype (F32 or BF16).
func randomCheckpoint(s benchShape, dtype string, seed uint64) map[string][]byte {
	cfg := map[string]any{
		"architectures": []string{"Qwen2ForCausalLM"}, "model_type": "qwen2",
		"vocab_size": s.vocab, "hidden_size": s.hidden, "intermediate_size": s.inter,
		"num_hidden_layers": s.layers, "num_attention_heads": s.heads, "num_key_value_heads": s.kvHeads,
		"max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
		"tie_word_embeddings": s.tied, "mask_token_id": 1, "eos_token_id": 0, "shift_logits": false,
	}
	cj, _ := json.Marshal(cfg)
	d := s.hidden / s.heads
	q, kv := s.heads*d, s.kvHeads*d
	shapes := map[string][]int{"model.embed_tokens.weight": {s.vocab, s.hidden}, "model.norm.weight": {s.hidden}}
	if !s.tied {
		shapes["lm_head.weight"] = []int{s.vocab, s.hidden}
	}
	for i := 0; i < s.layers; i++ {
		p := fmt.Sprintf("model.layers.%d.", i)
		for name, shape := range map[string][]int{
			"input_layernorm.weight": {s.hidden}, "post_attention_layernorm.weight": {s.hidden},
			"self_attn.q_proj.weight": {q, s.hidden}, "self_attn.q_proj.bias": {q},
			"self_attn.k_proj.weight": {kv, s.hidden}, "self_attn.k_proj.bias": {kv},
			"self_attn.v_proj.weight": {kv, s.hidden}, "self_attn.v_proj.bias": {kv},
			"self_attn.o_proj.weight": {s.hidden, q},
			"mlp.gate_proj.weight":    {s.inter, s.hidden}, "mlp.up_proj.weight": {s.inter, s.hidden},
			"mlp.down_proj.weight": {s.hidden, s.inter},
		} {
			shapes[p+name] = shape
		}
	}
	names := make([]string, 0, len(shapes))
	for n := range shapes {
		names = append(names, n)
	}
	sort.Strings(names)
	size := 4
	if dtype == "BF16" {
		size = 2
	}
	header := map[string]any{}
	off := 0
	for _, n := range names {
		e := 1
		for _, x := range shapes[n] {
			e *= x
		}
		header[n] = map[string]any{"dtype": dtype, "shape": shapes[n], "data_offsets": []int{off, off + e*size}}
		off += e * size
	}
	hj, _ := json.Marshal(header)
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint64(len(hj)))
	b.Write(hj)
	b.Grow(off)
	r := rand.New(rand.NewPCG(seed, seed+1))
	var buf [4]byte
	for _, n := range names {
		shape := shapes[n]
		e := 1
		for _, x := range shape {
			e *= x
		}
		norm := strings.HasSuffix(n, "norm.weight")
		scale := float32(1) // embeddings
		switch {
		case strings.HasSuffix(n, "bias"):
			scale = 0.1
		case len(shape) == 2 && !strings.Contains(n, "embed"):
			scale = float32(1 / math.Sqrt(float64(shape[1])))
		}
		for i := 0; i < e; i++ {
			v := float32(r.NormFloat64()) * scale
			if norm {
				v = 1 + 0.1*float32(r.NormFloat64())
			}
			if dtype == "BF16" {
				binary.LittleEndian.PutUint16(buf[:], kernels.F32ToBF16(v))
				b.Write(buf[:2])
			} else {
				binary.LittleEndian.PutUint32(buf[:], math.Float32bits(v))
				b.Write(buf[:4])
			}
		}
	}
	return map[string][]byte{"config.json": cj, "model.safetensors": b.Bytes()}
}

func loadRandom(b *testing.B, s benchShape, dtype string) *Model {
	b.Helper()
	m, err := LoadFiles(randomCheckpoint(s, dtype, 7))
	if err != nil {
		b.Fatal(err)
	}
	return m
}

func benchTokens(n, vocab int) []int32 {
	r := rand.New(rand.NewPCG(1, 1))
	toks := make([]int32, n)
	for i := range toks {
		toks[i] = int32(r.IntN(vocab))
		if i%4 == 0 {
			toks[i] = 1 // mask
		}
	}
	return toks
}

// peakRSS returns the process's peak resident set size in bytes (Linux), or 0.
func peakRSS() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb * 1024
		}
	}
	return 0
}

func reportForward(b *testing.B, m *Model, rows, seqLen, logits int) {
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(float64(rows)/sec, "tokens/s")
	b.ReportMetric(m.Config.ForwardFLOPs(rows, seqLen, logits)/sec/1e9, "GFLOP/s")
	b.ReportMetric(peakRSS()/(1<<20), "peak-RSS-MiB")
}

// BenchmarkForward is a full pass over 512 tokens (every position's logits)
// of a 10M-parameter Qwen2-shape model.
func BenchmarkForward(b *testing.B) {
	for _, dtype := range []string{"F32", "BF16"} {
		b.Run("10M-"+dtype+"-512", func(b *testing.B) {
			m := loadRandom(b, shape10M, dtype)
			batch := &Batch{Tokens: benchTokens(512, m.Config.Vocab)}
			b.ResetTimer()
			for range b.N {
				if _, err := m.Forward(context.Background(), batch); err != nil {
					b.Fatal(err)
				}
			}
			reportForward(b, m, 512, 512, 512)
		})
	}
}

// BenchmarkCachedStep recomputes a 64-token block of a 1024-token sequence,
// the other positions' keys and values coming from the cache.
func BenchmarkCachedStep(b *testing.B) {
	m := loadRandom(b, shape10M, "BF16")
	toks := benchTokens(1024, m.Config.Vocab)
	cache := m.NewCache(1024)
	if _, err := m.Forward(context.Background(), &Batch{Tokens: toks, Cache: cache, Logits: []int{}}); err != nil {
		b.Fatal(err)
	}
	compute := make([]int, 64)
	for i := range compute {
		compute[i] = 480 + i
	}
	batch := &Batch{Tokens: toks, Compute: compute, Cache: cache}
	b.ResetTimer()
	for range b.N {
		if _, err := m.Forward(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	reportForward(b, m, 64, 1024, 64)
}

// BenchmarkForward05B is a full 512-token pass (all or 64 positions' logits)
// and a cached 64-of-1024 step of a Qwen2.5-0.5B-shape model with random bf16
// weights. It needs about 3 GB and minutes to set up, so it
// runs only with DIFFILL_BENCH_05B=1.
func BenchmarkForward05B(b *testing.B) {
	if os.Getenv("DIFFILL_BENCH_05B") == "" {
		b.Skip("set DIFFILL_BENCH_05B=1 to run")
	}
	files := randomCheckpoint(shape05B, "BF16", 7)
	var m *Model
	var err error
	if dir := os.Getenv("DIFFILL_BENCH_DIR"); dir != "" {
		// Through the files, as a user loads a checkpoint: memory-mapped.
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		files = nil
		m, err = Load(dir)
	} else {
		m, err = LoadFiles(files)
	}
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	b.Logf("loaded; peak RSS so far %.0f MiB", peakRSS()/(1<<20))
	for _, logits := range []int{512, 64} {
		b.Run(fmt.Sprintf("512-tokens-%d-logits", logits), func(b *testing.B) {
			batch := &Batch{Tokens: benchTokens(512, m.Config.Vocab), Logits: make([]int, logits)}
			for i := range batch.Logits {
				batch.Logits[i] = i * (512 / logits)
			}
			b.ResetTimer()
			for range b.N {
				if _, err := m.Forward(context.Background(), batch); err != nil {
					b.Fatal(err)
				}
			}
			reportForward(b, m, 512, 512, logits)
		})
	}
	b.Run("cached-64-of-1024", func(b *testing.B) {
		toks := benchTokens(1024, m.Config.Vocab)
		cache := m.NewCache(1024)
		if _, err := m.Forward(context.Background(), &Batch{Tokens: toks, Cache: cache, Logits: []int{}}); err != nil {
			b.Fatal(err)
		}
		compute := make([]int, 64)
		for i := range compute {
			compute[i] = 480 + i
		}
		batch := &Batch{Tokens: toks, Compute: compute, Cache: cache}
		b.ResetTimer()
		for range b.N {
			if _, err := m.Forward(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
		}
		reportForward(b, m, 64, 1024, 64)
	})
	runtime.KeepAlive(files)
}
