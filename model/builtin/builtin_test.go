package builtin

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"slices"
	"testing"

	"github.com/diffill/diffill/model"
)

func TestFiles(t *testing.T) {
	files := Files()
	for _, name := range []string{"config.json", "model.safetensors", "tokenizer.json"} {
		if len(files[name]) == 0 {
			t.Errorf("Files()[%q] is empty", name)
		}
	}
	var cfg map[string]any
	if err := json.Unmarshal(files["config.json"], &cfg); err != nil {
		t.Fatalf("config.json: %v", err)
	}
	if cfg["model_type"] != "qwen2" || cfg["shift_logits"] != false {
		t.Errorf("config.json: model_type %v, shift_logits %v; want qwen2, false", cfg["model_type"], cfg["shift_logits"])
	}
}

func TestLoad(t *testing.T) {
	m, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	c := m.Config
	if c.Family != "qwen2" || c.ShiftLogits || !c.TieEmbeddings || !c.QKVBias {
		t.Errorf("config %+v: want qwen2, no logit shift, tied embeddings, q/k/v bias", c)
	}
	// The special tokens every diffill component relies on (contracts).
	if c.EOSID != 0 || c.MaskID != 1 || c.PadID != 2 {
		t.Errorf("special ids eos %d mask %d pad %d; want 0 1 2", c.EOSID, c.MaskID, c.PadID)
	}
	if m.Tokenizer == nil {
		t.Fatal("no tokenizer")
	}
	for tok, want := range map[string]int32{"<|endoftext|>": 0, "<|mask|>": 1, "<|pad|>": 2} {
		if id, ok := m.Tokenizer.ID(tok); !ok || id != want {
			t.Errorf("tokenizer ID(%q) = %d, %v; want %d", tok, id, ok, want)
		}
	}
	if m.Tokenizer.VocabSize() != c.Vocab {
		t.Errorf("tokenizer has %d tokens, config %d", m.Tokenizer.VocabSize(), c.Vocab)
	}
	src := "func f(xs []int) (n int) {\n\tfor _, x := range xs {\n\t\tn += x\n\t}\n\treturn n\n}\n"
	if got := m.Tokenizer.Decode(m.Tokenizer.EncodeOrdinary(src)); got != src {
		t.Errorf("tokenizer round trip: %q", got)
	}
}

// golden is written by model/train/golden.py from the same weights with the
// PyTorch code that trained them.
type golden struct {
	Prefix   string  `json:"prefix"`
	Suffix   string  `json:"suffix"`
	Masks    int     `json:"masks"`
	IDs      []int32 `json:"ids"`
	ProbeIDs []int   `json:"probe_ids"`
	Rows     []struct {
		Position int          `json:"position"`
		Top      [][2]float64 `json:"top"`
		Probe    []float64    `json:"probe"`
	} `json:"rows"`
}

// TestGolden holds the Go engine and tokenizer to the training code on the
// built-in weights.
func TestGolden(t *testing.T) {
	raw, err := os.ReadFile("testdata/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	m, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	ids := m.Tokenizer.EncodeOrdinary(g.Prefix)
	for range g.Masks {
		ids = append(ids, m.Config.MaskID)
	}
	ids = append(ids, m.Tokenizer.EncodeOrdinary(g.Suffix)...)
	if !slices.Equal(ids, g.IDs) {
		t.Fatalf("token ids differ from the Python tokenizer's:\n go %v\n py %v", ids, g.IDs)
	}
	positions := make([]int, len(g.Rows))
	for i, r := range g.Rows {
		positions[i] = r.Position
	}
	out, err := m.Forward(context.Background(), &model.Batch{Tokens: ids, Logits: positions})
	if err != nil {
		t.Fatal(err)
	}
	logits := out.Data().([]float32)
	V := m.Config.Vocab
	near := func(got float32, want float64) bool {
		return math.Abs(float64(got)-want) <= 2e-2+2e-2*math.Abs(want)
	}
	for i, r := range g.Rows {
		row := logits[i*V : (i+1)*V]
		for _, tv := range r.Top {
			if id := int(tv[0]); !near(row[id], tv[1]) {
				t.Errorf("position %d: logit of top token %d = %g, reference %g", r.Position, id, row[id], tv[1])
			}
		}
		for j, id := range g.ProbeIDs[:len(r.Probe)] {
			if !near(row[id], r.Probe[j]) {
				t.Errorf("position %d: logit of token %d = %g, reference %g", r.Position, id, row[id], r.Probe[j])
			}
		}
		// The argmax agrees unless the reference's top two are a near tie.
		best := 0
		for j := range row {
			if row[j] > row[best] {
				best = j
			}
		}
		if best != int(r.Top[0][0]) && r.Top[0][1]-r.Top[1][1] > 1e-2 {
			t.Errorf("position %d: argmax %d, reference %d", r.Position, best, int(r.Top[0][0]))
		}
	}
}
