package main

import (
	"context"
	"fmt"
	"io"

	"github.com/diffill/diffill/model"
	"github.com/diffill/diffill/model/cuda"
)

// benchDevice prints the GPU figures of `diffill bench --device cuda`: the
// infill shape the issue measures (a 64-token canvas of masks after 1024
// context tokens, cut to the model's positions), decoded with the dual cache
// and the device-side sampler statistics at 1 and 4 tokens per step and
// with a 0.9 confidence threshold, in both precisions: time per step,
// tokens/s and the weight-read floor (weight bytes / 3.0 TB/s, the copy rate
// measured on an H100). With --device cuda the user asked for the GPU, so
// its absence is an error, not a fallback.
func benchDevice(ctx context.Context, stdout, stderr io.Writer, device, modelDir string) error {
	switch device {
	case "cuda", "gpu":
	default:
		return fmt.Errorf("bench --device %q: want cpu or cuda", device)
	}
	logf := func(f string, a ...any) { fmt.Fprintf(stderr, f+"\n", a...) }
	for _, prec := range []cuda.Precision{cuda.Precise, cuda.Fast} {
		m, err := loadBenchModel(modelDir)
		if err != nil {
			return err
		}
		dev, err := cuda.Select(m, device, cuda.Options{Precision: prec, Logf: logf}, logf)
		if err != nil {
			m.Close()
			return err
		}
		ctxLen, canvas := 1024, 64
		if mp := m.Config.MaxPositions; mp > 0 && ctxLen+canvas > mp {
			ctxLen = max(mp-canvas, 0)
		}
		rs, err := cuda.Bench(ctx, m, cuda.BenchOptions{Context: ctxLen, Canvas: canvas, PerStep: []int{1, 4},
			Thresholds: []float32{0.9}, Repeats: 3})
		m.Close()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s on %s: %d-token canvas after %d context tokens\n", modelName(modelDir), dev, canvas, ctxLen)
		cuda.WriteBenchTable(stdout, prec.String(), rs)
	}
	return nil
}

// loadBenchModel loads a checkpoint (tokenizer not needed: the bench feeds
// token ids) or the built-in model.
func loadBenchModel(dir string) (*model.Model, error) {
	if dir == "" {
		return loadInfillModel("")
	}
	return model.Load(dir)
}
