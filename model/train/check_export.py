#!/usr/bin/env python3
"""Checks an exported model directory against the contracts and the reference.

  check_export.py DIR

- config.json has the contract's fields (shift_logits false, mask/pad/eos ids);
- model.safetensors holds exactly the Qwen2 tensor names, in bf16/f16, and
  loads with the `safetensors` package when it is installed;
- tokenizer.json: specials at ids 0..2, round trip on Go source, the same ids
  from Hugging Face `tokenizers` (when installed) and the pure-Python BPE;
- when `transformers` is installed: Hugging Face's Qwen2ForCausalLM on these
  weights gives the same logits as modeling.py with a causal mask (the only
  difference between the two is that mask), so RoPE, norms and projections
  match the layout the Go engine implements.
Exits non-zero on a failed check; a check whose package is missing is skipped.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402

import gotok  # noqa: E402
import modeling  # noqa: E402

SAMPLE = 'package main\n\nimport "fmt"\n\nfunc main() {\n\tfor i := 0; i < 3; i++ {\n\t\tfmt.Println(i, "héllo")\n\t}\n}\n'


def expected_names(cfg):
    names = {"model.embed_tokens.weight", "model.norm.weight"}
    if not cfg["tie_word_embeddings"]:
        names.add("lm_head.weight")
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        for x in "qkv":
            names |= {p + f"self_attn.{x}_proj.weight", p + f"self_attn.{x}_proj.bias"}
        names.add(p + "self_attn.o_proj.weight")
        for x in ("gate", "up", "down"):
            names.add(p + f"mlp.{x}_proj.weight")
        names |= {p + "input_layernorm.weight", p + "post_attention_layernorm.weight"}
    return names


def main():
    d = sys.argv[1]
    failures = []

    def check(ok, what):
        print(("ok   " if ok else "FAIL ") + what)
        if not ok:
            failures.append(what)

    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "max_position_embeddings", "rms_norm_eps", "rope_theta", "tie_word_embeddings",
              "torch_dtype", "bos_token_id", "eos_token_id", "pad_token_id", "mask_token_id"):
        check(k in cfg, f"config.json has {k}")
    check(cfg.get("shift_logits") is False, "config.json shift_logits is false")
    check(cfg.get("model_type") == "qwen2" and cfg.get("architectures") == ["Qwen2ForCausalLM"], "config.json is qwen2")

    st = modeling.load_safetensors(os.path.join(d, "model.safetensors"))
    check(set(st) == expected_names(cfg), f"safetensors names are the Qwen2 layout ({len(st)} tensors)")
    check(all(t.dtype in (torch.bfloat16, torch.float16) for t in st.values()), "weights are bf16/f16")
    try:
        from safetensors.torch import load_file
    except ImportError:
        print("skip safetensors package not installed")
    else:
        other = load_file(os.path.join(d, "model.safetensors"))
        check(set(other) == set(st) and all(torch.equal(other[k], st[k]) for k in st), "safetensors package reads the same tensors")

    tp = os.path.join(d, "tokenizer.json")
    py = gotok.Tokenizer(tp, force_python=True)
    check([py.eos_id, py.mask_id, py.pad_id] == [0, 1, 2], "special tokens at ids 0, 1, 2")
    check(cfg["mask_token_id"] == py.mask_id and cfg["pad_token_id"] == py.pad_id and cfg["eos_token_id"] == py.eos_id,
          "config ids match the tokenizer")
    check(py.decode(py.encode(SAMPLE)) == SAMPLE, "tokenizer round trip")
    check(py.size == cfg["vocab_size"], "vocab_size matches the tokenizer")
    if gotok._hf is not None:
        hf = gotok.Tokenizer(tp)
        check(hf.encode(SAMPLE) == py.encode(SAMPLE), "HF tokenizers and the pure-Python BPE agree")
    else:
        print("skip HF tokenizers not installed")

    model = modeling.load_hf_dir(d)
    torch.manual_seed(0)
    ids = torch.randint(3, cfg["vocab_size"], (2, 48))
    with torch.no_grad():
        ours = model(ids, causal=True)
    try:
        import transformers
        from transformers import Qwen2ForCausalLM
    except ImportError:
        print("skip transformers not installed")
    else:
        try:
            hfm = Qwen2ForCausalLM.from_pretrained(d, torch_dtype=torch.float32, attn_implementation="eager").eval()
            with torch.no_grad():
                theirs = hfm(input_ids=ids).logits
            err = (ours - theirs).abs().max().item()
            check(err < 2e-3, f"transformers {transformers.__version__} Qwen2 (causal) matches modeling.py: max |diff| {err:.2e}")
        except Exception as e:  # an API change must not hide the other checks
            check(False, f"transformers Qwen2 comparison raised {type(e).__name__}: {e}")
    if failures:
        sys.exit(f"{len(failures)} checks failed")


if __name__ == "__main__":
    main()
