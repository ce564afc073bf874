package infill

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/diffill/diffill/model/builtin"
)

// TestCopyPriorCopies: the built-in model completes a call that the
// document makes, word for word, a few lines up, only with the copy prior.
func TestCopyPriorCopies(t *testing.T) {
	m, err := builtin.Load()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	eng := NewEngine(m)
	pre := "package shop\n\nfunc restock(inv *Inventory) {\n\ttotals := computeWidgetTotals(inv.items, warehouseIndex, 42)\n\tinv.apply(totals)\n}\n\nfunc audit(inv *Inventory) {\n\ttotals := computeWidget"
	suf := "\n\tinv.check(totals)\n}\n"
	want := "Totals(inv.items, warehouseIndex, 42)"
	run := func(corpus string) string {
		res, err := eng.Run(context.Background(), &Request{
			Text: pre + suf, Spans: []Span{{Start: len(pre), End: len(pre)}},
			Mode: ModeComplete, Params: DefaultParams(), Corpus: corpus,
		})
		if err != nil {
			t.Fatal(err)
		}
		return res.Candidates[0].Edits[0].NewText
	}
	without := run("")
	// As workspace.Corpus orders it: the text before the cursor last, so
	// that the cursor's own left run has nothing after it to copy.
	with := run(suf + "\n" + pre)
	t.Logf("without the prior %q, with it %q", without, with)
	if strings.TrimSpace(without) == want {
		t.Fatalf("the model alone already writes %q: the case shows nothing", want)
	}
	if strings.TrimSpace(with) != want {
		t.Fatalf("with the copy prior: %q, want %q", with, want)
	}
}

// TestCopyPriorYieldsToConfidentModel: a draft is mixed into an unsure
// model's distribution and wins, but a model at least copyConfident sure
// of another token keeps it.
func TestCopyPriorYieldsToConfidentModel(t *testing.T) {
	argmax := func(row []float32) int {
		b := 0
		for i, v := range row {
			if v > row[b] {
				b = i
			}
		}
		return b
	}
	mix := (&decoder{}).mixCopy
	// Token 1 at 0.995, the rest shared: confident.
	confident := []float32{0, 7, 0, 0, 0, 0}
	mix(confident, draft{tok: 3, lam: copyMaxWeight})
	if argmax(confident) != 1 {
		t.Fatalf("a confident model was overridden: argmax %d", argmax(confident))
	}
	// Token 1 at about 0.6: unsure; a long run's draft takes over.
	unsure := []float32{0, 2, 0, 0, 0, 0}
	mix(unsure, draft{tok: 3, lam: copyMaxWeight})
	if argmax(unsure) != 3 {
		t.Fatalf("an unsure model kept its token against a strong draft: argmax %d", argmax(unsure))
	}
	// A confident model that agrees with the draft keeps it, surer.
	agree := []float32{0, 5, 0, 0, 0, 0}
	mix(agree, draft{tok: 1, lam: 0.5})
	if argmax(agree) != 1 {
		t.Fatalf("agreeing draft: argmax %d", argmax(agree))
	}
}

// TestMixCopyDistribution: the mixed logits' softmax is exactly
// (1-λ)·p + λ·onehot.
func TestMixCopyDistribution(t *testing.T) {
	row := []float32{0.5, 2, -1, 1, 0, 3}
	p := softmax64(row)
	mixed := append([]float32(nil), row...)
	(&decoder{}).mixCopy(mixed, draft{tok: 3, lam: 0.6})
	q := softmax64(mixed)
	for i := range p {
		want := 0.4 * p[i]
		if i == 3 {
			want += 0.6
		}
		if d := q[i] - want; d > 1e-5 || d < -1e-5 {
			t.Fatalf("token %d: %.6f, want %.6f", i, q[i], want)
		}
	}
}

func softmax64(row []float32) []float64 {
	mx := row[0]
	for _, v := range row {
		mx = max(mx, v)
	}
	out := make([]float64, len(row))
	sum := 0.0
	for i, v := range row {
		out[i] = math.Exp(float64(v - mx))
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}
