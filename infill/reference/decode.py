#!/usr/bin/env python3
"""PyTorch reference for diffill's default decode, to time the Go engine
against on the same weights and canvases (`diffill bench`).

It runs, on each canvas the Go engine built, the decode of infill/decode.go
with its default kinds of sampler and schedule: the most likely token,
ranked by top-1 probability ("confidence") or top-1 minus top-2
("margin"); the threshold schedule (every mask whose probability is above
the threshold, at least the best ranked one; the last allowed step takes
all); the pad length policy (pad/EOS only where nothing but ends or masks
follows, its probability x pad_penalty, and an end fills the rest of its
span, and the leftmost end whose probability reaches end_threshold is
committed whatever its rank; no end before committed content); newline tokens banned in one-line
spans; and Fast-dLLM's dual cache: one full forward, then each step
recomputes the span positions ("span") or only the masks and the tokens
committed since the last step ("masks"), reading the rest from the cache. The forward pass is
model/reference/reference.py's (Qwen2 layout, no logit shift), repeated
here so that the script stands alone: `diffill bench` embeds it.

Input (stdin, JSON): {"model": DIR, "threads": N, "requests": [{"tokens":
[...], "spans": [{"pos", "n", "single"}], "sampler", "recompute",
"threshold", "end_threshold", "steps", "pad_penalty", "mask", "eos", "pad", "newlines":
[...]}]}
Output (stdout, JSON): {"results": [{"spans": [[ids...]], "ms", "steps"}]}

Runs with Debian's python3-torch 1.13 (CPU) and PyTorch 2.x.
"""

import json
import os
import struct
import sys
import time

import numpy as np
import torch


def read_safetensors(path):
    """{name: float32 tensor}; bf16 and f16 widened."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = memoryview(data)[8 + n :]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        raw = body[b:end]
        if e["dtype"] == "BF16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype={"F32": "<f4", "F16": "<f2"}[e["dtype"]]).astype(np.float32)
        out[name] = torch.from_numpy(arr.reshape(e["shape"]).copy())
    return out


class Model:
    """A Qwen2-layout checkpoint (config.json + model.safetensors)."""

    def __init__(self, d):
        with open(os.path.join(d, "config.json")) as f:
            c = json.load(f)
        if c.get("shift_logits") is not False or c.get("model_type") != "qwen2":
            raise SystemExit("decode.py: only Qwen2-layout models that predict in place (shift_logits false)")
        self.hidden = c["hidden_size"]
        self.layers = c["num_hidden_layers"]
        self.heads = c["num_attention_heads"]
        self.kv_heads = c.get("num_key_value_heads") or self.heads
        self.head_dim = c.get("head_dim") or self.hidden // self.heads
        self.theta = c.get("rope_theta", 10000.0)
        self.eps = c.get("rms_norm_eps", 1e-6)
        self.w = read_safetensors(os.path.join(d, "model.safetensors"))
        self.head = self.w.get("lm_head.weight", self.w["model.embed_tokens.weight"])
        self.qkv_bias = "model.layers.0.self_attn.q_proj.bias" in self.w

    def rope(self, positions):
        d = self.head_dim
        inv = 1.0 / (self.theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
        f = positions.float()[:, None] * inv[None, :]
        emb = torch.cat((f, f), dim=-1)
        return emb.cos(), emb.sin()

    @staticmethod
    def rotate_half(x):
        h = x.shape[-1] // 2
        return torch.cat((-x[..., h:], x[..., :h]), dim=-1)

    def rmsnorm(self, x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


@torch.no_grad()
def forward(m, tokens, compute, cache, rows):
    """The bidirectional forward over `compute` positions (None: all), keys
    and values of the others from `cache`; logits only at `rows`."""
    T = len(tokens)
    tokens = torch.tensor(tokens, dtype=torch.int64)
    if compute is None:
        compute = list(range(T))
        cache = [(torch.zeros(m.kv_heads, T, m.head_dim), torch.zeros(m.kv_heads, T, m.head_dim)) for _ in range(m.layers)]
    pos = torch.tensor(compute, dtype=torch.int64)
    n = len(compute)
    w = m.w
    x = w["model.embed_tokens.weight"][tokens[pos]]
    cos, sin = m.rope(pos)
    group = m.heads // m.kv_heads
    for i in range(m.layers):
        p = f"model.layers.{i}."
        h = m.rmsnorm(x, w[p + "input_layernorm.weight"])
        q = h @ w[p + "self_attn.q_proj.weight"].T
        k = h @ w[p + "self_attn.k_proj.weight"].T
        v = h @ w[p + "self_attn.v_proj.weight"].T
        if m.qkv_bias:
            q = q + w[p + "self_attn.q_proj.bias"]
            k = k + w[p + "self_attn.k_proj.bias"]
            v = v + w[p + "self_attn.v_proj.bias"]
        q = q.view(n, m.heads, m.head_dim).transpose(0, 1)
        k = k.view(n, m.kv_heads, m.head_dim).transpose(0, 1)
        v = v.view(n, m.kv_heads, m.head_dim).transpose(0, 1)
        q = q * cos + m.rotate_half(q) * sin
        k = k * cos + m.rotate_half(k) * sin
        K, V = cache[i]
        K[:, pos] = k
        V[:, pos] = v
        Kr = K.repeat_interleave(group, dim=0)
        Vr = V.repeat_interleave(group, dim=0)
        att = torch.softmax((q @ Kr.transpose(1, 2)) / (m.head_dim**0.5), dim=-1) @ Vr
        x = x + att.transpose(0, 1).reshape(n, m.heads * m.head_dim) @ w[p + "self_attn.o_proj.weight"].T
        h = m.rmsnorm(x, w[p + "post_attention_layernorm.weight"])
        g = torch.nn.functional.silu(h @ w[p + "mlp.gate_proj.weight"].T) * (h @ w[p + "mlp.up_proj.weight"].T)
        x = x + g @ w[p + "mlp.down_proj.weight"].T
    where = {p: j for j, p in enumerate(compute)}
    x = m.rmsnorm(x[[where[p] for p in rows]], w["model.norm.weight"])
    return x @ m.head.T, cache


def decode(m, r):
    tokens = list(r["tokens"])
    spans = r["spans"]
    mask, eos, pad = r["mask"], r["eos"], r["pad"]
    ends = {t for t in (eos, pad) if t >= 0}
    end_ids = torch.tensor(sorted(ends), dtype=torch.int64)
    end_tok = pad if pad >= 0 else eos
    thr, penalty = r["threshold"], r["pad_penalty"]
    end_thr = r.get("end_threshold", 1.0)
    newlines = torch.tensor(r.get("newlines") or [], dtype=torch.int64)
    masked = [False] * len(tokens)
    span_of = {}
    for i, s in enumerate(spans):
        for p in range(s["pos"], s["pos"] + s["n"]):
            masked[p] = True
            span_of[p] = i
    span_pos = sorted(span_of)
    steps_cap = r["steps"] or len(span_pos)
    margin = r.get("sampler", "confidence") == "margin"
    masks_only = r.get("recompute", "span") == "masks"
    cache = None
    cached = None  # token each cache slot was computed with
    step = 0
    while True:
        targets = [p for p in span_pos if masked[p]]
        if not targets:
            break
        if cache is None:
            compute = None
        elif masks_only:
            compute = sorted(p for p in range(len(tokens)) if masked[p] and p in span_of or tokens[p] != cached[p])
        else:
            compute = sorted(set(span_pos) | {p for p in range(len(tokens)) if tokens[p] != cached[p]})
        logits, cache = forward(m, tokens, compute, cache, targets)
        cached = list(tokens)
        # Bans, all rows at once: the mask token; ends before committed
        # content of the span; newlines in one-line spans.
        if mask >= 0:
            logits[:, mask] = float("-inf")
        last_content = []
        for s in spans:
            lc = -1
            for q in range(s["pos"] + s["n"] - 1, s["pos"] - 1, -1):
                if not masked[q] and tokens[q] not in ends:
                    lc = q
                    break
            last_content.append(lc)
        no_end = [i for i, p in enumerate(targets) if p < last_content[span_of[p]]]
        if no_end and len(end_ids):
            logits[torch.tensor(no_end)[:, None], end_ids[None, :]] = float("-inf")
        single = [i for i, p in enumerate(targets) if spans[span_of[p]]["single"]]
        if single and len(newlines):
            logits[torch.tensor(single)[:, None], newlines[None, :]] = float("-inf")
        probs = torch.softmax(logits, dim=-1)
        top2, idx2 = probs.topk(2, dim=-1)
        conf, tok = top2[:, 0], idx2[:, 0]
        rank = top2[:, 0] - top2[:, 1] if margin else conf
        props = {p: (int(tok[i]), float(conf[i]), float(rank[i])) for i, p in enumerate(targets)}
        # Ends only in the tail run of their span, ranked below content;
        # the leftmost end at least end_threshold probable ends its span
        # whatever its rank.
        cands = []
        sure_ends = []
        for si, s in enumerate(spans):
            tail = s["pos"] + s["n"]
            for q in range(s["pos"] + s["n"] - 1, s["pos"] - 1, -1):
                if (not masked[q] and tokens[q] in ends) or (q in props and props[q][0] in ends):
                    tail = q
                else:
                    break
            for p in range(s["pos"], s["pos"] + s["n"]):
                if p not in props:
                    continue
                t, c, rk = props[p]
                if t in ends:
                    if p >= tail:
                        cands.append((rk * penalty, c * penalty, p))
                        if c * penalty >= end_thr and len(sure_ends) == si:
                            sure_ends.append(p)
                else:
                    cands.append((rk, c, p))
            if len(sure_ends) == si:
                sure_ends.append(None)
        cands.sort(key=lambda x: (-x[0], x[2]))
        if step >= steps_cap - 1:
            chosen = [p for _, _, p in cands]
        else:
            chosen = [cands[0][2]] + [p for _, c, p in cands[1:] if c > thr]
            chosen += [p for p in sure_ends if p is not None and p not in chosen]
        for p in chosen:
            tokens[p] = props[p][0]
            masked[p] = False
        for p in chosen:
            if tokens[p] in ends:
                s = spans[span_of[p]]
                for q in range(p + 1, s["pos"] + s["n"]):
                    if masked[q]:
                        tokens[q] = end_tok
                        masked[q] = False
        step += 1
    return [tokens[s["pos"] : s["pos"] + s["n"]] for s in spans], step


def main():
    req = json.load(sys.stdin)
    torch.set_num_threads(req.get("threads") or os.cpu_count())
    ref = Model(req["model"])
    out = []
    for r in req["requests"]:
        t0 = time.perf_counter()
        spans, steps = decode(ref, r)
        out.append({"spans": spans, "ms": (time.perf_counter() - t0) * 1000, "steps": steps})
    json.dump({"results": out}, sys.stdout)


if __name__ == "__main__":
    main()
