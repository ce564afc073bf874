"""The transformers side of gpu_check.sh (runs on the GPU machine).

  python3 gpu_check.py make  DIR       checkpoints + reference logits under DIR
  python3 gpu_check.py loop  DIR OUT   time the plain transformers loop -> OUT (json)
  python3 gpu_check.py table OUT...    print and write the table

make: with transformers' own Qwen2ForCausalLM (random weights, bf16,
save_pretrained): DIR/qwen2-tiny-hf and DIR/qwen2-0.5b (hidden 896, 24 layers,
14 heads, 2 kv heads, intermediate 4864, vocab 151936, tied). Biases and norm
weights are randomised too (transformers initialises them to 0 and 1, which
would hide a missing bias or norm weight). Each directory gets ref.json and
ref_logits.bin: the model upcast to float32 (the very bf16 weights), eager
attention with an all-zero additive mask (full, non-causal attention), the
logits of every position of a few sequences. A self-check proves the mask is
bidirectional (changing the last token moves the first position's logits).
"""
import json
import os
import sys
import time

torch = None  # imported by the commands that need it, so that "table" runs anywhere


def _torch():
    global torch
    if torch is None:
        import torch as t

        torch = t
    return torch


def log(*a):
    print("[gpu_check.py]", *a, flush=True)


def full_mask(n, dtype, device):
    return torch.zeros(1, 1, n, n, dtype=dtype, device=device)


def forward(model, ids, style):
    """Logits [n][vocab] with full bidirectional attention."""
    n = ids.shape[1]
    mask = full_mask(n, model.dtype, ids.device)
    if style == "dict":  # transformers >= 4.53: a prepared mask per attention type
        return model(input_ids=ids, attention_mask={"full_attention": mask}).logits[0]
    return model(input_ids=ids, attention_mask=mask).logits[0]  # 4D mask used as is


def pick_style(model, vocab, device):
    """Find a mask-passing style under which attention is bidirectional."""
    g = torch.Generator().manual_seed(0)
    a = torch.randint(3, vocab, (1, 12), generator=g).to(device)
    b = a.clone()
    b[0, -1] = (b[0, -1] + 1) % vocab
    for style in ("dict", "4d"):
        try:
            with torch.no_grad():
                la, lb = forward(model, a, style), forward(model, b, style)
        except Exception as e:  # noqa: BLE001 - report and try the next style
            log(f"mask style {style}: {type(e).__name__}: {e}")
            continue
        moved = (la[0] - lb[0]).abs().max().item()
        if moved > 0:
            log(f"mask style {style}: bidirectional (position 0 moved by {moved:.3g})")
            return style
        log(f"mask style {style}: position 0 did not move: causal, rejected")
    return None


def make_ckpt(path, cfg_kw, cases, device, seed):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    theta = cfg_kw.pop("rope_theta")
    cfg = Qwen2Config(**cfg_kw, rope_theta=theta, use_sliding_window=False)
    try:  # transformers 5 keeps RoPE settings in rope_parameters
        rp = getattr(cfg, "rope_parameters", None)
        if isinstance(rp, dict):
            rp["rope_theta"] = theta
    except Exception:  # noqa: BLE001
        pass
    with torch.device(device):
        model = Qwen2ForCausalLM(cfg)
    model = model.to(torch.bfloat16).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn_like(p, dtype=torch.float32).mul(0.5).to(p.dtype))
            elif "norm" in name:
                p.copy_((1 + 0.2 * torch.randn_like(p, dtype=torch.float32)).to(p.dtype))
    model.save_pretrained(path)
    # The Go loader reads rope_theta at the top level (transformers 5 may
    # write only rope_parameters) and needs a mask token id.
    cp = os.path.join(path, "config.json")
    with open(cp) as f:
        c = json.load(f)
    eff = (c.get("rope_parameters") or {}).get("rope_theta", c.get("rope_theta", theta))
    c["rope_theta"] = eff
    c["mask_token_id"] = cfg_kw["vocab_size"] - 1
    c.setdefault("bos_token_id", 0)
    c.setdefault("eos_token_id", 0)
    with open(cp, "w") as f:
        json.dump(c, f, indent=1)
    log(f"{path}: saved ({sum(p.numel() for p in model.parameters())/1e6:.1f}M params, rope_theta {eff})")

    ref = Qwen2ForCausalLM.from_pretrained(path, attn_implementation="eager").to(device).float().eval()
    vocab = cfg_kw["vocab_size"]
    style = pick_style(ref, vocab, device)
    if style is None:
        log(f"{path}: no bidirectional mask style found: no reference logits written")
        return
    g = torch.Generator().manual_seed(seed + 1)
    out, toks = [], []
    with torch.no_grad():
        for n in cases:
            ids = torch.randint(3, vocab - 1, (1, n), generator=g)
            ids[0, n // 2 : n // 2 + max(1, n // 8)] = vocab - 1  # a run of mask tokens
            logits = forward(ref, ids.to(device), style).float().cpu()
            out.append(logits.reshape(-1))
            toks.append(ids[0].tolist())
    torch.cat(out).numpy().astype("<f4").tofile(os.path.join(path, "ref_logits.bin"))
    with open(os.path.join(path, "ref.json"), "w") as f:
        json.dump({"vocab": vocab, "cases": toks, "mask_style": style, "transformers": __import__("transformers").__version__}, f)
    log(f"{path}: reference logits for {len(cases)} sequences ({sum(cases)} positions)")
    del ref, model
    torch.cuda.empty_cache()


def cmd_make(root):
    _torch()
    dev = "cuda"
    os.makedirs(root, exist_ok=True)
    make_ckpt(os.path.join(root, "qwen2-tiny-hf"), dict(
        vocab_size=512, hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=1024, rms_norm_eps=1e-6, rope_theta=10000.0,
        tie_word_embeddings=False, initializer_range=0.2), [40, 100], dev, 1)
    make_ckpt(os.path.join(root, "qwen2-0.5b"), dict(
        vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
        num_key_value_heads=2, max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=1000000.0,
        tie_word_embeddings=True), [512, 512], dev, 2)


def cmd_loop(root, out):
    """The plain transformers loop the issue measured: 64 masks after 1024
    context tokens, one token unmasked per step (the most confident), each
    step a full recompute of all 1088 positions, bf16."""
    _torch()
    from transformers import Qwen2ForCausalLM

    path = os.path.join(root, "qwen2-0.5b")
    model = Qwen2ForCausalLM.from_pretrained(path, dtype=torch.bfloat16) if _has_dtype_kw() else \
        Qwen2ForCausalLM.from_pretrained(path, torch_dtype=torch.bfloat16)
    model = model.to("cuda").to(torch.bfloat16).eval()
    with open(os.path.join(path, "ref.json")) as f:
        style = json.load(f).get("mask_style", "dict")
    vocab, mask_id = model.config.vocab_size, model.config.vocab_size - 1
    ctx, canvas = 1024, 64
    g = torch.Generator().manual_seed(3)

    def infill():
        ids = torch.randint(3, vocab - 1, (1, ctx + canvas), generator=g).cuda()
        ids[0, ctx:] = mask_id
        masked = torch.ones(canvas, dtype=torch.bool, device="cuda")
        times = []
        for _ in range(canvas):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            with torch.inference_mode():
                logits = forward(model, ids, style)[ctx:].float()
                logits[:, mask_id] = -float("inf")
                p = torch.softmax(logits, -1)
                conf, tok = p.max(-1)
                conf = torch.where(masked, conf, torch.full_like(conf, -1.0))
                i = int(conf.argmax())
                ids[0, ctx + i] = tok[i]
                masked[i] = False
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        return times

    infill()  # warm-up
    runs = [infill() for _ in range(2)]
    steps = sorted(t for r in runs for t in r)
    step_ms = steps[len(steps) // 2] * 1000
    infill_s = sorted(sum(r) for r in runs)[0]
    wbytes = sum(p.numel() * p.element_size() for p in model.parameters())
    res = {"engine": "transformers", "device": torch.cuda.get_device_name(0), "step_ms": step_ms,
           "infill_ms": infill_s * 1000, "tokens_per_s": canvas / infill_s, "weight_bytes": wbytes,
           "torch": torch.__version__, "transformers": __import__("transformers").__version__}
    with open(out, "w") as f:
        json.dump(res, f)
    log(f"transformers loop: {step_ms:.2f} ms/step, {canvas/infill_s:.1f} tokens/s")


def _has_dtype_kw():
    import transformers

    return int(transformers.__version__.split(".")[0]) >= 5


def cmd_table(loop_json, diffill_json, out_txt):
    lines = []
    loop = json.load(open(loop_json)) if os.path.exists(loop_json) else None
    rows = json.load(open(diffill_json)) if os.path.exists(diffill_json) else []
    dev = loop["device"] if loop else (rows[0]["device"] if rows else "?")
    floor_ms = (loop["weight_bytes"] / 3.0e12 * 1000) if loop else None
    lines.append(f"0.5B Qwen2 shape (random bf16 weights), 64-token canvas after 1024 context tokens, on {dev}")
    lines.append(f"weight-read floor: weight bytes / 3.0 TB/s = {floor_ms:.3f} ms per step" if floor_ms else "weight-read floor: ?")
    hdr = f"{'engine':<34} {'tok/step':>8} {'ms/step':>9} {'tokens/s':>10} {'step/floor':>10} {'vs loop':>9}"
    lines.append(hdr)
    lines.append("-" * len(hdr))
    base = loop["tokens_per_s"] if loop else None
    if loop:
        lines.append(f"{'transformers loop (full recompute)':<34} {1:>8.2f} {loop['step_ms']:>9.2f} {loop['tokens_per_s']:>10.1f} "
                     f"{loop['step_ms']/floor_ms:>9.1f}x {1:>8.1f}x")
    for r in rows:
        x = r["result"]
        name = f"diffill {r['precision']} {x['Setting']}"
        ratio = f"{x['TokensPerSec']/base:>8.1f}x" if base else "       ?"
        fl = floor_ms or x["FloorMs"]
        lines.append(f"{name:<34} {x['TokensPerStep']:>8.2f} {x['StepMs']:>9.3f} {x['TokensPerSec']:>10.1f} "
                     f"{x['StepMs']/fl:>9.1f}x {ratio}")
    lines.append("diffill: dual cache (context K/V cached, canvas recomputed each step), device-side sampler stats,")
    lines.append("one CUDA graph per step shape; tokens/s counts the whole infill including its prefill.")
    lines.append("Random weights are near-uniform, so 'threshold 0.9' commits one token per step here; the")
    lines.append("k token/step rows show the speed at a given parallelism.")
    text = "\n".join(lines)
    print(text)
    with open(out_txt, "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make":
        cmd_make(sys.argv[2])
    elif cmd == "loop":
        cmd_loop(sys.argv[2], sys.argv[3])
    elif cmd == "table":
        cmd_table(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(f"unknown command {cmd}")
