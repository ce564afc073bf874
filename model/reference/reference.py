"""PyTorch reference forward pass for diffill's two checkpoint families.

Written from the published model code's semantics (transformers' Qwen2 /
Dream's DreamModel, and LLaDA's LLaDALlamaBlock), not from diffill's Go code:

    x = embed(tokens) [* sqrt(d) if input_emb_norm]
    per layer:
        h = rmsnorm(x) * w
        q, k, v = h Wqᵀ (+b), h Wkᵀ (+b), h Wvᵀ (+b)
        q, k = rope(q), rope(k)             # rotate_half: pairs (i, i + d/2)
        x = x + softmax(q kᵀ / sqrt(d)) v Woᵀ   # no causal mask; GQA by repeat_interleave
        h = rmsnorm(x) * w
        x = x + (silu(h Wgᵀ) * (h Wuᵀ)) Wdᵀ
    logits = rmsnorm(x) * w · headᵀ [/ sqrt(d) if scale_logits]

Float32 throughout; bf16/f16 weights are widened. A "cached" forward follows
Fast-dLLM's dual cache: only the `compute` positions run through the layers;
every other position's keys and values come from a cache filled by an earlier
forward (post-RoPE keys), and the computed positions' keys and values replace
theirs in it.

Runs with Debian's python3-torch 1.13 (CPU) and with PyTorch 2.x.

Usage: python3 reference.py DIR --ids 1,2,3 [--compute 4,5 --cache-ids ...]
prints the argmax at each position.
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402


class Config:
    """The handful of numbers the forward pass needs, read from config.json."""

    def __init__(self, raw):
        fam = (raw.get("model_type") or "").lower()
        if fam == "llada" or "d_model" in raw:
            self.family = "llada"
            self.hidden = raw["d_model"]
            self.layers = raw["n_layers"]
            self.heads = raw["n_heads"]
            self.kv_heads = raw.get("n_kv_heads") or self.heads
            self.head_dim = self.hidden // self.heads
            self.inter = raw.get("mlp_hidden_size") or int(raw.get("mlp_ratio", 4) * self.hidden)
            self.vocab = raw.get("embedding_size") or raw["vocab_size"]
            self.theta = raw.get("rope_theta", 10000.0)
            self.eps = raw.get("rms_norm_eps", 1e-5)
            self.tied = raw.get("weight_tying", True)
            self.qkv_bias = raw.get("include_qkv_bias", False)
            self.emb_scale = math.sqrt(self.hidden) if raw.get("input_emb_norm") else 1.0
            self.logit_scale = 1 / math.sqrt(self.hidden) if raw.get("scale_logits") else 1.0
        else:
            self.family = "qwen2"
            self.hidden = raw["hidden_size"]
            self.layers = raw["num_hidden_layers"]
            self.heads = raw["num_attention_heads"]
            self.kv_heads = raw.get("num_key_value_heads") or self.heads
            self.head_dim = raw.get("head_dim") or self.hidden // self.heads
            self.inter = raw["intermediate_size"]
            self.vocab = raw["vocab_size"]
            self.theta = raw.get("rope_theta", 10000.0)
            self.eps = raw.get("rms_norm_eps", 1e-6)
            self.tied = raw.get("tie_word_embeddings", False)
            self.qkv_bias = raw.get("attention_bias", True)
            self.emb_scale = 1.0
            self.logit_scale = 1.0


def names(cfg, i):
    """Tensor names of layer i: the published layouts."""
    if cfg.family == "qwen2":
        p = f"model.layers.{i}."
        n = dict(
            attn_norm=p + "input_layernorm.weight",
            q=p + "self_attn.q_proj.weight",
            k=p + "self_attn.k_proj.weight",
            v=p + "self_attn.v_proj.weight",
            o=p + "self_attn.o_proj.weight",
            mlp_norm=p + "post_attention_layernorm.weight",
            gate=p + "mlp.gate_proj.weight",
            up=p + "mlp.up_proj.weight",
            down=p + "mlp.down_proj.weight",
        )
        if cfg.qkv_bias:
            n.update(qb=p + "self_attn.q_proj.bias", kb=p + "self_attn.k_proj.bias", vb=p + "self_attn.v_proj.bias")
        return n
    p = f"model.transformer.blocks.{i}."
    n = dict(
        attn_norm=p + "attn_norm.weight",
        q=p + "q_proj.weight",
        k=p + "k_proj.weight",
        v=p + "v_proj.weight",
        o=p + "attn_out.weight",
        mlp_norm=p + "ff_norm.weight",
        gate=p + "ff_proj.weight",
        up=p + "up_proj.weight",
        down=p + "ff_out.weight",
    )
    if cfg.qkv_bias:
        n.update(qb=p + "q_proj.bias", kb=p + "k_proj.bias", vb=p + "v_proj.bias")
    return n


def top_names(cfg):
    if cfg.family == "qwen2":
        return "model.embed_tokens.weight", "model.norm.weight", (None if cfg.tied else "lm_head.weight")
    return (
        "model.transformer.wte.weight",
        "model.transformer.ln_f.weight",
        (None if cfg.tied else "model.transformer.ff_out.weight"),
    )


class Reference:
    @classmethod
    def from_weights(cls, raw_config, weights):
        """A reference over in-memory torch tensors (for benchmarks)."""
        ref = cls.__new__(cls)
        ref.cfg = Config(raw_config)
        ref.w = weights
        return ref

    def __init__(self, directory):
        with open(os.path.join(directory, "config.json")) as f:
            self.cfg = Config(json.load(f))
        index = os.path.join(directory, "model.safetensors.index.json")
        w = {}
        if os.path.exists(index):
            with open(index) as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
            for s in shards:
                w.update(st.read(os.path.join(directory, s)))
        else:
            w = st.read(os.path.join(directory, "model.safetensors"))
        self.w = {k: torch.from_numpy(v) for k, v in w.items()}

    def rope(self, positions):
        """cos, sin of shape [n, head_dim], built as transformers builds them."""
        d = self.cfg.head_dim
        inv_freq = 1.0 / (self.cfg.theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
        freqs = positions.float()[:, None] * inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()

    @staticmethod
    def rotate_half(x):
        h = x.shape[-1] // 2
        return torch.cat((-x[..., h:], x[..., :h]), dim=-1)

    def rmsnorm(self, x, w):
        var = x.pow(2).mean(-1, keepdim=True)
        return w * (x * torch.rsqrt(var + self.cfg.eps))

    @torch.no_grad()
    def forward(self, tokens, compute=None, cache=None):
        """Returns (logits [len(compute), vocab], cache).

        cache is a list of (K, V) per layer, each [kv_heads, T, head_dim],
        post-RoPE. With compute=None every position runs and a new cache is
        returned; otherwise cache must hold every position not in compute.
        """
        cfg, w = self.cfg, self.w
        T = len(tokens)
        tokens = torch.tensor(tokens, dtype=torch.int64)
        embed_name, norm_name, head_name = top_names(cfg)
        dt = w[embed_name].dtype  # float32 here; bfloat16 in bench_torch.py --dtype bf16
        if compute is None:
            compute = list(range(T))
            cache = [
                (torch.zeros(cfg.kv_heads, T, cfg.head_dim, dtype=dt), torch.zeros(cfg.kv_heads, T, cfg.head_dim, dtype=dt))
                for _ in range(cfg.layers)
            ]
        else:
            cache = [(k[:, :T].clone(), v[:, :T].clone()) for k, v in cache]
        pos = torch.tensor(compute, dtype=torch.int64)
        n = len(compute)
        x = w[embed_name][tokens[pos]] * cfg.emb_scale
        cos, sin = self.rope(pos)
        cos, sin = cos.to(dt), sin.to(dt)
        group = cfg.heads // cfg.kv_heads
        for i in range(cfg.layers):
            nm = names(cfg, i)
            h = self.rmsnorm(x, w[nm["attn_norm"]])
            q = h @ w[nm["q"]].T
            k = h @ w[nm["k"]].T
            v = h @ w[nm["v"]].T
            if cfg.qkv_bias:
                q, k, v = q + w[nm["qb"]], k + w[nm["kb"]], v + w[nm["vb"]]
            q = q.view(n, cfg.heads, cfg.head_dim).transpose(0, 1)  # [H, n, D]
            k = k.view(n, cfg.kv_heads, cfg.head_dim).transpose(0, 1)
            v = v.view(n, cfg.kv_heads, cfg.head_dim).transpose(0, 1)
            q = q * cos + self.rotate_half(q) * sin
            k = k * cos + self.rotate_half(k) * sin
            K, V = cache[i]
            K[:, pos] = k
            V[:, pos] = v
            Kr = K.repeat_interleave(group, dim=0)  # [H, T, D]
            Vr = V.repeat_interleave(group, dim=0)
            scores = (q @ Kr.transpose(1, 2)) / math.sqrt(cfg.head_dim)  # [H, n, T]; no mask
            att = torch.softmax(scores, dim=-1) @ Vr  # [H, n, D]
            att = att.transpose(0, 1).reshape(n, cfg.heads * cfg.head_dim)
            x = x + att @ w[nm["o"]].T
            h = self.rmsnorm(x, w[nm["mlp_norm"]])
            g = torch.nn.functional.silu(h @ w[nm["gate"]].T) * (h @ w[nm["up"]].T)
            x = x + g @ w[nm["down"]].T
        x = self.rmsnorm(x, w[norm_name])
        head = w[embed_name] if head_name is None else w[head_name]
        logits = (x @ head.T) * cfg.logit_scale
        return logits, cache


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--ids", required=True)
    args = ap.parse_args()
    ref = Reference(args.dir)
    ids = [int(t) for t in args.ids.split(",")]
    logits, _ = ref.forward(ids)
    print(json.dumps({"argmax": logits.argmax(-1).tolist()}))


if __name__ == "__main__":
    main()
