package infill

import (
	"math"
	"slices"

	"github.com/diffill/diffill/model/kernels"
)

// The copy prior: code repeats itself, within a file and across a package,
// and a small model copies worse than it reads. For a masked position
// whose left neighbours are known, the longest run of those tokens found
// in the request's corpus (Request.Corpus: the document, its package's
// snippets) votes for the token that followed it there, weighted by the
// run's length (SLP-Core's nested cache, infini-gram's backoff, on the
// local corpus), and the vote is mixed into the model's distribution.
// Once a copied token commits, the next position has a longer known run:
// a copied line goes on as long as the model does not disagree strongly.
//
// The constants were tuned on the dev set (eval --workspace on zap, gonum
// and protobuf, 135 cases, seed 2; exact match % / edit similarity, all
// kinds): without the prior 5.9 / 0.279; a model 90% sure keeps its token
// and the draft's weight decays by 0.9 a position: 10.4 / 0.386; 97% and
// 0.97: 15.6 / 0.463; 97% and no decay: 15.6 / 0.479 (these); 99%: 14.1;
// 70%: worse (4.4 on another 90 cases); λ's half point at 1.5 tokens or a
// weight cap of 0.97: the same. The package's snippets in the corpus as
// well as the document: the same figures at half again the latency. A
// longer run asked of a draft at a line's start (4 or 8 tokens, not 2):
// lower edit similarity on lines and blocks (zap and protobuf, 120 cases).
//
// Drafts stop before a newline in a span that may hold several lines: the
// stdlib held-out set (400 cases, infill at a point) fell from 8.2% / 0.351
// to 4.0% / 0.308 with drafts running on across lines (answers that went
// on past their line), and rose to 9.5% / 0.398 with the stop; drafts that
// cross after a run of 8 tokens or more: 6.2% / 0.352. On the dev set the
// stop costs block edit similarity (0.380 -> 0.253 on 45 blocks; 0.343
// crossing after 8), which the held-out set's rule outweighs.
const (
	copyMinRun = 2   // known tokens a vote needs
	copyMaxRun = 48  // longest run measured
	copyMaxHit = 256 // occurrences of a bigram looked at (the last ones)
	// copyHalf is the run length at which the vote and the model weigh
	// the same: λ = k / (k + copyHalf).
	copyHalf = 3.0
	// copyMaxWeight caps λ: the model always keeps a say.
	copyMaxWeight = 0.9
	// copyConfident: a model at least this sure of another token than the
	// vote's keeps its choice (a confident model is not overridden).
	copyConfident = 0.97
)

// copyIndex is a tokenized corpus with the positions after each bigram.
type copyIndex struct {
	toks  []int32
	after map[uint64][]int32 // (a, b) -> positions j with toks[j-2], toks[j-1] = a, b
}

func bigram(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

func newCopyIndex(c codec, corpus string) *copyIndex {
	x := &copyIndex{toks: c.EncodeOrdinary(corpus), after: map[uint64][]int32{}}
	for j := 2; j < len(x.toks); j++ {
		k := bigram(x.toks[j-2], x.toks[j-1])
		x.after[k] = append(x.after[k], int32(j))
	}
	return x
}

// match returns the corpus position after the longest known run ending
// at p-1 (the nearest such occurrence on ties) and the run's length; 0
// when fewer than copyMinRun tokens are known there or they are nowhere.
func (x *copyIndex) match(tokens []int32, known func(int) bool, p int) (int, int) {
	if !known(p-1) || !known(p-2) {
		return 0, 0
	}
	hits := x.after[bigram(tokens[p-2], tokens[p-1])]
	if len(hits) > copyMaxHit {
		hits = hits[len(hits)-copyMaxHit:]
	}
	bestJ, best := 0, 0
	for _, j := range hits {
		k := 2
		for k < copyMaxRun && int(j)-k-1 >= 0 && known(p-k-1) && x.toks[int(j)-k-1] == tokens[p-k-1] {
			k++
		}
		if k >= best {
			bestJ, best = int(j), k
		}
	}
	return bestJ, best
}

// draft is the copy prior's proposal for one masked position.
type draft struct {
	tok int32
	lam float64 // its weight against the model's distribution
}

// drafts copies after each known run of a span: from the first masked
// position after it, the corpus tokens that followed the run's longest
// match, for as long as the positions are masked or agree with the copy
// (prompt-lookup decoding's draft). In a single-line span a newline in the
// copy is the span's end; in another span the draft stops before it.
func (d *decoder) drafts() map[int]draft {
	known := func(i int) bool { return i >= 0 && !d.masked[i] && !d.isEnd(d.tokens[i]) }
	out := map[int]draft{}
	for _, sp := range d.spans {
		if sp.keepN {
			continue
		}
		for p := sp.pos; p < sp.pos+sp.n; p++ {
			if !d.masked[p] || out[p] != (draft{}) {
				continue
			}
			j, k := d.copy.match(d.tokens, known, p)
			if k < copyMinRun {
				continue
			}
			lam := min(copyMaxWeight, float64(k)/(float64(k)+copyHalf))
			for q := p; q < sp.pos+sp.n && j < len(d.copy.toks); q, j = q+1, j+1 {
				t := d.copy.toks[j]
				nl := slices.Contains(d.newlines, t)
				if nl && !sp.single && d.masked[q] {
					// Whether the answer goes on to another line is the
					// model's to say; once it does, the copy resumes
					// after a longer run.
					break
				}
				end := sp.single && nl
				if end {
					t = d.endToken()
				}
				if !d.masked[q] {
					if d.tokens[q] != t {
						break
					}
				} else {
					out[q] = draft{t, lam}
				}
				if end {
					break
				}
			}
		}
	}
	return out
}

// mixCopy mixes a draft into row (logits, in place) so that its softmax
// is (1-λ)·softmax(row) + λ·onehot(draft), unless the model is confident
// of another token. Softmax ignores a common shift of the logits, so only
// the draft's logit changes: one vectorised pass for the normaliser.
func (d *decoder) mixCopy(row []float32, dr draft) {
	mx := kernels.Max(row)
	d.scratch = append(d.scratch[:0], row...)
	sum := float64(kernels.ExpSum(d.scratch, 1, mx))
	if pmax := 1 / sum; pmax >= copyConfident && row[dr.tok] != mx {
		return
	}
	pt := float64(d.scratch[dr.tok]) / sum
	logZ := float64(mx) + math.Log(sum)
	row[dr.tok] = float32(math.Log((1-dr.lam)*pt+dr.lam) - math.Log(1-dr.lam) + logZ)
}
