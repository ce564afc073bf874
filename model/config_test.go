package model

import (
	"fmt"
	"io/fs"
	"strings"
	"testing"
)

func files(m map[string]string) func(string) ([]byte, error) {
	return func(name string) ([]byte, error) {
		s, ok := m[name]
		if !ok {
			return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
		}
		return []byte(s), nil
	}
}

// lladaConfig is GSAI-ML/LLaDA-8B-Instruct's config.json as published.
const lladaConfig = `{
  "activation_type": "silu", "alibi": false, "alibi_bias_max": 8.0,
  "architectures": ["LLaDAModelLM"], "attention_dropout": 0.0,
  "attention_layer_norm": false, "attention_layer_norm_with_affine": true,
  "auto_map": {"AutoConfig": "configuration_llada.LLaDAConfig",
    "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM", "AutoModel": "modeling_llada.LLaDAModelLM"},
  "bias_for_layer_norm": false, "block_group_size": 1, "block_type": "llama",
  "d_model": 4096, "embedding_dropout": 0.0, "embedding_size": 126464, "eos_token_id": 126081,
  "flash_attention": false, "include_bias": false, "include_qkv_bias": false,
  "init_cutoff_factor": null, "init_device": "meta", "init_fn": "mitchell", "init_std": 0.02,
  "input_emb_norm": false, "layer_norm_type": "rms", "layer_norm_with_affine": true,
  "mask_token_id": 126336, "max_sequence_length": 4096, "mlp_hidden_size": 12288, "mlp_ratio": 4,
  "model_type": "llada", "multi_query_attention": null, "n_heads": 32, "n_kv_heads": 32, "n_layers": 32,
  "pad_token_id": 126081, "precision": "amp_bf16", "residual_dropout": 0.0, "rms_norm_eps": 1e-05,
  "rope": true, "rope_full_precision": true, "rope_theta": 500000.0, "scale_logits": false,
  "transformers_version": "4.46.3", "use_cache": false, "vocab_size": 126464, "weight_tying": false
}`

// dreamConfig has the keys of Dream-org/Dream-v0-Base-7B's config.json (a
// Qwen2.5-7B body under model_type "Dream").
const dreamConfig = `{
  "architectures": ["DreamModel"], "attention_dropout": 0.0,
  "auto_map": {"AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"},
  "bos_token_id": 151643, "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 3584,
  "initializer_range": 0.02, "intermediate_size": 18944, "mask_token_id": 151666,
  "max_position_embeddings": 131072, "max_window_layers": 28, "model_type": "Dream",
  "num_attention_heads": 28, "num_hidden_layers": 28, "num_key_value_heads": 4, "pad_token_id": 151643,
  "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000.0, "sliding_window": null,
  "tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.46.2",
  "use_cache": true, "use_sliding_window": false, "vocab_size": 152064
}`

func TestConfigLLaDA(t *testing.T) {
	cfg, err := ParseConfig(files(map[string]string{"config.json": lladaConfig}))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Family: LLaDA, Vocab: 126464, Hidden: 4096, Layers: 32, Heads: 32, KVHeads: 32, HeadDim: 128,
		Intermediate: 12288, MaxPositions: 4096, RopeTheta: 500000, NormEps: 1e-5,
		MaskID: 126336, EOSID: 126081, PadID: 126081, BOSID: -1, ExpandID: -1,
		EmbedScale: 1, LogitScale: 1, ModelType: "llada", Description: "LLaDAModelLM",
	}
	if cfg != want {
		t.Fatalf("got  %+v\nwant %+v", cfg, want)
	}
	// About 8B parameters, as published.
	if p := cfg.Params(); p < 8.0e9 || p > 8.1e9 {
		t.Fatalf("params %d", p)
	}
	// Without mask_token_id, LLaDA's fixed mask id is used.
	noMask := strings.Replace(lladaConfig, `"mask_token_id": 126336,`, "", 1)
	cfg, err = ParseConfig(files(map[string]string{"config.json": noMask}))
	if err != nil || cfg.MaskID != LLaDAMaskID {
		t.Fatalf("mask %d, err %v", cfg.MaskID, err)
	}
	// An unsupported variant is named.
	seq := strings.Replace(lladaConfig, `"block_type": "llama"`, `"block_type": "sequential"`, 1)
	if _, err := ParseConfig(files(map[string]string{"config.json": seq})); err == nil || !strings.Contains(err.Error(), "block_type") {
		t.Fatalf("err = %v", err)
	}
}

func TestConfigDream(t *testing.T) {
	cfg, err := ParseConfig(files(map[string]string{"config.json": dreamConfig}))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Family: Qwen2, Vocab: 152064, Hidden: 3584, Layers: 28, Heads: 28, KVHeads: 4, HeadDim: 128,
		Intermediate: 18944, MaxPositions: 131072, RopeTheta: 1e6, NormEps: 1e-6, ShiftLogits: true,
		MaskID: 151666, EOSID: 151643, PadID: 151643, BOSID: 151643, ExpandID: -1, QKVBias: true,
		EmbedScale: 1, LogitScale: 1, ModelType: "Dream", TorchDType: "bfloat16", Description: "DreamModel",
	}
	if cfg != want {
		t.Fatalf("got  %+v\nwant %+v", cfg, want)
	}
	if p := cfg.Params(); p < 7.5e9 || p > 7.7e9 {
		t.Fatalf("params %d", p)
	}
}

func TestConfigSpecialTokens(t *testing.T) {
	// DiffuCoder-style: the tokenizer names its own pad token, which wins over
	// config.json's pad_token_id.
	tokCfg := `{"pad_token": "<|dlm_pad|>", "eos_token": {"content": "<|im_end|>"},
		"added_tokens_decoder": {"151643": {"content": "<|endoftext|>"}, "151645": {"content": "<|im_end|>"},
		"151666": {"content": "<|mask|>"}, "151667": {"content": "<|dlm_pad|>"}}}`
	noMask := strings.Replace(dreamConfig, `"mask_token_id": 151666,`, "", 1)
	noEOS := strings.Replace(noMask, `"eos_token_id": 151643,`, "", 1)
	cfg, err := ParseConfig(files(map[string]string{"config.json": noEOS, "tokenizer_config.json": tokCfg}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PadID != 151667 || cfg.MaskID != 151666 || cfg.EOSID != 151645 {
		t.Fatalf("pad %d mask %d eos %d", cfg.PadID, cfg.MaskID, cfg.EOSID)
	}

	// DreamOn-style: expand and mask ids in generation_config.json; an eos list
	// gives its first entry.
	gen := `{"mask_token_id": 151666, "expand_token_id": 151667, "eos_token_id": [151645, 151643]}`
	cfg, err = ParseConfig(files(map[string]string{"config.json": noEOS, "generation_config.json": gen}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ExpandID != 151667 || cfg.MaskID != 151666 || cfg.EOSID != 151645 {
		t.Fatalf("expand %d mask %d eos %d", cfg.ExpandID, cfg.MaskID, cfg.EOSID)
	}

	// An id outside the vocabulary is an error.
	bad := strings.Replace(dreamConfig, `"mask_token_id": 151666`, `"mask_token_id": 999999`, 1)
	if _, err := ParseConfig(files(map[string]string{"config.json": bad})); err == nil || !strings.Contains(err.Error(), "mask token id 999999") {
		t.Fatalf("err = %v", err)
	}
}

func TestConfigShiftLogits(t *testing.T) {
	qwen := `{"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 10, "hidden_size": 8,
		"intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1%s}`
	for _, tc := range []struct {
		extra string
		gen   string
		want  bool
	}{
		{"", "", true}, // adapted from an autoregressive Qwen2: shifted
		{`, "shift_logits": false`, "", false},
		{`, "shift_logits": true`, "", true},
		{"", `{"shift_logits": false}`, false},
	} {
		m := map[string]string{"config.json": fmt.Sprintf(qwen, tc.extra)}
		if tc.gen != "" {
			m["generation_config.json"] = tc.gen
		}
		cfg, err := ParseConfig(files(m))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.ShiftLogits != tc.want {
			t.Errorf("%q %q: shift %v, want %v", tc.extra, tc.gen, cfg.ShiftLogits, tc.want)
		}
	}
	cfg, err := ParseConfig(files(map[string]string{"config.json": lladaConfig}))
	if err != nil || cfg.ShiftLogits {
		t.Fatalf("LLaDA shift %v, err %v", cfg.ShiftLogits, err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ config, want string }{
		{`[]`, "not a JSON object"},
		{`{"model_type": "qwen2"}`, `missing "vocab_size"`},
		{`{"model_type": "bert"}`, `unsupported model_type "bert"`},
		{strings.Replace(dreamConfig, `"num_key_value_heads": 4`, `"num_key_value_heads": 5`, 1), "not a multiple"},
		{strings.Replace(dreamConfig, `"hidden_act": "silu"`, `"hidden_act": "gelu"`, 1), "hidden_act"},
		{strings.Replace(dreamConfig, `"rope_scaling": null`, `"rope_scaling": {"type": "yarn", "factor": 4}`, 1), "rope_scaling"},
		{strings.Replace(dreamConfig, `"hidden_size": 3584`, `"hidden_size": 3584.5`, 1), "hidden_size"},
	} {
		_, err := ParseConfig(files(map[string]string{"config.json": tc.config}))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "config.json") {
			t.Errorf("config %.60q: err = %v, want %q", tc.config, err, tc.want)
		}
	}
}

// FuzzParseConfig feeds arbitrary config.json and tokenizer_config.json
// contents to the parser: an error or a valid Config, never a panic.
func FuzzParseConfig(f *testing.F) {
	f.Add(lladaConfig, "")
	f.Add(dreamConfig, `{"pad_token": {"content": "<|dlm_pad|>"}, "added_tokens_decoder": {"151667": {"content": "<|dlm_pad|>"}}}`)
	f.Add(`{"model_type": "qwen2", "vocab_size": 4, "hidden_size": 4, "intermediate_size": 4, "num_hidden_layers": 1, "num_attention_heads": 2, "eos_token_id": [3, 1]}`, "")
	f.Fuzz(func(t *testing.T, config, tokConfig string) {
		m := map[string]string{"config.json": config}
		if tokConfig != "" {
			m["tokenizer_config.json"] = tokConfig
		}
		cfg, err := ParseConfig(files(m))
		if err != nil {
			return
		}
		if err := cfg.validate(); err != nil {
			t.Fatalf("accepted an invalid config: %v", err)
		}
		for _, id := range []int32{cfg.MaskID, cfg.EOSID, cfg.PadID, cfg.BOSID, cfg.ExpandID} {
			if id < -1 || id >= int32(cfg.Vocab) {
				t.Fatalf("special id %d outside [-1, %d)", id, cfg.Vocab)
			}
		}
	})
}
