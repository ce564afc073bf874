package tokenizer

import (
	"regexp"
	"slices"
	"testing"
)

// FuzzEncodeDecode: any bytes encode without panic, decode back (to their
// NFC form where the tokenizer normalizes), and encode the same way with
// and without the word cache.
func FuzzEncodeDecode(f *testing.F) {
	for _, s := range invalidUTF8 {
		f.Add(s)
	}
	f.Add("func main() {\r\n\tx := `<|mask|>` // 'll é\u0301 👩🏾‍💻\n}")
	toks := map[string]*Tokenizer{}
	for _, dir := range []string{"gpt2", "qwen2", "llama3", "deepseek", "goaware"} {
		toks[dir] = loadTestTokenizer(f, dir)
	}
	fresh := loadTestTokenizer(f, "goaware")
	f.Fuzz(func(t *testing.T, s string) {
		for dir, tok := range toks {
			ids := tok.EncodeOrdinary(s)
			if got, want := tok.Decode(ids), roundTripWant(tok, s); got != want {
				t.Fatalf("%s: Decode(EncodeOrdinary(%q)) = %q, want %q", dir, s, got, want)
			}
			for _, id := range tok.Encode(s) {
				if id < 0 || int(id) >= tok.VocabSize() {
					t.Fatalf("%s: Encode(%q) gives id %d outside the vocab", dir, s, id)
				}
			}
		}
		gw := toks["goaware"]
		if got := gw.Decode(gw.Encode(s)); got != s {
			t.Fatalf("goaware: Decode(Encode(%q)) = %q", s, got)
		}
		// The cache of toks["goaware"] is warm from earlier inputs; fresh's is
		// cleared for every input.
		fresh.cache = newWordCache(DefaultCacheWords)
		if a, b := gw.Encode(s), fresh.Encode(s); !slices.Equal(a, b) {
			t.Fatalf("Encode(%q) with a warm cache = %v, with a cold one %v", s, a, b)
		}
	})
}

// FuzzGoSplitter holds the hand-written Go-aware splitter to Go's regexp.
func FuzzGoSplitter(f *testing.F) {
	for _, s := range invalidUTF8 {
		f.Add(s)
	}
	f.Add("\r\r\n\n\t x_1 123456 \u00a0.()_é\u0301")
	re := regexpSplitter{regexp.MustCompile(PatternGo)}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := splitPieces(goSplitter{}, s), splitPieces(re, s); !slices.Equal(got, want) {
			t.Fatalf("split %q:\n got %q\nwant %q", s, got, want)
		}
	})
}
