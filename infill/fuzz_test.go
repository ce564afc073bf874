package infill

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzRun sends the engine arbitrary documents, spans, modes and
// parameters on real (tiny) checkpoints. Whatever comes in, Run must not
// panic, and must either refuse with an error or answer with edits that
// stay inside the document, in order, one per span, leaving the text
// outside them alone.
func FuzzRun(f *testing.F) {
	f.Add(goDoc, 40, 40, 60, 70, uint8(0), uint8(0), uint8(6), 0.5, uint64(1))
	f.Add("x := ???\ny := ???\n", 0, 0, 0, 0, uint8(3), uint8(1), uint8(4), 1.0, uint64(2))
	f.Add("\xff\xfe\x00 invalid ???", 1, 3, 2, 2, uint8(2), uint8(2), uint8(0), 0.3, uint64(3))
	f.Add("", 0, 0, -1, 5, uint8(1), uint8(3), uint8(1), 0.0, uint64(4))
	f.Add("a\r\nb\r\n", 3, 1, 9, 100, uint8(0), uint8(4), uint8(200), 2.0, uint64(5))
	// Both families: Qwen2 read with and without the Dream logit shift, and
	// LLaDA (no pad token: EOS ends spans).
	var engines []*Engine
	for _, name := range allTiny {
		engines = append(engines, NewEngine(loadTiny(f, name).m))
	}
	samplers := []string{"confidence", "margin", "entropy", "random", "bogus"}
	f.Fuzz(func(t *testing.T, text string, s0, e0, s1, e1 int, mode, knob, maxTok uint8, strength float64, seed uint64) {
		if len(text) > 4096 {
			text = text[:4096]
		}
		spans := []Span{{s0, e0}}
		if s1 >= 0 {
			spans = append(spans, Span{s1, e1})
		}
		p := DefaultParams()
		p.MaxTokens = int(maxTok % 24)
		p.Strength = strength
		p.Seed = seed
		p.Sampler = samplers[int(knob)%len(samplers)]
		p.SingleLine = knob&8 != 0
		p.ContextTokens = 16 + int(knob)*4
		if knob&16 != 0 {
			p.Temperature, p.TopK = 0.7, 5
		}
		if knob&32 != 0 {
			p.Length = "multi"
		}
		if knob&64 != 0 {
			p.BlockSize = 3
		}
		req := &Request{Text: text, Spans: spans, Mode: Mode(mode % 5), Params: p}
		e := engines[int(seed%uint64(len(engines)))]
		res, err := e.Run(context.Background(), req)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		for _, c := range res.Candidates {
			if req.Mode != ModeFillHoles && len(c.Edits) != len(spans) {
				t.Fatalf("%d edits for %d spans", len(c.Edits), len(spans))
			}
			last := 0
			for _, ed := range c.Edits {
				if ed.Start < last || ed.End < ed.Start || ed.End > len(text) {
					t.Fatalf("edit [%d, %d) out of order or outside the %d-byte document (previous end %d)", ed.Start, ed.End, len(text), last)
				}
				if utf8.ValidString(text) && !utf8.ValidString(ed.NewText) {
					t.Fatalf("invalid UTF-8 answer %q for a valid document", ed.NewText)
				}
				if strings.Contains(ed.NewText, "<|mask|>") {
					t.Fatalf("mask token text in answer %q", ed.NewText)
				}
				last = ed.End
			}
			if out := Apply(text, c.Edits); len(c.Edits) > 0 && !strings.HasPrefix(out, text[:c.Edits[0].Start]) {
				t.Fatal("text before the first edit changed")
			}
		}
	})
}
