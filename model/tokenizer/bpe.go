package tokenizer

import (
	"math"
	"strings"
	"sync"
)

// merge is one BPE merge rule: the pair it applies to is the map key.
type merge struct {
	rank int32 // position in the merge list: lower merges first
	id   int32 // the token the pair becomes
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// linearMax is the word length (in symbols) up to which merges are found by
// scanning all pairs; longer words use a heap. Both pick the pair with the
// lowest rank, leftmost on ties, exactly as Hugging Face's BPE does.
const linearMax = 48

// bpeScratch holds the per-call buffers of a word's merge.
type bpeScratch struct {
	syms  []int32
	ranks []merge
	heap  mergeHeap
	prev  []int32
	next  []int32
}

// appendWord appends the BPE encoding of one pre-token (raw bytes) to out.
func (t *Tokenizer) appendWord(out []int32, w string, sc *bpeScratch) []int32 {
	if t.ignoreMerges {
		if id, ok := t.rawVocab[w]; ok {
			return append(out, id)
		}
	}
	syms := sc.syms[:0]
	unkPending := false
	for i := 0; i < len(w); i++ {
		id := t.byteIDs[w[i]]
		if id >= 0 {
			if unkPending {
				syms = append(syms, t.unkID)
				unkPending = false
			}
			syms = append(syms, id)
			continue
		}
		// A byte missing from the vocabulary becomes the unknown token when
		// there is one (fused with its neighbours when fuse_unk), and is
		// dropped otherwise, as Hugging Face does.
		if t.unkID < 0 {
			continue
		}
		if unkPending && !t.fuseUnk {
			syms = append(syms, t.unkID)
		}
		unkPending = true
	}
	if unkPending {
		syms = append(syms, t.unkID)
	}
	sc.syms = syms
	if len(syms) > linearMax {
		syms = t.mergeHeap(syms, sc)
	} else {
		syms = t.mergeLinear(syms, sc)
	}
	return append(out, syms...)
}

func (t *Tokenizer) lookupMerge(a, b int32) merge {
	if m, ok := t.merges[pairKey(a, b)]; ok {
		return m
	}
	return merge{rank: math.MaxInt32, id: -1}
}

// mergeLinear merges a short word in place: ranks[i] holds the rule for
// the pair (syms[i], syms[i+1]).
func (t *Tokenizer) mergeLinear(syms []int32, sc *bpeScratch) []int32 {
	if len(syms) < 2 {
		return syms
	}
	ranks := sc.ranks[:0]
	for i := 0; i+1 < len(syms); i++ {
		ranks = append(ranks, t.lookupMerge(syms[i], syms[i+1]))
	}
	sc.ranks = ranks
	for {
		best := -1
		bestRank := int32(math.MaxInt32)
		for i, m := range ranks {
			if m.rank < bestRank {
				best, bestRank = i, m.rank
			}
		}
		if best < 0 {
			return syms
		}
		syms[best] = ranks[best].id
		syms = append(syms[:best+1], syms[best+2:]...)
		ranks = append(ranks[:best], ranks[best+1:]...)
		if best > 0 {
			ranks[best-1] = t.lookupMerge(syms[best-1], syms[best])
		}
		if best < len(ranks) {
			ranks[best] = t.lookupMerge(syms[best], syms[best+1])
		}
	}
}

// mergeHeap merges a long word with a priority queue over a linked list of
// symbols, so a long run (a minified line, a base64 blob) costs
// O(n log n) rather than O(n²).
func (t *Tokenizer) mergeHeap(syms []int32, sc *bpeScratch) []int32 {
	n := len(syms)
	prev := growInt32(sc.prev, n)
	next := growInt32(sc.next, n)
	sc.prev, sc.next = prev, next
	h := sc.heap[:0]
	for i := range n {
		prev[i] = int32(i - 1)
		next[i] = int32(i + 1)
		if i+1 < n {
			if m := t.lookupMerge(syms[i], syms[i+1]); m.id >= 0 {
				h = append(h, heapItem{rank: m.rank, pos: int32(i), id: m.id})
			}
		}
	}
	h.init()
	const removed = -2
	for len(h) > 0 {
		top := h.pop()
		pos := top.pos
		if prev[pos] == removed || next[pos] >= int32(n) {
			continue
		}
		right := next[pos]
		// Entries go stale when a neighbour merged first; the pair's
		// result tells whether this entry still describes the pair.
		if m := t.lookupMerge(syms[pos], syms[right]); m.id != top.id {
			continue
		}
		syms[pos] = top.id
		next[pos] = next[right]
		prev[right] = removed
		if next[right] < int32(n) {
			prev[next[right]] = pos
		}
		if p := prev[pos]; p >= 0 {
			if m := t.lookupMerge(syms[p], syms[pos]); m.id >= 0 {
				h.push(heapItem{rank: m.rank, pos: p, id: m.id})
			}
		}
		if nx := next[pos]; nx < int32(n) {
			if m := t.lookupMerge(syms[pos], syms[nx]); m.id >= 0 {
				h.push(heapItem{rank: m.rank, pos: pos, id: m.id})
			}
		}
	}
	sc.heap = h
	out := syms[:0]
	for i := 0; i < n; i = int(next[i]) {
		out = append(out, syms[i])
	}
	return out
}

func growInt32(s []int32, n int) []int32 {
	if cap(s) < n {
		return make([]int32, n)
	}
	return s[:n]
}

type heapItem struct{ rank, pos, id int32 }

func (a heapItem) less(b heapItem) bool {
	return a.rank < b.rank || a.rank == b.rank && a.pos < b.pos
}

// mergeHeap is a binary min-heap ordered by (rank, pos); hand-rolled to
// avoid container/heap's interface calls on the hot path.
type mergeHeap []heapItem

func (h mergeHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h *mergeHeap) push(x heapItem) {
	*h = append(*h, x)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s[i].less(s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *mergeHeap) pop() heapItem {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	*h = s[:last]
	h.down(0)
	return top
}

func (h mergeHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r].less(h[l]) {
			m = r
		}
		if !h[m].less(h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// wordCache remembers the encoding of pre-tokens. Documents are re-encoded
// on every keystroke and code repeats its words, so nearly every lookup
// hits. It is bounded: when full it starts over, which keeps the words of
// the documents being edited now.
type wordCache struct {
	mu  sync.RWMutex
	m   map[string][]int32
	max int
}

// Words longer than this are not cached: they are rare, and a key keeps its
// bytes alive.
const maxCachedWord = 256

func newWordCache(max int) *wordCache {
	return &wordCache{m: make(map[string][]int32), max: max}
}

// pendingWord is a pre-token encoded during one call, to be cached after it:
// its ids are out[start:end] of that call.
type pendingWord struct {
	word       string
	start, end int
}

// add caches the words an encode call computed. Keys are copied: they are
// substrings of the caller's text, which must not stay alive in the cache.
func (c *wordCache) add(pending []pendingWord, out []int32) {
	if len(pending) == 0 || c.max <= 0 {
		return
	}
	keyBytes, idCount := 0, 0
	for _, p := range pending {
		keyBytes += len(p.word)
		idCount += p.end - p.start
	}
	var kb strings.Builder
	kb.Grow(keyBytes)
	for _, p := range pending {
		kb.WriteString(p.word)
	}
	keys := kb.String()
	ids := make([]int32, 0, idCount)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m)+len(pending) > c.max {
		clear(c.m)
	}
	off := 0
	for _, p := range pending {
		k := keys[off : off+len(p.word)]
		off += len(p.word)
		n := len(ids)
		ids = append(ids, out[p.start:p.end]...)
		c.m[k] = ids[n:len(ids):len(ids)]
		if len(c.m) >= c.max {
			break
		}
	}
}
