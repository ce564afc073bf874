package tokenizer

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"unicode/utf8"
)

var testTokenizers = []string{"gpt2", "qwen2", "qwen2-slow", "llama3", "deepseek", "goaware"}

// roundTripWant is what Decode(EncodeOrdinary(s)) must give: s itself, or
// its NFC form for tokenizers that normalize.
func roundTripWant(tok *Tokenizer, s string) string {
	if tok.nfc {
		return nfc(s)
	}
	return s
}

// invalidUTF8 are texts with bytes Hugging Face cannot take (it only takes
// valid Unicode); diffill encodes them byte for byte.
var invalidUTF8 = []string{
	"\xff", "\x80\x80", "a\xffb", "func f() {\xc3}", "\xe2\x82", "é\xe9", "\xed\xa0\x80", // surrogate half
	"\xf4\x90\x80\x80", "  \xfe  \n\xff\t", "<|mask|>\xff<|mask|>", "'\xffs", "\xc0\xaf", "x\xe2\x80\x8d\xff",
}

func TestRoundTrip(t *testing.T) {
	texts := goldenTexts(t)
	for _, dir := range testTokenizers {
		tok := loadTestTokenizer(t, dir)
		check := func(s string) {
			t.Helper()
			if got, want := tok.Decode(tok.EncodeOrdinary(s)), roundTripWant(tok, s); got != want {
				t.Errorf("%s: Decode(EncodeOrdinary(%q)) = %q", dir, s, got)
			}
			// The test tokenizers strip whitespace only around special tokens
			// (gpt2's <mask> and [SEP]); elsewhere Encode round-trips too.
			if dir != "gpt2" {
				if got, want := tok.Decode(tok.Encode(s)), roundTripWant(tok, s); got != want {
					t.Errorf("%s: Decode(Encode(%q)) = %q", dir, s, got)
				}
			}
		}
		for _, tx := range texts {
			check(tx.Text)
		}
		for _, s := range invalidUTF8 {
			check(s)
		}
	}
}

// TestInvalidUTF8 checks the documented rule: an invalid byte splits text as
// U+FFFD would, and everything else is encoded as Hugging Face does.
func TestInvalidUTF8(t *testing.T) {
	for _, dir := range testTokenizers {
		tok := loadTestTokenizer(t, dir)
		for _, s := range invalidUTF8 {
			for _, sp := range tok.pre {
				got := splitPieces(sp, s)
				want := splitPieces(sp, replaceInvalid(s))
				if len(got) != len(want) {
					t.Errorf("%s: %T splits %q into %q, but with U+FFFD into %q", dir, sp, s, got, want)
					continue
				}
				for i := range got {
					if replaceInvalid(got[i]) != want[i] {
						t.Errorf("%s: %T splits %q into %q, but with U+FFFD into %q", dir, sp, s, got, want)
						break
					}
				}
			}
		}
	}
}

func replaceInvalid(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func splitPieces(sp splitter, s string) []string {
	var out []string
	prev := 0
	for _, end := range sp.split(s, nil) {
		out = append(out, s[prev:end])
		prev = end
	}
	return out
}

// TestGoSplitterMatchesRegexp holds the hand-written Go-aware splitter to
// Go's regexp running PatternGo, which needs no lookahead.
func TestGoSplitterMatchesRegexp(t *testing.T) {
	re := regexpSplitter{regexp.MustCompile(PatternGo)}
	texts := goldenTexts(t)
	inputs := []string{}
	for _, tx := range texts {
		inputs = append(inputs, tx.Text)
	}
	inputs = append(inputs, invalidUTF8...)
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"\r", "\n", "\r\n", "\t", " ", "  ", "a", "_", "1", "é", "\u0301", "\u00a0", "\u3000", ".", "(", "\xff", "中", "٣"}
	for range 2000 {
		var b strings.Builder
		for range rng.IntN(20) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		inputs = append(inputs, b.String())
	}
	for _, s := range inputs {
		got, want := splitPieces(goSplitter{}, s), splitPieces(re, s)
		if !slices.Equal(got, want) {
			t.Errorf("split %q:\n got %q\nwant %q", s, got, want)
		}
	}
}

// TestMergeHeapEqualsLinear checks that the two merge loops agree on every
// word, so that the length cut-over between them changes nothing.
func TestMergeHeapEqualsLinear(t *testing.T) {
	texts := goldenTexts(t)
	for _, dir := range []string{"gpt2", "qwen2", "goaware"} {
		tok := loadTestTokenizer(t, dir)
		var sc bpeScratch
		words := []string{strings.Repeat(" ", 200), strings.Repeat("ab", 100), strings.Repeat("=", 77)}
		for _, tx := range texts {
			words = append(words, tx.Text)
			words = append(words, splitPieces(tok.pre[0], tx.Text)...)
		}
		for _, w := range words {
			var syms []int32
			for i := 0; i < len(w); i++ {
				if id := tok.byteIDs[w[i]]; id >= 0 {
					syms = append(syms, id)
				}
			}
			lin := slices.Clone(tok.mergeLinear(slices.Clone(syms), &sc))
			heap := slices.Clone(tok.mergeHeap(slices.Clone(syms), &sc))
			if !slices.Equal(lin, heap) {
				t.Fatalf("%s: word %q: linear merge %v, heap merge %v", dir, w, lin, heap)
			}
		}
	}
}

func TestAPI(t *testing.T) {
	tok := loadTestTokenizer(t, "goaware")
	if got := tok.VocabSize(); got != 2000 {
		t.Errorf("VocabSize = %d, want 2000", got)
	}
	for i, name := range []string{"<|endoftext|>", "<|mask|>", "<|pad|>"} {
		id, ok := tok.ID(name)
		if !ok || id != int32(i) {
			t.Errorf("ID(%q) = %d, %v; want %d", name, id, ok, i)
		}
		if got := string(tok.TokenBytes(int32(i))); got != name {
			t.Errorf("TokenBytes(%d) = %q, want %q", i, got, name)
		}
	}
	if id, ok := tok.ID("Ġ"); !ok || string(tok.TokenBytes(id)) != " " {
		t.Errorf(`ID("Ġ") = %d, %v; its bytes %q, want " "`, id, ok, tok.TokenBytes(id))
	}
	if _, ok := tok.ID("no such token"); ok {
		t.Error("ID of a missing token reports ok")
	}
	for _, id := range []int32{-1, 2000, 1 << 30} {
		if b := tok.TokenBytes(id); b != nil {
			t.Errorf("TokenBytes(%d) = %q, want nil", id, b)
		}
	}
	if got := tok.Decode([]int32{1, -5, 99999, 1}); got != "<|mask|><|mask|>" {
		t.Errorf("Decode skips unknown ids: got %q", got)
	}
	mask, _ := tok.ID("<|mask|>")
	if got := tok.Encode("x<|mask|>y"); !slices.Contains(got, mask) {
		t.Errorf("Encode(x<|mask|>y) = %v lacks the mask id %d", got, mask)
	}
	if got := tok.EncodeOrdinary("x<|mask|>y"); slices.Contains(got, mask) {
		t.Errorf("EncodeOrdinary(x<|mask|>y) = %v holds the mask id", got)
	}
	if got := tok.Encode(""); len(got) != 0 {
		t.Errorf("Encode(\"\") = %v", got)
	}
	added := tok.AddedTokens()
	if len(added) != 3 || added[1].Content != "<|mask|>" || !added[1].Special {
		t.Errorf("AddedTokens = %+v", added)
	}
}

func TestFromFiles(t *testing.T) {
	tok := loadTestTokenizer(t, "goaware")
	data, err := fs.ReadFile(os.DirFS("testdata/goaware"), "tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	mem := fstest.MapFS{"tokenizer.json": {Data: data}}
	tok2, err := FromFiles(func(name string) ([]byte, error) { return fs.ReadFile(mem, name) })
	if err != nil {
		t.Fatal(err)
	}
	s := "func main() {\n\tfmt.Println(\"hi\")\n}"
	if a, b := tok.Encode(s), tok2.Encode(s); !slices.Equal(a, b) {
		t.Errorf("FromFiles encodes %v, Load %v", b, a)
	}
	readErr := errors.New("disk on fire")
	if _, err := FromFiles(func(string) ([]byte, error) { return nil, readErr }); !errors.Is(err, readErr) {
		t.Errorf("FromFiles with a failing reader: %v", err)
	}
	_, err = FromFiles(func(string) ([]byte, error) { return nil, fs.ErrNotExist })
	if err == nil || !strings.Contains(err.Error(), "vocab.json") {
		t.Errorf("FromFiles with no files: %v, want an error naming vocab.json", err)
	}
	if _, err := Load("testdata/no-such-dir"); err == nil || !strings.Contains(err.Error(), "testdata/no-such-dir") {
		t.Errorf("Load of a missing dir: %v", err)
	}
}

// TestLoadErrors feeds broken and unsupported files: each must fail with an
// error that says what is wrong, never panic.
func TestLoadErrors(t *testing.T) {
	base := func(model, pre string) string {
		return `{"added_tokens":[],"normalizer":null,"pre_tokenizer":` + pre +
			`,"decoder":{"type":"ByteLevel"},"model":` + model + `}`
	}
	okModel := `{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]}`
	okPre := `{"type":"ByteLevel","add_prefix_space":false,"use_regex":true}`
	for _, tc := range []struct{ name, json, want string }{
		{"not json", `{"model":`, "unexpected end"},
		{"wordpiece", base(`{"type":"WordPiece","vocab":{"a":0}}`, okPre), "only BPE"},
		{"empty vocab", base(`{"type":"BPE","vocab":{},"merges":[]}`, okPre), "no vocab"},
		{"merge out of vocab", base(`{"type":"BPE","vocab":{"a":0,"b":1},"merges":["a b"]}`, okPre), "not in the vocab"},
		{"merge without space", base(`{"type":"BPE","vocab":{"a":0},"merges":["ab"]}`, okPre), "two tokens"},
		{"merges wrong type", base(`{"type":"BPE","vocab":{"a":0},"merges":[1]}`, okPre), "merges"},
		{"negative id", base(`{"type":"BPE","vocab":{"a":-3},"merges":[]}`, okPre), "negative id"},
		{"byte fallback", base(`{"type":"BPE","byte_fallback":true,"vocab":{"a":0},"merges":[]}`, okPre), "byte_fallback"},
		{"dropout", base(`{"type":"BPE","dropout":0.1,"vocab":{"a":0},"merges":[]}`, okPre), "dropout"},
		{"metaspace", base(okModel, `{"type":"Metaspace"}`), `"Metaspace" is not supported`},
		{"no byte level", base(okModel, `null`), "no ByteLevel"},
		{"split after byte level", base(okModel, `{"type":"Sequence","pretokenizers":[`+okPre+`,{"type":"Split","pattern":{"Regex":"a"},"behavior":"Isolated"}]}`), "after ByteLevel"},
		{"split removed", base(okModel, `{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"a"},"behavior":"Removed"},`+okPre+`]}`), "only Isolated"},
		{"lookbehind", base(okModel, `{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"(?<=a)b"},"behavior":"Isolated"},`+okPre+`]}`), "cannot compile"},
		{"negated class", base(okModel, `{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"[^\\S]"},"behavior":"Isolated"},`+okPre+`]}`), "inside a character class"},
		{"lowercase", strings.Replace(base(okModel, okPre), `"normalizer":null`, `"normalizer":{"type":"Lowercase"}`, 1), "only NFC"},
		{"wordpiece decoder", strings.Replace(base(okModel, okPre), `{"type":"ByteLevel"}`, `{"type":"WordPiece"}`, 1), "decoder"},
		{"sparse ids", base(`{"type":"BPE","vocab":{"a":2000000000},"merges":[]}`, okPre), "far beyond"},
		{"unk missing", base(`{"type":"BPE","unk_token":"<unk>","vocab":{"a":0},"merges":[]}`, okPre), "unk_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromFiles(func(name string) ([]byte, error) {
				if name == "tokenizer.json" {
					return []byte(tc.json), nil
				}
				return nil, fs.ErrNotExist
			})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "tokenizer.json") {
				t.Errorf("error %v, want one naming tokenizer.json and saying %q", err, tc.want)
			}
		})
	}
	// The slow-tokenizer files.
	files := map[string]string{"vocab.json": `{"a":0,"b":1}`, "merges.txt": "#version: 0.2\na c\n"}
	read := func(name string) ([]byte, error) {
		if s, ok := files[name]; ok {
			return []byte(s), nil
		}
		return nil, fs.ErrNotExist
	}
	if _, err := FromFiles(read); err == nil || !strings.Contains(err.Error(), "not in the vocab") {
		t.Errorf("bad merges.txt: %v", err)
	}
	files["merges.txt"] = "a b c\n"
	if _, err := FromFiles(read); err == nil || !strings.Contains(err.Error(), "merges.txt:1") {
		t.Errorf("bad merges.txt line: %v", err)
	}
	files["merges.txt"] = ""
	files["tokenizer_config.json"] = `{"tokenizer_class":"LlamaTokenizer"}`
	if _, err := FromFiles(read); err == nil || !strings.Contains(err.Error(), "LlamaTokenizer") {
		t.Errorf("unsupported tokenizer_class: %v", err)
	}
}

// TestSlowFilesAddedTokensJSON covers the older layout: added_tokens.json,
// with special tokens named in special_tokens_map.json.
func TestSlowFilesAddedTokensJSON(t *testing.T) {
	tok := loadTestTokenizer(t, "qwen2-slow")
	vocab := make(map[string]string)
	for _, name := range []string{"vocab.json", "merges.txt"} {
		data, err := fs.ReadFile(os.DirFS("testdata/qwen2-slow"), name)
		if err != nil {
			t.Fatal(err)
		}
		vocab[name] = string(data)
	}
	mask, _ := tok.ID("<|mask|>")
	call, _ := tok.ID("<tool_call>")
	vocab["added_tokens.json"] = fmt.Sprintf(`{"<|mask|>": %d, "<tool_call>": %d}`, mask, call)
	vocab["special_tokens_map.json"] = `{"mask_token": {"content": "<|mask|>"}, "additional_special_tokens": []}`
	tok2, err := FromFiles(func(name string) ([]byte, error) {
		if s, ok := vocab[name]; ok {
			return []byte(s), nil
		}
		return nil, fs.ErrNotExist
	})
	if err != nil {
		t.Fatal(err)
	}
	s := "a<|mask|>b<tool_call>c"
	if got := tok2.Encode(s); !slices.Contains(got, mask) || !slices.Contains(got, call) {
		t.Errorf("Encode(%q) = %v, want ids %d and %d in it", s, got, mask, call)
	}
	if got := tok2.EncodeOrdinary(s); slices.Contains(got, mask) || !slices.Contains(got, call) {
		t.Errorf("EncodeOrdinary(%q) = %v, want %d (not special) but not %d", s, got, call, mask)
	}
}

// TestConcurrentEncode runs encodes in parallel on one tokenizer whose tiny
// cache keeps being cleared (run with -race).
func TestConcurrentEncode(t *testing.T) {
	tok := loadTestTokenizer(t, "qwen2")
	texts := goldenTexts(t)
	want := make([][]int32, len(texts))
	for i, tx := range texts {
		want[i] = tok.Encode(tx.Text)
	}
	tok.cache = newWordCache(16)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range texts {
				j := (i + g*7) % len(texts)
				if got := tok.Encode(texts[j].Text); !slices.Equal(got, want[j]) {
					t.Errorf("concurrent Encode(%q) = %v, want %v", texts[j].Text, got, want[j])
					return
				}
			}
		})
	}
	wg.Wait()
	if n := tok.cache.len(); n > 16 {
		t.Errorf("cache holds %d words, bound is 16", n)
	}
}

// TestCacheDoesNotKeepInput: cached keys must be copies, not substrings of
// the caller's (large) text.
func TestCacheDoesNotKeepInput(t *testing.T) {
	tok := loadTestTokenizer(t, "goaware")
	text := strings.Repeat("alphabetical betamax gammaray\n", 100)
	tok.Encode(text)
	lo := stringAddr(text)
	hi := lo + uintptr(len(text))
	if len(tok.cache.long) == 0 {
		t.Fatal("no long words cached")
	}
	for k := range tok.cache.long {
		if p := stringAddr(k); p >= lo && p < hi {
			t.Fatalf("cache key %q points into the input text", k)
		}
	}
}
