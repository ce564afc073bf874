package infill

import (
	"fmt"
	"sort"
)

// scheduleKind decides how many masked positions a step unmasks.
type scheduleKind int

const (
	schedFixed     scheduleKind = iota // LLaDA: the masks of a block spread evenly over its steps
	schedDream                         // Dream: 1 - s/t of the masks left, t on a linear grid 1 → eps
	schedThreshold                     // Fast-dLLM: every mask above a probability threshold, at least one
)

func parseSchedule(s string) (scheduleKind, error) {
	switch s {
	case "fixed":
		return schedFixed, nil
	case "dream":
		return schedDream, nil
	case "", "threshold":
		return schedThreshold, nil
	}
	return 0, fmt.Errorf("unknown schedule %q (want fixed, dream or threshold)", s)
}

type schedule struct {
	kind      scheduleKind
	threshold float64
	eps       float64
}

// quota returns how many masks step i (0-based) of a phase of `steps`
// steps commits, when the phase began with `initial` masks and `left` are
// still masked. The last step of a phase commits everything left; every
// step commits at least one, so a phase always ends within its steps.
// For the threshold schedule the quota is a floor (at least one); the
// threshold adds more.
func (s schedule) quota(i, steps, initial, left int) int {
	if left <= 0 {
		return 0
	}
	if i >= steps-1 {
		return left
	}
	var n int
	switch s.kind {
	case schedFixed:
		// LLaDA's get_num_transfer_tokens: initial/steps each step, the
		// remainder spread over the first steps.
		n = initial / steps
		if i < initial%steps {
			n++
		}
	case schedDream:
		t := 1 - float64(i)*(1-s.eps)/float64(steps)
		u := 1 - float64(i+1)*(1-s.eps)/float64(steps)
		n = int(float64(left) * (1 - u/t))
	case schedThreshold:
		n = 1
	}
	return min(max(n, 1), left)
}

// candidate is a masked position that may be unmasked this step.
type candidate struct {
	pos int
	p   proposal
}

// choose picks which candidates to commit: the `quota` with the highest
// score, plus (threshold schedule) every one whose probability exceeds the
// threshold. Ties go to the leftmost position, so the choice is
// deterministic. cs is reordered.
func (s schedule) choose(cs []candidate, quota int) []candidate {
	sort.SliceStable(cs, func(i, j int) bool {
		if cs[i].p.score != cs[j].p.score {
			return cs[i].p.score > cs[j].p.score
		}
		return cs[i].pos < cs[j].pos
	})
	n := min(quota, len(cs))
	if s.kind == schedThreshold {
		for n < len(cs) && cs[n].p.prob > s.threshold {
			n++
		}
		// Any candidate above the threshold qualifies, whatever its rank
		// (rank and probability differ for margin, entropy and random).
		out := cs[:n]
		for _, c := range cs[n:] {
			if c.p.prob > s.threshold {
				out = append(out, c)
			}
		}
		return out
	}
	return cs[:n]
}
