package infill

import (
	"math"
	"strings"
	"testing"
)

// byteCodec is a tokenizer with one token per byte (id = byte + 3) and
// three special tokens: 0 EOS, 1 mask, 2 pad. The window and layout code
// only needs a codec; the real tokenizers are tested in the engine tests.
type byteCodec struct{}

func (byteCodec) EncodeOrdinary(s string) []int32 {
	out := make([]int32, len(s))
	for i := 0; i < len(s); i++ {
		out[i] = int32(s[i]) + 3
	}
	return out
}

func (c byteCodec) Decode(ids []int32) string {
	var b strings.Builder
	for _, id := range ids {
		b.Write(c.TokenBytes(id))
	}
	return b.String()
}

func (byteCodec) TokenBytes(id int32) []byte {
	if id < 3 || id > 258 {
		return nil
	}
	return []byte{byte(id - 3)}
}

func TestRNGDeterministicAndUniform(t *testing.T) {
	a, b := newRNG(7), newRNG(7)
	c := newRNG(8)
	same := true
	var sum float64
	const n = 20000
	for i := 0; i < n; i++ {
		x, y, z := a.float64(), b.float64(), c.float64()
		if x != y {
			t.Fatalf("same seed diverged at %d: %v vs %v", i, x, y)
		}
		if x != z {
			same = false
		}
		if x <= 0 || x >= 1 {
			t.Fatalf("float64() = %v, want (0, 1)", x)
		}
		sum += x
	}
	if same {
		t.Fatal("seeds 7 and 8 gave the same stream")
	}
	if m := sum / n; math.Abs(m-0.5) > 0.01 {
		t.Fatalf("mean %v, want ~0.5", m)
	}
}

func TestGreedyProposal(t *testing.T) {
	row := []float32{1, 3, 2, 0}
	for _, tc := range []struct {
		kind  samplerKind
		score float64
	}{
		{byConfidence, 0},
		{byMargin, 0},
		{byEntropy, 0},
	} {
		s := sampler{kind: tc.kind}
		p := s.propose(append([]float32(nil), row...), nil, newRNG(1))
		if p.tok != 1 {
			t.Fatalf("%v: tok %d, want 1", tc.kind, p.tok)
		}
		// Reference values in float64.
		var z float64
		for _, v := range row {
			z += math.Exp(float64(v))
		}
		probs := make([]float64, len(row))
		var h float64
		for i, v := range row {
			probs[i] = math.Exp(float64(v)) / z
			h -= probs[i] * math.Log(probs[i])
		}
		if math.Abs(p.prob-probs[1]) > 1e-6 || math.Abs(p.logp-math.Log(probs[1])) > 1e-6 { // float32 softmax
			t.Fatalf("prob %v logp %v, want %v", p.prob, p.logp, probs[1])
		}
		want := map[samplerKind]float64{byConfidence: probs[1], byMargin: probs[1] - probs[2], byEntropy: -h}[tc.kind]
		if math.Abs(p.score-want) > 1e-6 {
			t.Fatalf("%v: score %v, want %v", tc.kind, p.score, want)
		}
	}
}

func TestBannedTokensNeverPicked(t *testing.T) {
	row := []float32{5, 4, 3, 2}
	for _, s := range []sampler{{}, {temperature: 1}, {topK: 2}, {topP: 0.5}, {temperature: 2, topK: 3, topP: 0.9}} {
		r := newRNG(3)
		for i := 0; i < 200; i++ {
			p := s.propose(append([]float32(nil), row...), []int32{0, 1}, r)
			if p.tok == 0 || p.tok == 1 {
				t.Fatalf("%+v picked banned token %d", s, p.tok)
			}
		}
	}
}

func TestTemperatureSamplesSoftmax(t *testing.T) {
	row := []float32{0, float32(math.Log(2)), float32(math.Log(3))} // probs 1/6, 2/6, 3/6
	s := sampler{temperature: 1}
	r := newRNG(11)
	counts := make([]int, 3)
	const n = 30000
	for i := 0; i < n; i++ {
		p := s.propose(append([]float32(nil), row...), nil, r)
		counts[p.tok]++
		if want := float64(p.tok+1) / 6; math.Abs(p.prob-want) > 1e-6 {
			t.Fatalf("prob of %d = %v, want %v", p.tok, p.prob, want)
		}
	}
	for i, c := range counts {
		want := float64(i+1) / 6
		if got := float64(c) / n; math.Abs(got-want) > 0.015 {
			t.Fatalf("token %d sampled %.3f, want %.3f", i, got, want)
		}
	}
}

func TestTopKTopP(t *testing.T) {
	row := []float32{4, 3, 2, 1, 0}
	r := newRNG(5)
	seen := map[int32]bool{}
	for i := 0; i < 2000; i++ {
		p := (&sampler{temperature: 5, topK: 2}).propose(append([]float32(nil), row...), nil, r)
		seen[p.tok] = true
	}
	if len(seen) != 2 || !seen[0] || !seen[1] {
		t.Fatalf("top-k 2 sampled %v, want {0, 1}", seen)
	}
	// probs of row: .636 .234 .086 ...: top-p 0.7 keeps {0, 1}.
	seen = map[int32]bool{}
	for i := 0; i < 2000; i++ {
		p := (&sampler{temperature: 1, topP: 0.7}).propose(append([]float32(nil), row...), nil, r)
		seen[p.tok] = true
	}
	if len(seen) != 2 || !seen[0] || !seen[1] {
		t.Fatalf("top-p 0.7 sampled %v, want {0, 1}", seen)
	}
	// Greedy with top-k renormalises over the kept tokens.
	p := (&sampler{topK: 2}).propose(append([]float32(nil), row...), nil, r)
	if want := 1 / (1 + math.Exp(-1)); p.tok != 0 || math.Abs(p.prob-want) > 1e-9 {
		t.Fatalf("top-k greedy: %+v, want tok 0 prob %v", p, want)
	}
}

func TestScheduleQuotas(t *testing.T) {
	total := func(s schedule, steps, initial int) (n int, per []int) {
		left := initial
		for i := 0; left > 0; i++ {
			q := s.quota(i, steps, initial, left)
			if q < 1 {
				t.Fatalf("%v: step %d quota %d", s.kind, i, q)
			}
			per = append(per, q)
			left -= q
			n++
		}
		return n, per
	}
	if n, per := total(schedule{kind: schedFixed}, 4, 10); n != 4 || per[0] != 3 || per[1] != 3 || per[2] != 2 || per[3] != 2 {
		t.Fatalf("fixed 10 over 4: %v", per)
	}
	if n, _ := total(schedule{kind: schedDream, eps: 1e-3}, 8, 20); n != 8 {
		t.Fatalf("dream took %d steps, want 8", n)
	}
	if n, _ := total(schedule{kind: schedThreshold}, 5, 20); n != 5 {
		t.Fatalf("threshold floor took %d steps, want 5 (last step takes the rest)", n)
	}
	// Dream: 1 - s/t of what is left; early steps take little.
	s := schedule{kind: schedDream, eps: 1e-3}
	if q := s.quota(0, 10, 100, 100); q != 9 { // int(100 * (1 - 0.9001))
		t.Fatalf("dream step 0 of 10 over 100: %d, want 9", q)
	}
}

func TestThresholdChoose(t *testing.T) {
	s := schedule{kind: schedThreshold, threshold: 0.8}
	mk := func(pos int, prob, score float64) candidate {
		return candidate{pos: pos, p: proposal{prob: prob, score: score}}
	}
	got := s.choose([]candidate{mk(0, 0.5, 0.5), mk(1, 0.9, 0.1), mk(2, 0.7, 0.7), mk(3, 0.85, 0.9)}, 1)
	pos := map[int]bool{}
	for _, c := range got {
		pos[c.pos] = true
	}
	if len(got) != 2 || !pos[1] || !pos[3] {
		t.Fatalf("chose %v, want positions 1 and 3", got)
	}
	// Nothing above the threshold: the best by score.
	got = s.choose([]candidate{mk(0, 0.5, 0.5), mk(1, 0.2, 0.6)}, 1)
	if len(got) != 1 || got[0].pos != 1 {
		t.Fatalf("chose %v, want position 1", got)
	}
}

func TestWindowCutsAtLines(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 100; i++ {
		b.WriteString("line ")
		b.WriteString(strings.Repeat("x", i%7))
		b.WriteString("\n")
	}
	text := b.String()
	c := byteCodec{}
	for _, limit := range []int{1, 5, 37, 200, 10000} {
		tail := c.Decode(encodeTail(c, text+"cur", limit))
		if len(tail) > limit {
			t.Fatalf("tail %d: %d tokens", limit, len(tail))
		}
		if !strings.HasSuffix(text+"cur", tail) {
			t.Fatalf("tail %d is not a suffix", limit)
		}
		if whole := text + "cur"; tail != whole && limit > 10 && tail[0] == 'x' {
			t.Fatalf("tail %d starts mid-line: %q", limit, tail[:10])
		}
		head := c.Decode(encodeHead(c, "rest\n"+text, limit))
		if len(head) > limit || !strings.HasPrefix("rest\n"+text, head) {
			t.Fatalf("head %d: %q", limit, head)
		}
		if limit > 10 && limit < len(text) && !strings.HasSuffix(head, "\n") {
			t.Fatalf("head %d does not end at a line end: %q", limit, head[len(head)-5:])
		}
	}
	if pre, suf := splitBudget(100, 20, 500); pre != 20 || suf != 80 {
		t.Fatalf("split: %d %d", pre, suf)
	}
	if pre, suf := splitBudget(100, 500, 500); pre != 50 || suf != 50 {
		t.Fatalf("split: %d %d", pre, suf)
	}
	if pre, suf := splitBudget(100, 500, 10); pre != 90 || suf != 10 {
		t.Fatalf("split: %d %d", pre, suf)
	}
}

func TestMultiLinePoint(t *testing.T) {
	for _, tc := range []struct {
		text string
		want bool
	}{
		{"func f() {\n\t|\n}", true},
		{"func f() {|\n}", true},
		{"func f() {\n\tx := |\n}", false},
		{"\tfoo(|)\n", false},
		{"|", true},
	} {
		off := strings.Index(tc.text, "|")
		text := strings.Replace(tc.text, "|", "", 1)
		if got := multiLinePoint(text, off); got != tc.want {
			t.Errorf("%q: %v, want %v", tc.text, got, tc.want)
		}
	}
}
