package infill

import (
	"fmt"
	"math"
	"sort"

	"github.com/diffill/diffill/model/kernels"
)

// samplerKind is how a sampler ranks masked positions for unmasking.
type samplerKind int

const (
	byConfidence samplerKind = iota // top-1 probability (LLaDA's low-confidence remasking)
	byMargin                        // top-1 minus top-2 probability
	byEntropy                       // negative entropy of the distribution
	byRandom                        // uniform random order
)

func parseSampler(s string) (samplerKind, error) {
	switch s {
	case "", "confidence":
		return byConfidence, nil
	case "margin":
		return byMargin, nil
	case "entropy":
		return byEntropy, nil
	case "random":
		return byRandom, nil
	}
	return 0, fmt.Errorf("unknown sampler %q (want confidence, margin, entropy or random)", s)
}

// sampler turns one row of logits into a proposal: a token and how sure the
// model is of it. It knows nothing of models, spans or schedules.
type sampler struct {
	kind        samplerKind
	temperature float64
	topK        int
	topP        float64

	cands []cand // scratch for top-k / top-p
}

type cand struct {
	id int32
	z  float64 // logit / temperature
}

// proposal is a sampler's answer for one masked position.
type proposal struct {
	tok   int32
	prob  float64 // probability of tok (after temperature and top-k/top-p)
	logp  float64 // log of prob, for candidate confidence
	score float64 // rank for unmasking: higher is committed sooner
}

// banned is the logit given to banned tokens: far below any real logit,
// yet finite, so vectorised exp gives exactly 0 rather than NaN.
var negInf32 = float32(-1e30)

// propose picks a token for a row of logits. Tokens in banned are never
// picked; row is modified (banned entries set to -Inf).
func (s *sampler) propose(row []float32, banned []int32, r *rng) proposal {
	for _, b := range banned {
		if int(b) >= 0 && int(b) < len(row) {
			row[b] = negInf32
		}
	}
	var p proposal
	if s.temperature <= 0 && s.topK <= 0 && (s.topP <= 0 || s.topP >= 1) {
		p = s.greedy(row)
	} else {
		p = s.filtered(row, r)
	}
	if s.kind == byRandom {
		p.score = r.float64()
	}
	return p
}

// greedy is the common path: the most likely token, with the statistics
// every sampler needs. Confidence and margin take the probabilities from
// the vectorised softmax (float32 is plenty for ranking); entropy needs
// the logits too and sums in float64.
func (s *sampler) greedy(row []float32) proposal {
	best := kernels.Max(row)
	arg := 0
	for i, v := range row {
		if v == best {
			arg = i
			break
		}
	}
	if s.kind != byEntropy {
		kernels.Softmax(row, 1)
		p1 := float64(row[arg])
		p := proposal{tok: int32(arg), prob: p1, logp: math.Log(p1), score: p1}
		if s.kind == byMargin {
			row[arg] = 0
			p.score = p1 - float64(kernels.Max(row))
		}
		return p
	}
	mx := float64(best)
	var sum, wsum float64
	for _, v := range row {
		d := float64(v) - mx
		if d < -60 { // exp underflows the sum's precision; also skips -Inf
			continue
		}
		e := math.Exp(d)
		sum += e
		wsum += e * d
	}
	p1 := 1 / sum
	// H = log(sum) - Σ e·d / sum, with d = logit - max.
	return proposal{tok: int32(arg), prob: p1, logp: -math.Log(sum), score: -(math.Log(sum) - wsum/sum)}
}

// filtered applies temperature, top-k and top-p, then samples with
// Gumbel-max (or takes the argmax when temperature is 0).
func (s *sampler) filtered(row []float32, r *rng) proposal {
	t := s.temperature
	if t <= 0 {
		t = 1
	}
	mx := negInf32
	for _, v := range row {
		if v > mx {
			mx = v
		}
	}
	// Logits more than 60 (in z units) below the best cannot matter to
	// either filter nor to the sample; dropping them keeps sorting cheap.
	floor := float64(mx)/t - 60
	c := s.cands[:0]
	for i, v := range row {
		if z := float64(v) / t; z >= floor {
			c = append(c, cand{int32(i), z})
		}
	}
	if s.topK > 0 && s.topK < len(c) {
		sort.Slice(c, func(i, j int) bool { return c[i].z > c[j].z || c[i].z == c[j].z && c[i].id < c[j].id })
		c = c[:s.topK]
	}
	if s.topP > 0 && s.topP < 1 {
		sort.Slice(c, func(i, j int) bool { return c[i].z > c[j].z || c[i].z == c[j].z && c[i].id < c[j].id })
		zmax := c[0].z
		var sum float64
		for _, x := range c {
			sum += math.Exp(x.z - zmax)
		}
		// Keep the smallest prefix whose mass reaches topP (the first
		// token always stays).
		var cum float64
		keep := len(c)
		for i, x := range c {
			cum += math.Exp(x.z-zmax) / sum
			if cum >= s.topP {
				keep = i + 1
				break
			}
		}
		c = c[:keep]
	}
	s.cands = c

	zmax := math.Inf(-1)
	for _, x := range c {
		zmax = math.Max(zmax, x.z)
	}
	var sum, wsum float64
	p1, p2 := math.Inf(-1), math.Inf(-1) // top two z
	for _, x := range c {
		d := x.z - zmax
		e := math.Exp(d)
		sum += e
		wsum += e * d
		if x.z > p1 {
			p1, p2 = x.z, p1
		} else if x.z > p2 {
			p2 = x.z
		}
	}
	// Choose: Gumbel-max samples exactly from softmax(z) over c.
	pick := c[0]
	if s.temperature > 0 {
		bestG := math.Inf(-1)
		for _, x := range c {
			if g := x.z + r.gumbel(); g > bestG {
				bestG, pick = g, x
			}
		}
	} else {
		for _, x := range c[1:] {
			if x.z > pick.z || x.z == pick.z && x.id < pick.id {
				pick = x
			}
		}
	}
	logp := pick.z - zmax - math.Log(sum)
	p := proposal{tok: pick.id, prob: math.Exp(logp), logp: logp}
	switch s.kind {
	case byConfidence:
		p.score = p.prob
	case byMargin:
		p.score = (math.Exp(p1-zmax) - math.Exp(p2-zmax)) / sum
	case byEntropy:
		p.score = -(math.Log(sum) - wsum/sum)
	}
	return p
}

// demote lowers a proposal's standing (pad/EOS confidence control) by
// factor f in (0, 1]: its probability for thresholds, and its rank.
func (p *proposal) demote(f float64) {
	if f >= 1 || f <= 0 {
		return
	}
	p.prob *= f
	if p.score >= 0 {
		p.score *= f
	} else {
		p.score /= f
	}
}
