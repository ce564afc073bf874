package model

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
)

func loadTiny(t testing.TB, name string) *Model {
	t.Helper()
	m, err := Load(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func randomTokens(r *rand.Rand, n, vocab int) []int32 {
	toks := make([]int32, n)
	for i := range toks {
		toks[i] = int32(3 + r.IntN(vocab-3))
	}
	return toks
}

func logitsOf(t testing.TB, m *Model, b *Batch) []float32 {
	t.Helper()
	out, err := m.Forward(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	return out.Data().([]float32)
}

// maxRel returns max|a-b| / max|b|.
func maxRel(a, b []float32) float64 {
	var d, r float64
	for i := range b {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
		r = math.Max(r, math.Abs(float64(b[i])))
	}
	return d / r
}

// A cached step over unchanged tokens is the full forward's computation for
// those rows: the cached keys and values are the ones it would compute.
func TestCachedStepEqualsFull(t *testing.T) {
	for _, name := range []string{"qwen2-tiny", "llada-tiny-bf16"} {
		t.Run(name, func(t *testing.T) {
			m := loadTiny(t, name)
			r := rand.New(rand.NewPCG(1, 2))
			toks := randomTokens(r, 50, m.Config.Vocab)
			for p := 20; p < 36; p++ {
				toks[p] = m.Config.MaskID
			}
			cache := m.NewCache(8) // grows
			full := logitsOf(t, m, &Batch{Tokens: toks, Cache: cache})
			if cache.Len() != len(toks) {
				t.Fatalf("cache len %d", cache.Len())
			}
			compute := []int{27, 20, 25, 21, 22, 23, 24, 26} // any order
			want := []int{27, 21, 24}
			got := logitsOf(t, m, &Batch{Tokens: toks, Compute: compute, Logits: want, Cache: cache})
			V := m.Config.Vocab
			for i, p := range want {
				rel := maxRel(got[i*V:(i+1)*V], full[p*V:(p+1)*V])
				if rel > 1e-6 {
					t.Errorf("position %d: cached step differs from the full forward by %.2e", p, rel)
				}
			}
		})
	}
}

// TestForwardBatch runs sequences of different lengths, one of them a cached
// step, in one pass; each must equal its own Forward.
func TestForwardBatch(t *testing.T) {
	m := loadTiny(t, "qwen2-tiny")
	r := rand.New(rand.NewPCG(3, 4))
	a := randomTokens(r, 9, m.Config.Vocab)
	b := randomTokens(r, 30, m.Config.Vocab)
	c := randomTokens(r, 17, m.Config.Vocab)
	cacheC := m.NewCache(17)
	logitsOf(t, m, &Batch{Tokens: c, Cache: cacheC})
	c[5] = m.Config.MaskID
	cacheC2 := cacheC.Clone()

	batches := []*Batch{
		{Tokens: a},
		{Tokens: b, Logits: []int{29, 0, 3}},
		{Tokens: c, Compute: []int{5, 6}, Cache: cacheC},
	}
	outs, err := m.ForwardBatch(context.Background(), batches)
	if err != nil {
		t.Fatal(err)
	}
	single := [][]float32{
		logitsOf(t, m, &Batch{Tokens: a}),
		logitsOf(t, m, &Batch{Tokens: b, Logits: []int{29, 0, 3}}),
		logitsOf(t, m, &Batch{Tokens: c, Compute: []int{5, 6}, Cache: cacheC2}),
	}
	for i := range batches {
		if rel := maxRel(outs[i].Data().([]float32), single[i]); rel > 1e-6 {
			t.Errorf("batch %d differs from its own forward by %.2e", i, rel)
		}
	}
	if _, err := m.ForwardBatch(context.Background(), []*Batch{{Tokens: a, Cache: cacheC}, {Tokens: b, Cache: cacheC}}); err == nil {
		t.Error("two batches sharing a cache were accepted")
	}
}

func TestForwardErrors(t *testing.T) {
	m := loadTiny(t, "llada-tiny")
	other := loadTiny(t, "qwen2-tiny")
	toks := []int32{5, 6, 7, 8}
	full := m.NewCache(4)
	logitsOf(t, m, &Batch{Tokens: toks, Cache: full})
	for _, tc := range []struct {
		name string
		b    *Batch
		want string
	}{
		{"empty", &Batch{}, "empty sequence"},
		{"token range", &Batch{Tokens: []int32{1, 320}}, "token 320 at position 1 is outside the vocabulary"},
		{"negative token", &Batch{Tokens: []int32{-1}}, "token -1"},
		{"compute without cache", &Batch{Tokens: toks, Compute: []int{1}}, "no Cache"},
		{"compute range", &Batch{Tokens: toks, Compute: []int{4}, Cache: full}, "compute position 4 outside"},
		{"compute twice", &Batch{Tokens: toks, Compute: []int{1, 1}, Cache: full}, "listed twice"},
		{"logits not computed", &Batch{Tokens: toks, Compute: []int{1}, Logits: []int{2}, Cache: full}, "logits position 2 is not computed"},
		{"not cached", &Batch{Tokens: append(toks, 9, 10), Compute: []int{4}, Cache: full}, "position 5 is neither computed nor cached"},
		{"foreign cache", &Batch{Tokens: toks, Cache: other.NewCache(4)}, "another model"},
		{"too long", &Batch{Tokens: make([]int32, 513)}, "exceeds the model's 512 positions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.Forward(context.Background(), tc.b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestForwardCancelled(t *testing.T) {
	m := loadTiny(t, "qwen2-tiny")
	toks := []int32{5, 6, 7, 8, 9}
	cache := m.NewCache(5)
	logitsOf(t, m, &Batch{Tokens: toks, Cache: cache})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Forward(ctx, &Batch{Tokens: toks, Compute: []int{2}, Cache: cache}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	// The interrupted position must be recomputed before it is used again.
	if _, err := m.Forward(context.Background(), &Batch{Tokens: toks, Compute: []int{3}, Cache: cache}); err == nil {
		t.Fatal("used keys of an interrupted pass")
	}
	if _, err := m.Forward(context.Background(), &Batch{Tokens: toks, Compute: []int{2}, Cache: cache}); err != nil {
		t.Fatal(err)
	}
}

// TestCacheShift moves cached keys as if tokens were inserted or deleted:
// the first layer's keys and values depend on the token and position only,
// so after Shift they must equal those computed fresh at the new positions.
func TestCacheShift(t *testing.T) {
	m := loadTiny(t, "qwen2-tiny")
	r := rand.New(rand.NewPCG(5, 6))
	base := randomTokens(r, 40, m.Config.Vocab)
	for _, tc := range []struct{ from, delta int }{{10, 3}, {10, -4}, {0, 7}, {40, 2}, {25, -25}} {
		cache := m.NewCache(40)
		logitsOf(t, m, &Batch{Tokens: base, Cache: cache})
		if err := cache.Shift(tc.from, tc.delta); err != nil {
			t.Fatal(err)
		}
		// The edited sequence: delta new tokens before from, or -delta removed.
		var edited []int32
		if tc.delta > 0 {
			edited = append(append(append([]int32{}, base[:tc.from]...), randomTokens(r, tc.delta, m.Config.Vocab)...), base[tc.from:]...)
		} else {
			edited = append(append([]int32{}, base[:tc.from+tc.delta]...), base[tc.from:]...)
		}
		if cache.Len() != len(edited) {
			t.Fatalf("shift %+v: len %d, want %d", tc, cache.Len(), len(edited))
		}
		fresh := m.NewCache(len(edited))
		logitsOf(t, m, &Batch{Tokens: edited, Cache: fresh})
		d := m.Config.HeadDim
		for p := range edited {
			inserted := tc.delta > 0 && p >= tc.from && p < tc.from+tc.delta
			if cache.has(p) == inserted {
				t.Fatalf("shift %+v: position %d valid=%v", tc, p, cache.has(p))
			}
			if inserted {
				continue
			}
			for g := 0; g < m.Config.KVHeads; g++ {
				k1, v1 := cache.kv(0, g)
				k2, v2 := fresh.kv(0, g)
				if rel := maxRel(k1[p*d:(p+1)*d], k2[p*d:(p+1)*d]); rel > 1e-5 {
					t.Errorf("shift %+v: key at %d differs by %.2e", tc, p, rel)
				}
				if rel := maxRel(v1[p*d:(p+1)*d], v2[p*d:(p+1)*d]); rel > 1e-6 {
					t.Errorf("shift %+v: value at %d differs by %.2e", tc, p, rel)
				}
			}
		}
		// Recomputing just the inserted positions is then a valid step.
		var compute []int
		for p := tc.from; p < tc.from+tc.delta; p++ {
			compute = append(compute, p)
		}
		if compute != nil {
			if _, err := m.Forward(context.Background(), &Batch{Tokens: edited, Compute: compute, Cache: cache}); err != nil {
				t.Fatalf("shift %+v: %v", tc, err)
			}
		}
	}
	cache := m.NewCache(4)
	logitsOf(t, m, &Batch{Tokens: base[:4], Cache: cache})
	if err := cache.Shift(5, 1); err == nil {
		t.Error("shift past the end accepted")
	}
	if err := cache.Shift(2, -3); err == nil {
		t.Error("shift before position 0 accepted")
	}
}

func TestCacheCloneReset(t *testing.T) {
	m := loadTiny(t, "qwen2-tiny")
	toks := []int32{5, 6, 7, 8, 9}
	c := m.NewCache(5)
	logitsOf(t, m, &Batch{Tokens: toks, Cache: c})
	d := c.Clone()
	c.Reset()
	if c.Len() != 0 || d.Len() != 5 {
		t.Fatalf("len %d %d", c.Len(), d.Len())
	}
	if _, err := m.Forward(context.Background(), &Batch{Tokens: toks, Compute: []int{0}, Cache: c}); err == nil {
		t.Error("reset cache served keys")
	}
	if _, err := m.Forward(context.Background(), &Batch{Tokens: toks, Compute: []int{0}, Cache: d}); err != nil {
		t.Error(err)
	}
	// A shorter sequence drops the cached tail.
	logitsOf(t, m, &Batch{Tokens: toks[:3], Compute: []int{0, 1, 2}, Cache: d})
	if d.Len() != 3 {
		t.Fatalf("len %d after a 3-token pass", d.Len())
	}
}

// TestConcurrentForward runs one Model from several goroutines, each with its
// own cache (run with -race).
func TestConcurrentForward(t *testing.T) {
	m := loadTiny(t, "llada-tiny")
	r := rand.New(rand.NewPCG(7, 8))
	toks := randomTokens(r, 33, m.Config.Vocab)
	want := logitsOf(t, m, &Batch{Tokens: toks})
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			cache := m.NewCache(len(toks))
			for range 3 {
				out, err := m.Forward(context.Background(), &Batch{Tokens: toks, Cache: cache})
				if err != nil {
					errs <- err
					return
				}
				if rel := maxRel(out.Data().([]float32), want); rel > 1e-6 {
					errs <- errors.New("concurrent forward differs")
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
