#!/usr/bin/env python3
"""Writes held-out Go infill cases: model/train/testdata/heldout.jsonl.

Cases come from the held-out split of corpus.py (files the model never sees):
  line  - the cursor at the start of a line, after its indentation; the middle
          is the rest of the line;
  block - 2-4 consecutive whole lines, from after the first line's indentation
          to the end of the last.
Each case: {"prefix","suffix","middle","kind","seen","file","line"}; prefix
and suffix are cut at line boundaries to about 1500 characters each; seen is
true when the stripped middle (every stripped line, for blocks) occurs
verbatim as a line in the training files. Lines of the file's leading
comment (the license header), comment-only lines and lines without a letter
or digit ("}", ")") are not used: completing them says little.

  make_cases.py [--goroot DIR | --corpus UNPACKED_DIR] [--out FILE] [--lines 300 --blocks 100]
"""

import argparse
import json
import os
import random
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import corpus as corpus_mod  # noqa: E402

CTX_CHARS = 1500
_ALNUM = re.compile(r"[A-Za-z0-9]")


def header_end(lines):
    """Index of the first line after the file's leading comment block."""
    i = 0
    while i < len(lines) and (lines[i].strip().startswith("//") or lines[i].strip() == ""):
        i += 1
    return i


def usable(line):
    s = line.strip()
    return bool(s) and not s.startswith("//") and not s.startswith("/*") and _ALNUM.search(s) is not None and len(s) <= 160


def cut_prefix(text):
    """The last ~CTX_CHARS characters of text, starting at a line start."""
    if len(text) <= CTX_CHARS:
        return text
    i = text.find("\n", len(text) - CTX_CHARS)
    return text[i + 1 :] if i >= 0 else text[len(text) - CTX_CHARS :]


def cut_suffix(text):
    """The first ~CTX_CHARS characters of text, ending at a line end."""
    if len(text) <= CTX_CHARS:
        return text
    i = text.rfind("\n", 0, CTX_CHARS)
    return text[:i] if i > 0 else text[:CTX_CHARS]


def make_case(text, lines, i, n, seen_lines, rel):
    offs = [0]
    for l in lines:
        offs.append(offs[-1] + len(l) + 1)
    first = lines[i]
    indent = len(first) - len(first.lstrip(" \t"))
    start = offs[i] + indent
    end = offs[i + n - 1] + len(lines[i + n - 1])
    middle = text[start:end]
    stripped = [l.strip() for l in middle.split("\n")]
    return {
        "prefix": cut_prefix(text[:start]),
        "suffix": cut_suffix(text[end:]),
        "middle": middle,
        "kind": "line" if n == 1 else "block",
        "seen": all(s in seen_lines for s in stripped if s),
        "file": rel,
        "line": i + 1,
    }


def build(files, train_lines, n_lines=300, n_blocks=100, seed=0):
    """files: list of (rel, text). Returns cases, deterministic for a seed."""
    rng = random.Random(seed)
    line_pool, block_pool = [], []
    for rel, text in files:
        lines = text.split("\n")
        h = header_end(lines)
        cand = [i for i in range(h, len(lines)) if usable(lines[i])]
        rng.shuffle(cand)
        for i in cand[:4]:
            line_pool.append((rel, text, lines, i, 1))
        blocks = []
        for i in range(h, len(lines)):
            n = rng.randint(2, 4)
            if i + n <= len(lines) and all(usable(lines[j]) for j in range(i, i + n)):
                blocks.append((i, n))
        rng.shuffle(blocks)
        for i, n in blocks[:2]:
            block_pool.append((rel, text, lines, i, n))
    rng.shuffle(line_pool)
    rng.shuffle(block_pool)
    cases = []
    for rel, text, lines, i, n in line_pool[:n_lines] + block_pool[:n_blocks]:
        cases.append(make_case(text, lines, i, n, train_lines, rel))
    return cases


def train_line_set(read, rels):
    seen = set()
    for rel in rels:
        for l in read(rel).split("\n"):
            s = l.strip()
            if s:
                seen.add(s)
    return seen


def from_goroot(goroot):
    train, heldout, _ = corpus_mod.classify(goroot)

    def read(rel):
        with open(os.path.join(goroot, rel), "rb") as f:
            return f.read().decode("utf-8", errors="replace")

    return read, train, heldout


def from_corpus(d):
    manifest, read = corpus_mod.load_unpacked(d)
    return read, manifest["train"], manifest["heldout"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--goroot", default=None)
    ap.add_argument("--corpus", default=None, help="an unpacked corpus archive instead of GOROOT")
    ap.add_argument("--out", default=os.path.join(HERE, "testdata", "heldout.jsonl"))
    ap.add_argument("--lines", type=int, default=300)
    ap.add_argument("--blocks", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.corpus:
        read, train, heldout = from_corpus(args.corpus)
    else:
        read, train, heldout = from_goroot(args.goroot or corpus_mod.goroot_default())
    seen = train_line_set(read, train)
    cases = build([(r, read(r)) for r in heldout], seen, args.lines, args.blocks, args.seed)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        for c in cases:
            f.write(json.dumps(c, ensure_ascii=False) + "\n")
    kinds = {}
    for c in cases:
        k = (c["kind"], c["seen"])
        kinds[k] = kinds.get(k, 0) + 1
    print(f"wrote {len(cases)} cases to {args.out}: " + ", ".join(f"{k[0]}/{'seen' if k[1] else 'unseen'}={v}" for k, v in sorted(kinds.items())))


if __name__ == "__main__":
    main()
