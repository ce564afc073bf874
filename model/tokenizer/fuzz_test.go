package tokenizer

import (
	"io/fs"
	"os"
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

// FuzzTokenizerJSON: any tokenizer.json either fails to load with an error
// or gives a tokenizer whose every encoding stays inside its vocabulary and
// decodes without panicking, and whose ids each name one token.
func FuzzTokenizerJSON(f *testing.F) {
	for _, p := range []string{"../testdata/qwen2-tiny/tokenizer.json", "../testdata/llada-tiny/tokenizer.json"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{"a":0,"b":0},"merges":[]}}`))
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]},"added_tokens":[{"id":1,"content":"<m>","special":true},{"id":1,"content":"<n>","special":true}]}`))
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{"a":2147483647},"merges":[]}}`))
	samples := []string{"", "func main() {\n\tx := 1\n}", "<m><n>ab\xff\xfe", "aaaa bbbb abab"}
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := FromFiles(func(name string) ([]byte, error) {
			if name == "tokenizer.json" {
				return data, nil
			}
			return nil, fs.ErrNotExist
		})
		if err != nil {
			return
		}
		n := tok.VocabSize()
		for _, s := range samples {
			ids := tok.Encode(s)
			for _, id := range ids {
				if id < 0 || int(id) >= n {
					t.Fatalf("Encode(%q) gives id %d outside the vocabulary of %d", s, id, n)
				}
			}
			tok.Decode(ids)
		}
		seen := map[int32]string{}
		for s, id := range tok.vocab {
			if prev, dup := seen[id]; dup {
				t.Fatalf("%q and %q share id %d", prev, s, id)
			}
			seen[id] = s
			tok.TokenBytes(id)
		}
	})
}
