package model

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// The tiny checkpoints under testdata/ and their golden logits come from
// reference/make_tiny.py, whose forward pass (reference/reference.py) is an
// independent PyTorch implementation.

var tinyDirs = []string{"qwen2-tiny", "qwen2-tiny-bf16", "llada-tiny", "llada-tiny-bf16"}

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

// compareLogits returns max|got-want| / max|want| and the rows whose argmax
// differ.
func compareLogits(got, want []float32, vocab int) (rel float64, badRows []int) {
	var maxDiff, maxRef float64
	for i := range want {
		maxDiff = math.Max(maxDiff, math.Abs(float64(got[i])-float64(want[i])))
		maxRef = math.Max(maxRef, math.Abs(float64(want[i])))
	}
	for r := 0; r < len(want)/vocab; r++ {
		if argmax(got[r*vocab:(r+1)*vocab]) != argmax(want[r*vocab:(r+1)*vocab]) {
			badRows = append(badRows, r)
		}
	}
	return maxDiff / maxRef, badRows
}

func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

func TestGolden(t *testing.T) {
	for _, name := range tinyDirs {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("testdata", name)
			m, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			for _, c := range readGolden(t, dir).Cases {
				checkGoldenCase(t, m, dir, c.Name, 1e-4)
			}
		})
	}
}

// checkGoldenCase runs the named golden case of dir on m and compares: max
// relative error <= tol and, when tol is the float32 tolerance, the same
// argmax in every row.
func checkGoldenCase(t *testing.T, m *Model, dir, name string, tol float64) {
	t.Helper()
	g := readGolden(t, dir)
	if g.Vocab != m.Config.Vocab {
		t.Fatalf("golden vocab %d, model %d", g.Vocab, m.Config.Vocab)
	}
	var c *goldenCase
	for i := range g.Cases {
		if g.Cases[i].Name == name {
			c = &g.Cases[i]
		}
	}
	if c == nil {
		t.Fatalf("%s: no golden case %q", dir, name)
	}
	ctx := context.Background()
	b := &Batch{Tokens: c.Tokens, Compute: c.Compute, Logits: c.Logits}
	if c.CacheTokens != nil {
		b.Cache = m.NewCache(len(c.CacheTokens))
		if _, err := m.Forward(ctx, &Batch{Tokens: c.CacheTokens, Cache: b.Cache, Logits: []int{}}); err != nil {
			t.Fatal(err)
		}
	}
	out, err := m.Forward(ctx, b)
	if err != nil {
		t.Fatalf("%s: %v", c.Name, err)
	}
	if s := out.Shape(); s[0] != c.Rows || s[1] != g.Vocab {
		t.Fatalf("%s: shape %v, want [%d %d]", c.Name, s, c.Rows, g.Vocab)
	}
	want := g.data[c.Offset : c.Offset+c.Rows*g.Vocab]
	rel, bad := compareLogits(out.Data().([]float32), want, g.Vocab)
	t.Logf("%s: %d rows, max relative error %.2e", c.Name, c.Rows, rel)
	if rel > tol {
		t.Errorf("%s: max relative error %.2e > %.0e", c.Name, rel, tol)
	}
	if tol <= 1e-4 && len(bad) > 0 {
		t.Errorf("%s: argmax differs at rows %v", c.Name, bad)
	}
}

func float32FromBits(b uint32) float32 { return math.Float32frombits(b) }

// f32ToF16 rounds to the nearest half-precision number (normal range only,
// which is all the test weights need).
func f32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23&0xff) - 127 + 15
	mant := b & 0x7fffff
	if exp <= 0 {
		return sign
	}
	// Round to nearest even on the 13 dropped bits.
	r := mant + 0xfff + (mant>>13)&1
	if r&0x800000 != 0 {
		r = 0
		exp++
	}
	return sign | uint16(exp)<<10 | uint16(r>>13)
}

// TestTinyTokenizer checks that the tiny checkpoints' tokenizer loads with the
// model and knows diffill's special tokens, as other packages' tests rely on.
func TestTinyTokenizer(t *testing.T) {
	m, err := Load(filepath.Join("testdata", "qwen2-tiny"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Tokenizer == nil {
		t.Fatal("no tokenizer")
	}
	c := m.Config
	if c.EOSID != 0 || c.MaskID != 1 || c.PadID != 2 || c.BOSID != 0 || c.ExpandID != -1 || c.ShiftLogits {
		t.Fatalf("special ids: eos %d mask %d pad %d bos %d expand %d shift %v", c.EOSID, c.MaskID, c.PadID, c.BOSID, c.ExpandID, c.ShiftLogits)
	}
	src := "func main() {\n\tfmt.Println(\"héllo\")\n}<|mask|><|mask|>"
	ids := m.Tokenizer.Encode(src)
	if got := m.Tokenizer.Decode(ids); got != src {
		t.Fatalf("decode(encode(s)) = %q", got)
	}
	if ids[len(ids)-1] != c.MaskID || ids[len(ids)-2] != c.MaskID {
		t.Fatalf("masks not encoded as %d: %v", c.MaskID, ids)
	}
	if _, err := m.Forward(context.Background(), &Batch{Tokens: ids}); err != nil {
		t.Fatal(err)
	}
}
