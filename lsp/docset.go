package lsp

import (
	"hash/maphash"

	"go.lsp.dev/protocol"
)

// docShards is how many maps a docSet spreads its documents over: a change
// copies one of them and the array of shard pointers, so opening N
// documents costs O(N²/docShards) instead of O(N²), and a keystroke copies
// about N/docShards entries rather than N.
const docShards = 256

// docSet is the open documents of a view. It is immutable: with returns a
// new set sharing every shard but one with the old, so requests that took a
// view keep a consistent set while edits arrive.
type docSet struct {
	seed   maphash.Seed
	shards [docShards]map[protocol.DocumentURI]*docState
	n      int // documents
	bytes  int // the size of the documents kept
}

func newDocSet() *docSet { return &docSet{seed: maphash.MakeSeed()} }

func (s *docSet) shard(uri protocol.DocumentURI) int {
	return int(maphash.String(s.seed, string(uri)) % docShards)
}

// get returns the document uri.
func (s *docSet) get(uri protocol.DocumentURI) (*docState, bool) {
	d, ok := s.shards[s.shard(uri)][uri]
	return d, ok
}

// len is the number of open documents.
func (s *docSet) len() int { return s.n }

// keptBytes is the total size of the documents whose text is kept.
func (s *docSet) keptBytes() int { return s.bytes }

// each calls f for every document, in no particular order.
func (s *docSet) each(f func(protocol.DocumentURI, *docState)) {
	for _, m := range s.shards {
		for u, d := range m {
			f(u, d)
		}
	}
}

// with returns the set with uri set to d (nil: removed).
func (s *docSet) with(uri protocol.DocumentURI, d *docState) *docSet {
	out := *s
	i := s.shard(uri)
	old := s.shards[i]
	m := make(map[protocol.DocumentURI]*docState, len(old)+1)
	for k, x := range old {
		m[k] = x
	}
	if prev, ok := old[uri]; ok {
		out.n--
		out.bytes -= prev.size()
	}
	if d == nil {
		delete(m, uri)
	} else {
		m[uri] = d
		out.n++
		out.bytes += d.size()
	}
	out.shards[i] = m
	return &out
}

// size is the bytes a document holds.
func (d *docState) size() int {
	if d == nil || d.doc == nil {
		return 0
	}
	return d.doc.Len()
}
