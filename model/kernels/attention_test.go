package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// refAttention is attention in float64, straight from the definition.
func refAttention(q []float32, ldq int, k []float32, ldk int, v []float32, ldv int, nq, t, d int, scale float64) [][]float64 {
	out := make([][]float64, nq)
	for i := range out {
		s := make([]float64, t)
		m := math.Inf(-1)
		for j := range s {
			for c := 0; c < d; c++ {
				s[j] += float64(q[i*ldq+c]) * float64(k[j*ldk+c])
			}
			s[j] *= scale
			m = math.Max(m, s[j])
		}
		var sum float64
		for j := range s {
			s[j] = math.Exp(s[j] - m)
			sum += s[j]
		}
		out[i] = make([]float64, d)
		for j := range s {
			for c := 0; c < d; c++ {
				out[i][c] += s[j] / sum * float64(v[j*ldv+c])
			}
		}
	}
	return out
}

// checkAttention: every output element within 1e-5 of the reference,
// relative to the largest |v| (the output is a convex mix of v rows).
func checkAttention(t *testing.T, out []float32, ldo int, ref [][]float64, v []float32) {
	t.Helper()
	var vmax float64
	for _, x := range v {
		vmax = math.Max(vmax, math.Abs(float64(x)))
	}
	for i, row := range ref {
		for c, want := range row {
			if got := out[i*ldo+c]; !near(got, want, vmax, 1e-5) {
				t.Fatalf("out[%d][%d] = %g, want %g", i, c, got, want)
			}
		}
	}
}

func TestAttention(t *testing.T) {
	withISA(t, func(t *testing.T) {
		ws := new(AttentionWorkspace) // reused across shapes on purpose
		for _, s := range []struct{ nq, t, d, pad int }{
			{1, 1, 8, 0}, {3, 5, 16, 3}, {64, 64, 64, 0}, {65, 130, 64, 5}, {17, 33, 40, 1}, {130, 77, 80, 0}, {7, 300, 128, 2},
		} {
			t.Run(fmt.Sprintf("q%d/t%d/d%d", s.nq, s.t, s.d), func(t *testing.T) {
				r := rand.New(rand.NewPCG(uint64(s.nq), uint64(s.t)))
				ld := s.d + s.pad
				q, k, v := randF32(r, s.nq*ld), randF32(r, s.t*ld), randF32(r, s.t*ld)
				scale := 1 / math.Sqrt(float64(s.d))
				out := make([]float32, s.nq*ld)
				Attention(out, ld, q, ld, k, ld, v, ld, s.nq, s.t, s.d, float32(scale), ws)
				checkAttention(t, out, ld, refAttention(q, ld, k, ld, v, ld, s.nq, s.t, s.d, scale), v)
			})
		}
	})
}

func TestMultiHeadAttention(t *testing.T) {
	const nq, tk, heads, kvHeads, d = 70, 90, 6, 2, 32
	r := rand.New(rand.NewPCG(1, 1))
	q := randF32(r, nq*heads*d)
	// Keys and values of each kv head in their own [t][d] block, as a
	// cache might keep them; row stride d.
	ks, vs := randF32(r, kvHeads*tk*d), randF32(r, kvHeads*tk*d)
	kv := func(g int) ([]float32, int, []float32, int) {
		return ks[g*tk*d : (g+1)*tk*d], d, vs[g*tk*d : (g+1)*tk*d], d
	}
	out := make([]float32, nq*heads*d)
	scale := 1 / math.Sqrt(d)
	p3 := NewPool(3)
	defer p3.Close()
	for _, p := range []*Pool{nil, DefaultPool(), p3} {
		clear(out)
		p.MultiHeadAttention(out, heads*d, q, heads*d, kv, nq, tk, heads, kvHeads, d, float32(scale))
		for h := 0; h < heads; h++ {
			k, ldk, v, ldv := kv(h / (heads / kvHeads))
			ref := refAttention(q[h*d:], heads*d, k, ldk, v, ldv, nq, tk, d, scale)
			checkAttention(t, out[h*d:], heads*d, ref, v)
		}
	}
}

// TestPackAttend: two query sets of strided rows (as two heads of a fused
// projection) attended in place over keys and values packed once match
// the reference, and leave the rows between them alone.
func TestPackAttend(t *testing.T) {
	withISA(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(7, 8))
		const nq, tk, d, width = 37, 90, 64, 3 * 64
		q := randF32(r, nq*width)
		k, v := randF32(r, tk*width), randF32(r, tk*width)
		ws := new(AttentionWorkspace)
		keys, vals := ws.Pack(k[d:], width, v[2*d:], width, tk, d)
		out := randF32(r, nq*width)
		keep := append([]float32(nil), out...)
		for h := range 2 {
			ws.Attend(out[h*d:], width, q[h*d:], width, keys, vals, nq, 0.125)
			checkAttention(t, out[h*d:], width, refAttention(q[h*d:], width, k[d:], width, v[2*d:], width, nq, tk, d, 0.125), v[2*d:])
		}
		for i := range nq {
			for c := 2 * d; c < width; c++ {
				if out[i*width+c] != keep[i*width+c] {
					t.Fatalf("row %d column %d written", i, c)
				}
			}
		}
	})
}
