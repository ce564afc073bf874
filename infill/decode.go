package infill

import (
	"context"
	"fmt"
	"math"
	"slices"
)

// lengthPolicy is how a span's length is decided.
type lengthPolicy int

const (
	lenPad    lengthPolicy = iota // over-allocate; pad/EOS ends the span early
	lenExpand                     // DreamOn: expand → two masks, EOS/pad → deleted
	lenFixed                      // exactly the masks given; pad/EOS banned
	lenMulti                      // lenPad over several mask counts, most confident kept
)

func parseRecompute(s string) (masksOnly bool, err error) {
	switch s {
	case "", "span":
		return false, nil
	case "masks":
		return true, nil
	}
	return false, fmt.Errorf("unknown recompute %q (want span or masks)", s)
}

func parseLength(s string) (lengthPolicy, bool, error) {
	switch s {
	case "", "auto":
		return lenPad, true, nil
	case "pad":
		return lenPad, false, nil
	case "expand":
		return lenExpand, false, nil
	case "fixed":
		return lenFixed, false, nil
	case "multi":
		return lenMulti, false, nil
	}
	return 0, false, fmt.Errorf("unknown length policy %q (want auto, pad, expand, fixed or multi)", s)
}

// plan is a request's parameters, checked and resolved.
type plan struct {
	smp        sampler
	sched      schedule
	steps      int // per request; 0: one per mask
	blockSize  int
	length     lengthPolicy
	padPenalty float64
	// endThreshold > 0: an end proposal this probable is committed
	// whatever its rank (pad policies; see chooseEnds).
	endThreshold float64
	masksOnly    bool // steps recompute masks and new tokens, not whole spans
	// doubt: rewrite re-masks only tokens less probable than this (in
	// context, masked).
	doubt float64
	// margin: a rewritten span must be this much more probable (log) than
	// the original to replace it.
	margin  float64
	userMax bool // MaxTokens was given (expand policy: the cap)
}

// spanState is a span's place on the canvas.
type spanState struct {
	pos, n int     // canvas positions [pos, pos+n)
	cap    int     // the most positions it may grow to (expand policy)
	single bool    // one line: tokens holding a newline are banned
	allow  []int32 // if set, the only tokens the span's first position may take
	keepN  bool    // rewrite: length is the original's; pad/EOS banned
	remask int     // rewrite: positions to re-mask after the scoring pass
}

// decoder denoises one canvas. It asks for passes (nextPass) and consumes
// their logits (apply); the caller batches passes of several decoders.
type decoder struct {
	ni       netInfo
	pl       *plan
	smp      sampler
	rng      *rng
	newlines []int32 // token ids holding a newline

	tokens []int32
	spans  []spanState
	masked []bool
	logp   []float64

	cache  kvCache // nil: no cache, every pass is full
	cached []int32 // token each cache slot was computed with; -1: stale
	full   bool    // the next pass recomputes every position

	scoring bool // the next pass scores existing tokens (rewrite)
	// scorePhase is the scoring pass under way: it masks the rewritten
	// positions p with (p - span start) % scorePasses == scorePhase;
	// saved holds their tokens meanwhile.
	scorePhase int
	saved      []int32
	// A rewrite scores its spans twice: as they were (then orig and
	// origLogp hold the canvas and the scores) and, once denoised, as
	// rewritten (verifying), and keeps a span's new text only if the model
	// finds it more probable than the old.
	orig      []int32
	origLogp  []float64
	verifying bool
	// reject, if set, refuses a rewritten span's new tokens whatever
	// their score (the engine's check that the code around stays whole).
	reject func(span int, ids []int32) bool

	block, nblocks           int
	blockStep, blockSteps    int
	blockInitial, stepsTotal int
	steps                    int // denoising steps done
	resizes                  int // expand policy: steps that changed a span's length
	grown                    int // expand policy: expand tokens turned into two masks

	copy    *copyIndex // the copy prior's corpus (nil: none; see copy.go)
	scratch []float32  // the copy prior's softmax

	// Set by nextPass for apply.
	targets []int // masked positions whose logits were asked for
	spanOf  []int // span index per target
	banned  []int32
	cands   []candidate
}

func (d *decoder) done() bool {
	return !d.scoring && d.countMasked(-1) == 0
}

// src is the position whose logits predict position p.
func (d *decoder) src(p int) int {
	if d.ni.shift {
		return p - 1
	}
	return p
}

// blockRange is the part of span s the current block may unmask.
func (d *decoder) blockRange(s int) (lo, hi int) {
	sp := d.spans[s]
	if d.pl.blockSize <= 0 || d.pl.length == lenExpand {
		return sp.pos, sp.pos + sp.n
	}
	lo = sp.pos + min(sp.n, d.block*d.pl.blockSize)
	hi = sp.pos + min(sp.n, (d.block+1)*d.pl.blockSize)
	return lo, hi
}

// countMasked counts masked positions in the current block (block >= 0)
// or everywhere (block < 0).
func (d *decoder) countMasked(block int) int {
	n := 0
	for s, sp := range d.spans {
		lo, hi := sp.pos, sp.pos+sp.n
		if block >= 0 {
			lo, hi = d.blockRange(s)
		}
		for p := lo; p < hi; p++ {
			if d.masked[p] {
				n++
			}
		}
	}
	return n
}

// startBlocks sets up the first block; call once the canvas is final.
func (d *decoder) startBlocks() {
	longest := 0
	for _, sp := range d.spans {
		longest = max(longest, sp.n)
	}
	d.nblocks = 1
	if d.pl.blockSize > 0 && d.pl.length != lenExpand && longest > 0 {
		d.nblocks = (longest + d.pl.blockSize - 1) / d.pl.blockSize
	}
	d.block = -1
	d.nextBlock()
	d.stepsTotal = d.blockSteps * d.nblocks
}

// nextBlock moves to the next block that has masks left.
func (d *decoder) nextBlock() {
	for d.block+1 < d.nblocks {
		d.block++
		d.blockStep = 0
		d.blockInitial = d.countMasked(d.block)
		if d.blockInitial == 0 {
			continue
		}
		if d.pl.steps > 0 {
			d.blockSteps = max(1, (d.pl.steps+d.nblocks-1)/d.nblocks)
		} else {
			d.blockSteps = d.blockInitial
		}
		if d.block > 0 && d.cache != nil {
			d.full = true // refresh the cache at each block (Fast-dLLM)
		}
		return
	}
}

// nextPass returns the forward pass the decoder needs next.
func (d *decoder) nextPass() *pass {
	d.targets, d.spanOf = d.targets[:0], d.spanOf[:0]
	if d.scoring {
		// Score a token where the model was trained to predict one: at a
		// mask, the rest of the span in place (the logits at a visible
		// position were never trained and mostly copy the token there).
		d.saved = d.saved[:0]
		for s, sp := range d.spans {
			if sp.remask == 0 {
				continue
			}
			for p := sp.pos + d.scorePhase; p < sp.pos+sp.n; p += scorePasses {
				d.targets = append(d.targets, p)
				d.spanOf = append(d.spanOf, s)
				d.saved = append(d.saved, d.tokens[p])
				d.tokens[p] = d.ni.mask
			}
		}
	} else {
		if d.countMasked(d.block) == 0 {
			d.nextBlock()
		}
		for s := range d.spans {
			lo, hi := d.blockRange(s)
			for p := lo; p < hi; p++ {
				if d.masked[p] {
					d.targets = append(d.targets, p)
					d.spanOf = append(d.spanOf, s)
				}
			}
		}
	}
	logits := make([]int, len(d.targets))
	for i, p := range d.targets {
		logits[i] = d.src(p)
	}
	ps := &pass{tokens: d.tokens, logits: logits, cache: d.cache}
	if d.cache == nil || d.full || len(d.cached) != len(d.tokens) {
		d.full = false
		if d.cache != nil {
			d.cached = append(d.cached[:0], d.tokens...)
		}
		return ps
	}
	// Recompute the spans (of the current block), or only their masks
	// (plus, below, tokens committed since the last pass), and whatever the
	// cache holds for other tokens; read the rest from the cache.
	need := make([]bool, len(d.tokens))
	for s := range d.spans {
		lo, hi := d.blockRange(s)
		if d.scoring {
			lo, hi = d.spans[s].pos, d.spans[s].pos+d.spans[s].n
		}
		for p := lo; p < hi; p++ {
			need[p] = need[p] || !d.pl.masksOnly || d.masked[p]
		}
	}
	for _, p := range logits {
		need[p] = true
	}
	var compute []int
	for p, t := range d.tokens {
		if need[p] || d.cached[p] != t {
			compute = append(compute, p)
			d.cached[p] = t
		}
	}
	ps.compute = compute
	return ps
}

// apply consumes the logits of the pass from nextPass: rows[i*vocab:] are
// the logits for d.targets[i].
func (d *decoder) apply(rows []float32) error {
	v := d.ni.vocab
	if len(rows) != len(d.targets)*v {
		return fmt.Errorf("infill: model returned %d logits for %d positions of vocabulary %d", len(rows), len(d.targets), v)
	}
	if d.scoring {
		d.score(rows)
		return nil
	}
	d.denoise(rows)
	d.steps++
	d.blockStep++
	if d.pl.length == lenExpand {
		d.resize()
	}
	if d.orig != nil && d.countMasked(-1) == 0 && d.changed() {
		d.scoring, d.verifying, d.scorePhase = true, true, 0
	}
	return nil
}

// changed reports whether a rewritten span's tokens differ from the
// original's.
func (d *decoder) changed() bool {
	for _, sp := range d.spans {
		if sp.remask > 0 && !slices.Equal(d.tokens[sp.pos:sp.pos+sp.n], d.orig[sp.pos:sp.pos+sp.n]) {
			return true
		}
	}
	return false
}

// verify keeps, in each rewritten span, the new tokens if the model finds
// them more probable together (the sum of each token's log-probability,
// scored as the original was) than the original ones by the plan's margin,
// else (or when reject refuses them) puts the original back: a rewrite
// never leaves text the model itself likes less, and an unchanged span is
// a fine answer.
func (d *decoder) verify() {
	for s, sp := range d.spans {
		if sp.remask == 0 {
			continue
		}
		var now, was float64
		for p := sp.pos; p < sp.pos+sp.n; p++ {
			now += d.logp[p]
			was += d.origLogp[p]
		}
		if now <= was+d.pl.margin || d.reject != nil && d.reject(s, d.tokens[sp.pos:sp.pos+sp.n]) {
			copy(d.tokens[sp.pos:sp.pos+sp.n], d.orig[sp.pos:sp.pos+sp.n])
			copy(d.logp[sp.pos:sp.pos+sp.n], d.origLogp[sp.pos:sp.pos+sp.n])
		}
	}
	d.scoring, d.verifying = false, false
	d.orig = nil
}

// scorePasses is how many passes score a rewritten span: pass j masks
// every scorePasses-th token from the j-th, so each token is scored with
// its neighbours in place. More passes score closer to one token masked at
// a time, and cost a step each.
const scorePasses = 2

// score records, after a scoring pass, the probability of each masked
// token in its context, puts the tokens back, and after the last pass
// re-masks what the model doubts.
func (d *decoder) score(rows []float32) {
	v := d.ni.vocab
	for i, p := range d.targets {
		d.tokens[p] = d.saved[i]
		d.logp[p] = logProb(rows[i*v:(i+1)*v], d.saved[i])
	}
	d.scorePhase++
	longest := 0
	for _, sp := range d.spans {
		if sp.remask > 0 {
			longest = max(longest, sp.n)
		}
	}
	if d.scorePhase < min(scorePasses, longest) {
		return
	}
	if d.verifying {
		d.verify()
		return
	}
	d.remask()
}

// remask re-masks, in each rewritten span, the tokens the model finds
// least likely, at most the span's remask of them and only those below
// the plan's doubt probability: a token the model is sure of stays, and a
// span it is sure of throughout comes back unchanged. (Denoising then
// puts a re-masked token back where the model doubts its replacement as
// much.)
func (d *decoder) remask() {
	d.orig = slices.Clone(d.tokens)
	d.origLogp = slices.Clone(d.logp)
	for _, sp := range d.spans {
		if sp.remask == 0 {
			continue
		}
		var doubted []int
		for p := sp.pos; p < sp.pos+sp.n; p++ {
			if d.logp[p] < math.Log(d.pl.doubt) {
				doubted = append(doubted, p)
			}
		}
		slices.SortStableFunc(doubted, func(a, b int) int {
			switch {
			case d.logp[a] < d.logp[b]:
				return -1
			case d.logp[a] > d.logp[b]:
				return 1
			}
			return a - b
		})
		for _, p := range doubted[:min(sp.remask, len(doubted))] {
			d.tokens[p] = d.ni.mask
			d.masked[p] = true
			d.logp[p] = 0
		}
	}
	d.scoring = false
	d.startBlocks()
}

// logProb is log softmax(row)[tok].
func logProb(row []float32, tok int32) float64 {
	mx := math.Inf(-1)
	for _, x := range row {
		mx = math.Max(mx, float64(x))
	}
	var sum float64
	for _, x := range row {
		sum += math.Exp(float64(x) - mx)
	}
	return float64(row[tok]) - mx - math.Log(sum)
}

func (d *decoder) isEnd(t int32) bool {
	return t >= 0 && (t == d.ni.eos || t == d.ni.pad)
}

// endToken is what fills a span's end: pad if the model has one, else EOS.
func (d *decoder) endToken() int32 {
	if d.ni.pad >= 0 {
		return d.ni.pad
	}
	return d.ni.eos
}

// denoise runs the sampler over the targets and commits what the schedule
// chooses.
func (d *decoder) denoise(rows []float32) {
	v := d.ni.vocab
	pol := d.pl.length

	// Per span: is there committed content after p (then the span cannot
	// end at p)? lastContent[s] is the last such position.
	lastContent := make([]int, len(d.spans))
	for s, sp := range d.spans {
		lastContent[s] = -1
		for p := sp.pos + sp.n - 1; p >= sp.pos; p-- {
			if !d.masked[p] && !d.isEnd(d.tokens[p]) {
				lastContent[s] = p
				break
			}
		}
	}

	var drafts map[int]draft
	if d.copy != nil {
		drafts = d.drafts()
	}
	props := make([]proposal, len(d.targets))
	isTarget := make(map[int]int, len(d.targets))
	var origLogp []float64 // rewrite: the original token's log-probability per target
	if d.orig != nil {
		origLogp = make([]float64, len(d.targets))
	}
	for i, p := range d.targets {
		s := d.spanOf[i]
		sp := &d.spans[s]
		b := d.banned[:0]
		if d.ni.mask >= 0 {
			b = append(b, d.ni.mask)
		}
		if d.ni.expand >= 0 && (pol != lenExpand || sp.n >= sp.cap) {
			b = append(b, d.ni.expand)
		}
		if pol == lenFixed || sp.keepN || (pol != lenExpand && p < lastContent[s]) {
			if d.ni.eos >= 0 {
				b = append(b, d.ni.eos)
			}
			if d.ni.pad >= 0 {
				b = append(b, d.ni.pad)
			}
		}
		if sp.single {
			b = append(b, d.newlines...)
		}
		d.banned = b
		row := rows[i*v : (i+1)*v]
		if dr, ok := drafts[p]; ok {
			d.mixCopy(row, dr)
		}
		if sp.allow != nil && p == sp.pos {
			d.restrict(row, sp.allow)
		}
		if d.orig != nil && sp.keepN {
			origLogp[i] = logProb(row, d.orig[p])
		}
		props[i] = d.smp.propose(row, b, d.rng)
		isTarget[p] = i
	}

	// Pad/EOS confidence control: a span may only end where everything
	// after it is (or may still become) its end, and end proposals rank
	// below content.
	eligible := make([]bool, len(d.targets))
	for i := range eligible {
		eligible[i] = true
	}
	if pol == lenPad || pol == lenMulti {
		for s, sp := range d.spans {
			tail := sp.pos + sp.n // first position of the run of ends
		scan:
			for p := sp.pos + sp.n - 1; p >= sp.pos; p-- {
				i, ok := isTarget[p]
				switch {
				case !d.masked[p] && d.isEnd(d.tokens[p]):
				case d.masked[p] && !ok: // another block's mask: undecided
				case ok && d.isEnd(props[i].tok):
				default:
					break scan
				}
				tail = p
			}
			for i, p := range d.targets {
				if d.spanOf[i] == s && d.isEnd(props[i].tok) {
					eligible[i] = p >= tail
					props[i].demote(d.pl.padPenalty)
				}
			}
		}
	}

	cs := d.cands[:0]
	for i, p := range d.targets {
		if eligible[i] {
			cs = append(cs, candidate{pos: p, p: props[i]})
		}
	}
	left := len(d.targets)
	steps := d.blockSteps
	quota := d.pl.sched.quota(min(d.blockStep, steps-1), steps, d.blockInitial, left)
	chosen := d.pl.sched.choose(cs, quota)
	d.cands = cs
	if d.pl.endThreshold > 0 && (pol == lenPad || pol == lenMulti) {
		chosen = d.chooseEnds(chosen, props, eligible)
	}

	for _, c := range chosen {
		d.tokens[c.pos] = c.p.tok
		d.masked[c.pos] = false
		d.logp[c.pos] = c.p.logp
		if i := isTarget[c.pos]; origLogp != nil && d.spans[d.spanOf[i]].keepN && c.p.tok != d.orig[c.pos] && c.p.prob < d.pl.doubt {
			// A rewrite replaces a token only with one the model does not
			// doubt; else the original stays.
			d.tokens[c.pos], d.logp[c.pos] = d.orig[c.pos], origLogp[i]
		}
	}
	if pol == lenPad || pol == lenMulti || pol == lenExpand {
		// An end commits the rest of its span as end too: pads only
		// follow the middle, never precede content. (DreamOn's
		// pad_eos_to_right: the ends are then deleted.)
		for _, c := range chosen {
			if !d.isEnd(c.p.tok) {
				continue
			}
			s := d.spanOf[isTarget[c.pos]]
			sp := d.spans[s]
			for p := c.pos + 1; p < sp.pos+sp.n; p++ {
				if d.masked[p] {
					d.tokens[p] = d.endToken()
					d.masked[p] = false
				}
			}
		}
	}
}

// chooseEnds adds to chosen, for each span, the leftmost end proposal of
// its tail whose probability reaches the plan's end threshold; committing
// it ends the span there (the positions after it become ends too). The
// model is rarely as sure of an end as of content, and without this a
// short answer in an over-allocated span spends one step per unused mask,
// committing the ends from the right, one at a time.
func (d *decoder) chooseEnds(chosen []candidate, props []proposal, eligible []bool) []candidate {
	best := make([]int, len(d.spans)) // per span: index in d.targets of its leftmost qualifying end, or -1
	for s := range best {
		best[s] = -1
	}
	for i, p := range d.targets {
		if !eligible[i] || !d.isEnd(props[i].tok) || props[i].prob < d.pl.endThreshold {
			continue
		}
		if s := d.spanOf[i]; best[s] < 0 || p < d.targets[best[s]] {
			best[s] = i
		}
	}
	for _, i := range best {
		if i < 0 {
			continue
		}
		p := d.targets[i]
		if !slices.ContainsFunc(chosen, func(c candidate) bool { return c.pos == p }) {
			chosen = append(chosen, candidate{pos: p, p: props[i]})
		}
	}
	return chosen
}

// restrict leaves only the allowed tokens' logits in row.
func (d *decoder) restrict(row []float32, allow []int32) {
	keep := make([]float32, len(allow))
	for i, t := range allow {
		keep[i] = row[t]
	}
	for i := range row {
		row[i] = negInf32
	}
	for i, t := range allow {
		row[t] = keep[i]
	}
}

// resize applies DreamOn's edits after a step: an expand token becomes two
// masks (up to the span's cap), a pad/EOS is deleted. The canvas changes
// length, so the next pass recomputes everything.
func (d *decoder) resize() {
	changed := false
	for _, sp := range d.spans {
		for p := sp.pos; p < sp.pos+sp.n; p++ {
			if !d.masked[p] && (d.tokens[p] == d.ni.expand || d.isEnd(d.tokens[p])) {
				changed = true
			}
		}
	}
	if !changed {
		return
	}
	var tokens []int32
	var masked []bool
	var logp []float64
	spans := slices.Clone(d.spans)
	s := 0
	for p := 0; p < len(d.tokens); p++ {
		if s < len(d.spans) && p == d.spans[s].pos {
			sp := d.spans[s]
			spans[s].pos = len(tokens)
			n := 0
			room := sp.cap - sp.n // growth left; several expands may land in one step
			for q := sp.pos; q < sp.pos+sp.n; q++ {
				switch t := d.tokens[q]; {
				case !d.masked[q] && t == d.ni.expand && room <= 0:
					// Over the cap: the position is masked again.
					tokens = append(tokens, d.ni.mask)
					masked = append(masked, true)
					logp = append(logp, 0)
					n++
				case !d.masked[q] && t == d.ni.expand:
					tokens = append(tokens, d.ni.mask, d.ni.mask)
					masked = append(masked, true, true)
					logp = append(logp, 0, 0)
					n += 2
					room--
					d.grown++
				case !d.masked[q] && d.isEnd(t):
					// deleted
				default:
					tokens = append(tokens, t)
					masked = append(masked, d.masked[q])
					logp = append(logp, d.logp[q])
					n++
				}
			}
			spans[s].n = n
			p = sp.pos + sp.n - 1
			s++
			continue
		}
		tokens = append(tokens, d.tokens[p])
		masked = append(masked, d.masked[p])
		logp = append(logp, d.logp[p])
	}
	d.tokens, d.masked, d.logp, d.spans = tokens, masked, logp, spans
	d.resizes++
	d.full = true
	d.blockInitial = d.countMasked(-1)
	if d.pl.steps == 0 {
		// One step per mask still holds for masks the span grew.
		d.blockSteps = d.blockStep + d.blockInitial
		d.stepsTotal = d.blockSteps
	}
}

// texts decodes each span's committed content so far.
func (d *decoder) texts(c codec) []string {
	out := make([]string, len(d.spans))
	var ids []int32
	for s, sp := range d.spans {
		ids = ids[:0]
		for p := sp.pos; p < sp.pos+sp.n; p++ {
			t := d.tokens[p]
			if d.masked[p] || d.isEnd(t) || t == d.ni.expand || t == d.ni.mask {
				continue
			}
			ids = append(ids, t)
		}
		out[s] = c.Decode(ids)
	}
	return out
}

// confidence is the geometric mean probability of the committed content
// tokens of all spans (of the end tokens when there is no content).
func (d *decoder) confidence() float64 {
	var sum, endSum float64
	var n, endN int
	for _, sp := range d.spans {
		for p := sp.pos; p < sp.pos+sp.n; p++ {
			if d.masked[p] {
				continue
			}
			if d.isEnd(d.tokens[p]) {
				endSum += d.logp[p]
				endN++
				continue
			}
			sum += d.logp[p]
			n++
		}
	}
	switch {
	case n > 0:
		return math.Exp(sum / float64(n))
	case endN > 0:
		return math.Exp(endSum / float64(endN))
	}
	return 1
}

// run drives decoders in lockstep, batching their passes into one model
// call per step, until all are done. onStep reports decoder 0's progress.
func run(ctx context.Context, net network, decs []*decoder, onStep func(*decoder)) error {
	for {
		var active []*decoder
		var passes []*pass
		for _, d := range decs {
			if d.done() {
				continue
			}
			active = append(active, d)
			passes = append(passes, d.nextPass())
		}
		if len(active) == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		out, err := net.forward(ctx, passes)
		if err != nil {
			return err
		}
		for i, d := range active {
			wasScoring := d.scoring
			if err := d.apply(out[i]); err != nil {
				return err
			}
			if d == decs[0] && !wasScoring && onStep != nil {
				onStep(d)
			}
		}
	}
}
