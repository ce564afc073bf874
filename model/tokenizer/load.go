package tokenizer

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/diffill/diffill/model/internal/safefile"
)

// DefaultCacheWords bounds the per-tokenizer cache of pre-token encodings.
const DefaultCacheWords = 1 << 16

// Load reads the tokenizer in a model directory: tokenizer.json when there is
// one, else vocab.json and merges.txt (with the added tokens of
// tokenizer_config.json), which is how the Dream family ships it.
func Load(dir string) (*Tokenizer, error) {
	t, err := FromFiles(func(name string) ([]byte, error) {
		return safefile.ReadDirFile(dir, name)
	})
	if err != nil {
		return nil, fmt.Errorf("loading tokenizer from %s: %w", dir, err)
	}
	return t, nil
}

// FromFiles is Load over any source of files, such as an embedded model.
// read returns a file's contents by name, and an error for which
// errors.Is(err, fs.ErrNotExist) holds when there is no such file.
func FromFiles(read func(name string) ([]byte, error)) (*Tokenizer, error) {
	data, err := read("tokenizer.json")
	switch {
	case err == nil:
		sp, err := parseTokenizerJSON(data)
		if err != nil {
			return nil, fmt.Errorf("tokenizer.json: %w", err)
		}
		t, err := sp.build()
		if err != nil {
			return nil, fmt.Errorf("tokenizer.json: %w", err)
		}
		return t, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("reading tokenizer.json: %w", err)
	}
	sp, err := parseVocabMerges(read)
	if err != nil {
		return nil, err
	}
	t, err := sp.build()
	if err != nil {
		return nil, fmt.Errorf("vocab.json and merges.txt: %w", err)
	}
	return t, nil
}

// spec is a tokenizer as described by its files, before the tables are built.
type spec struct {
	vocab        map[string]int32
	merges       [][2]string
	added        []AddedToken
	nfc          bool
	pre          []splitter
	prefixStage  int // pre-tokenizer stage whose input gets a leading space; -1: none
	unk          *string
	fuseUnk      bool
	ignoreMerges bool
}

type tokenizerJSON struct {
	AddedTokens  []addedTokenJSON `json:"added_tokens"`
	Normalizer   json.RawMessage  `json:"normalizer"`
	PreTokenizer json.RawMessage  `json:"pre_tokenizer"`
	Decoder      json.RawMessage  `json:"decoder"`
	Model        struct {
		Type                    string           `json:"type"`
		Dropout                 *float64         `json:"dropout"`
		UnkToken                *string          `json:"unk_token"`
		ContinuingSubwordPrefix *string          `json:"continuing_subword_prefix"`
		EndOfWordSuffix         *string          `json:"end_of_word_suffix"`
		FuseUnk                 bool             `json:"fuse_unk"`
		ByteFallback            bool             `json:"byte_fallback"`
		IgnoreMerges            bool             `json:"ignore_merges"`
		Vocab                   map[string]int32 `json:"vocab"`
		Merges                  json.RawMessage  `json:"merges"`
	} `json:"model"`
}

type addedTokenJSON struct {
	ID         int32  `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

func (a addedTokenJSON) token() AddedToken {
	return AddedToken{ID: a.ID, Content: a.Content, Special: a.Special, SingleWord: a.SingleWord,
		LStrip: a.LStrip, RStrip: a.RStrip, Normalized: a.Normalized}
}

// component is any normalizer, pre-tokenizer or decoder object.
type component struct {
	Type          string            `json:"type"`
	Normalizers   []json.RawMessage `json:"normalizers"`
	PreTokenizers []json.RawMessage `json:"pretokenizers"`
	Decoders      []json.RawMessage `json:"decoders"`
	Pattern       struct {
		Regex  *string `json:"Regex"`
		String *string `json:"String"`
	} `json:"pattern"`
	Behavior         string `json:"behavior"`
	Invert           bool   `json:"invert"`
	AddPrefixSpace   bool   `json:"add_prefix_space"`
	UseRegex         *bool  `json:"use_regex"`
	IndividualDigits bool   `json:"individual_digits"`
}

func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

func parseTokenizerJSON(data []byte) (*spec, error) {
	var f tokenizerJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	m := &f.Model
	switch {
	case m.Type != "" && m.Type != "BPE":
		return nil, fmt.Errorf("model type %q: only BPE is supported", m.Type)
	case m.Dropout != nil && *m.Dropout > 0:
		return nil, fmt.Errorf("BPE dropout %v is not supported", *m.Dropout)
	case m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "",
		m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "":
		return nil, errors.New("BPE with continuing_subword_prefix or end_of_word_suffix is not byte-level BPE")
	case m.ByteFallback:
		return nil, errors.New("BPE with byte_fallback is not byte-level BPE")
	case len(m.Vocab) == 0:
		return nil, errors.New("model has no vocab")
	}
	merges, err := parseMergesJSON(m.Merges)
	if err != nil {
		return nil, fmt.Errorf("model merges: %w", err)
	}
	sp := &spec{vocab: m.Vocab, merges: merges, unk: m.UnkToken, fuseUnk: m.FuseUnk,
		ignoreMerges: m.IgnoreMerges, prefixStage: -1}
	for _, a := range f.AddedTokens {
		sp.added = append(sp.added, a.token())
	}
	sp.added = assignAddedIDs(sp.added, sp.vocab)
	if sp.nfc, err = parseNormalizer(f.Normalizer); err != nil {
		return nil, fmt.Errorf("normalizer: %w", err)
	}
	if err := sp.parsePreTokenizer(f.PreTokenizer, true); err != nil {
		return nil, fmt.Errorf("pre_tokenizer: %w", err)
	}
	if sp.prefixStage == -2 {
		return nil, errors.New("pre_tokenizer: no ByteLevel step: not a byte-level BPE tokenizer")
	}
	if err := checkDecoder(f.Decoder); err != nil {
		return nil, fmt.Errorf("decoder: %w", err)
	}
	return sp, nil
}

// assignAddedIDs gives the added tokens of a tokenizer.json the ids Hugging
// Face gives them on load, which need not be the ids the file states (it
// only warns when they differ): a token that is in the vocab takes its vocab
// id, any other the next id after the vocab and the added tokens so far,
// in the order of the stated ids. For files Hugging Face wrote, both agree.
func assignAddedIDs(added []AddedToken, vocab map[string]int32) []AddedToken {
	sorted := slices.Clone(added)
	slices.SortStableFunc(sorted, func(a, b AddedToken) int { return cmp.Compare(a.ID, b.ID) })
	ids := make(map[string]int32, len(sorted)) // content -> assigned id
	byID := make(map[int32]AddedToken, len(sorted))
	maxID := int32(-1)
	vocabLen := int32(len(vocab))
	for _, a := range sorted {
		if a.Content == "" {
			continue
		}
		id, ok := ids[a.Content]
		if !ok {
			id, ok = vocab[a.Content]
		}
		if !ok {
			id = vocabLen
			if maxID >= vocabLen || vocabLen == 0 {
				id = maxID + 1
			}
		}
		if old, ok := ids[a.Content]; ok && old != id {
			delete(byID, old)
		}
		ids[a.Content] = id
		maxID = max(maxID, id)
		a.ID = id
		byID[id] = a
	}
	out := make([]AddedToken, 0, len(byID))
	for _, a := range byID {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b AddedToken) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// parseMergesJSON reads merges in either form Hugging Face writes: "a b"
// strings, or ["a", "b"] pairs (newer files, which allow spaces in tokens).
func parseMergesJSON(raw json.RawMessage) ([][2]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	rest := bytes.TrimSpace(bytes.TrimPrefix(bytes.TrimSpace(raw), []byte("[")))
	if len(rest) > 0 && rest[0] == '[' {
		var pairs [][2]string
		err := json.Unmarshal(raw, &pairs)
		return pairs, err
	}
	var lines []string
	if err := json.Unmarshal(raw, &lines); err != nil {
		return nil, err
	}
	pairs := make([][2]string, len(lines))
	for i, l := range lines {
		a, b, ok := strings.Cut(l, " ")
		if !ok {
			return nil, fmt.Errorf("merge %d %q is not two tokens separated by a space", i, l)
		}
		pairs[i] = [2]string{a, b}
	}
	return pairs, nil
}

func parseNormalizer(raw json.RawMessage) (nfc bool, err error) {
	if isNull(raw) {
		return false, nil
	}
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return false, err
	}
	switch c.Type {
	case "NFC":
		return true, nil
	case "Sequence":
		for _, n := range c.Normalizers {
			sub, err := parseNormalizer(n)
			if err != nil {
				return false, err
			}
			nfc = nfc || sub
		}
		return nfc, nil
	}
	return false, fmt.Errorf("normalizer %q is not supported (only NFC)", c.Type)
}

// parsePreTokenizer appends the steps of a pre-tokenizer to sp.pre. Byte-level
// BPE needs exactly one ByteLevel step, the last one; prefixStage is -2 until
// it is seen.
func (sp *spec) parsePreTokenizer(raw json.RawMessage, top bool) error {
	if top {
		sp.prefixStage = -2
	}
	if isNull(raw) {
		return nil
	}
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return err
	}
	if c.Type != "Sequence" && sp.prefixStage != -2 {
		return fmt.Errorf("%s after ByteLevel is not supported", c.Type)
	}
	switch c.Type {
	case "Sequence":
		for _, p := range c.PreTokenizers {
			if err := sp.parsePreTokenizer(p, false); err != nil {
				return err
			}
		}
	case "Split":
		if c.Behavior != "Isolated" || c.Invert {
			return fmt.Errorf("Split with behavior %q, invert %v is not supported (only Isolated)", c.Behavior, c.Invert)
		}
		var pattern string
		switch {
		case c.Pattern.Regex != nil:
			pattern = *c.Pattern.Regex
		case c.Pattern.String != nil:
			pattern = regexp.QuoteMeta(*c.Pattern.String)
		default:
			return errors.New("Split without a pattern")
		}
		s, err := newSplitter(pattern)
		if err != nil {
			return err
		}
		sp.pre = append(sp.pre, s)
	case "Digits":
		pattern := `\p{N}+`
		if c.IndividualDigits {
			pattern = `\p{N}`
		}
		s, err := newSplitter(pattern)
		if err != nil {
			return err
		}
		sp.pre = append(sp.pre, s)
	case "ByteLevel":
		sp.prefixStage = -1
		if c.AddPrefixSpace {
			sp.prefixStage = len(sp.pre)
		}
		if c.UseRegex == nil || *c.UseRegex {
			sp.pre = append(sp.pre, gpt2Splitter{})
		}
	default:
		return fmt.Errorf("pre-tokenizer %q is not supported", c.Type)
	}
	return nil
}

func checkDecoder(raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return err
	}
	switch c.Type {
	case "ByteLevel":
		return nil
	case "Sequence":
		for _, d := range c.Decoders {
			if err := checkDecoder(d); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("decoder %q is not supported: diffill decodes byte-level BPE", c.Type)
}

// parseVocabMerges reads the slow-tokenizer files: vocab.json, merges.txt and
// tokenizer_config.json (added_tokens_decoder, tokenizer_class), or the older
// added_tokens.json and special_tokens_map.json.
func parseVocabMerges(read func(string) ([]byte, error)) (*spec, error) {
	sp := &spec{prefixStage: -1}
	data, err := read("vocab.json")
	if err != nil {
		return nil, fmt.Errorf("no tokenizer.json, and reading vocab.json: %w", err)
	}
	if err := json.Unmarshal(data, &sp.vocab); err != nil {
		return nil, fmt.Errorf("vocab.json: %w", err)
	}
	data, err = read("merges.txt")
	if err != nil {
		return nil, fmt.Errorf("reading merges.txt: %w", err)
	}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if line == "" || strings.HasPrefix(line, "#version") {
			continue
		}
		a, b, ok := strings.Cut(line, " ")
		if !ok || strings.Contains(b, " ") {
			return nil, fmt.Errorf("merges.txt:%d: %q is not two tokens separated by a space", i+1, line)
		}
		sp.merges = append(sp.merges, [2]string{a, b})
	}

	var cfg struct {
		TokenizerClass     string                    `json:"tokenizer_class"`
		AddedTokensDecoder map[string]addedTokenJSON `json:"added_tokens_decoder"`
	}
	if data, err := readOptional(read, "tokenizer_config.json"); err != nil {
		return nil, err
	} else if data != nil {
		if err := json.Unmarshal(data, &cfg); err != nil {
			return nil, fmt.Errorf("tokenizer_config.json: %w", err)
		}
	}
	switch cfg.TokenizerClass {
	case "GPT2Tokenizer", "GPT2TokenizerFast":
		sp.pre = []splitter{gpt2Splitter{}}
	case "", "Qwen2Tokenizer", "Qwen2TokenizerFast", "DreamTokenizer":
		// The Qwen2 tokenizer, which the Dream family reuses: NFC, then its
		// split pattern.
		sp.nfc = true
		sp.pre = []splitter{qwenSplitter{maxDigits: 1}}
	default:
		return nil, fmt.Errorf("tokenizer_config.json: tokenizer_class %q: without tokenizer.json diffill reads only GPT-2 and Qwen2-family tokenizers", cfg.TokenizerClass)
	}

	if len(cfg.AddedTokensDecoder) > 0 {
		for key, a := range cfg.AddedTokensDecoder {
			id, err := strconv.ParseInt(key, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("tokenizer_config.json: added_tokens_decoder key %q is not an id", key)
			}
			a.ID = int32(id)
			sp.added = append(sp.added, a.token())
		}
		sort.Slice(sp.added, func(i, j int) bool { return sp.added[i].ID < sp.added[j].ID })
		return sp, nil
	}
	data, err = readOptional(read, "added_tokens.json")
	if err != nil || data == nil {
		return sp, err
	}
	var addedIDs map[string]int32
	if err := json.Unmarshal(data, &addedIDs); err != nil {
		return nil, fmt.Errorf("added_tokens.json: %w", err)
	}
	special := map[string]bool{}
	if data, err := readOptional(read, "special_tokens_map.json"); err != nil {
		return nil, err
	} else if data != nil {
		var v any
		if err := json.Unmarshal(data, &v); err != nil {
			return nil, fmt.Errorf("special_tokens_map.json: %w", err)
		}
		collectStrings(v, special)
	}
	for content, id := range addedIDs {
		sp.added = append(sp.added, AddedToken{ID: id, Content: content, Special: special[content]})
	}
	sort.Slice(sp.added, func(i, j int) bool { return sp.added[i].ID < sp.added[j].ID })
	return sp, nil
}

func readOptional(read func(string) ([]byte, error), name string) ([]byte, error) {
	data, err := read(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return data, nil
}

// collectStrings gathers the token strings of special_tokens_map.json, where
// a token is a string or an object with "content".
func collectStrings(v any, into map[string]bool) {
	switch v := v.(type) {
	case string:
		into[v] = true
	case []any:
		for _, x := range v {
			collectStrings(x, into)
		}
	case map[string]any:
		if c, ok := v["content"].(string); ok {
			into[c] = true
			return
		}
		for _, x := range v {
			collectStrings(x, into)
		}
	}
}

// build makes the lookup tables of a Tokenizer.
func (sp *spec) build() (*Tokenizer, error) {
	bl := newByteLevel()
	t := &Tokenizer{
		vocab:        sp.vocab,
		merges:       make(map[uint64]merge, len(sp.merges)),
		unkID:        -1,
		fuseUnk:      sp.fuseUnk,
		ignoreMerges: sp.ignoreMerges,
		added:        make(map[string]*AddedToken, len(sp.added)),
		addedByID:    make(map[int32]*AddedToken, len(sp.added)),
		nfc:          sp.nfc,
		pre:          sp.pre,
		prefixSpace:  sp.prefixStage >= 0,
		cache:        newWordCache(DefaultCacheWords),
	}
	if sp.prefixStage >= 0 && sp.prefixStage != 0 {
		return nil, errors.New("ByteLevel add_prefix_space after a Split is not supported")
	}
	// An id names one token: two spellings of one id would make encoding
	// and decoding disagree, and every table below is indexed by id.
	maxID := int32(-1)
	byID := make(map[int32]string, len(sp.vocab))
	for tok, id := range sp.vocab {
		if id < 0 {
			return nil, fmt.Errorf("vocab token %q has negative id %d", tok, id)
		}
		if other, dup := byID[id]; dup {
			a, b := min(tok, other), max(tok, other) // the same message every run
			return nil, fmt.Errorf("vocab tokens %q and %q share id %d: each id must name one token (a corrupt or hand-edited tokenizer file?)", a, b, id)
		}
		byID[id] = tok
		maxID = max(maxID, id)
	}
	for i := range sp.added {
		a := &sp.added[i]
		if a.ID < 0 {
			return nil, fmt.Errorf("added token %q has negative id %d", a.Content, a.ID)
		}
		if prev, dup := t.addedByID[a.ID]; dup && prev.Content != a.Content {
			return nil, fmt.Errorf("added tokens %q and %q share id %d: each id must name one token", prev.Content, a.Content, a.ID)
		}
		if prev, dup := t.added[a.Content]; dup && prev.ID != a.ID {
			return nil, fmt.Errorf("added token %q has two ids, %d and %d", a.Content, prev.ID, a.ID)
		}
		maxID = max(maxID, a.ID)
		t.added[a.Content] = a
		t.addedByID[a.ID] = a
	}
	// Ids are dense in real tokenizers. A hostile file could name id 2^31
	// and make the tables below take gigabytes.
	if n := len(sp.vocab) + len(sp.added); int64(maxID) >= 2*int64(n)+1<<16 {
		return nil, fmt.Errorf("token id %d is far beyond the %d tokens defined", maxID, n)
	}
	t.vocabSize = int(maxID) + 1

	// Token bytes, in one block indexed by id.
	spelled := make([]string, t.vocabSize)
	t.present = make([]bool, t.vocabSize)
	for tok, id := range sp.vocab {
		spelled[id] = tok
		t.present[id] = true
	}
	total := 0
	decoded := make([][]byte, t.vocabSize)
	for id := range t.vocabSize {
		if a, ok := t.addedByID[int32(id)]; ok {
			decoded[id] = []byte(a.Content)
			t.present[id] = true
		} else if t.present[id] {
			decoded[id] = bl.decode(spelled[id])
		}
		total += len(decoded[id])
	}
	if total > math.MaxUint32 {
		return nil, errors.New("vocabulary too large")
	}
	t.tokBytes = make([]byte, 0, total)
	t.tokOff = make([]uint32, t.vocabSize+1)
	for id, b := range decoded {
		t.tokOff[id] = uint32(len(t.tokBytes))
		t.tokBytes = append(t.tokBytes, b...)
	}
	t.tokOff[t.vocabSize] = uint32(len(t.tokBytes))

	for b := range 256 {
		t.byteIDs[b] = -1
		if id, ok := sp.vocab[string(bl.toRune[b])]; ok {
			t.byteIDs[b] = id
		}
	}
	if sp.unk != nil {
		id, ok := sp.vocab[*sp.unk]
		if !ok {
			return nil, fmt.Errorf("unk_token %q is not in the vocab", *sp.unk)
		}
		t.unkID = id
	}
	for rank, m := range sp.merges {
		a, okA := sp.vocab[m[0]]
		b, okB := sp.vocab[m[1]]
		ab, okAB := sp.vocab[m[0]+m[1]]
		if !okA || !okB || !okAB {
			return nil, fmt.Errorf("merge %d (%q %q) uses a token that is not in the vocab", rank, m[0], m[1])
		}
		// A repeated pair keeps its last rank, as Hugging Face's map does.
		t.merges[pairKey(a, b)] = merge{rank: int32(rank), id: ab}
	}
	if t.ignoreMerges {
		t.rawVocab = make(map[string]int32, len(sp.vocab))
		for tok, id := range sp.vocab {
			if raw, ok := bl.decodeStrict(tok); ok {
				t.rawVocab[string(raw)] = id
			}
		}
	}

	var raw, normed []*AddedToken
	for i := range sp.added {
		if a := &sp.added[i]; a.Normalized {
			normed = append(normed, a)
		} else {
			raw = append(raw, a)
		}
	}
	t.rawAdded = newAddedMatcher(raw, func(a *AddedToken) string { return a.Content })
	t.normAdded = newAddedMatcher(normed, func(a *AddedToken) string {
		if t.nfc {
			return nfc(a.Content)
		}
		return a.Content
	})
	return t, nil
}

// decodeStrict is decode for tokens that must be spelled in the byte-level
// alphabet.
func (bl *byteLevel) decodeStrict(tok string) ([]byte, bool) {
	out := make([]byte, 0, len(tok))
	for _, r := range tok {
		b, ok := bl.toByte[r] // U+FFFD, and so invalid UTF-8, is not in the alphabet
		if !ok {
			return nil, false
		}
		out = append(out, b)
	}
	return out, true
}
