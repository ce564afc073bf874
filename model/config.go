package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
)

// Family names a checkpoint layout. Both families run the same bidirectional
// transformer (RMSNorm, RoPE, grouped-query attention, SwiGLU); they differ in
// config keys and tensor names.
type Family string

const (
	// Qwen2 is the Qwen2 layout: Dream, Dream-Coder, DreamOn, DiffuCoder,
	// Open-dCoder and diffill's built-in model (model.layers.N.self_attn.*).
	Qwen2 Family = "qwen2"
	// LLaDA is the OLMo-derived layout of LLaDA (model.transformer.blocks.N.*).
	LLaDA Family = "llada"
)

// Config is what the forward pass needs to know about a checkpoint, read from
// config.json (plus generation_config.json and the tokenizer files for the
// special token ids).
type Config struct {
	Family                                                                     Family
	Vocab, Hidden, Layers, Heads, KVHeads, HeadDim, Intermediate, MaxPositions int

	RopeTheta float64
	NormEps   float64

	TieEmbeddings bool
	// ShiftLogits reports that logits at position i predict token i+1, as in
	// models adapted from autoregressive checkpoints (Dream, Open-dCoder).
	ShiftLogits bool

	// Special token ids; -1 when the model has none.
	MaskID, EOSID, PadID, BOSID, ExpandID int32

	// Family-specific details of the forward pass.
	QKVBias     bool    // q/k/v projections carry a bias (Qwen2; LLaDA with include_qkv_bias)
	EmbedScale  float32 // multiply embeddings by this (LLaDA input_emb_norm: sqrt(d_model)); 1 otherwise
	LogitScale  float32 // multiply logits by this (LLaDA scale_logits: 1/sqrt(d_model)); 1 otherwise
	ModelType   string  // config.json model_type, verbatim
	TorchDType  string  // config.json torch_dtype, verbatim (informational)
	Description string  // architectures[0], verbatim (informational)
}

// rawConfig is a JSON object whose keys are looked up one by one, so that
// absent, null and wrongly typed values are told apart.
type rawConfig struct {
	file string
	m    map[string]json.RawMessage
}

func parseRawConfig(file string, data []byte) (*rawConfig, error) {
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: not a JSON object: %w", file, err)
	}
	if m == nil {
		return nil, fmt.Errorf("%s: not a JSON object", file)
	}
	return &rawConfig{file: file, m: m}, nil
}

// has reports whether key is present and not null.
func (c *rawConfig) has(key string) bool {
	if c == nil {
		return false
	}
	v, ok := c.m[key]
	return ok && string(bytes.TrimSpace(v)) != "null"
}

func (c *rawConfig) int(key string) (int, bool, error) {
	if !c.has(key) {
		return 0, false, nil
	}
	raw := c.m[key]
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		// eos_token_id may be a list (Qwen2 generation_config.json): take the first.
		var list []json.Number
		if err2 := json.Unmarshal(raw, &list); err2 != nil || len(list) == 0 {
			return 0, false, fmt.Errorf("%s: %s: want an integer, got %s", c.file, key, abbreviate(raw))
		}
		n = list[0]
	}
	v, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		// Accept integral floats such as 4096.0.
		f, ferr := strconv.ParseFloat(string(n), 64)
		if ferr != nil || f != float64(int64(f)) {
			return 0, false, fmt.Errorf("%s: %s: want an integer, got %s", c.file, key, n)
		}
		v = int64(f)
	}
	if v < -1<<31 || v > 1<<31-1 {
		return 0, false, fmt.Errorf("%s: %s: %d out of range", c.file, key, v)
	}
	return int(v), true, nil
}

func (c *rawConfig) float(key string) (float64, bool, error) {
	if !c.has(key) {
		return 0, false, nil
	}
	var n json.Number
	if err := json.Unmarshal(c.m[key], &n); err != nil {
		return 0, false, fmt.Errorf("%s: %s: want a number, got %s", c.file, key, abbreviate(c.m[key]))
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		return 0, false, fmt.Errorf("%s: %s: %w", c.file, key, err)
	}
	return f, true, nil
}

func (c *rawConfig) bool(key string) (bool, bool, error) {
	if !c.has(key) {
		return false, false, nil
	}
	var b bool
	if err := json.Unmarshal(c.m[key], &b); err != nil {
		return false, false, fmt.Errorf("%s: %s: want true or false, got %s", c.file, key, abbreviate(c.m[key]))
	}
	return b, true, nil
}

func (c *rawConfig) string(key string) (string, bool, error) {
	if !c.has(key) {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(c.m[key], &s); err != nil {
		return "", false, fmt.Errorf("%s: %s: want a string, got %s", c.file, key, abbreviate(c.m[key]))
	}
	return s, true, nil
}

// tokenString reads a special token entry of tokenizer_config.json, which is
// either a string or an object with a "content" string.
func (c *rawConfig) tokenString(key string) (string, bool) {
	if !c.has(key) {
		return "", false
	}
	var s string
	if json.Unmarshal(c.m[key], &s) == nil {
		return s, s != ""
	}
	var obj struct {
		Content string `json:"content"`
	}
	if json.Unmarshal(c.m[key], &obj) == nil && obj.Content != "" {
		return obj.Content, true
	}
	return "", false
}

// configReader pulls typed values out of a rawConfig and keeps the first error,
// so that a family's parser reads like a list of fields.
type configReader struct {
	c   *rawConfig
	err error
}

func (r *configReader) int(key string, def int) int {
	v, ok, err := r.c.int(key)
	if err != nil && r.err == nil {
		r.err = err
	}
	if !ok {
		return def
	}
	return v
}

// need reads an integer that must be present.
func (r *configReader) need(key string) int {
	v, ok, err := r.c.int(key)
	if err != nil && r.err == nil {
		r.err = err
	}
	if !ok && err == nil && r.err == nil {
		r.err = fmt.Errorf("%s: missing %q", r.c.file, key)
	}
	return v
}

func (r *configReader) float(key string, def float64) float64 {
	v, ok, err := r.c.float(key)
	if err != nil && r.err == nil {
		r.err = err
	}
	if !ok {
		return def
	}
	return v
}

func (r *configReader) bool(key string, def bool) bool {
	v, ok, err := r.c.bool(key)
	if err != nil && r.err == nil {
		r.err = err
	}
	if !ok {
		return def
	}
	return v
}

func (r *configReader) string(key, def string) string {
	v, ok, err := r.c.string(key)
	if err != nil && r.err == nil {
		r.err = err
	}
	if !ok {
		return def
	}
	return v
}

func abbreviate(raw []byte) string {
	s := string(bytes.TrimSpace(raw))
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return s
}

// detectFamily picks the layout from config.json's model_type, architectures
// and keys.
func detectFamily(c *rawConfig) (Family, error) {
	mt, _, err := c.string("model_type")
	if err != nil {
		return "", err
	}
	var arch []string
	if c.has("architectures") {
		_ = json.Unmarshal(c.m["architectures"], &arch)
	}
	switch strings.ToLower(mt) {
	case "llada":
		return LLaDA, nil
	case "qwen2", "dream":
		return Qwen2, nil
	}
	for _, a := range arch {
		switch {
		case strings.HasPrefix(a, "LLaDA"):
			return LLaDA, nil
		case strings.HasPrefix(a, "Qwen2"), strings.HasPrefix(a, "Dream"):
			return Qwen2, nil
		}
	}
	if c.has("d_model") && c.has("n_layers") {
		return LLaDA, nil
	}
	return "", fmt.Errorf("%s: unsupported model_type %q (architectures %q): want a Qwen2-style (qwen2, Dream) or LLaDA-style checkpoint", c.file, mt, arch)
}

// specialFiles are the optional files besides config.json that name special
// tokens.
type specialFiles struct {
	generation *rawConfig                 // generation_config.json
	tokConfig  *rawConfig                 // tokenizer_config.json
	added      map[string]int32           // token content -> id, from tokenizer.json added_tokens and tokenizer_config added_tokens_decoder
	lookup     func(string) (int32, bool) // the loaded tokenizer's lookup, if any
}

func (s *specialFiles) id(token string) (int32, bool) {
	if token == "" {
		return 0, false
	}
	if id, ok := s.added[token]; ok {
		return id, true
	}
	if s.lookup != nil {
		return s.lookup(token)
	}
	return 0, false
}

// readSpecialFiles gathers generation_config.json, tokenizer_config.json and
// the added tokens of tokenizer.json; each is optional.
func readSpecialFiles(read func(string) ([]byte, error)) (*specialFiles, error) {
	s := &specialFiles{added: map[string]int32{}}
	if data, err := read("generation_config.json"); err == nil {
		if s.generation, err = parseRawConfig("generation_config.json", data); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if data, err := read("tokenizer_config.json"); err == nil {
		if s.tokConfig, err = parseRawConfig("tokenizer_config.json", data); err != nil {
			return nil, err
		}
		if s.tokConfig.has("added_tokens_decoder") {
			var dec map[string]struct {
				Content string `json:"content"`
			}
			if err := json.Unmarshal(s.tokConfig.m["added_tokens_decoder"], &dec); err != nil {
				return nil, fmt.Errorf("tokenizer_config.json: added_tokens_decoder: %w", err)
			}
			for k, v := range dec {
				id, err := strconv.ParseInt(k, 10, 32)
				if err != nil || id < 0 {
					return nil, fmt.Errorf("tokenizer_config.json: added_tokens_decoder: bad id %q", k)
				}
				s.added[v.Content] = int32(id)
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if data, err := read("tokenizer.json"); err == nil {
		var tj struct {
			AddedTokens []struct {
				ID      int64  `json:"id"`
				Content string `json:"content"`
			} `json:"added_tokens"`
		}
		if err := json.Unmarshal(data, &tj); err != nil {
			return nil, fmt.Errorf("tokenizer.json: %w", err)
		}
		for _, t := range tj.AddedTokens {
			if t.ID < 0 || t.ID > 1<<31-1 {
				return nil, fmt.Errorf("tokenizer.json: added token %q: bad id %d", t.Content, t.ID)
			}
			s.added[t.Content] = int32(t.ID)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return s, nil
}

// ParseConfig reads config.json and, where present, generation_config.json,
// tokenizer_config.json and tokenizer.json through read (which must return an
// error satisfying errors.Is(err, fs.ErrNotExist) for absent files).
func ParseConfig(read func(name string) ([]byte, error)) (Config, error) {
	return parseConfig(read, nil)
}

func parseConfig(read func(string) ([]byte, error), lookup func(string) (int32, bool)) (Config, error) {
	data, err := read("config.json")
	if err != nil {
		return Config{}, fmt.Errorf("config.json: %w", err)
	}
	raw, err := parseRawConfig("config.json", data)
	if err != nil {
		return Config{}, err
	}
	fam, err := detectFamily(raw)
	if err != nil {
		return Config{}, err
	}
	sp, err := readSpecialFiles(read)
	if err != nil {
		return Config{}, err
	}
	sp.lookup = lookup

	var cfg Config
	switch fam {
	case Qwen2:
		cfg, err = parseQwen2Config(raw)
	case LLaDA:
		cfg, err = parseLLaDAConfig(raw)
	}
	if err != nil {
		return Config{}, err
	}
	r := &configReader{c: raw}
	cfg.ModelType = r.string("model_type", "")
	cfg.TorchDType = r.string("torch_dtype", "")
	var arch []string
	if raw.has("architectures") {
		_ = json.Unmarshal(raw.m["architectures"], &arch)
	}
	if len(arch) > 0 {
		cfg.Description = arch[0]
	}
	if r.err != nil {
		return Config{}, r.err
	}
	if err := resolveSpecialIDs(&cfg, raw, sp); err != nil {
		return Config{}, err
	}
	if err := cfg.validate(); err != nil {
		return Config{}, fmt.Errorf("config.json: %w", err)
	}
	return cfg, nil
}

// resolveSpecialIDs fills the special token ids and ShiftLogits.
//
// Order for each id: config.json's *_token_id, then generation_config.json's,
// then the token named in tokenizer_config.json, then a well-known token
// string. Pad is the exception: a pad token named by tokenizer_config.json wins,
// because DiffuCoder pads generations with its own <|dlm_pad|> while its
// config.json repeats <|endoftext|>.
func resolveSpecialIDs(cfg *Config, raw *rawConfig, sp *specialFiles) error {
	var firstErr error
	fromInts := func(key string) (int32, bool) {
		for _, c := range []*rawConfig{raw, sp.generation} {
			if c == nil {
				continue
			}
			v, ok, err := c.int(key)
			if err != nil && firstErr == nil {
				firstErr = err
			}
			if ok && v >= 0 {
				return int32(v), true
			}
		}
		return -1, false
	}
	fromTokConfig := func(key string) (int32, bool) {
		if s, ok := sp.tokConfig.tokenString(key); ok {
			return sp.id(s)
		}
		return -1, false
	}
	fromNames := func(names ...string) (int32, bool) {
		for _, n := range names {
			if id, ok := sp.id(n); ok {
				return id, true
			}
		}
		return -1, false
	}
	pick := func(fs ...func() (int32, bool)) int32 {
		for _, f := range fs {
			if id, ok := f(); ok {
				return id
			}
		}
		return -1
	}
	cfg.MaskID = pick(
		func() (int32, bool) { return fromInts("mask_token_id") },
		func() (int32, bool) { return fromTokConfig("mask_token") },
		func() (int32, bool) { return fromNames("<|mask|>", "<|mdm_mask|>", "[MASK]", "<mask>") },
		func() (int32, bool) {
			// LLaDA's mask token is fixed by its training code, not always written down.
			if cfg.Family == LLaDA && cfg.Vocab > 126336 {
				return 126336, true
			}
			return -1, false
		},
	)
	cfg.EOSID = pick(
		func() (int32, bool) { return fromInts("eos_token_id") },
		func() (int32, bool) { return fromTokConfig("eos_token") },
		func() (int32, bool) { return fromNames("<|endoftext|>") },
	)
	cfg.PadID = pick(
		func() (int32, bool) { return fromTokConfig("pad_token") },
		func() (int32, bool) { return fromInts("pad_token_id") },
		func() (int32, bool) { return fromNames("<|pad|>", "<|dlm_pad|>") },
	)
	cfg.BOSID = pick(
		func() (int32, bool) { return fromInts("bos_token_id") },
		func() (int32, bool) { return fromTokConfig("bos_token") },
	)
	cfg.ExpandID = pick(
		func() (int32, bool) { return fromInts("expand_token_id") },
		func() (int32, bool) { return fromNames("<|expand|>") },
	)
	if firstErr != nil {
		return firstErr
	}
	for _, f := range []struct {
		name string
		id   *int32
	}{{"mask", &cfg.MaskID}, {"eos", &cfg.EOSID}, {"pad", &cfg.PadID}, {"bos", &cfg.BOSID}, {"expand", &cfg.ExpandID}} {
		if *f.id >= int32(cfg.Vocab) {
			return fmt.Errorf("%s token id %d is outside the vocabulary (%d)", f.name, *f.id, cfg.Vocab)
		}
	}

	// An explicit shift_logits key wins; otherwise models adapted from
	// autoregressive checkpoints (the Qwen2 family: Dream, Open-dCoder) shift,
	// LLaDA (trained as a mask predictor from scratch) does not.
	shift, ok, err := raw.bool("shift_logits")
	if err != nil {
		return err
	}
	if !ok && sp.generation != nil {
		if shift, ok, err = sp.generation.bool("shift_logits"); err != nil {
			return err
		}
	}
	if !ok {
		shift = cfg.Family == Qwen2
	}
	cfg.ShiftLogits = shift
	return nil
}

func (c *Config) validate() error {
	switch {
	case c.Vocab <= 0:
		return fmt.Errorf("vocabulary size %d", c.Vocab)
	case c.Hidden <= 0 || c.Layers <= 0 || c.Heads <= 0 || c.KVHeads <= 0 || c.Intermediate <= 0:
		return fmt.Errorf("bad shape: hidden %d, layers %d, heads %d, kv heads %d, intermediate %d",
			c.Hidden, c.Layers, c.Heads, c.KVHeads, c.Intermediate)
	case c.Heads%c.KVHeads != 0:
		return fmt.Errorf("%d attention heads are not a multiple of %d key/value heads", c.Heads, c.KVHeads)
	case c.HeadDim <= 0 || c.HeadDim%2 != 0:
		return fmt.Errorf("head dimension %d: RoPE needs a positive even size", c.HeadDim)
	case c.RopeTheta <= 0:
		return fmt.Errorf("rope_theta %g", c.RopeTheta)
	case c.NormEps < 0:
		return fmt.Errorf("norm epsilon %g", c.NormEps)
	case c.Vocab > 1<<24 || c.Hidden > 1<<16 || c.Intermediate > 1<<18 || c.Layers > 1<<10 || c.Heads > 1<<10:
		return fmt.Errorf("implausible shape: vocab %d, hidden %d, intermediate %d, layers %d, heads %d",
			c.Vocab, c.Hidden, c.Intermediate, c.Layers, c.Heads)
	}
	return nil
}

// Params returns the number of weights the forward pass uses.
func (c *Config) Params() int64 {
	h, d := int64(c.Hidden), int64(c.HeadDim)
	q := int64(c.Heads) * d
	kv := int64(c.KVHeads) * d
	perLayer := 2*h + h*q + 2*h*kv + q*h + 3*h*int64(c.Intermediate)
	if c.QKVBias {
		perLayer += q + 2*kv
	}
	n := int64(c.Vocab)*h + int64(c.Layers)*perLayer + h
	if !c.TieEmbeddings {
		n += int64(c.Vocab) * h
	}
	return n
}

// ForwardFLOPs counts the floating-point operations (multiply and add
// counted apart) of a forward pass that computes rows positions of a
// sequence of seqLen tokens and returns logits for logits of them: the
// matrix multiplies and attention, which are all but a sliver of the work.
func (c *Config) ForwardFLOPs(rows, seqLen, logits int) float64 {
	h, q, kv := float64(c.Hidden), float64(c.Heads*c.HeadDim), float64(c.KVHeads*c.HeadDim)
	perRow := 2 * (h*q + 2*h*kv + q*h + 3*h*float64(c.Intermediate)) // projections and MLP
	attn := 4 * float64(seqLen) * q                                  // scores and weighted values
	return float64(c.Layers)*float64(rows)*(perRow+attn) + 2*float64(logits)*h*float64(c.Vocab)
}
