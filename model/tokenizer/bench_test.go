package tokenizer

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// goSource is real Go code: this package's own sources.
func goSource(b testing.TB) string {
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		b.Fatalf("no Go files: %v", err)
	}
	slices.Sort(files)
	var sb strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		sb.Write(data)
	}
	return sb.String()
}

// BenchmarkEncode measures Encode of a Go source file (MB/s): "warm" is the
// editor's case, re-encoding a document whose words are cached; "cold"
// starts each encode with an empty cache.
func BenchmarkEncode(b *testing.B) {
	src := goSource(b)
	var prose strings.Builder
	for _, tx := range goldenTexts(b) {
		prose.WriteString(tx.Text)
	}
	for _, dir := range []string{"goaware", "qwen2", "gpt2"} {
		tok := loadTestTokenizer(b, dir)
		for _, in := range []struct{ name, text string }{{"go", src}, {"corpus", prose.String()}} {
			b.Run(dir+"/"+in.name+"/warm", func(b *testing.B) {
				tok.Encode(in.text)
				b.SetBytes(int64(len(in.text)))
				b.ReportAllocs()
				for b.Loop() {
					tok.Encode(in.text)
				}
			})
			b.Run(dir+"/"+in.name+"/cold", func(b *testing.B) {
				b.SetBytes(int64(len(in.text)))
				b.ReportAllocs()
				for b.Loop() {
					tok.cache = newWordCache(DefaultCacheWords)
					tok.Encode(in.text)
				}
			})
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	src := goSource(b)
	tok := loadTestTokenizer(b, "goaware")
	ids := tok.Encode(src)
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		tok.Decode(ids)
	}
}

func BenchmarkLoad(b *testing.B) {
	for b.Loop() {
		loadTestTokenizer(b, "qwen2")
	}
}

// BenchmarkComponentSplit and BenchmarkComponentLookup time the two halves
// of a warm Encode: the Go-aware split and the word-cache lookups.
func BenchmarkComponentSplit(b *testing.B) {
	src := goSource(b)
	var ends []int
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		ends = goSplitter{}.split(src, ends[:0])
	}
	b.ReportMetric(float64(len(ends)), "pieces")
}

func BenchmarkComponentLookup(b *testing.B) {
	src := goSource(b)
	tok := loadTestTokenizer(b, "goaware")
	tok.Encode(src)
	ends := goSplitter{}.split(src, nil)
	var words []string
	prev := 0
	for _, e := range ends {
		words = append(words, src[prev:e])
		prev = e
	}
	b.SetBytes(int64(len(src)))
	var out []int32
	for b.Loop() {
		out = out[:0]
		for _, w := range words {
			out, _ = tok.cache.appendCached(out, w)
		}
	}
}

// BenchmarkBaselineByteLoop is a yardstick, not a feature: a table lookup
// per byte over the same source. On a shared, loaded machine MB/s figures
// swing with the load; the ratio of Encode's time to this loop's does not.
func BenchmarkBaselineByteLoop(b *testing.B) {
	src := goSource(b)
	b.SetBytes(int64(len(src)))
	s := 0
	for b.Loop() {
		for i := 0; i < len(src); i++ {
			s += int(asciiClass[src[i]&0x7f])
		}
	}
	_ = s
}
