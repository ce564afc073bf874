package infill

import "math"

// rng is xoshiro256** seeded through splitmix64: each request owns one, so
// results depend on the request's seed alone, never on other requests.
type rng struct{ s [4]uint64 }

func newRNG(seed uint64) *rng {
	r := &rng{}
	for i := range r.s {
		seed += 0x9e3779b97f4a7c15
		z := seed
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		r.s[i] = z ^ (z >> 31)
	}
	return r
}

func (r *rng) uint64() uint64 {
	s := &r.s
	out := bitsRotl(s[1]*5, 7) * 9
	t := s[1] << 17
	s[2] ^= s[0]
	s[3] ^= s[1]
	s[1] ^= s[2]
	s[0] ^= s[3]
	s[2] ^= t
	s[3] = bitsRotl(s[3], 45)
	return out
}

func bitsRotl(x uint64, k uint) uint64 { return x<<k | x>>(64-k) }

// float64 returns a uniform value in the open interval (0, 1), so that
// log(u) and log(-log(u)) are always finite.
func (r *rng) float64() float64 {
	return (float64(r.uint64()>>11) + 0.5) / (1 << 53)
}

// gumbel returns a standard Gumbel sample, -log(-log(u)), in float64: in
// float32 the noise loses the tail that makes Gumbel-max sampling exact.
func (r *rng) gumbel() float64 {
	return -math.Log(-math.Log(r.float64()))
}
