package model

import (
	"fmt"
	"math"
)

// The LLaDA layout (OLMo names, LLaDAModelLM with block_type "llama"):
// model.transformer.wte, model.transformer.blocks.N.{attn_norm, q_proj, k_proj,
// v_proj, attn_out, ff_norm, ff_proj (the SiLU-gated branch), up_proj, ff_out},
// model.transformer.ln_f, model.transformer.ff_out (the head; absent when
// weight_tying).

// LLaDAMaskID is the mask token of LLaDA-8B's tokenizer, used when a LLaDA
// checkpoint does not name its mask token.
const LLaDAMaskID = 126336

func parseLLaDAConfig(c *rawConfig) (Config, error) {
	r := &configReader{c: c}
	d := r.need("d_model")
	heads := r.need("n_heads")
	cfg := Config{
		Family:       LLaDA,
		Hidden:       d,
		Layers:       r.need("n_layers"),
		Heads:        heads,
		MaxPositions: r.int("max_sequence_length", 1024),
		RopeTheta:    r.float("rope_theta", 10000),
		NormEps:      r.float("rms_norm_eps", 1e-5),
		// OLMo's ModelConfig defaults to tied weights.
		TieEmbeddings: r.bool("weight_tying", true),
		QKVBias:       r.bool("include_qkv_bias", false),
		EmbedScale:    1,
		LogitScale:    1,
	}
	cfg.Vocab = r.int("embedding_size", 0)
	if cfg.Vocab == 0 {
		cfg.Vocab = r.need("vocab_size")
	}
	cfg.KVHeads = r.int("n_kv_heads", heads)
	if r.bool("multi_query_attention", false) {
		cfg.KVHeads = 1
	}
	cfg.Intermediate = r.int("mlp_hidden_size", 0)
	if cfg.Intermediate == 0 {
		cfg.Intermediate = int(r.float("mlp_ratio", 4) * float64(d))
	}
	if heads > 0 {
		cfg.HeadDim = d / heads
	}
	if r.bool("input_emb_norm", false) {
		cfg.EmbedScale = float32(math.Sqrt(float64(d)))
	}
	if r.bool("scale_logits", false) && d > 0 {
		cfg.LogitScale = float32(1 / math.Sqrt(float64(d)))
	}
	checks := []struct {
		ok   bool
		what string
	}{
		{r.string("block_type", "llama") == "llama", `block_type must be "llama"`},
		{r.string("activation_type", "silu") == "silu", `activation_type must be "silu"`},
		{r.string("layer_norm_type", "rms") == "rms", `layer_norm_type must be "rms"`},
		{r.bool("layer_norm_with_affine", true), "layer_norm_with_affine must be true"},
		{!r.bool("include_bias", false), "include_bias must be false"},
		{!r.bool("bias_for_layer_norm", false), "bias_for_layer_norm must be false"},
		{!r.bool("attention_layer_norm", false), "attention_layer_norm must be false"},
		{r.bool("rope", true), "rope must be true"},
		{!r.bool("alibi", false), "alibi must be false"},
		{r.int("block_group_size", 1) == 1, "block_group_size must be 1"},
	}
	if r.err != nil {
		return Config{}, r.err
	}
	for _, ch := range checks {
		if !ch.ok {
			return Config{}, fmt.Errorf("config.json: unsupported LLaDA variant: %s", ch.what)
		}
	}
	if heads > 0 && d%heads != 0 {
		return Config{}, fmt.Errorf("config.json: d_model %d is not a multiple of n_heads %d", d, heads)
	}
	return cfg, nil
}

func lladaLayout(cfg *Config) layout {
	l := layout{
		embed: "model.transformer.wte.weight",
		norm:  "model.transformer.ln_f.weight",
	}
	if !cfg.TieEmbeddings {
		l.head = "model.transformer.ff_out.weight"
	}
	l.layer = func(i int) layerNames {
		p := fmt.Sprintf("model.transformer.blocks.%d.", i)
		n := layerNames{
			attnNorm: p + "attn_norm.weight",
			q:        p + "q_proj.weight",
			k:        p + "k_proj.weight",
			v:        p + "v_proj.weight",
			o:        p + "attn_out.weight",
			mlpNorm:  p + "ff_norm.weight",
			gate:     p + "ff_proj.weight",
			up:       p + "up_proj.weight",
			down:     p + "ff_out.weight",
		}
		if cfg.QKVBias {
			n.qBias = p + "q_proj.bias"
			n.kBias = p + "k_proj.bias"
			n.vBias = p + "v_proj.bias"
		}
		return n
	}
	return l
}
