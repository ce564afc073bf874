package infill

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Mask counts chosen per mode when Params.MaxTokens is 0 (see DefaultParams
// for how they were chosen).
const (
	defaultLineTokens  = 16 // one-line completion
	defaultBlockTokens = 32 // several lines: completion on a blank line or after '{'
	defaultHoleTokens  = 32 // a hole, or infill at a point
	maxInfillTokens    = 256
	multiMinTokens     = 4  // "multi" length: the shortest mask count tried
	expandInitial      = 16 // expand policy: DreamOn's initial canvas (min_gen_len)
	expandCap          = 64 // expand policy: the growth budget without MaxTokens
)

// Engine fills spans with one model. It is safe for concurrent use; runs
// are serialised, as each already uses every core.
type Engine struct {
	net      network
	tok      codec
	ni       netInfo
	newlines []int32
	opt      options
	err      error // set when the engine cannot run at all

	// lock is held by the running request; it guards last and win.
	lock chan struct{}
	last *docCache
	win  windowMemo
}

// windowMemo remembers where the last prefix window started, so that the
// next request on the same document starts there too while the budget
// allows: a window that moved by a line at every keystroke would change
// the first canvas tokens and lose the whole cache.
type windowMemo struct {
	start int    // byte offset of the window in its text
	head  string // the text there
}

// windowSlack is how far over its token budget a remembered prefix window
// may grow before it is cut again.
const windowSlack = 1.25

// stabilize returns the prefix tokens to use: pre (the window cut to its
// budget) or, when the last window's start is still in the text and its
// tokens from there are at most limit, the prefix from there. It
// remembers the choice.
func (w *windowMemo) stabilize(c codec, prefix string, pre []int32, limit int) []int32 {
	start := len(prefix) - len(c.Decode(pre))
	if s := w.start; w.head != "" && s != start && s <= len(prefix) &&
		strings.HasPrefix(prefix[s:], w.head) && (s == 0 || prefix[s-1] == '\n') {
		if s > start {
			// The remembered window is shorter than the budget allows:
			// keep it rather than recompute the whole canvas.
			old := c.EncodeOrdinary(prefix[s:])
			return w.keep(prefix, s, old)
		}
		if old := c.EncodeOrdinary(prefix[s:]); len(old) <= limit {
			return w.keep(prefix, s, old)
		}
	}
	return w.keep(prefix, start, pre)
}

func (w *windowMemo) keep(prefix string, start int, toks []int32) []int32 {
	w.start = start
	w.head = prefix[start:min(len(prefix), start+64)]
	return toks
}

// docCache is the key/value cache of the last document decoded: the tokens
// the cache was computed with, and where the last span ended.
type docCache struct {
	cache  kvCache
	tokens []int32 // -1 where the cache holds nothing valid
	anchor int
}

type options struct {
	cache  bool
	reuse  bool
	bos    int // -1: as the model family does; 0 off; 1 on
	minUse float64
	tok    Tokenizer
}

// Option configures an Engine.
type Option func(*options)

// WithCache turns the key/value cache on (the default) or off. Off, every
// step recomputes the whole canvas: slower, and the reference for what
// caching costs in quality.
func WithCache(on bool) Option { return func(o *options) { o.cache = on } }

// WithReuse turns on (the default) or off keeping the cache of the last
// document for the next request.
func WithReuse(on bool) Option { return func(o *options) { o.reuse = on } }

// WithBOS puts the model's BOS token before a canvas that starts at the
// start of its document (on), or never (off). By default only models that
// were trained with one get it (LLaDA).
func WithBOS(on bool) Option {
	return func(o *options) {
		o.bos = 0
		if on {
			o.bos = 1
		}
	}
}

func newEngine(net network, tok codec, bosDefault bool, opts ...Option) *Engine {
	o := options{cache: true, reuse: true, bos: -1, minUse: 0.5}
	for _, f := range opts {
		f(&o)
	}
	if o.bos < 0 {
		o.bos = 0
		if bosDefault {
			o.bos = 1
		}
	}
	ni := net.info()
	e := &Engine{net: net, tok: tok, ni: ni, opt: o, lock: make(chan struct{}, 1)}
	for id := 0; id < ni.vocab; id++ {
		if strings.ContainsAny(string(tok.TokenBytes(int32(id))), "\r\n") {
			e.newlines = append(e.newlines, int32(id))
		}
	}
	return e
}

// Reset forgets the cached document.
func (e *Engine) Reset() {
	e.lock <- struct{}{}
	e.last = nil
	<-e.lock
}

// spanPlan is one span of a request, resolved.
type spanPlan struct {
	// Span is where the span lies on the canvas: the request's span
	// aligned by alignSpan. user is the request's span, where the edit
	// goes; the text between the two ends is kept as it is.
	Span
	user   Span
	orig   []int32 // rewrite: the span's tokens
	n      int     // masks (or tokens, rewrite)
	remask int     // rewrite
	single bool
	// heal is the partial word before a completion point (or the part
	// of a token before a span's start, see alignSpan), taken out of the
	// prefix and given back as the forced start of the answer, so the
	// canvas ends at a pre-token boundary as in training ("fo|" is
	// completed as "foo", not as "fo" + "o").
	heal  string
	allow []int32 // tokens the first mask may take when healing
	pc    postContext
}

// Run fills the request's spans. It returns when done, when ctx is done
// (within one model step), or on error.
func (e *Engine) Run(ctx context.Context, req *Request) (*Result, error) {
	if e.err != nil {
		return nil, e.err
	}
	if req == nil {
		return nil, errors.New("infill: nil request")
	}
	p, err := resolveParams(req.Params)
	if err != nil {
		return nil, err
	}
	spans, mode, err := e.resolveSpans(req, p)
	if err != nil {
		return nil, err
	}
	pl, err := e.makePlan(p, mode)
	if err != nil {
		return nil, err
	}

	select {
	case e.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-e.lock }()

	base, err := e.layout(req.Text, spans, p, &e.win)
	if err != nil {
		return nil, err
	}
	base = e.withPrelude(base, req.Prelude)
	decs := e.variants(base, spans, p, pl)
	if req.Corpus != "" {
		idx := newCopyIndex(e.tok, req.Corpus)
		for _, d := range decs {
			d.copy = idx
		}
	}

	// The first decoder takes over the cached document, if it fits.
	primary := decs[0]
	last := e.last
	e.last = nil
	if e.opt.cache {
		e.prime(primary, last)
		for _, d := range decs[1:] {
			d.cache = e.net.newCache(len(d.tokens) + 64)
		}
	}

	var onStep func(*decoder)
	if req.OnStep != nil {
		onStep = func(d *decoder) {
			texts := d.texts(e.tok)
			for i, sp := range spans {
				// As the edit will be: over the request's span.
				texts[i] = req.Text[sp.user.Start:sp.Start] + texts[i] + req.Text[sp.End:sp.user.End]
			}
			req.OnStep(Step{Done: d.steps, Total: max(d.stepsTotal, d.steps), Texts: texts})
		}
	}
	if err := run(ctx, e.net, decs, onStep); err != nil {
		return nil, err
	}
	if e.opt.cache && e.opt.reuse {
		e.last = &docCache{cache: primary.cache, tokens: primary.cached, anchor: lastAnchor(primary)}
	}

	res := &Result{}
	seen := map[string]bool{}
	for _, d := range decs {
		texts := d.texts(e.tok)
		c := Candidate{Confidence: d.confidence(), Raw: texts}
		var key strings.Builder
		for i, sp := range spans {
			t := texts[i]
			if sp.heal != "" {
				t = strings.TrimPrefix(t, sp.heal)
			}
			if t != req.Text[sp.Start:sp.End] {
				// (A rewrite that kept every token is the text as it was.)
				t = postprocess(t, sp.pc)
			}
			// The text alignSpan left out of the span stays as it was.
			t = req.Text[sp.user.Start:sp.Start] + t + req.Text[sp.End:sp.user.End]
			c.Edits = append(c.Edits, Edit{Start: sp.user.Start, End: sp.user.End, NewText: t})
			key.WriteString(t)
			key.WriteByte(0)
		}
		if seen[key.String()] {
			continue
		}
		seen[key.String()] = true
		res.Candidates = append(res.Candidates, c)
	}
	sort.SliceStable(res.Candidates, func(i, j int) bool {
		return res.Candidates[i].Confidence > res.Candidates[j].Confidence
	})
	if len(res.Candidates) > p.Candidates {
		res.Candidates = res.Candidates[:p.Candidates]
	}
	return res, nil
}

// resolveParams fills zero fields with defaults and checks ranges.
func resolveParams(p Params) (Params, error) {
	d := DefaultParams()
	if p.Sampler == "" {
		p.Sampler = d.Sampler
	}
	if p.Schedule == "" {
		p.Schedule = d.Schedule
	}
	if p.Threshold == 0 {
		p.Threshold = d.Threshold
	}
	if p.Eps == 0 {
		p.Eps = d.Eps
	}
	if p.ContextTokens == 0 {
		p.ContextTokens = d.ContextTokens
	}
	if p.Strength == 0 {
		p.Strength = d.Strength
	}
	if p.Doubt == 0 {
		p.Doubt = d.Doubt
	}
	if p.RewriteMargin == 0 {
		p.RewriteMargin = d.RewriteMargin
	}
	if p.HoleMarker == "" {
		p.HoleMarker = d.HoleMarker
	}
	if p.Candidates == 0 {
		p.Candidates = d.Candidates
	}
	if p.Length == "" {
		p.Length = d.Length
	}
	if p.EndThreshold == 0 {
		p.EndThreshold = d.EndThreshold
	}
	if p.PadPenalty == 0 {
		p.PadPenalty = d.PadPenalty
	}
	if p.Recompute == "" {
		p.Recompute = d.Recompute
	}
	switch {
	case p.Steps < 0:
		return p, fmt.Errorf("infill: steps %d < 0", p.Steps)
	case p.Temperature < 0:
		return p, fmt.Errorf("infill: temperature %g < 0", p.Temperature)
	case p.TopP < 0 || p.TopP > 1:
		return p, fmt.Errorf("infill: top-p %g outside [0, 1]", p.TopP)
	case p.TopK < 0:
		return p, fmt.Errorf("infill: top-k %d < 0", p.TopK)
	case p.Threshold < 0 || p.Threshold > 1:
		return p, fmt.Errorf("infill: threshold %g outside [0, 1]", p.Threshold)
	case p.Eps <= 0 || p.Eps >= 1:
		return p, fmt.Errorf("infill: eps %g outside (0, 1)", p.Eps)
	case p.BlockSize < 0:
		return p, fmt.Errorf("infill: block size %d < 0", p.BlockSize)
	case p.MaxTokens < 0:
		return p, fmt.Errorf("infill: max tokens %d < 0", p.MaxTokens)
	case p.ContextTokens < 0:
		return p, fmt.Errorf("infill: context tokens %d < 0", p.ContextTokens)
	case p.Strength < 0 || p.Strength > 1:
		return p, fmt.Errorf("infill: strength %g outside (0, 1]", p.Strength)
	case p.Doubt < 0 || p.Doubt > 1:
		return p, fmt.Errorf("infill: doubt %g outside (0, 1]", p.Doubt)
	case p.RewriteMargin < 0:
		return p, fmt.Errorf("infill: rewrite margin %g < 0", p.RewriteMargin)
	case p.Candidates < 0:
		return p, fmt.Errorf("infill: candidates %d < 0", p.Candidates)
	case p.EndThreshold < 0 || p.EndThreshold > 1:
		return p, fmt.Errorf("infill: end threshold %g outside [0, 1]", p.EndThreshold)
	case p.PadPenalty < 0 || p.PadPenalty > 1:
		return p, fmt.Errorf("infill: pad penalty %g outside (0, 1]", p.PadPenalty)
	}
	return p, nil
}

func (e *Engine) makePlan(p Params, mode Mode) (*plan, error) {
	kind, err := parseSampler(p.Sampler)
	if err != nil {
		return nil, fmt.Errorf("infill: %w", err)
	}
	sk, err := parseSchedule(p.Schedule)
	if err != nil {
		return nil, fmt.Errorf("infill: %w", err)
	}
	masksOnly, err := parseRecompute(p.Recompute)
	if err != nil {
		return nil, fmt.Errorf("infill: %w", err)
	}
	lp, auto, err := parseLength(p.Length)
	if err != nil {
		return nil, fmt.Errorf("infill: %w", err)
	}
	if auto && e.ni.expand >= 0 {
		lp = lenExpand
	}
	if lp == lenExpand && e.ni.expand < 0 {
		return nil, errors.New("infill: length policy expand needs a model with an expand token")
	}
	if (lp == lenPad || lp == lenMulti) && e.ni.pad < 0 && e.ni.eos < 0 {
		lp = lenFixed // nothing can end a span early
	}
	return &plan{
		smp:          sampler{kind: kind, temperature: p.Temperature, topK: p.TopK, topP: p.TopP},
		sched:        schedule{kind: sk, threshold: p.Threshold, eps: p.Eps},
		steps:        p.Steps,
		blockSize:    p.BlockSize,
		length:       lp,
		padPenalty:   p.PadPenalty,
		endThreshold: p.EndThreshold,
		masksOnly:    masksOnly,
		userMax:      p.MaxTokens > 0,
		doubt:        p.Doubt,
		margin:       p.RewriteMargin,
	}, nil
}

// splitsRune reports whether byte offset off of text falls inside a valid
// multi-byte UTF-8 character. (Inside invalid bytes any offset is as good
// as another.)
func splitsRune(text string, off int) bool {
	for j := off - 1; j >= 0 && j >= off-utf8.UTFMax+1; j-- {
		if utf8.RuneStart(text[j]) {
			r, n := utf8.DecodeRuneInString(text[j:])
			return r != utf8.RuneError && j+n > off
		}
	}
	return false
}

// resolveSpans turns a request into spans with their mask counts.
func (e *Engine) resolveSpans(req *Request, p Params) ([]spanPlan, Mode, error) {
	text := req.Text
	mode := req.Mode
	var spans []Span
	switch mode {
	case ModeFillHoles:
		for i := 0; ; {
			j := strings.Index(text[i:], p.HoleMarker)
			if j < 0 {
				break
			}
			spans = append(spans, Span{i + j, i + j + len(p.HoleMarker)})
			i += j + len(p.HoleMarker)
		}
		if len(spans) == 0 {
			return nil, mode, fmt.Errorf("infill: no hole marker %q in the text", p.HoleMarker)
		}
	case ModeComplete, ModeInfill, ModeRewrite:
		spans = slices.Clone(req.Spans)
		if len(spans) == 0 {
			return nil, mode, errors.New("infill: no spans")
		}
	default:
		return nil, mode, fmt.Errorf("infill: unknown mode %v", mode)
	}
	if mode == ModeRewrite && p.Strength >= 1 {
		mode = ModeInfill
	}
	for i, s := range spans {
		switch {
		case s.Start < 0 || s.End < s.Start || s.End > len(text):
			return nil, mode, fmt.Errorf("infill: span %d [%d, %d) outside the text (%d bytes)", i, s.Start, s.End, len(text))
		case i > 0 && s.Start < spans[i-1].End:
			return nil, mode, fmt.Errorf("infill: span %d [%d, %d) overlaps or precedes span %d", i, s.Start, s.End, i-1)
		case splitsRune(text, s.Start) || splitsRune(text, s.End):
			return nil, mode, fmt.Errorf("infill: span %d [%d, %d) cuts a UTF-8 character in two", i, s.Start, s.End)
		case mode == ModeComplete && s.Start != s.End && !isClosing(text[s.Start:s.End]):
			return nil, mode, fmt.Errorf("infill: completion span %d [%d, %d) is neither a point nor closing brackets and quotes (%q)", i, s.Start, s.End, text[s.Start:s.End])
		case mode == ModeRewrite && s.Start == s.End:
			return nil, mode, fmt.Errorf("infill: rewrite span %d is empty", i)
		}
	}
	out := make([]spanPlan, len(spans))
	prevEnd := 0
	for i, user := range spans {
		s, heal := user, ""
		if mode != ModeComplete {
			s, heal = e.alignSpan(text, user, prevEnd, mode != ModeFillHoles)
		}
		prevEnd = s.End
		sp := spanPlan{Span: s, user: user}
		if heal != "" {
			sp.heal, sp.allow = e.healing(heal)
		}
		sp.pc = postContext{before: text[:s.Start], after: text[s.End:]}
		if mode != ModeFillHoles {
			sp.pc.orig = text[s.Start:s.End]
		}
		switch mode {
		case ModeComplete:
			sp.pc.closing = sp.pc.orig
			sp.single = p.SingleLine || !multiLinePoint(text, s.Start)
			sp.n = defaultLineTokens
			if !sp.single {
				sp.n = defaultBlockTokens
			}
			if i == 0 || spans[i-1].End < s.Start-len(partialWord(text[:s.Start])) {
				sp.heal, sp.allow = e.healing(partialWord(text[:s.Start]))
			}
		case ModeFillHoles:
			sp.n = defaultHoleTokens
		case ModeInfill:
			sp.n = defaultHoleTokens
			if s.End > s.Start {
				n0 := len(e.tok.EncodeOrdinary(text[s.Start-len(sp.heal) : s.End]))
				sp.n = min(max(n0+n0/2+4, 8), maxInfillTokens)
			}
		case ModeRewrite:
			sp.orig = append([]int32{}, e.tok.EncodeOrdinary(text[s.Start-len(sp.heal):s.End])...)
			sp.n = len(sp.orig)
			if sp.n > 0 { // else only blanks were selected: nothing to rewrite
				sp.remask = max(1, int(math.Ceil(p.Strength*float64(sp.n))))
			}
		}
		if p.MaxTokens > 0 && mode != ModeRewrite {
			sp.n = p.MaxTokens
		}
		sp.pc.single = sp.single
		out[i] = sp
	}
	return out, mode, nil
}

// alignSpan places a span of a request on the canvas the way spans were
// cut in training (model/train/data.py): a span starts at a line's first
// token after its indentation, or at a token boundary inside a line, and
// ends at a line's end or at a token boundary; line breaks inside a span are
// its own. The model never saw a span start or end with a line break, nor a
// prefix cut inside a token: with the Go-aware pre-tokenizer a newline and
// the next line's indentation are one token ("\n\t"), so a whole-line span
// starting in column 0 left the prefix ending in a bare "\n" and the span
// starting with a bare "\t", and the model wrote "}" or "*" there. So:
//
//   - blanks and line breaks the span starts with, up to its last line
//     break, and the line breaks (with the blanks around them) it ends
//     with stay as they are, outside the span;
//   - a start inside a token of the text's own tokenization moves to the
//     token's end when only blanks lie between (the indentation stays),
//     else, with heal set and unless the prefix then ends a line, to the
//     token's start, the part before the span becoming the forced start
//     of the answer (returned as heal);
//   - an end inside a token moves to the token's start when only blanks
//     lie between;
//   - a span of blanks only becomes a point after its first line's blanks.
//
// The edit still covers the request's span; what alignment left out is
// given back unchanged around the answer. prevEnd is where the previous
// span ends on the canvas: healing never reaches before it.
func (e *Engine) alignSpan(text string, s Span, prevEnd int, heal bool) (Span, string) {
	body := text[s.Start:s.End]
	if strings.TrimSpace(body) == "" {
		p := s.Start + len(body) - len(strings.TrimLeft(body, " \t"))
		s = Span{p, p}
	} else {
		lead := body[:len(body)-len(strings.TrimLeft(body, " \t\r\n"))]
		if i := strings.LastIndexByte(lead, '\n'); i >= 0 {
			s.Start += i + 1
		}
		body = text[s.Start:s.End]
		trimmed := strings.TrimRight(body, " \t\r\n")
		if i := strings.IndexAny(body[len(trimmed):], "\r\n"); i >= 0 {
			s.End = s.Start + len(trimmed) + i
		}
	}
	if t0, _, ok := e.tokenAround(text, s.End); ok && s.End > s.Start && isBlank(text[t0:s.End]) {
		s.End = max(t0, s.Start)
	}
	t0, t1, ok := e.tokenAround(text, s.Start)
	if !ok {
		return s, ""
	}
	if isBlank(text[s.Start:t1]) && (s.End == s.Start || t1 <= s.End) {
		if s.End == s.Start {
			s.End = t1
		}
		s.Start = t1
		return s, ""
	}
	// A prefix that ends a line ends a token whatever follows but blanks,
	// and answers do not start with blanks: no healing there. (The text
	// around a point joins the prefix's line break to the suffix's, "\n"
	// and "\n\t" into "\n\n\t", where an answer would stand between.)
	if piece := text[t0:s.Start]; heal && t0 >= prevEnd && !strings.HasSuffix(piece, "\n") {
		return s, piece
	}
	return s, ""
}

// isBlank reports whether s is spaces and tabs only (no line break).
func isBlank(s string) bool { return strings.Trim(s, " \t") == "" }

// tokenAround returns the token [t0, t1) of text's own tokenization that
// holds byte offset off strictly inside, if any. It tokenizes the lines
// around off only: from the start of the line before off's to the end of
// the line after, enough for every pre-tokenizer diffill knows to cut
// there as it would in the whole text.
func (e *Engine) tokenAround(text string, off int) (t0, t1 int, ok bool) {
	if off <= 0 || off >= len(text) {
		return 0, 0, false
	}
	a := strings.LastIndexByte(text[:off], '\n') + 1
	if a > 0 {
		a = strings.LastIndexByte(text[:a-1], '\n') + 1
	}
	b := len(text)
	if i := strings.IndexByte(text[off:], '\n'); i >= 0 {
		b = off + i + 1
		if j := strings.IndexByte(text[b:], '\n'); j >= 0 {
			b += j + 1
		}
	}
	toks := e.tok.EncodeOrdinary(text[a:b])
	pos := a
	for _, t := range toks {
		end := pos + len(e.tok.TokenBytes(t))
		if pos < off && off < end {
			return pos, end, true
		}
		if end > off {
			break
		}
		pos = end
	}
	return 0, 0, false
}

// sameStructure reports whether text b, in place of text a between before
// and after, leaves Go's brackets, strings and comments at the end of the
// line as a does: a rewrite changes code within its lines, never the
// structure of the code around them.
func sameStructure(before, a, b, after string) bool {
	open := openBrackets(before)
	rest := after
	if i := strings.IndexByte(after, '\n'); i >= 0 {
		rest = after[:i+1]
	}
	// The state where the span ends (a line comment, which the line's end
	// closes, counts as code), and the brackets at the end of its line.
	end := func(s string) (state byte, stack string, bad int) {
		sc := open
		sc.stack = slices.Clone(open.stack)
		count := func(int) { bad++ }
		sc.feed(s, count)
		state = sc.state
		if state == '/' {
			state = 0
		}
		sc.feed(rest, count)
		return state, string(sc.stack), bad
	}
	sa, ka, ba := end(a)
	sb, kb, bb := end(b)
	return sa == sb && ka == kb && ba == bb
}

// partialWord returns the identifier (with its leading space, which the
// Go-aware pre-tokenizer joins to it) that ends right at the end of before,
// or "".
func partialWord(before string) string {
	i := len(before)
	for i > 0 {
		r, n := utf8.DecodeLastRuneInString(before[:i])
		if r != '_' && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			break
		}
		i -= n
	}
	w := before[i:]
	if r, _ := utf8.DecodeRuneInString(w); w == "" || r != '_' && !unicode.IsLetter(r) {
		return "" // nothing, or a number
	}
	if i > 0 && before[i-1] == ' ' {
		w = " " + w
	}
	return w
}

// healing returns the tokens that may start an answer continuing the
// partial word w: those that spell w and more (or exactly w), and the
// end tokens (nothing to add). With no such token, no healing.
func (e *Engine) healing(w string) (string, []int32) {
	if w == "" || len(w) > 64 {
		return "", nil
	}
	var allow []int32
	for id := 0; id < e.ni.vocab; id++ {
		t := int32(id)
		if t == e.ni.mask || t == e.ni.expand {
			continue
		}
		if b := e.tok.TokenBytes(t); len(b) >= len(w) && string(b[:len(w)]) == w {
			allow = append(allow, t)
		}
	}
	if len(allow) == 0 {
		return "", nil
	}
	for _, t := range []int32{e.ni.eos, e.ni.pad} {
		if t >= 0 {
			allow = append(allow, t)
		}
	}
	return w, allow
}

// multiLinePoint reports whether a completion at off should write several
// lines: the cursor is on a blank line, or right after an opening brace at
// the end of its line.
func multiLinePoint(text string, off int) bool {
	ls := strings.LastIndexByte(text[:off], '\n') + 1
	le := strings.IndexByte(text[off:], '\n')
	if le < 0 {
		le = len(text)
	} else {
		le += off
	}
	before, after := strings.TrimSpace(text[ls:off]), strings.TrimSpace(text[off:le])
	if after != "" {
		return false
	}
	return before == "" || strings.HasSuffix(before, "{")
}

// canvas is a request's token layout before any decoding.
type canvas struct {
	tokens []int32
	spans  []spanState
}

// layout tokenizes the window of text around the spans and lays out the
// canvas: [BOS] prefix span₀ between₀ span₁ ... suffix.
func (e *Engine) layout(text string, spans []spanPlan, p Params, memo *windowMemo) (*canvas, error) {
	var mids [][]int32
	used := 0
	for i := 1; i < len(spans); i++ {
		m := e.tok.EncodeOrdinary(text[spans[i-1].End : spans[i].Start-len(spans[i].heal)])
		mids = append(mids, m)
		used += len(m)
	}
	budget := p.ContextTokens
	room := math.MaxInt // context the model's positions leave room for
	if e.ni.maxPositions > 0 {
		// The canvas must fit the model: masks first.
		room = e.ni.maxPositions - 1 - used
		for _, sp := range spans {
			room -= sp.n
		}
		budget = min(budget, room+used)
	}
	budget = max(0, budget-used)
	prefixText, suffixText := text[:spans[0].Start-len(spans[0].heal)], text[spans[len(spans)-1].End:]
	pre := encodeTail(e.tok, prefixText, budget)
	suf := encodeHead(e.tok, suffixText, budget)
	np, ns := splitBudget(budget, len(pre), len(suf))
	if np < len(pre) {
		pre = encodeTail(e.tok, prefixText, np)
	}
	if ns < len(suf) {
		suf = encodeHead(e.tok, suffixText, ns)
	}
	if memo != nil {
		limit := min(int(windowSlack*float64(np)), room-len(suf))
		pre = memo.stabilize(e.tok, prefixText, pre, limit)
	}

	c := &canvas{}
	wholePrefix := len(e.tok.Decode(pre)) == len(prefixText)
	if e.ni.bos >= 0 && (e.opt.bos == 1 && wholePrefix || e.ni.shift && len(pre) == 0) {
		c.tokens = append(c.tokens, e.ni.bos)
	} else if e.ni.shift && len(pre) == 0 {
		// A shifted model predicts position 0 from nothing: give it an
		// end-of-text token to predict from.
		if e.ni.eos < 0 {
			return nil, errors.New("infill: span at the start of the text, and the model has neither BOS nor EOS to predict it from")
		}
		c.tokens = append(c.tokens, e.ni.eos)
	}
	c.tokens = append(c.tokens, pre...)
	for i, sp := range spans {
		if i > 0 {
			c.tokens = append(c.tokens, mids[i-1]...)
		}
		st := spanState{pos: len(c.tokens), n: sp.n, cap: sp.n, single: sp.single, allow: sp.allow}
		if sp.orig != nil {
			st.keepN, st.remask = true, sp.remask
			c.tokens = append(c.tokens, sp.orig...)
		} else {
			for range sp.n {
				c.tokens = append(c.tokens, e.ni.mask)
			}
		}
		c.spans = append(c.spans, st)
	}
	c.tokens = append(c.tokens, suf...)
	if e.ni.maxPositions > 0 && len(c.tokens) > e.ni.maxPositions {
		return nil, fmt.Errorf("infill: canvas of %d tokens exceeds the model's %d positions (lower the context budget)", len(c.tokens), e.ni.maxPositions)
	}
	return c, nil
}

// variants makes the decoders of a request: one per mask count (length
// policy "multi", or several candidates without sampling) and per seed
// (several candidates with sampling).
func (e *Engine) variants(base *canvas, spans []spanPlan, p Params, pl *plan) []*decoder {
	scales := []float64{1}
	rewrite := base.spans[0].keepN
	switch {
	case rewrite:
	case pl.length == lenMulti:
		scales = []float64{1, 0.5, 0.25}
	case p.Candidates > 1 && p.Temperature == 0 && pl.length != lenExpand:
		scales = nil
		for i := range p.Candidates {
			scales = append(scales, 1/(1+0.5*float64(i))) // 1, 2/3, 1/2, ...
		}
	}
	seeds := 1
	if p.Temperature > 0 && p.Candidates > 1 {
		seeds = p.Candidates
	}
	var decs []*decoder
	seenN := map[string]bool{}
	for _, sc := range scales {
		var ns []int
		for _, sp := range spans {
			ns = append(ns, max(min(sp.n, multiMinTokens), int(math.Round(float64(sp.n)*sc))))
		}
		key := fmt.Sprint(ns)
		if seenN[key] {
			continue
		}
		seenN[key] = true
		for s := range seeds {
			d := e.newDecoder(base, ns, p.Seed+uint64(s), pl)
			if rewrite {
				d.reject = func(s int, ids []int32) bool {
					t := strings.TrimPrefix(e.tok.Decode(ids), spans[s].heal)
					return !sameStructure(spans[s].pc.before, spans[s].pc.orig, t, spans[s].pc.after)
				}
			}
			decs = append(decs, d)
		}
	}
	return decs
}

// newDecoder lays out base with ns[i] masks for span i.
func (e *Engine) newDecoder(base *canvas, ns []int, seed uint64, pl *plan) *decoder {
	d := &decoder{ni: e.ni, pl: pl, smp: pl.smp, rng: newRNG(seed), newlines: e.newlines}
	d.smp.cands = nil
	prev := 0
	for i, sp := range base.spans {
		d.tokens = append(d.tokens, base.tokens[prev:sp.pos]...)
		st := sp
		st.pos = len(d.tokens)
		if sp.keepN {
			d.tokens = append(d.tokens, base.tokens[sp.pos:sp.pos+sp.n]...)
		} else {
			st.n = ns[i]
			st.cap = ns[i]
			if pl.length == lenExpand {
				// DreamOn starts from a fixed canvas (its min_gen_len) and
				// grows up to a budget: MaxTokens when given, else a few
				// times the mode's mask count.
				if pl.userMax {
					st.n = min(ns[i], expandInitial)
				} else {
					st.cap = max(4*ns[i], expandCap)
				}
			}
			for range st.n {
				d.tokens = append(d.tokens, e.ni.mask)
			}
		}
		d.spans = append(d.spans, st)
		prev = sp.pos + sp.n
	}
	d.tokens = append(d.tokens, base.tokens[prev:]...)
	d.masked = make([]bool, len(d.tokens))
	d.logp = make([]float64, len(d.tokens))
	for _, sp := range d.spans {
		if sp.keepN {
			d.scoring = d.scoring || sp.remask > 0
			continue
		}
		for p := sp.pos; p < sp.pos+sp.n; p++ {
			d.masked[p] = true
		}
	}
	if !d.scoring {
		d.startBlocks()
	}
	return d
}

// lastAnchor is where the decoder's last span ends.
func lastAnchor(d *decoder) int {
	sp := d.spans[len(d.spans)-1]
	return sp.pos + sp.n
}

// prime gives d a cache: the cache of the last document when most of it
// still holds (the unchanged prefix as is, the text after the last span
// shifted into place), else a new one.
func (e *Engine) prime(d *decoder, last *docCache) {
	n := len(d.tokens)
	if last == nil || !e.opt.reuse {
		d.cache = e.net.newCache(n + 64)
		d.full = true
		return
	}
	old := last.tokens
	first := d.spans[0].pos
	// Unchanged prefix.
	pfx := 0
	for pfx < min(len(old), n, first) && old[pfx] == d.tokens[pfx] {
		pfx++
	}
	// Unchanged text after the last span, aligned at the span's end.
	anchor := lastAnchor(d)
	run := 0
	for last.anchor+run < len(old) && anchor+run < n && old[last.anchor+run] == d.tokens[anchor+run] {
		run++
	}
	if float64(pfx+run) < e.opt.minUse*float64(n) {
		d.cache = e.net.newCache(n + 64)
		d.full = true
		return
	}
	delta := anchor - last.anchor
	if delta != 0 {
		if err := last.cache.shift(last.anchor, delta); err != nil {
			d.cache = e.net.newCache(n + 64)
			d.full = true
			return
		}
	}
	d.cache = last.cache
	d.cached = make([]int32, n)
	for i := range d.cached {
		d.cached[i] = -1
	}
	copy(d.cached[:pfx], d.tokens[:pfx])
	copy(d.cached[anchor:anchor+run], d.tokens[anchor:anchor+run])
}

// Canvas is the canvas a request starts from, for tools that run the same
// decode elsewhere (infill/reference/decode.py, timed by `diffill bench`).
type Canvas struct {
	Tokens []int32
	Spans  []CanvasSpan
	// Newlines are the token ids banned in one-line spans.
	Newlines []int32
}

// CanvasSpan is a span's masks on a Canvas: Tokens[Pos:Pos+N].
type CanvasSpan struct {
	Pos, N     int
	SingleLine bool
}

// Canvas lays out req as Run would, without decoding (masks for every span;
// ModeRewrite is not supported).
func (e *Engine) Canvas(req *Request) (*Canvas, error) {
	if e.err != nil {
		return nil, e.err
	}
	p, err := resolveParams(req.Params)
	if err != nil {
		return nil, err
	}
	spans, mode, err := e.resolveSpans(req, p)
	if err != nil {
		return nil, err
	}
	if mode == ModeRewrite {
		return nil, errors.New("infill: no canvas for a rewrite")
	}
	c, err := e.layout(req.Text, spans, p, nil)
	if err != nil {
		return nil, err
	}
	c = e.withPrelude(c, req.Prelude)
	out := &Canvas{Tokens: c.tokens, Newlines: e.newlines}
	for _, s := range c.spans {
		out.Spans = append(out.Spans, CanvasSpan{Pos: s.pos, N: s.n, SingleLine: s.single})
	}
	return out, nil
}
