#!/usr/bin/env python3
"""Quick evaluation of a diffusion LM on held-out infill cases (testdata/heldout.jsonl).

Decoding is the plain reference the Go engine is measured against: the span
is over-allocated with `canvas` masks between the prefix and suffix tokens,
and each step unmasks the `per_step` masked positions whose top-1 probability
is highest, greedily (low-confidence remasking, no temperature). The answer
is the span's text up to the first <|pad|> or <|endoftext|>; for single
lines it also stops at the first newline. Reports exact match and edit
similarity, for lines seen / not seen in the training files, next to the
trivial baselines (empty answer, copy of the previous line).

  evaluate.py --model DIR [--cases FILE] [--kinds line,block] [--limit N] [--device cuda]
"""

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402

import gotok  # noqa: E402
import modeling  # noqa: E402

DEFAULT_CASES = os.path.join(HERE, "testdata", "heldout.jsonl")


def load_cases(path, kinds=None, limit=None):
    cases = []
    with open(path) as f:
        for line in f:
            c = json.loads(line)
            if kinds and c["kind"] not in kinds:
                continue
            cases.append(c)
    if limit:
        # Spread over the file rather than the first N.
        step = max(1, len(cases) // limit)
        cases = cases[::step][:limit]
    return cases


def levenshtein(a, b):
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def edit_similarity(a, b):
    if not a and not b:
        return 1.0
    return 1.0 - levenshtein(a, b) / max(len(a), len(b))


def prev_line(prefix):
    """The copy-previous-line baseline: the last complete line of the prefix, stripped."""
    lines = prefix.split("\n")
    for l in reversed(lines[:-1]):
        if l.strip():
            return l.strip()
    return ""


def canvas_size(case):
    return 32 if case["kind"] == "line" else 96


@torch.no_grad()
def decode(model, tok, cases, seq_len=512, per_step=1, device="cpu", batch=64, amp=False):
    """Greedy low-confidence decoding of every case; returns the answers."""
    answers = []
    for i in range(0, len(cases), batch):
        chunk = cases[i : i + batch]
        rows, spans = [], []
        for c in chunk:
            N = canvas_size(c)
            pre = tok.encode(c["prefix"])
            suf = tok.encode(c["suffix"])
            room = seq_len - N
            ns = min(len(suf), room // 3)
            np_ = min(len(pre), room - ns)
            ns = min(len(suf), room - np_)
            ids = pre[len(pre) - np_ :] + [tok.mask_id] * N + suf[:ns]
            rows.append(ids)
            spans.append((np_, N))
        T = max(len(r) for r in rows)
        x = torch.full((len(rows), T), tok.eos_id, dtype=torch.long)
        for j, r in enumerate(rows):
            x[j, : len(r)] = torch.tensor(r)
        x = x.to(device)
        smask = torch.zeros_like(x, dtype=torch.bool)
        for j, (s, N) in enumerate(spans):
            smask[j, s : s + N] = True
        while True:
            masked = (x == tok.mask_id) & smask
            if not masked.any():
                break
            with modeling.autocast(amp):
                h = model.hidden_states(x)
                # Logits only where something is still masked: the span is a
                # small part of the window.
                logits = model.lm_head(h[masked]).float()
            logits[:, tok.mask_id] = float("-inf")
            c, p = logits.softmax(-1).max(-1)
            conf = torch.full(x.shape, -1.0, device=x.device)
            pred = torch.zeros_like(x)
            conf[masked] = c
            pred[masked] = p
            for j in range(x.shape[0]):
                n = int(masked[j].sum())
                if n == 0:
                    continue
                k = min(per_step, n)
                top = conf[j].topk(k).indices
                x[j, top] = pred[j, top]
        for j, (s, N) in enumerate(spans):
            out = []
            for t in x[j, s : s + N].tolist():
                if t in (tok.pad_id, tok.eos_id):
                    break
                out.append(t)
            text = tok.decode(out)
            if chunk[j]["kind"] == "line":
                text = text.split("\n")[0]
            answers.append(text)
    return answers


def score(cases, answers):
    """{group: {n, em, es}} for groups all, line, block, line/seen, line/unseen, ..."""
    groups = {}
    for c, a in zip(cases, answers):
        em = float(a == c["middle"])
        es = edit_similarity(a, c["middle"])
        for g in ("all", c["kind"], f"{c['kind']}/{'seen' if c['seen'] else 'unseen'}"):
            d = groups.setdefault(g, {"n": 0, "em": 0.0, "es": 0.0})
            d["n"] += 1
            d["em"] += em
            d["es"] += es
    for d in groups.values():
        d["em"] /= d["n"]
        d["es"] /= d["n"]
    return groups


def baselines(cases):
    return {
        "empty": score(cases, ["" for _ in cases]),
        "copy previous line": score(cases, [prev_line(c["prefix"]) for c in cases]),
    }


def table(results):
    """Markdown table: one row per method, EM/ES per group."""
    groups = ["line", "line/unseen", "line/seen", "block", "block/unseen"]
    head = "| method | " + " | ".join(f"{g} EM / ES (n)" for g in groups) + " |"
    lines = [head, "|" + "---|" * (len(groups) + 1)]
    for name, sc in results.items():
        cells = []
        for g in groups:
            d = sc.get(g)
            cells.append(f"{100 * d['em']:.1f}% / {d['es']:.3f} ({d['n']})" if d else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(model_dir, cases_path=DEFAULT_CASES, kinds=None, limit=None, device="cpu", per_step=1, seq_len=512, model=None, tok=None, log=print):
    cases = load_cases(cases_path, kinds, limit)
    if tok is None:
        tok = gotok.Tokenizer(os.path.join(model_dir, "tokenizer.json"))
    if model is None:
        model = modeling.load_hf_dir(model_dir, device)
    t0 = time.time()
    model.eval()
    answers = decode(model, tok, cases, seq_len=seq_len, per_step=per_step, device=device, amp=(device == "cuda"))
    dt = time.time() - t0
    results = {"model": score(cases, answers)}
    results.update(baselines(cases))
    log(f"eval: {len(cases)} cases in {dt:.1f}s on {device} (per_step={per_step}, seq_len={seq_len})")
    log(table(results))
    return results, cases, answers


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--cases", default=DEFAULT_CASES)
    ap.add_argument("--kinds", default="line,block")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--per-step", type=int, default=1)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--show", type=int, default=0, help="print this many answers")
    ap.add_argument("--json", default=None, help="write the scores here")
    args = ap.parse_args()
    results, cases, answers = run(
        args.model, args.cases, set(args.kinds.split(",")), args.limit, args.device, args.per_step, args.seq_len
    )
    for c, a in list(zip(cases, answers))[: args.show]:
        print(f"--- {c['kind']} seen={c['seen']}\nwant {c['middle']!r}\ngot  {a!r}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
