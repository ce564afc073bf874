package tokenizer

import (
	"math"
	"math/bits"
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
// hits. Words of up to 7 bytes, most of them, live in a table keyed by an
// integer, which is cheaper to hash and compare than a string. The cache is
// bounded: when full it starts over, which keeps the words of the documents
// being edited now.
type wordCache struct {
	mu    sync.RWMutex
	short shortTable
	long  map[string][]int32
	max   int
}

// Words longer than this are not cached: they are rare, and a key keeps its
// bytes alive.
const maxCachedWord = 256

func newWordCache(max int) *wordCache {
	return &wordCache{long: make(map[string][]int32), max: max}
}

// shortKey packs a word of up to 7 bytes and its length into an integer,
// never 0 for a non-empty word.
func shortKey(w string) (uint64, bool) {
	if len(w) > 7 {
		return 0, false
	}
	k := uint64(len(w)) << 56
	for i := 0; i < len(w); i++ {
		k |= uint64(w[i]) << (8 * i)
	}
	return k, true
}

// appendCached appends the cached encoding of w to out. The caller holds mu
// for reading.
func (c *wordCache) appendCached(out []int32, w string) ([]int32, bool) {
	if k, ok := shortKey(w); ok {
		return c.short.appendTo(out, k)
	}
	ids, ok := c.long[w]
	return append(out, ids...), ok
}

func (c *wordCache) len() int { return c.short.n + len(c.long) }

// shortTable is an open-addressing hash table from shortKey to encodings.
// A slot's value is n<<32|id when the word is one token (most are), else
// n<<32|offset into ids.
type shortTable struct {
	keys  []uint64 // 0: empty slot
	vals  []uint64
	ids   []int32
	n     int
	shift uint // 64 - log2(len(keys))
}

func (t *shortTable) slot(k uint64) uint64 { return (k * 0x9E3779B97F4A7C15) >> t.shift }

func (t *shortTable) appendTo(out []int32, k uint64) ([]int32, bool) {
	if t.n == 0 {
		return out, false
	}
	mask := uint64(len(t.keys) - 1)
	for h := t.slot(k); ; h = (h + 1) & mask {
		switch t.keys[h] {
		case k:
			v := t.vals[h]
			n := int(v >> 32)
			if n == 1 {
				return append(out, int32(uint32(v))), true
			}
			off := int(uint32(v))
			return append(out, t.ids[off:off+n]...), true
		case 0:
			return out, false
		}
	}
}

func (t *shortTable) insert(k uint64, ids []int32) {
	if 2*(t.n+1) > len(t.keys) {
		t.grow()
	}
	var v uint64
	if len(ids) == 1 {
		v = 1<<32 | uint64(uint32(ids[0]))
	} else {
		v = uint64(len(ids))<<32 | uint64(len(t.ids))
		t.ids = append(t.ids, ids...)
	}
	mask := uint64(len(t.keys) - 1)
	for h := t.slot(k); ; h = (h + 1) & mask {
		switch t.keys[h] {
		case 0:
			t.n++
			fallthrough
		case k:
			t.keys[h], t.vals[h] = k, v
			return
		}
	}
}

func (t *shortTable) grow() {
	keys, vals := t.keys, t.vals
	size := max(1024, 2*len(keys))
	t.keys, t.vals = make([]uint64, size), make([]uint64, size)
	t.shift = uint(64 - bits.TrailingZeros(uint(size)))
	mask := uint64(size - 1)
	for i, k := range keys {
		if k == 0 {
			continue
		}
		h := t.slot(k)
		for t.keys[h] != 0 {
			h = (h + 1) & mask
		}
		t.keys[h], t.vals[h] = k, vals[i]
	}
}

func (t *shortTable) reset() {
	clear(t.keys)
	t.ids = t.ids[:0]
	t.n = 0
}

// pendingWord is a pre-token encoded during one call, to be cached after it:
// its ids are out[start:end] of that call.
type pendingWord struct {
	word       string
	start, end int
}

// add caches the words an encode call computed. Long keys are copied: they
// are substrings of the caller's text, which must not stay alive in the
// cache.
func (c *wordCache) add(pending []pendingWord, out []int32) {
	if len(pending) == 0 || c.max <= 0 {
		return
	}
	keyBytes, idCount := 0, 0
	for _, p := range pending {
		if len(p.word) > 7 {
			keyBytes += len(p.word)
			idCount += p.end - p.start
		}
	}
	var kb strings.Builder
	kb.Grow(keyBytes)
	for _, p := range pending {
		if len(p.word) > 7 {
			kb.WriteString(p.word)
		}
	}
	keys := kb.String()
	ids := make([]int32, 0, idCount)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.len()+len(pending) > c.max {
		c.short.reset()
		clear(c.long)
	}
	off := 0
	for _, p := range pending {
		if c.len() >= c.max {
			break
		}
		w := out[p.start:p.end]
		if k, ok := shortKey(p.word); ok {
			c.short.insert(k, w)
			continue
		}
		n := len(ids)
		ids = append(ids, w...)
		c.long[keys[off:off+len(p.word)]] = ids[n:len(ids):len(ids)]
		off += len(p.word)
	}
}
