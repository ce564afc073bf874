package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/diffill/diffill/infill"
	"github.com/diffill/diffill/model"
	"github.com/diffill/diffill/model/builtin"
)

// benchInfill prints the infill engine's latency figures on held-out Go
// code (infill.BenchCases) with the default parameters: one-line
// completion with nothing cached (cold) and one keystroke later (warm),
// three-line infill (cold), and decoding throughput; then the same decode
// in PyTorch on the same weights and canvases, when /usr/bin/python3 has
// torch.
func benchInfill(ctx context.Context, w io.Writer, m *model.Model) error {
	return benchInfillDir(ctx, w, m, "")
}

// benchInfillDir is benchInfill for a model loaded from dir ("" for the
// built-in model), which the PyTorch reference loads too.
func benchInfillDir(ctx context.Context, w io.Writer, m *model.Model, dir string) error {
	eng := infill.NewEngine(m)
	var lines, blocks []infill.BenchCase
	for _, c := range infill.BenchCases() {
		if c.Kind == "line" {
			lines = append(lines, c)
		} else {
			blocks = append(blocks, c)
		}
	}
	p := infill.DefaultParams()
	type timed struct {
		d   time.Duration
		req *infill.Request
		raw string // the answer before post-processing
	}
	var tokens int
	var busy time.Duration
	runOne := func(req *infill.Request) (timed, error) {
		t0 := time.Now()
		res, err := eng.Run(ctx, req)
		d := time.Since(t0)
		if err != nil {
			return timed{}, err
		}
		out := res.Candidates[0].Edits[0].NewText
		tokens += len(m.Tokenizer.EncodeOrdinary(out))
		busy += d
		return timed{d, req, res.Candidates[0].Raw[0]}, nil
	}
	lineReq := func(text string, at int) *infill.Request {
		q := p
		q.SingleLine = true
		return &infill.Request{Text: text, Spans: []infill.Span{{Start: at, End: at}}, Mode: infill.ModeComplete, Params: q}
	}
	// Warm up: page in the weights, start the kernels' threads.
	if _, err := runOne(lineReq(lines[0].Prefix+lines[0].Suffix, len(lines[0].Prefix))); err != nil {
		return err
	}
	tokens, busy = 0, 0

	var cold, warm, block []timed
	for _, c := range lines {
		eng.Reset()
		t, err := runOne(lineReq(c.Prefix+c.Suffix, len(c.Prefix)))
		if err != nil {
			return err
		}
		cold = append(cold, t)
		// One keystroke later: the user typed the middle's first character.
		_, n := utf8.DecodeRuneInString(c.Middle)
		t, err = runOne(lineReq(c.Prefix+c.Middle[:n]+c.Suffix, len(c.Prefix)+n))
		if err != nil {
			return err
		}
		warm = append(warm, t)
	}
	for _, c := range blocks {
		eng.Reset()
		at := len(c.Prefix)
		t, err := runOne(&infill.Request{
			Text:   c.Prefix + c.Middle + c.Suffix,
			Spans:  []infill.Span{{Start: at, End: at + len(c.Middle)}},
			Mode:   infill.ModeInfill,
			Params: p,
		})
		if err != nil {
			return err
		}
		block = append(block, t)
	}
	ms := func(ts []timed) []time.Duration {
		var d []time.Duration
		for _, t := range ts {
			d = append(d, t.d)
		}
		return d
	}
	fmt.Fprintf(w, "infill (%d held-out Go cases, default parameters, GOMAXPROCS %d)\n", len(lines)+len(blocks), runtime.GOMAXPROCS(0))
	row := func(name string, d []time.Duration, target string) {
		fmt.Fprintf(w, "  %-34s p50 %7.1f ms   p95 %7.1f ms   (%d requests; target %s)\n", name, infillPct(d, 0.5), infillPct(d, 0.95), len(d), target)
	}
	row("one-line completion, cold", ms(cold), "p50 <= 100 ms")
	row("one-line completion, warm", ms(warm), "p50 <= 40 ms")
	row("three-line infill, cold", ms(block), "p50 <= 300 ms")
	fmt.Fprintf(w, "  %-34s %7.0f tokens/s (answer tokens over decoding time)\n", "throughput", float64(tokens)/busy.Seconds())

	// The PyTorch reference on the same canvases.
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		fmt.Fprintln(w, "  PyTorch reference: skipped (no /usr/bin/python3)")
		return nil
	}
	if err := exec.CommandContext(ctx, "/usr/bin/python3", "-c", "import torch").Run(); err != nil {
		fmt.Fprintln(w, "  PyTorch reference: skipped (/usr/bin/python3 has no torch)")
		return nil
	}
	if m.Config.ShiftLogits || m.Config.Family != model.Qwen2 {
		fmt.Fprintln(w, "  PyTorch reference: skipped (the reference decode covers Qwen2-layout models without logit shift)")
		return nil
	}
	tmp, err := os.MkdirTemp("", "diffill-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if dir == "" {
		if dir, err = writeBuiltinFiles(tmp); err != nil {
			fmt.Fprintf(w, "  PyTorch reference: skipped (%v)\n", err)
			return nil
		}
	}
	script := filepath.Join(tmp, "decode.py")
	if err := os.WriteFile(script, []byte(infill.ReferenceScript), 0o644); err != nil {
		return err
	}
	type refSpan struct {
		Pos    int  `json:"pos"`
		N      int  `json:"n"`
		Single bool `json:"single"`
	}
	type refReq struct {
		Tokens     []int32   `json:"tokens"`
		Spans      []refSpan `json:"spans"`
		Sampler    string    `json:"sampler"`
		Recompute  string    `json:"recompute"`
		Threshold  float64   `json:"threshold"`
		EndThresh  float64   `json:"end_threshold"`
		Steps      int       `json:"steps"`
		PadPenalty float64   `json:"pad_penalty"`
		Mask       int32     `json:"mask"`
		EOS        int32     `json:"eos"`
		Pad        int32     `json:"pad"`
		Newlines   []int32   `json:"newlines"`
	}
	var reqs []refReq
	goTimes := append(slices.Clone(cold), block...)
	for _, t := range goTimes {
		c, err := eng.Canvas(t.req)
		if err != nil {
			return err
		}
		q := t.req.Params
		if q.Sampler != "confidence" && q.Sampler != "margin" || q.Schedule != "threshold" || q.Temperature != 0 || q.BlockSize != 0 || q.Length != "auto" {
			fmt.Fprintln(w, "  PyTorch reference: skipped (it runs the default sampler, schedule and length policy only)")
			return nil
		}
		r := refReq{Tokens: c.Tokens, Sampler: q.Sampler, Recompute: q.Recompute, Threshold: q.Threshold, EndThresh: q.EndThreshold, Steps: q.Steps,
			PadPenalty: q.PadPenalty, Mask: m.Config.MaskID, EOS: m.Config.EOSID, Pad: m.Config.PadID}
		for _, s := range c.Spans {
			r.Spans = append(r.Spans, refSpan{s.Pos, s.N, s.SingleLine})
			if s.SingleLine {
				r.Newlines = c.Newlines
			}
		}
		reqs = append(reqs, r)
	}
	in, err := json.Marshal(map[string]any{"model": dir, "threads": runtime.GOMAXPROCS(0), "requests": reqs})
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", script)
	cmd.Stdin = bytes.NewReader(in)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("PyTorch reference: %v: %s", err, strings.TrimSpace(errb.String()))
	}
	var res struct {
		Results []struct {
			Spans [][]int32 `json:"spans"`
			MS    float64   `json:"ms"`
		} `json:"results"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || len(res.Results) != len(reqs) {
		return fmt.Errorf("PyTorch reference: bad output (%v): %.200s", err, out.String())
	}
	var refCold, refBlock []time.Duration
	same := 0
	for i, r := range res.Results {
		d := time.Duration(r.MS * float64(time.Millisecond))
		if i < len(cold) {
			refCold = append(refCold, d)
		} else {
			refBlock = append(refBlock, d)
		}
		var ids []int32
		for _, id := range r.Spans[0] {
			if id != m.Config.PadID && id != m.Config.EOSID {
				ids = append(ids, id)
			}
		}
		if m.Tokenizer.Decode(ids) == goTimes[i].raw {
			same++
		}
	}
	fmt.Fprintf(w, "  PyTorch reference (torch %d threads, same weights and canvases, dual cache, float32):\n", runtime.GOMAXPROCS(0))
	fmt.Fprintf(w, "  %-34s p50 %7.1f ms   Go/PyTorch %.2f\n", "one-line completion, cold", infillPct(refCold, 0.5), infillPct(ms(cold), 0.5)/infillPct(refCold, 0.5))
	fmt.Fprintf(w, "  %-34s p50 %7.1f ms   Go/PyTorch %.2f\n", "three-line infill, cold", infillPct(refBlock, 0.5), infillPct(ms(block), 0.5)/infillPct(refBlock, 0.5))
	fmt.Fprintf(w, "  same tokens as the Go engine (before post-processing): %d of %d\n", same, len(reqs))
	return nil
}

// infillPct is the q-quantile of d in milliseconds.
func infillPct(d []time.Duration, q float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[min(len(s)-1, int(q*float64(len(s))))].Microseconds()) / 1000
}

// writeBuiltinFiles writes the built-in model's files under dir, for the
// PyTorch reference to load.
func writeBuiltinFiles(dir string) (string, error) {
	dir = filepath.Join(dir, "builtin")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", err
	}
	for name, b := range builtin.Files() {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}
