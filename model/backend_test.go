package model

import (
	"context"
	"math"
	"path/filepath"
	"testing"
)

func TestRowStats(t *testing.T) {
	logits := []float32{
		1, 3, 3, 0, // tie between 1 and 2: lower id first
		5, 0, 0, 0,
	}
	st, err := RowStats(logits, 4, StatsOptions{RowBanned: [][]int32{nil, {0}}, Score: []int32{0, 0}})
	if err != nil {
		t.Fatal(err)
	}
	if st[0].Top1 != 1 || st[0].Top2 != 2 || math.Abs(float64(st[0].P1-st[0].P2)) > 1e-7 {
		t.Fatalf("row 0: %+v", st[0])
	}
	z := math.Exp(1) + 2*math.Exp(3) + 1
	if math.Abs(float64(st[0].P1)-math.Exp(3)/z) > 1e-6 || math.Abs(float64(st[0].ScoreLogP)-(1-math.Log(z))) > 1e-6 {
		t.Fatalf("row 0 probabilities: %+v", st[0])
	}
	var h float64
	for _, x := range logits[:4] {
		p := math.Exp(float64(x)) / z
		h -= p * math.Log(p)
	}
	if math.Abs(float64(st[0].Entropy)-h) > 1e-6 {
		t.Fatalf("entropy %v, want %v", st[0].Entropy, h)
	}
	// row 1: token 0 banned: uniform over the other three; its score is -Inf
	if st[1].Top1 != 1 || st[1].Top2 != 2 || math.Abs(float64(st[1].P1)-1.0/3) > 1e-6 || !math.IsInf(float64(st[1].ScoreLogP), -1) {
		t.Fatalf("row 1: %+v", st[1])
	}
	if _, err := RowStats(logits, 4, StatsOptions{Score: []int32{1}}); err == nil {
		t.Fatal("score list of the wrong length accepted")
	}
}

// TestForwardStatsCPU: without a backend ForwardStats reduces the CPU
// engine's logits, and Device says so.
func TestForwardStatsCPU(t *testing.T) {
	m, err := Load(filepath.Join("testdata", "qwen2-tiny-bf16"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Device() != "cpu" || m.Backend() != nil {
		t.Fatalf("device %q", m.Device())
	}
	b := &Batch{Tokens: []int32{5, 6, 1, 1, 9}, Logits: []int{2, 3}}
	st, err := m.ForwardStats(context.Background(), b, StatsOptions{Banned: []int32{m.Config.MaskID}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.Forward(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := RowStats(out.Data().([]float32), m.Config.Vocab, StatsOptions{Banned: []int32{m.Config.MaskID}})
	for i := range want {
		if st[i] != want[i] || st[i].Top1 == m.Config.MaskID {
			t.Fatalf("row %d: %+v, want %+v", i, st[i], want[i])
		}
	}
	ts, err := m.Tensors()
	if err != nil || len(ts.Layers) != m.Config.Layers || ts.Embed.Data == nil || ts.Head.Data != nil || ts.Layers[0].QBias.Data == nil {
		t.Fatalf("Tensors: %v (tied model: no head; qwen2: q bias)", err)
	}
}
