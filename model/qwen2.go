package model

import (
	"fmt"
	"strings"
)

// The Qwen2 layout (transformers' Qwen2ForCausalLM; Dream's DreamModel uses the
// same names): model.embed_tokens, model.layers.N.{input_layernorm,
// self_attn.{q,k,v,o}_proj, post_attention_layernorm, mlp.{gate,up,down}_proj},
// model.norm, lm_head (absent when tie_word_embeddings).

func parseQwen2Config(c *rawConfig) (Config, error) {
	r := &configReader{c: c}
	cfg := Config{
		Family:       Qwen2,
		Vocab:        r.need("vocab_size"),
		Hidden:       r.need("hidden_size"),
		Intermediate: r.need("intermediate_size"),
		Layers:       r.need("num_hidden_layers"),
		Heads:        r.need("num_attention_heads"),
		MaxPositions: r.int("max_position_embeddings", 32768),
		RopeTheta:    r.float("rope_theta", 10000),
		NormEps:      r.float("rms_norm_eps", 1e-6),
		// Qwen2Config and DreamConfig both default to untied embeddings.
		TieEmbeddings: r.bool("tie_word_embeddings", false),
		// Qwen2 and Dream always build q/k/v with a bias; a converted
		// checkpoint may say otherwise with attention_bias.
		QKVBias:    r.bool("attention_bias", true),
		EmbedScale: 1,
		LogitScale: 1,
	}
	cfg.KVHeads = r.int("num_key_value_heads", cfg.Heads)
	if cfg.Heads > 0 {
		cfg.HeadDim = r.int("head_dim", cfg.Hidden/cfg.Heads)
	}
	if act := r.string("hidden_act", "silu"); act != "silu" && r.err == nil {
		return Config{}, fmt.Errorf("config.json: hidden_act %q: only silu (SwiGLU) is supported", act)
	}
	if r.bool("use_sliding_window", false) && r.err == nil {
		return Config{}, fmt.Errorf("config.json: use_sliding_window is true: sliding-window attention is not supported")
	}
	if c.has("rope_scaling") && r.err == nil {
		var rs struct {
			Type     string `json:"type"`
			RopeType string `json:"rope_type"`
		}
		if err := jsonUnmarshal(c.m["rope_scaling"], &rs); err != nil {
			return Config{}, fmt.Errorf("config.json: rope_scaling: %w", err)
		}
		t := rs.RopeType
		if t == "" {
			t = rs.Type
		}
		if t != "" && t != "default" {
			return Config{}, fmt.Errorf("config.json: rope_scaling type %q is not supported", t)
		}
	}
	if r.err != nil {
		return Config{}, r.err
	}
	return cfg, nil
}

func qwen2Layout(cfg *Config) layout {
	l := layout{
		embed: "model.embed_tokens.weight",
		norm:  "model.norm.weight",
	}
	if !cfg.TieEmbeddings {
		l.head = "lm_head.weight"
	}
	l.layer = func(i int) layerNames {
		p := fmt.Sprintf("model.layers.%d.", i)
		n := layerNames{
			attnNorm: p + "input_layernorm.weight",
			q:        p + "self_attn.q_proj.weight",
			k:        p + "self_attn.k_proj.weight",
			v:        p + "self_attn.v_proj.weight",
			o:        p + "self_attn.o_proj.weight",
			mlpNorm:  p + "post_attention_layernorm.weight",
			gate:     p + "mlp.gate_proj.weight",
			up:       p + "mlp.up_proj.weight",
			down:     p + "mlp.down_proj.weight",
		}
		if cfg.QKVBias {
			n.qBias = strings.TrimSuffix(n.q, "weight") + "bias"
			n.kBias = strings.TrimSuffix(n.k, "weight") + "bias"
			n.vBias = strings.TrimSuffix(n.v, "weight") + "bias"
		}
		return n
	}
	return l
}
