// Package tokenizer implements byte-level BPE tokenization exactly as Hugging
// Face's `tokenizers` does it for GPT-2, Qwen2, Llama-3 and diffill's own
// built-in model: added tokens are cut out of the text first, the rest is
// normalized (NFC where the tokenizer asks for it), split into pre-tokens by
// the tokenizer's split pattern, and each pre-token is spelled in bytes and
// merged by the BPE merge list.
//
// The split patterns these models publish (GPT-2's, Qwen2's, Llama-3's and
// diffill's Go-aware one, see PatternGPT2 and friends) have hand-written
// matchers: Go's regexp has no lookahead. Other patterns run on Go's regexp
// with \s, \d and \w given Oniguruma's Unicode meaning.
//
// Encode and EncodeOrdinary return what Hugging Face's encode returns with
// add_special_tokens=false: post-processors (BOS/EOS templates) are not
// applied; callers add such tokens themselves.
//
// Round trip. Decode(Encode(s)) == s byte for byte, except where the
// tokenizer file asks otherwise, as it does of Hugging Face: with an NFC
// normalizer Decode gives back NFC(s), an added token with lstrip or rstrip
// swallows the whitespace beside it, and ByteLevel's add_prefix_space adds a
// space before each stretch of text. Diffill's built-in tokenizer does none
// of these.
//
// Invalid UTF-8. Hugging Face only takes valid Unicode text. Here a byte
// that is not part of valid UTF-8 is classified as U+FFFD would be (neither
// letter, number nor space) by the split patterns, is left alone by NFC, and
// is encoded as its own byte through the byte-level alphabet. Thus invalid
// bytes round-trip too, and valid text is encoded exactly as Hugging Face
// encodes it.
//
// A Tokenizer is safe for concurrent use. It caches the encoding of the
// words it has seen (bounded by DefaultCacheWords), since an editor
// re-encodes the same document on every keystroke.
package tokenizer

import (
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Tokenizer is a loaded byte-level BPE tokenizer.
type Tokenizer struct {
	vocab        map[string]int32 // token as spelled in the vocabulary ("Ġthe") to id
	rawVocab     map[string]int32 // token bytes to id; built only for ignoreMerges
	merges       map[uint64]merge
	byteIDs      [256]int32 // id of each single byte's token, -1 if missing
	unkID        int32      // -1 when the model has no unknown token
	fuseUnk      bool
	ignoreMerges bool // a pre-token that is a whole vocabulary token is not merged

	added     map[string]*AddedToken // by content
	addedByID map[int32]*AddedToken
	rawAdded  *addedMatcher // added tokens matched in the raw text
	normAdded *addedMatcher // added tokens matched after normalization

	nfc         bool
	prefixSpace bool // ByteLevel add_prefix_space
	pre         []splitter

	tokBytes  []byte   // bytes of token i are tokBytes[tokOff[i]:tokOff[i+1]]
	tokOff    []uint32 // len = vocabSize+1
	present   []bool   // whether id i exists
	vocabSize int

	cache   *wordCache
	scratch sync.Pool // *encoder
}

// Encode returns the token ids of s. Added and special tokens in s, such as
// "<|mask|>", become their ids.
func (t *Tokenizer) Encode(s string) []int32 { return t.encode(s, true) }

// EncodeOrdinary returns the token ids of s without matching special tokens:
// "<|mask|>" in s is encoded as the plain text it is. Added tokens that are
// not special (special=false in tokenizer.json) are still matched, as Hugging
// Face does with encode_special_tokens=true.
func (t *Tokenizer) EncodeOrdinary(s string) []int32 { return t.encode(s, false) }

// Decode returns the bytes the ids stand for: the concatenation of their
// TokenBytes, so the inverse of Encode (see the package comment). Unknown
// ids are skipped. It differs from Hugging Face's decode in one respect:
// there, the ByteLevel decoder also maps an added token's content through
// the byte alphabet, which garbles non-ASCII content ("café" comes out as
// "caf\xe9"); Decode gives the content.
func (t *Tokenizer) Decode(ids []int32) string {
	n := 0
	for _, id := range ids {
		n += len(t.TokenBytes(id))
	}
	var b strings.Builder
	b.Grow(n)
	for _, id := range ids {
		b.Write(t.TokenBytes(id))
	}
	return b.String()
}

// TokenBytes returns the bytes of one token (for an added token, its
// content), or nil when id is not a token. The result must not be modified.
func (t *Tokenizer) TokenBytes(id int32) []byte {
	if id < 0 || int(id) >= t.vocabSize || !t.present[id] {
		return nil
	}
	return t.tokBytes[t.tokOff[id]:t.tokOff[id+1]:t.tokOff[id+1]]
}

// ID looks up a token by its string: an added token by its content
// ("<|mask|>"), a vocabulary token as the vocabulary spells it ("Ġthe").
func (t *Tokenizer) ID(token string) (int32, bool) {
	if a, ok := t.added[token]; ok {
		return a.ID, true
	}
	id, ok := t.vocab[token]
	return id, ok
}

// VocabSize is the largest id plus one, over the vocabulary and the added
// tokens.
func (t *Tokenizer) VocabSize() int { return t.vocabSize }

// AddedTokens returns the added tokens, by id.
func (t *Tokenizer) AddedTokens() []AddedToken {
	out := make([]AddedToken, 0, len(t.addedByID))
	for id := range int32(t.vocabSize) {
		if a, ok := t.addedByID[id]; ok {
			out = append(out, *a)
		}
	}
	return out
}

// encoder is the state of one encode call.
type encoder struct {
	t       *Tokenizer
	special bool
	out     []int32
	sc      bpeScratch
	ends    [][]int        // split offsets per pre-tokenizer stage
	pending []pendingWord  // words encoded in this call, to cache
	local   map[string]int // index into pending by word
	text    func(string)   // e.normalize, bound once
	norm    func(string)   // e.preTokenize, bound once
	token   func(int32)    // e.addToken, bound once
}

func (t *Tokenizer) encode(s string, special bool) []int32 {
	e, _ := t.scratch.Get().(*encoder)
	if e == nil {
		e = &encoder{t: t, ends: make([][]int, len(t.pre))}
		e.text, e.norm, e.token = e.normalize, e.preTokenize, e.addToken
	}
	e.special = special
	e.out = make([]int32, 0, len(s)/3+4)

	t.cache.mu.RLock()
	if t.rawAdded != nil {
		t.rawAdded.split(s, special, e.text, e.token)
	} else if s != "" {
		e.normalize(s)
	}
	t.cache.mu.RUnlock()
	t.cache.add(e.pending, e.out)

	out := e.out
	// Drop every reference to s before the encoder is reused.
	e.out = nil
	clear(e.pending)
	e.pending = e.pending[:0]
	clear(e.local)
	t.scratch.Put(e)
	return out
}

func (e *encoder) addToken(id int32) { e.out = append(e.out, id) }

func (e *encoder) normalize(s string) {
	if e.t.nfc {
		s = nfc(s)
	}
	if e.t.normAdded != nil {
		e.t.normAdded.split(s, e.special, e.norm, e.token)
		return
	}
	e.preTokenize(s)
}

func (e *encoder) preTokenize(s string) {
	if e.t.prefixSpace && !strings.HasPrefix(s, " ") {
		s = " " + s
	}
	e.splitStage(s, 0)
}

func (e *encoder) splitStage(s string, k int) {
	if k == len(e.t.pre) {
		e.word(s)
		return
	}
	ends := e.t.pre[k].split(s, e.ends[k][:0])
	e.ends[k] = ends
	prev := 0
	for _, end := range ends {
		if k+1 == len(e.t.pre) {
			e.word(s[prev:end])
		} else {
			e.splitStage(s[prev:end], k+1)
		}
		prev = end
	}
}

// word appends the encoding of one pre-token. The cache's read lock is held
// by the caller.
func (e *encoder) word(w string) {
	t := e.t
	if len(w) == 1 {
		if id := t.byteIDs[w[0]]; id >= 0 {
			e.out = append(e.out, id)
			return
		}
	}
	if out, ok := t.cache.appendCached(e.out, w); ok {
		e.out = out
		return
	}
	if i, ok := e.local[w]; ok {
		p := e.pending[i]
		e.out = append(e.out, e.out[p.start:p.end]...)
		return
	}
	start := len(e.out)
	e.out = t.appendWord(e.out, w, &e.sc)
	if len(w) <= maxCachedWord {
		if e.local == nil {
			e.local = make(map[string]int)
		}
		e.local[w] = len(e.pending)
		e.pending = append(e.pending, pendingWord{word: w, start: start, end: len(e.out)})
	}
}

// nfc returns the NFC form of s. Invalid UTF-8 bytes are kept as they are
// and normalization runs on the valid stretches between them (NFC never
// composes across U+FFFD, which such a byte stands for).
func nfc(s string) string {
	if utf8.ValidString(s) {
		return norm.NFC.String(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	start := 0
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteString(norm.NFC.String(s[start:i]))
			b.WriteByte(s[i])
			start = i + 1
		}
		i += n
	}
	b.WriteString(norm.NFC.String(s[start:]))
	return b.String()
}
