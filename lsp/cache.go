package lsp

import (
	"strings"
	"sync"

	"go.lsp.dev/protocol"
)

// completionCache remembers the last few completions by their context, so
// that typing the characters of a shown completion is answered from it
// without running the model again: after "fmt.Pri" was completed with
// "ntln(x)", the request at "fmt.Prin" gets "tln(x)" at once.
type completionCache struct {
	mu      sync.Mutex
	entries []cacheEntry // most recent last
}

const (
	cacheEntries = 16
	cacheContext = 1 << 10 // bytes of prefix and suffix that key an entry
)

type cacheEntry struct {
	uri    protocol.DocumentURI
	gen    int    // settings generation
	prefix string // up to cacheContext bytes before the cursor
	suffix string // up to cacheContext bytes after it
	// replace is how many bytes after the cursor the texts replace (the
	// editor's closers, see infill.ClosingRest).
	replace int
	texts   []string
	rates   []rating
}

// rating is what the server knows of a suggestion's quality: its
// confidence, and whether it passed every Go check (parse, names, types,
// repetition; true where no check applies).
type rating struct {
	conf    float64
	checked bool
}

// put records the texts completed at off of text, each replacing the
// replace bytes after off.
func (c *completionCache) put(uri protocol.DocumentURI, gen int, text string, off, replace int, texts []string, rates []rating) {
	if len(texts) == 0 {
		return
	}
	e := cacheEntry{
		uri:     uri,
		gen:     gen,
		prefix:  strings.Clone(text[max(0, off-cacheContext):off]),
		suffix:  strings.Clone(text[off:min(len(text), off+cacheContext)]),
		replace: replace,
		texts:   texts,
		rates:   rates,
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) == cacheEntries {
		c.entries = append(c.entries[:0], c.entries[1:]...)
	}
	c.entries = append(c.entries, e)
}

// get returns what is left to insert at off of text of a cached completion
// whose context was text with some of its own characters since typed, and
// how many bytes after off it replaces.
func (c *completionCache) get(uri protocol.DocumentURI, gen int, text string, off int) (texts []string, rates []rating, replace int, ok bool) {
	suffix := text[off:min(len(text), off+cacheContext)]
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.entries) - 1; i >= 0; i-- {
		e := &c.entries[i]
		if e.uri != uri || e.gen != gen || e.suffix != suffix {
			continue
		}
		longest := 0
		for _, t := range e.texts {
			longest = max(longest, len(t))
		}
		// typed = text[off-k:off] for some k: the characters typed since.
		for k := 0; k <= min(longest, off); k++ {
			start := off - k
			if !e.prefixMatches(text[:start]) {
				continue
			}
			typed := text[start:off]
			// What is left must change something: once the closers it
			// replaces are all that is left, there is nothing to offer.
			for j, t := range e.texts {
				if len(t) > len(typed) && strings.HasPrefix(t, typed) && t[len(typed):] != text[off:off+e.replace] {
					texts = append(texts, t[len(typed):])
					rates = append(rates, e.rates[j])
				}
			}
			if len(texts) > 0 {
				return texts, rates, e.replace, true
			}
		}
	}
	return nil, nil, 0, false
}

// prefixMatches reports whether before (the text before a cursor) ends
// with the remembered prefix; a prefix shorter than cacheContext was the
// whole text before the cursor, and must be all of before.
func (e *cacheEntry) prefixMatches(before string) bool {
	if len(e.prefix) < cacheContext {
		return before == e.prefix
	}
	return strings.HasSuffix(before, e.prefix)
}

// forget drops the entries of a closed document.
func (c *completionCache) forget(uri protocol.DocumentURI) {
	c.mu.Lock()
	defer c.mu.Unlock()
	kept := c.entries[:0]
	for _, e := range c.entries {
		if e.uri != uri {
			kept = append(kept, e)
		}
	}
	c.entries = kept
}
