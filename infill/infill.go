// Package infill fills masked spans of a document with a bidirectional
// (masked-diffusion) language model.
//
// A request is a document, one or more spans and a mode. The engine builds a
// canvas: the tokens of the document around the spans (a window of
// Params.ContextTokens, cut at line boundaries) with mask tokens in place of
// each span. It then denoises the canvas step by step: every step runs the
// model over the canvas, a sampler proposes a token and a confidence for every
// masked position, and a schedule decides which of them are committed. All
// spans are refined jointly, each step seeing the code on both sides of every
// span.
//
// The sampler and schedule work on logits alone; the model is only asked for
// logits at chosen positions (model.Batch), with a key/value cache so that a
// step recomputes the span positions and reads the unchanged context from
// the cache (Fast-dLLM's dual cache). The cache of the last document is kept
// across requests: after a keystroke, the unchanged prefix is reused as is and
// the rest is shifted (RoPE keys re-rotated) rather than recomputed.
//
// The length of an answer is unknown. Models with an expand token (DreamOn)
// grow and shrink the span as they go; others get more masks than they need
// and end the answer with pad/EOS tokens, which the engine reads as "shorter"
// (see Params.Length).
package infill

import "fmt"

// Mode says what a request does with its spans.
type Mode int

const (
	// ModeComplete writes new text at a point: each span is zero-width
	// (Start == End), or covers the closing brackets and quotes that an
	// editor put after the cursor (see ClosingRest), which the answer
	// then writes through and keeps. Single line unless the cursor is on
	// a blank line or just after an opening brace (see Params.SingleLine).
	ModeComplete Mode = iota
	// ModeInfill replaces each span with new text of the model's chosen length.
	ModeInfill
	// ModeRewrite re-masks the tokens of each span that the model itself
	// doubts (see Params.Doubt), the least probable first and at most the
	// fraction Params.Strength of them, and denoises them; the length is
	// kept, and a span the model doubts nothing of, or whose new text it
	// does not clearly prefer (Params.RewriteMargin), comes back
	// unchanged. Strength 1 is ModeInfill.
	ModeRewrite
	// ModeFillHoles fills every Params.HoleMarker in the text jointly; the
	// request's Spans are ignored.
	ModeFillHoles
)

func (m Mode) String() string {
	switch m {
	case ModeComplete:
		return "complete"
	case ModeInfill:
		return "infill"
	case ModeRewrite:
		return "rewrite"
	case ModeFillHoles:
		return "fill-holes"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Span is a byte range [Start, End) of Request.Text.
type Span struct{ Start, End int }

// Params are the knobs of one request. The zero value of a field means "the
// default" for that field (see DefaultParams), except SingleLine and Seed.
type Params struct {
	// Steps is the number of denoising steps (an upper bound for the
	// "threshold" schedule). 0: one step per mask.
	Steps int
	// Sampler orders masked positions by confidence: "confidence" (top-1
	// probability), "margin" (top-1 minus top-2 probability), "entropy"
	// (negative entropy) or "random".
	Sampler string
	// Temperature > 0 samples tokens (Gumbel-max in float64) instead of
	// taking the most likely one. TopK and TopP (0: off) restrict the
	// candidates first.
	Temperature, TopP float64
	TopK              int
	// Schedule decides how many masks a step commits: "fixed" (the same
	// number every step, LLaDA), "dream" (1 - s/t of the masks left, with
	// s, t on a linear grid from 1 to Eps), "threshold" (every mask whose
	// confidence exceeds Threshold, at least one: Fast-dLLM's parallel
	// decoding).
	Schedule  string
	Threshold float64
	// Eps is the final time of the "dream" schedule.
	Eps float64
	// BlockSize > 0 decodes each span in semi-autoregressive blocks of that
	// many masks, left to right; the cache is refreshed at each block.
	BlockSize int
	// MaxTokens is the number of masks per span (the cap for models with an
	// expand token). 0: chosen per mode.
	MaxTokens int
	// ContextTokens is the token budget of the document around the spans,
	// split between prefix and suffix.
	ContextTokens int
	// Seed makes sampling deterministic: the same request and seed give the
	// same result.
	Seed uint64
	// Strength is the most of a span's tokens ModeRewrite re-masks, as a
	// fraction of them.
	Strength float64
	// Doubt: the model doubts a token whose probability, masked in its
	// context, is below Doubt. ModeRewrite re-masks only tokens it doubts
	// and replaces one only with a token it does not (else the original
	// stays), so a span the model is sure of throughout comes back as it
	// is. In (0, 1]: low lets more tokens stay and more replacements in.
	Doubt float64
	// RewriteMargin: a rewritten span replaces the original only if the
	// model finds it more probable by at least this many nats (its
	// tokens' log-probabilities, each masked in context, summed), so a
	// rewrite does not trade correct code for what a model merely likes a
	// little better.
	RewriteMargin float64
	// HoleMarker is what ModeFillHoles looks for. Default "???".
	HoleMarker string
	// Candidates is how many distinct answers to return (from different
	// lengths, or seeds when Temperature > 0), best first.
	Candidates int
	// SingleLine forces one-line completion in ModeComplete. When false the
	// engine decides: several lines on a blank line or after an opening
	// brace, else one.
	SingleLine bool

	// Length is the length policy: "auto" (expand for models with an expand
	// token, else "pad"), "pad" (over-allocate MaxTokens masks; pad/EOS in
	// a span ends it early), "expand" (DreamOn), "fixed" (exactly MaxTokens
	// tokens, pad/EOS banned), or "multi" (several mask counts decoded in
	// one batch, the most confident kept).
	Length string
	// PadPenalty scales the confidence of a pad/EOS proposal, so that the
	// content of a span is committed before its end ("pad" policy). 1: off.
	PadPenalty float64
	// EndThreshold commits a span's end (pad policies) at the leftmost
	// position where the model proposes it with at least this
	// probability, whatever the schedule's ranking; the rest of the span
	// ends with it. 1: ends are ranked like any other token.
	EndThreshold float64
	// Recompute is what a cached step recomputes: "span" (every position
	// of the spans, or of the current block: Fast-dLLM's dual cache) or
	// "masks" (the masks and the tokens committed since the last step;
	// a committed token's keys and values are then computed once more and
	// kept).
	Recompute string
}

// DefaultParams are the defaults used for a zero field. They were chosen
// with the built-in model on held-out Go cases (200 of
// model/train/testdata/heldout.jsonl: 150 lines, 50 blocks; infill at the
// cursor, no oracle length), `diffill eval`:
//
//   - PadPenalty 1 (off): demoting pad proposals (0.5) let mediocre content
//     fill the far end of an over-allocated span, which then could not end
//     early: exact match 4.0% against 8.0%.
//   - Sampler "margin": the same exact match as "confidence" (8.0%), edit
//     similarity 0.335 against 0.321; "entropy" was worse.
//   - Recompute "masks": as good as recomputing whole spans (8.0/0.333
//     against 8.0/0.321) at half the time per request.
//   - Threshold 0.9 with Steps 0 (up to a step per mask): 0.8 and 0.7 were
//     faster and a little worse; capping steps at half the masks halved
//     exact match.
//   - EndThreshold 0.5 (on the even-numbered 200 cases; the model is
//     rarely 90% sure of an end, so without it a short line in 16 masks
//     spent a step on each unused mask, committing the ends from the
//     right): the same exact match as 1 (off), 10.0% of lines, edit
//     similarity 0.340 against 0.344, and half the time per request (p50
//     87 ms against 183 ms); 0.7 gave 98 ms and the same; 0.3 lost
//     exact match (9.3%).
//   - ContextTokens 512: edit similarity was flat from 384 to 1024 tokens
//     (0.338-0.345), and the cold full pass is most of a cold request.
//   - Mask counts (per mode, when MaxTokens is 0): 16 for one line, 32 for
//     a point that may take several lines; 48 lost a quarter of exact
//     match to over-long answers.
//   - Doubt 0.5, RewriteMargin 1 (ModeRewrite): whole-line rewrites at
//     strength 0.4, seed 1, of 20 correct code lines each of
//     strings/builder.go, bytes/buffer.go, zap's logger.go and gorgonia
//     tensor's dense_io.go (lines kept unchanged, of 80), and of 54 lines
//     of the first three with one comparison or sign flipped (== and !=,
//     < and >, + and -; lines put back exactly): 68 kept / 12 put back;
//     Doubt 0.3: 60 / 11; 0.7: 71 / 8; margin 0 (any gain): 67 / 13. The
//     rewrite before (Strength of the tokens re-masked by their
//     unmasked scores, any answer taken) kept 7 and put back 1.
//
// Checked again on 1196 other held-out cases (make_cases.py --lines 1200
// --blocks 300 --seed 1; exact match % / edit similarity, all cases):
// these defaults 6.1 / 0.319; sampler "confidence" 6.0 / 0.313; context
// 384 and 768 tokens 6.0 / 0.320 and 5.9 / 0.314; end threshold 0.7
// 5.9 / 0.326 at a fifth more time per request.
func DefaultParams() Params {
	return Params{
		Steps:         0,
		Sampler:       "margin",
		Schedule:      "threshold",
		Threshold:     0.9,
		Eps:           1e-3,
		ContextTokens: 512,
		Strength:      0.5,
		Doubt:         0.5,
		RewriteMargin: 1,
		HoleMarker:    "???",
		Candidates:    1,
		Length:        "auto",
		PadPenalty:    1,
		EndThreshold:  0.5,
		Recompute:     "masks",
	}
}

// Request is one infilling job.
type Request struct {
	Text   string
	Spans  []Span
	Mode   Mode
	Params Params
	// Prelude is code the model reads before the window of Text: snippets
	// of the workspace (see package workspace). It is cut from its start
	// to what the model's positions leave room for. Keep it the same from
	// one request to the next while it applies, so that the cache of the
	// last document still holds.
	Prelude string
	// Corpus is text the copy prior copies from (see copy.go): the
	// document, its package's snippets. "": no copy prior.
	Corpus string
	// OnStep, if set, is called after each denoising step, on the goroutine
	// that called Run, with the text of each span so far (committed tokens
	// only).
	OnStep func(Step)
}

// Step reports progress: Done of at most Total steps, and the current text
// of each span, in span order.
type Step struct {
	Done, Total int
	Texts       []string
}

// Edit replaces Request.Text[Start:End] with NewText.
type Edit struct {
	Start, End int
	NewText    string
}

// Candidate is one answer: an edit per span, in span order, and the model's
// confidence in it (geometric mean probability of its tokens, in (0, 1]).
type Candidate struct {
	Edits      []Edit
	Confidence float64
	// Raw is each span's text as the model wrote it, before
	// post-processing (and with a healed partial word still in front).
	Raw []string
}

// Result holds the answers, best first; at least one on success.
type Result struct {
	Candidates []Candidate
}

// Apply returns text with the edits applied. Edits must be sorted and must
// not overlap.
func Apply(text string, edits []Edit) string {
	var b []byte
	last := 0
	for _, e := range edits {
		b = append(b, text[last:e.Start]...)
		b = append(b, e.NewText...)
		last = e.End
	}
	b = append(b, text[last:]...)
	return string(b)
}
