package lsp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"go.lsp.dev/protocol"

	"github.com/diffill/diffill/infill"
	"github.com/diffill/diffill/infill/gocheck"
	"github.com/diffill/diffill/lsp/document"
)

// completionCandidates is how many answers a completion list asks the
// engine for; it returns fewer when they coincide.
const completionCandidates = 2

func (s *Server) completion(ctx context.Context, v *view, p *protocol.CompletionParams) (*protocol.CompletionList, error) {
	doc, err := v.lookup(p.TextDocument.URI)
	if err != nil {
		return nil, err
	}
	off, err := doc.Offset(p.Position, v.enc)
	if err != nil {
		return nil, err
	}
	sugs, err := s.suggest(ctx, v, doc, off, completionCandidates, false)
	if err != nil {
		return nil, err
	}
	text := doc.Text()
	word := wordStart(text, off)
	list := &protocol.CompletionList{IsIncomplete: true, Items: []protocol.CompletionItem{}}
	for i, sg := range sugs {
		// The edit takes in the word before the cursor, so that clients
		// filtering by that word (VS Code, Neovim's omnifunc) keep it.
		newText := text[word:off] + sg.text
		list.Items = append(list.Items, protocol.CompletionItem{
			Label:            label(newText),
			Kind:             protocol.CompletionItemKindText,
			Detail:           detail(sg.rating, v.settings.GhostThreshold),
			Documentation:    protocol.MarkupContent{Kind: protocol.Markdown, Value: "```" + doc.LanguageID + "\n" + newText + "\n```"},
			FilterText:       newText,
			SortText:         fmt.Sprintf("%04d", i),
			Preselect:        i == 0,
			InsertTextFormat: protocol.InsertTextFormatPlainText,
			TextEdit:         &protocol.TextEdit{Range: doc.Range(word, sg.end, v.enc), NewText: newText},
		})
	}
	return list, nil
}

// goDecodes is how many decodes (at different lengths) a Go completion
// checks and ranks, next to the copied lines. Measured on 120 dev-set
// cases (eval --workspace, 4 modules, --go --go-decodes): 3 decodes gave
// exact match 10.8% against 9.2% for 1, at p50 726 ms against 291 ms
// (the engine alone: 119-149 ms); one keeps ghost text responsive.
const goDecodes = 1

// engineError words an engine failure, or the cancellation that caused it.
func (s *Server) engineError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return fmt.Errorf("completion: %w", err)
}

// detail is a completion item's detail: its confidence, and whether it
// is below what ghost text would show.
func detail(r rating, threshold float64) string {
	if !r.ghost(threshold) {
		return fmt.Sprintf("diffill %.0f%% (low confidence)", 100*r.conf)
	}
	return fmt.Sprintf("diffill %.0f%%", 100*r.conf)
}

// ghost reports whether a suggestion is good enough to show as ghost text
// while the user types: it passed every Go check and its confidence
// reaches the threshold. Measured on the dev set (eval --workspace, 4
// modules, --go --go-decodes 1, 240 cases each of two seeds), requiring
// every check beside the threshold kept precision higher at the same
// coverage (16.9% against 16.1% at 70% shown, default seed) and makes
// every ghost text shown type-check.
func (r rating) ghost(threshold float64) bool {
	if threshold <= 0 {
		return true // gating off (the default, see settings.DefaultGhostThreshold)
	}
	return r.checked && r.conf > 0 && r.conf >= threshold
}

// suggestion is one completion at a point: replace [start, end) of the
// request's text (start is the cursor) with text.
type suggestion struct {
	start, end int
	text       string
	rating
}

// suggest completes doc at off: from the cache if the user is typing what
// was suggested before, else, after the debounce, from the engine. Editors
// often ask for a completion list and for inline completion at the same
// keystroke; the second request joins the first's engine run instead of
// queueing a second one. A result for a version of the document that is
// no longer current is dropped.
func (s *Server) suggest(ctx context.Context, v *view, doc *document.Document, off, candidates int, explicit bool) ([]suggestion, error) {
	text := doc.Text()
	if texts, rates, replace, ok := s.cache.get(doc.URI, v.gen, text, off); ok {
		s.cacheHits.Add(1)
		out := make([]suggestion, len(texts))
		for i := range texts {
			out[i] = suggestion{start: off, end: off + replace, text: texts[i], rating: rates[i]}
		}
		return out, nil
	}
	if !explicit {
		if err := s.debounce(ctx, doc.URI, v.settings.DebounceDuration()); err != nil {
			return nil, err
		}
	}
	key := flightKey{doc.URI, doc.Version, off, v.gen}
	for {
		f, leader := s.flights.join(key)
		if leader {
			s.engineRuns.Add(1)
			f.res, f.err = s.computeSuggestions(ctx, v, doc, off, candidates)
			s.flights.done(key, f)
			return f.res, f.err
		}
		s.joined.Add(1)
		select {
		case <-f.ready:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
		if f.err != nil && ctx.Err() == nil && (errors.Is(f.err, errSuperseded) || errors.Is(f.err, errCancelled) || errors.Is(f.err, context.Canceled)) {
			continue // the request that ran it was cancelled, this one was not
		}
		return f.res, f.err
	}
}

// computeSuggestions runs the engine for a completion at off.
func (s *Server) computeSuggestions(ctx context.Context, v *view, doc *document.Document, off, candidates int) ([]suggestion, error) {
	text := doc.Text()
	eng, err := s.engine(ctx, v)
	if errors.Is(err, errNoModel) {
		// No suggestions while the model cannot load: the failure was
		// reported once (showMessage, diffill/status), and an error per
		// keystroke would only repeat it (VS Code shows each as a toast).
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	p := params(v.settings)
	p.Candidates = candidates
	// Closing brackets and quotes that are all the rest of the line are
	// the editor's (auto-closed as the user typed the opener): the
	// completion writes through them and its edit replaces them, keeping
	// each one (see infill.ClosingRest).
	end := infill.ClosingRest(text, off)
	win, base := window(text, off, end, p.ContextTokens)
	req := &infill.Request{
		Text:    win,
		Spans:   []infill.Span{{Start: off - base, End: end - base}},
		Mode:    infill.ModeComplete,
		Params:  p,
		Prelude: s.prelude(doc.URI, text, off),
		Corpus:  s.corpus(doc.URI, text, off),
	}
	type answer struct {
		text string
		rating
	}
	var answers []answer
	if path := docPath(doc.URI); strings.HasSuffix(path, ".go") || doc.LanguageID == "go" {
		// Go: decodes and copied lines, checked in place, best first,
		// each with its calibrated confidence (0: does not parse).
		gd := gocheck.Doc{Path: path, Text: win, Start: off - base, End: end - base}
		if path != "" {
			gd.Pkg = s.ws.For(path).Package(path) // what is loaded; never waits
		}
		as, err := gocheck.Suggest(ctx, eng, req, gd, gocheck.SuggestOptions{Decodes: max(candidates, goDecodes)})
		if err != nil {
			return nil, s.engineError(ctx, err)
		}
		for _, a := range as {
			answers = append(answers, answer{a.Text, rating{a.Confidence, a.Verdict.Typed && a.Verdict.OK()}})
		}
	} else {
		res, err := eng.Run(ctx, req)
		if err != nil {
			return nil, s.engineError(ctx, err)
		}
		for _, c := range res.Candidates {
			if len(c.Edits) == 1 && c.Edits[0].Start == off-base && c.Edits[0].End == end-base {
				answers = append(answers, answer{c.Edits[0].NewText, rating{c.Confidence, true}})
			}
		}
	}
	if cur, ok := s.currentVersion(doc.URI); !ok || cur != doc.Version {
		return nil, errModified
	}
	var out []suggestion
	var texts []string
	var rates []rating
	seen := map[string]bool{}
	for _, a := range answers {
		// The model may end a text inside a multi-byte character; the
		// client would see U+FFFD there (JSON has no raw bytes), so the
		// server, and its cache, see the same.
		sg := suggestion{start: off, end: end, text: document.ValidUTF8(a.text), rating: a.rating}
		if sg.text == text[sg.start:sg.end] || seen[sg.text] || strings.ContainsAny(text[sg.start:sg.end], "\r\n") {
			// Completion edits must start at the cursor and stay on its
			// line (VS Code's rule for completion and inline ranges);
			// one that changes nothing (the closers alone) is no answer.
			continue
		}
		seen[sg.text] = true
		out = append(out, sg)
		texts = append(texts, sg.text)
		rates = append(rates, sg.rating)
	}
	s.cache.put(doc.URI, v.gen, text, off, end-off, texts, rates)
	return out, nil
}

// flightKey identifies a completion computation: the same document
// version, cursor and settings give the same answer.
type flightKey struct {
	uri     protocol.DocumentURI
	version int32
	off     int
	gen     int
}

// flights are the completions being computed, for requests to join.
type flights struct {
	mu sync.Mutex
	m  map[flightKey]*flight
}

type flight struct {
	ready chan struct{}
	res   []suggestion
	err   error
}

// join returns the flight for key, and whether the caller leads it (must
// compute and call done).
func (fs *flights) join(key flightKey) (*flight, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f := fs.m[key]; f != nil {
		return f, false
	}
	if fs.m == nil {
		fs.m = map[flightKey]*flight{}
	}
	f := &flight{ready: make(chan struct{})}
	fs.m[key] = f
	return f, true
}

func (fs *flights) done(key flightKey, f *flight) {
	fs.mu.Lock()
	delete(fs.m, key)
	fs.mu.Unlock()
	close(f.ready)
}

// window returns the part of text the engine needs around [start, end),
// and its offset in text. The engine reads only ContextTokens tokens around
// the spans, but large documents would still cost a scan per request; the
// window's edges sit on a coarse grid, so that as the user types they stay
// put and the engine's cache of the context keeps matching.
func window(text string, start, end, contextTokens int) (string, int) {
	w := max(contextTokens, 1024) * 48
	if len(text) <= 4*w {
		return text, 0
	}
	lo := max(0, (start-w)/w*w)
	hi := min(len(text), (end+w)/w*w+w)
	if lo > 0 {
		if i := strings.IndexByte(text[lo:start], '\n'); i >= 0 {
			lo += i + 1
		}
	}
	if i := strings.LastIndexByte(text[end:hi], '\n'); i >= 0 && hi < len(text) {
		hi = end + i + 1
	}
	return text[lo:hi], lo
}

// wordStart returns where the identifier ending at off starts.
func wordStart(text string, off int) int {
	for off > 0 {
		r, n := utf8.DecodeLastRuneInString(text[:off])
		if r != '_' && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			break
		}
		off -= n
	}
	return off
}

// label is how a completion is listed: its first line that is not blank,
// marked when more lines follow.
func label(text string) string {
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	first, rest := "", 0
	for i, l := range lines {
		if strings.TrimSpace(l) != "" {
			first = strings.TrimSpace(l)
			rest = len(lines) - i - 1
			if strings.TrimSpace(strings.Join(lines[i+1:], "")) == "" {
				rest = 0
			}
			break
		}
	}
	if first == "" {
		return "⏎"
	}
	if rest > 0 {
		first += " …"
	}
	return first
}
