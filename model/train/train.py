#!/usr/bin/env python3
"""Trains diffill's built-in code diffusion LM, end to end, in one command.

  train.py --corpus CORPUS --out DIR [--minutes 6] [--config small] [--device cuda]

CORPUS is an archive made by `corpus.py pack` (unpacked into --work) or an
already unpacked one. The steps: tokenizer (the committed one, or trained with
tokenizer.mjs when --tokenizer names a missing file), token streams with
renamed variants (data.py), training with the MDLM loss on task-shaped
batches, export to a Hugging Face-layout directory (config.json,
model.safetensors, tokenizer.json, README.md model card, train.log,
eval.json), and a quick held-out evaluation (evaluate.py).

Training stops cleanly at --minutes (or --max-steps, or Ctrl-C), then
exports and evaluates. --resume CKPT continues from a checkpoint written by
--ckpt (model and optimizer state); --init DIR starts from exported weights.
"""

import argparse
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tarfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import data  # noqa: E402
import evaluate  # noqa: E402
import gotok  # noqa: E402
import modeling  # noqa: E402

DEFAULT_TOKENIZER = os.path.join(HERE, "tokenizer", "tokenizer.json")


class Log:
    def __init__(self, path=None):
        self.f = open(path, "a") if path else None
        self.t0 = time.time()

    def __call__(self, *a):
        s = " ".join(str(x) for x in a)
        line = f"[{time.time() - self.t0:7.1f}s] {s}"
        print(line, flush=True)
        if self.f:
            self.f.write(line + "\n")
            self.f.flush()


def unpack(archive, work, log):
    dest = os.path.join(work, "corpus")
    if os.path.exists(os.path.join(dest, "manifest.json")):
        return dest
    t0 = time.time()
    os.makedirs(work, exist_ok=True)
    try:  # xz with threads when the tool exists
        subprocess.check_call(["tar", "-C", work, "-I", "xz -T0", "-xf", archive])
    except (OSError, subprocess.CalledProcessError):
        with tarfile.open(archive) as tar:
            tar.extractall(work)
    log(f"corpus: unpacked {archive} in {time.time() - t0:.1f}s")
    return dest


def ensure_tokenizer(path, corpus_dir, log):
    if os.path.exists(path):
        return path
    # Train one with the npm `tokenizers` binding (needs node and NODE_PATH).
    import corpus as corpus_mod

    manifest, _ = corpus_mod.load_unpacked(corpus_dir)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    lists = {}
    for split in ("train", "heldout"):
        lists[split] = path + f".{split}.txt"
        with open(lists[split], "w") as f:
            for rel in manifest[split]:
                f.write(os.path.join(corpus_dir, "files", rel) + "\n")
    cmd = ["node", os.path.join(HERE, "tokenizer.mjs"), "compare", "--train", lists["train"], "--heldout", lists["heldout"], "--out", path]
    log("tokenizer: " + " ".join(cmd))
    out = subprocess.check_output(cmd, text=True)
    log("tokenizer: " + out.strip())
    for p in lists.values():
        os.remove(p)
    return path


def lr_at(step, progress, args):
    """Warmup, then constant, then linear decay over the last decay share (WSD)."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    start = 1.0 - args.decay
    if progress <= start:
        return args.lr
    f = min(1.0, (progress - start) / args.decay)
    return args.lr * (1.0 - f * (1.0 - args.final_lr_frac))


class Batches(torch.utils.data.IterableDataset):
    def __init__(self, maker, batch, seed):
        self.maker, self.batch, self.seed = maker, batch, seed

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid = info.id if info else 0
        self.maker.reseed(self.seed * 1000 + wid)
        while True:
            x, y, w = self.maker.batch(self.batch)
            yield torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(w)


def git_commit():
    if os.environ.get("GIT_COMMIT"):
        return os.environ["GIT_COMMIT"]
    try:
        return subprocess.check_output(["git", "-C", HERE, "rev-parse", "HEAD"], text=True, stderr=subprocess.DEVNULL).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def device_name(device):
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True, help="corpus.tar.xz from corpus.py pack, or its unpacked directory")
    ap.add_argument("--work", default=os.path.join(HERE, "runs", "work"), help="scratch directory")
    ap.add_argument("--out", required=True, help="export directory")
    ap.add_argument("--tokenizer", default=DEFAULT_TOKENIZER)
    ap.add_argument("--config", default="small", choices=sorted(modeling.CONFIGS))
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--final-lr-frac", type=float, default=0.05)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--decay", type=float, default=0.25, help="share of the run spent decaying the learning rate")
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--minutes", type=float, default=5.0, help="training time budget")
    ap.add_argument("--max-steps", type=int, default=0)
    ap.add_argument("--stop-at", type=float, default=0, help="unix time by which training must stop (a job's deadline)")
    ap.add_argument("--variants", type=int, default=4, help="copies of each file: 1 as written + renamed ones")
    ap.add_argument("--max-files", type=int, default=0, help="train on a sample of files (smoke tests)")
    ap.add_argument("--workers", type=int, default=0, help="data prep processes (default: all cores)")
    ap.add_argument("--loader-workers", type=int, default=None, help="batch-making processes (default: 6 on cuda, 0 on cpu)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model body (torch >= 2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", default=None, help="checkpoint from --ckpt")
    ap.add_argument("--init", default=None, help="exported model directory to start from")
    ap.add_argument("--ckpt", default=None, help="write a resumable checkpoint here at the end")
    ap.add_argument("--eval-limit", type=int, default=0, help="evaluate on this many cases per kind (0: all)")
    ap.add_argument("--eval-per-step", type=int, default=1)
    ap.add_argument("--eval-kinds", default="line,block")
    ap.add_argument("--log-every", type=float, default=5.0, help="seconds between progress lines")
    args = ap.parse_args()

    os.makedirs(args.out, exist_ok=True)
    log = Log(os.path.join(args.out, "train.log"))
    t_start = time.time()
    log("command: " + " ".join([os.path.basename(sys.executable)] + sys.argv))
    log(f"torch {torch.__version__}, device {args.device}: {device_name(args.device)}")
    torch.manual_seed(args.seed)
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    # --- data
    corpus_dir = args.corpus if os.path.isdir(args.corpus) else unpack(args.corpus, args.work, log)
    tok_path = ensure_tokenizer(args.tokenizer, corpus_dir, log)
    tok = gotok.Tokenizer(tok_path)
    log(f"tokenizer: {tok_path} ({tok.size} tokens, {'HF tokenizers' if tok.hf else 'pure-Python BPE'})")
    stream = data.build_stream(
        corpus_dir,
        tok_path,
        variants=args.variants,
        workers=args.workers or None,
        seed=args.seed,
        max_files=args.max_files or None,
        log=log,
    )
    info = data.TokenInfo(tok)
    t0 = time.time()
    maker = data.BatchMaker(stream, info, seq_len=args.seq_len, seed=args.seed)
    log(f"data: {len(maker.line_starts) / 1e6:.2f}M line starts indexed in {time.time() - t0:.1f}s")
    prep_s = time.time() - t_start

    # --- model
    if args.resume:
        try:
            ck = torch.load(args.resume, map_location="cpu", weights_only=False)
        except TypeError:  # torch without weights_only
            ck = torch.load(args.resume, map_location="cpu")
        cfg = modeling.Config(**ck["config"])
    elif args.init:
        with open(os.path.join(args.init, "config.json")) as f:
            cfg = modeling.config_from_hf(json.load(f))
    else:
        cfg = modeling.CONFIGS[args.config]
    if cfg.vocab != tok.size:
        cfg = modeling.Config(**{**modeling.config_dict(cfg), "vocab": tok.size})
    model = modeling.DiffusionLM(cfg)
    if args.init:
        model = modeling.load_hf_dir(args.init).train()
    model.to(args.device)
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (decay if p.dim() >= 2 else no_decay).append(p)
    opt_kw = {}
    if args.device.startswith("cuda") and "fused" in torch.optim.AdamW.__init__.__code__.co_varnames:
        opt_kw["fused"] = True
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.95),
        eps=1e-8,
        **opt_kw,
    )
    step, tokens_seen, prior_s = 0, 0, 0.0
    if args.resume:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, tokens_seen, prior_s = ck["step"], ck["tokens"], ck.get("train_seconds", 0.0)
        log(f"resumed {args.resume}: step {step}, {tokens_seen / 1e6:.1f}M tokens")
    log(
        f"model: {args.config} {modeling.config_dict(cfg)}: {model.non_embedding_params() / 1e6:.2f}M non-embedding, "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M total parameters"
    )
    model.rope(args.seq_len, torch.device(args.device))  # cached before any tracing
    hidden = model.hidden_states
    if args.compile and hasattr(torch, "compile"):
        hidden = torch.compile(model.hidden_states)
        log("model: torch.compile enabled (first step compiles)")
    elif args.compile:
        log(f"model: torch {torch.__version__} has no torch.compile; running eagerly")

    # --- batches
    nw = args.loader_workers if args.loader_workers is not None else (6 if args.device.startswith("cuda") else 0)
    ds = Batches(maker, args.batch, args.seed + step)
    loader_kw = {"batch_size": None, "num_workers": nw, "pin_memory": args.device.startswith("cuda")}
    if nw > 0:
        loader_kw.update(prefetch_factor=4, persistent_workers=False)
    it = iter(torch.utils.data.DataLoader(ds, **loader_kw))

    stop = {"now": False}

    def on_signal(signum, frame):
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    budget = args.minutes * 60
    if args.stop_at:
        left = args.stop_at - time.time()
        if left < budget:
            log(f"train: {left:.0f}s left before the job's deadline: training for that, not {budget:.0f}s")
            budget = max(left, 10.0)
    amp = args.device.startswith("cuda")
    model.train()
    t_train = time.time()
    last_log, win_loss, win_n, win_tok, win_t = t_train, 0.0, 0, 0, t_train
    first_step_s = None
    run_steps = 0
    while not stop["now"]:
        elapsed = time.time() - t_train
        if elapsed >= budget or (args.max_steps and run_steps >= args.max_steps):
            break
        progress = max(elapsed / budget, run_steps / args.max_steps if args.max_steps else 0.0)
        lr = lr_at(run_steps, progress, args)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y, w = next(it)
        x = x.to(args.device, non_blocking=True)
        y = y.to(args.device, non_blocking=True)
        w = w.to(args.device, non_blocking=True)

        def fwd_bwd(hidden):
            with modeling.autocast(amp):
                h = hidden(x)
                sel = y >= 0
                # Logits only where there is a loss: most positions have none.
                logits = model.lm_head(h[sel]).float()
            ce = torch.nn.functional.cross_entropy(logits, y[sel], reduction="none")
            loss = (ce * w[sel]).sum() / x.shape[0]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            return loss, ce

        if run_steps == 0 and hidden is not model.hidden_states:
            try:
                loss, ce = fwd_bwd(hidden)
            except Exception as e:  # a compiler failure must not cost the run
                log(f"model: torch.compile failed ({type(e).__name__}: {str(e)[:500]}); continuing eagerly")
                hidden = model.hidden_states
                loss, ce = fwd_bwd(hidden)
        else:
            loss, ce = fwd_bwd(hidden)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        run_steps += 1
        tokens_seen += x.numel()
        win_tok += x.numel()
        if first_step_s is None:
            first_step_s = time.time() - t_train
        now = time.time()
        if now - last_log >= args.log_every or run_steps == 1:
            win_loss += float(loss)  # syncs: only when logging
            win_n += 1
            tps = win_tok / max(now - win_t, 1e-9)
            log(
                f"step {step} loss {win_loss / win_n:.4f} masked-ce {float(ce.mean()):.3f} lr {lr:.2e} "
                f"tokens {tokens_seen / 1e6:.1f}M {tps / 1e3:.0f}k tok/s elapsed {now - t_train:.0f}s"
            )
            last_log, win_loss, win_n, win_tok, win_t = now, 0.0, 0, 0, now
    train_s = time.time() - t_train
    log(f"trained {run_steps} steps in {train_s:.0f}s ({tokens_seen / 1e6:.1f}M tokens in all); first step {first_step_s or 0:.1f}s")
    del it

    if args.ckpt:
        os.makedirs(os.path.dirname(os.path.abspath(args.ckpt)), exist_ok=True)
        torch.save(
            {
                "model": model.state_dict(),
                "opt": opt.state_dict(),
                "config": modeling.config_dict(cfg),
                "step": step,
                "tokens": tokens_seen,
                "train_seconds": prior_s + train_s,
            },
            args.ckpt,
        )
        log(f"checkpoint: {args.ckpt}")

    # --- export
    model.eval()
    modeling.save_safetensors(modeling.export_tensors(model), os.path.join(args.out, "model.safetensors"), {"format": "pt"})
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(modeling.hf_config(cfg, tok), f, indent=2)
        f.write("\n")
    shutil.copyfile(tok_path, os.path.join(args.out, "tokenizer.json"))
    log(f"export: {args.out} (model.safetensors {os.path.getsize(os.path.join(args.out, 'model.safetensors')) / 1e6:.1f} MB)")

    # --- eval: the exported bf16 weights, as the Go engine will load them
    emodel = modeling.load_hf_dir(args.out, args.device)
    results, _, _ = evaluate.run(
        args.out,
        kinds=set(args.eval_kinds.split(",")),
        limit=args.eval_limit or None,
        device=args.device,
        per_step=args.eval_per_step,
        seq_len=args.seq_len,
        model=emodel,
        tok=tok,
        log=log,
    )
    with open(os.path.join(args.out, "eval.json"), "w") as f:
        json.dump(results, f, indent=1)

    import corpus as corpus_mod

    manifest, _ = corpus_mod.load_unpacked(corpus_dir)
    card = model_card(
        args, cfg, model, tok, manifest, corpus_dir, len(stream), tokens_seen, step, prior_s + train_s, prep_s, results
    )
    with open(os.path.join(args.out, "README.md"), "w") as f:
        f.write(card)
    log(f"done in {time.time() - t_start:.0f}s")


def model_card(args, cfg, model, tok, manifest, corpus_dir, stream_tokens, tokens_seen, steps, train_s, prep_s, results):
    with open(os.path.join(corpus_dir, "LICENSE")) as f:
        go_license = f.read().strip()
    n_train = len(manifest["train"]) if not args.max_files else min(args.max_files, len(manifest["train"]))
    cmd = " ".join(["python3"] + [os.path.relpath(sys.argv[0])] + sys.argv[1:])
    return f"""# diffill built-in model

A small bidirectional code diffusion language model for Go infilling, trained
from scratch. Qwen2 layout (RMSNorm, RoPE, SwiGLU, QKV bias, grouped-query
attention, tied embeddings) without a causal mask: logits at position i
predict the token at i (`shift_logits: false`). `<|mask|>` (id {tok.mask_id}) marks
positions to fill; `<|pad|>` (id {tok.pad_id}) ends a span early: spans are
over-allocated and the positions after the true middle were trained to
`<|pad|>`; `<|endoftext|>` (id {tok.eos_id}) separates documents.

| | |
|---|---|
| parameters | {model.non_embedding_params() / 1e6:.2f}M non-embedding, {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M total (`{args.config}`: hidden {cfg.hidden}, {cfg.layers} layers, {cfg.heads} heads x {cfg.head_dim}, {cfg.kv_heads} KV heads, MLP {cfg.intermediate}, vocab {cfg.vocab}) |
| weights | bf16 safetensors |
| tokenizer | byte-level BPE, {tok.size} tokens, diffill's Go-aware split (newline runs plus indentation are one pre-token), trained on the train split with tokenizer.mjs |
| training length | sequences of {args.seq_len} tokens |

## Training data

The Go distribution's own source ({manifest.get('goroot_version', '?')}: `src`, `test`, `misc`), split by file
(model/train/corpus.py): {n_train} training files, {len(manifest['heldout'])} held out. Held-out files exclude
per-platform variants, generated and build-constrained files, testdata and vendor trees and near-duplicates.
Each training file appears {args.variants} times: once as written and in {args.variants - 1} copies with its local
identifiers consistently renamed to other names of the corpus (model/train/rename.py), so that names must be read from context.
{stream_tokens / 1e6:.1f}M tokens in all.

Objective: MDLM masked diffusion (mask ratio t ~ U(0.05, 1), loss on masked positions weighted 1/t) on a mix of
task-shaped spans (whole lines, 2-4 line blocks, cursor to end of line, several spans a window) and random masks.

## Training compute

- device: {device_name(args.device)}
- training time: {train_s / 60:.1f} minutes ({steps} steps of {args.batch} x {args.seq_len} tokens, {tokens_seen / 1e6:.0f}M tokens), data preparation {prep_s:.0f}s
- command: `{cmd}`
- git commit of the training code: {git_commit()}
- torch {torch.__version__}

## Evaluation

Held-out cases (model/train/testdata/heldout.jsonl, from files not trained on), no oracle length: the span is
over-allocated (32 positions for a line, 96 for a block), greedy low-confidence decoding one token a step
(evaluate.py). EM = exact match, ES = edit similarity; "unseen" = the line does not occur verbatim in the
training files.

{evaluate.table(results)}

## License

The model was trained on the Go distribution's source, which carries this license:

```
{go_license}
```
"""


if __name__ == "__main__":
    main()
