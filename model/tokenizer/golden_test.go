package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// goldenText is an entry of testdata/golden/texts.json, and goldenCase
// one of testdata/golden/NAME.json, both written by testdata/gen/gen.js
// with Hugging Face `tokenizers`.
type goldenText struct {
	Name string `json:"name"`
	Text string `json:"text"`
}

type goldenCase struct {
	IDs      []int32 `json:"ids"`      // encode, add_special_tokens=false
	Ordinary []int32 `json:"ordinary"` // without special tokens; nil: same as IDs
	Decoded  *string `json:"decoded"`  // decode(ids); nil: the text itself
}

func readJSON(t testing.TB, file string, v any) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

func goldenTexts(t testing.TB) []goldenText {
	var texts []goldenText
	readJSON(t, "testdata/golden/texts.json", &texts)
	return texts
}

func loadTestTokenizer(t testing.TB, dir string) *Tokenizer {
	t.Helper()
	tok, err := Load(filepath.Join("testdata", dir))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestGolden holds every tokenizer to Hugging Face's encodings of the corpus
// and of random strings, token for token.
func TestGolden(t *testing.T) {
	texts := goldenTexts(t)
	for _, tc := range []struct{ dir, golden string }{
		{"gpt2", "gpt2"},
		{"qwen2", "qwen2"},
		{"qwen2-slow", "qwen2"}, // vocab.json + merges.txt must encode as tokenizer.json does
		{"llama3", "llama3"},
		{"deepseek", "deepseek"},
		{"gpt2-prefix", "gpt2-prefix"},
		{"goaware", "goaware"},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			tok := loadTestTokenizer(t, tc.dir)
			var cases []goldenCase
			readJSON(t, filepath.Join("testdata/golden", tc.golden+".json"), &cases)
			if len(cases) != len(texts) {
				t.Fatalf("golden has %d cases for %d texts", len(cases), len(texts))
			}
			failed := 0
			for i, c := range cases {
				name, text := texts[i].Name, texts[i].Text
				want := c.IDs
				wantOrd := c.Ordinary
				if wantOrd == nil {
					wantOrd = want
				}
				wantDec := text
				if c.Decoded != nil {
					wantDec = *c.Decoded
				}
				var errs []string
				if got := tok.Encode(text); !slices.Equal(got, want) {
					errs = append(errs, "Encode:\n"+diffIDs(tok, got, want))
				}
				if got := tok.EncodeOrdinary(text); !slices.Equal(got, wantOrd) {
					errs = append(errs, "EncodeOrdinary:\n"+diffIDs(tok, got, wantOrd))
				}
				if got := tok.Decode(want); got != wantDec && !garbledByHF(tok, want) {
					errs = append(errs, fmt.Sprintf("Decode(golden ids) = %q, want %q", got, wantDec))
				}
				if len(errs) > 0 {
					failed++
					if failed <= 5 {
						t.Errorf("%s %q:\n%s", name, text, errs)
					}
				}
			}
			if failed > 0 {
				t.Errorf("%d of %d texts differ from Hugging Face", failed, len(cases))
			}
		})
	}
}

// garbledByHF reports whether ids hold an added token that Hugging Face's
// decode garbles: its ByteLevel decoder maps added tokens' content through
// the byte alphabet too, so "café" comes out as "caf\xe9" (then U+FFFD).
// Decode returns the content instead.
func garbledByHF(tok *Tokenizer, ids []int32) bool {
	for _, id := range ids {
		if a, ok := tok.addedByID[id]; ok {
			if raw, ok := newByteLevel().decodeStrict(a.Content); ok && string(raw) != a.Content {
				return true
			}
		}
	}
	return false
}

// diffIDs shows two encodings side by side from the first difference.
func diffIDs(tok *Tokenizer, got, want []int32) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	show := func(ids []int32) string {
		end := min(len(ids), i+8)
		s := ""
		for _, id := range ids[i:end] {
			s += fmt.Sprintf(" %d%q", id, tok.TokenBytes(id))
		}
		return s
	}
	return fmt.Sprintf("  first difference at token %d (got %d tokens, want %d)\n  got: %s\n  want:%s",
		i, len(got), len(want), show(got), show(want))
}
