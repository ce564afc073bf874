"""Times reference.py's forward pass on a random model, for comparison with
diffill's Go engine (go test -bench Forward ./model/) on the same machine.

    /usr/bin/python3 model/reference/bench_torch.py --shape 0.5b --tokens 512 --dtype f32

Shapes: 10m (diffill's benchmark shape: vocab 16384, hidden 256, 6 layers,
4 heads / 2 kv, intermediate 1024, tied) and 0.5b (Qwen2.5-0.5B: vocab 151936,
hidden 896, 24 layers, 14 heads / 2 kv, intermediate 4864, tied). Prints the
best of --runs passes, tokens/s, GFLOP/s (same count as Config.ForwardFLOPs)
and the peak RSS.
"""

import argparse
import math
import os
import resource
import sys
import time

# OpenMP's default spin-waiting makes this torch build 5x slower on a busy
# 2-core machine; passive waiting is its best setting there. Set before torch
# loads; an explicit environment value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference  # noqa: E402

SHAPES = {
    "10m": dict(vocab=16384, hidden=256, layers=6, heads=4, kv=2, inter=1024),
    "0.5b": dict(vocab=151936, hidden=896, layers=24, heads=14, kv=2, inter=4864),
}


def random_model(shape, dtype):
    s = SHAPES[shape]
    raw = {
        "model_type": "qwen2",
        "vocab_size": s["vocab"],
        "hidden_size": s["hidden"],
        "intermediate_size": s["inter"],
        "num_hidden_layers": s["layers"],
        "num_attention_heads": s["heads"],
        "num_key_value_heads": s["kv"],
        "rope_theta": 1e6,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True,
    }
    cfg = reference.Config(raw)
    g = torch.Generator().manual_seed(7)
    h, d = s["hidden"], s["hidden"] // s["heads"]
    q, kv = s["heads"] * d, s["kv"] * d

    def lin(n, k):
        return (torch.randn(n, k, generator=g) / math.sqrt(k)).to(dtype)

    w = {"model.embed_tokens.weight": torch.randn(s["vocab"], h, generator=g).to(dtype), "model.norm.weight": torch.ones(h, dtype=dtype)}
    for i in range(s["layers"]):
        n = reference.names(cfg, i)
        w[n["attn_norm"]] = torch.ones(h, dtype=dtype)
        w[n["mlp_norm"]] = torch.ones(h, dtype=dtype)
        w[n["q"]], w[n["k"]], w[n["v"]], w[n["o"]] = lin(q, h), lin(kv, h), lin(kv, h), lin(h, q)
        w[n["qb"]], w[n["kb"]], w[n["vb"]] = (torch.zeros(x, dtype=dtype) for x in (q, kv, kv))
        w[n["gate"]], w[n["up"]], w[n["down"]] = lin(s["inter"], h), lin(s["inter"], h), lin(h, s["inter"])
    return reference.Reference.from_weights(raw, w)


def flops(cfg, rows, seq, logits):
    h, q, kv = cfg.hidden, cfg.heads * cfg.head_dim, cfg.kv_heads * cfg.head_dim
    per_row = 2 * (h * q + 2 * h * kv + q * h + 3 * h * cfg.inter)
    attn = 4 * seq * q
    return cfg.layers * rows * (per_row + attn) + 2 * logits * h * cfg.vocab


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="10m", choices=SHAPES)
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = torch.float32 if args.dtype == "f32" else torch.bfloat16
    ref = random_model(args.shape, dtype)
    g = torch.Generator().manual_seed(1)
    toks = torch.randint(0, ref.cfg.vocab, (args.tokens,), generator=g).tolist()
    best = float("inf")
    for _ in range(args.runs):
        t0 = time.perf_counter()
        ref.forward(toks)
        best = min(best, time.perf_counter() - t0)
    fl = flops(ref.cfg, args.tokens, args.tokens, args.tokens)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"torch {torch.__version__} {args.shape} {args.dtype} {args.tokens} tokens, {args.threads} threads: "
        f"{best * 1e3:.1f} ms  {args.tokens / best:.0f} tokens/s  {fl / best / 1e9:.1f} GFLOP/s  peak RSS {rss:.0f} MiB"
    )


if __name__ == "__main__":
    main()
