"""A Qwen2-layout bidirectional transformer in plain PyTorch (1.13 and 2.x).

Same parameters, names and arithmetic as Hugging Face's Qwen2 (RMSNorm,
rotary embeddings in the rotate-half convention, SwiGLU MLP, biases on the
q/k/v projections only, grouped-query attention, tied embeddings), except
that attention is not causal: every position sees the whole sequence, and
the logits at position i predict the token at i (shift_logits false).
"""

import contextlib
import json
import math
import os
import struct
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Config:
    vocab: int = 8192
    hidden: int = 256
    layers: int = 8
    heads: int = 4
    kv_heads: int = 2
    head_dim: int = 64
    intermediate: int = 672  # keeps the bf16 weights under 16 MB
    max_positions: int = 2048
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6
    tie: bool = True


CONFIGS = {
    # ~5.7M non-embedding parameters: the built-in model.
    "small": Config(),
    # ~4.3M: cheaper on 2 cores.
    "small6": Config(layers=6),
    # ~12.6M: better but twice the latency.
    "base": Config(hidden=384, heads=6, kv_heads=2, intermediate=1024, layers=8),
    # for tests
    "tiny": Config(hidden=64, layers=2, heads=2, kv_heads=1, head_dim=32, intermediate=128),
}


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        dt = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dt)


def rope_tables(cfg, T, device):
    inv = 1.0 / (cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2, dtype=torch.float32, device=device) / cfg.head_dim))
    t = torch.arange(T, dtype=torch.float32, device=device)
    f = torch.outer(t, inv)
    emb = torch.cat([f, f], dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def autocast(enabled):
    """bf16 autocast on CUDA; nothing elsewhere (torch 1.13 CPU builds reject the CUDA form)."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16)


_HAS_SDPA = hasattr(F, "scaled_dot_product_attention")


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        h, hd = cfg.hidden, cfg.head_dim
        self.q_proj = nn.Linear(h, cfg.heads * hd, bias=True)
        self.k_proj = nn.Linear(h, cfg.kv_heads * hd, bias=True)
        self.v_proj = nn.Linear(h, cfg.kv_heads * hd, bias=True)
        self.o_proj = nn.Linear(cfg.heads * hd, h, bias=False)

    def forward(self, x, cos, sin, causal=False):
        B, T, _ = x.shape
        c = self.cfg
        q = self.q_proj(x).view(B, T, c.heads, c.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, c.kv_heads, c.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, c.kv_heads, c.head_dim).transpose(1, 2)
        cos, sin = cos.to(q.dtype), sin.to(q.dtype)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = c.heads // c.kv_heads
        if rep > 1:
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        if _HAS_SDPA:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        else:
            att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(c.head_dim))
            if causal:
                att = att.masked_fill(torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1), float("-inf"))
            o = att.softmax(-1) @ v
        return self.o_proj(o.transpose(1, 2).reshape(B, T, c.heads * c.head_dim))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden, cfg.intermediate, bias=False)
        self.up_proj = nn.Linear(cfg.hidden, cfg.intermediate, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate, cfg.hidden, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden, cfg.norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden, cfg.norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, causal=False):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, causal)
        return x + self.mlp(self.post_attention_layernorm(x))


class Body(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab, cfg.hidden)
        self.layers = nn.ModuleList([Block(cfg) for _ in range(cfg.layers)])
        self.norm = RMSNorm(cfg.hidden, cfg.norm_eps)


class DiffusionLM(nn.Module):
    """Parameter names match Hugging Face's Qwen2ForCausalLM."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.model = Body(cfg)
        self.lm_head = nn.Linear(cfg.hidden, cfg.vocab, bias=False)
        if cfg.tie:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.apply(self._init)
        # GPT-2-style scaled init of the residual projections.
        for n, p in self.named_parameters():
            if n.endswith("o_proj.weight") or n.endswith("down_proj.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.layers))
        self._rope = {}

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def rope(self, T, device):
        device = torch.device(device)
        key = (T, device.type, device.index or 0)  # "cuda" and "cuda:0" are one device
        if key not in self._rope:
            cos, sin = rope_tables(self.cfg, T, device)
            self._rope[key] = (cos, sin)
        return self._rope[key]

    def hidden_states(self, ids, causal=False):
        """causal=True only to check the layout against Hugging Face's (causal) Qwen2."""
        T = ids.shape[1]
        cos, sin = self.rope(T, ids.device)
        x = self.model.embed_tokens(ids)
        for layer in self.model.layers:
            x = layer(x, cos, sin, causal)
        return self.model.norm(x)

    def forward(self, ids, causal=False):
        return self.lm_head(self.hidden_states(ids, causal))

    def loss(self, ids, labels, weights):
        """sum(weights * CE) / batch, computing logits only where labels are set."""
        h = self.hidden_states(ids)
        sel = labels >= 0
        logits = self.lm_head(h[sel]).float()
        ce = F.cross_entropy(logits, labels[sel], reduction="none")
        return (ce * weights[sel]).sum() / ids.shape[0], ce.detach()

    def non_embedding_params(self):
        return sum(p.numel() for n, p in self.named_parameters() if "embed_tokens" not in n and "lm_head" not in n)


# --- Hugging Face layout export and import


def hf_config(cfg, tok, dtype="bfloat16"):
    return {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "vocab_size": cfg.vocab,
        "hidden_size": cfg.hidden,
        "intermediate_size": cfg.intermediate,
        "num_hidden_layers": cfg.layers,
        "num_attention_heads": cfg.heads,
        "num_key_value_heads": cfg.kv_heads,
        "head_dim": cfg.head_dim,
        "max_position_embeddings": cfg.max_positions,
        "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta,
        "tie_word_embeddings": cfg.tie,
        "hidden_act": "silu",
        "attention_dropout": 0.0,
        "use_sliding_window": False,
        "torch_dtype": dtype,
        "bos_token_id": tok.eos_id,
        "eos_token_id": tok.eos_id,
        "pad_token_id": tok.pad_id,
        "mask_token_id": tok.mask_id,
        "shift_logits": False,
    }


def config_from_hf(d):
    return Config(
        vocab=d["vocab_size"],
        hidden=d["hidden_size"],
        layers=d["num_hidden_layers"],
        heads=d["num_attention_heads"],
        kv_heads=d.get("num_key_value_heads", d["num_attention_heads"]),
        head_dim=d.get("head_dim", d["hidden_size"] // d["num_attention_heads"]),
        intermediate=d["intermediate_size"],
        max_positions=d.get("max_position_embeddings", 2048),
        rope_theta=d.get("rope_theta", 10000.0),
        norm_eps=d.get("rms_norm_eps", 1e-6),
        tie=d.get("tie_word_embeddings", True),
    )


_DT = {"BF16": (torch.bfloat16, 2), "F16": (torch.float16, 2), "F32": (torch.float32, 4)}


def save_safetensors(tensors, path, metadata=None):
    """Writes a safetensors file by hand (the format is a JSON header and raw little-endian data)."""
    header = {}
    blobs = []
    off = 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        code = {torch.bfloat16: "BF16", torch.float16: "F16", torch.float32: "F32"}[t.dtype]
        if t.dtype == torch.bfloat16:
            raw = t.view(torch.int16).numpy().tobytes()
        else:
            raw = t.numpy().tobytes()
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    import numpy as np

    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt, _ = _DT[info["dtype"]]
        s, e = info["data_offsets"]
        buf = data[base + s : base + e]
        if dt == torch.bfloat16:
            t = torch.from_numpy(np.frombuffer(buf, dtype=np.int16).copy()).view(torch.bfloat16)
        elif dt == torch.float16:
            t = torch.from_numpy(np.frombuffer(buf, dtype=np.float16).copy())
        else:
            t = torch.from_numpy(np.frombuffer(buf, dtype=np.float32).copy())
        out[name] = t.reshape(info["shape"])
    return out


def export_tensors(model, dtype=torch.bfloat16):
    sd = model.state_dict()
    out = {}
    for name, t in sd.items():
        if name == "lm_head.weight" and model.cfg.tie:
            continue
        out[name] = t.to(dtype)
    return out


def load_hf_dir(d, device="cpu"):
    """A DiffusionLM from an exported directory (config.json + model.safetensors)."""
    with open(os.path.join(d, "config.json")) as f:
        cfg = config_from_hf(json.load(f))
    m = DiffusionLM(cfg)
    sd = load_safetensors(os.path.join(d, "model.safetensors"))
    sd = {k: v.float() for k, v in sd.items()}
    if cfg.tie:
        sd["lm_head.weight"] = sd["model.embed_tokens.weight"]
    missing, unexpected = m.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise ValueError(f"{d}: missing {missing}, unexpected {unexpected}")
    return m.to(device).eval()


def config_dict(cfg):
    return asdict(cfg)
