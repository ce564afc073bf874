"""Training data: token streams with renamed variants, and task-shaped batches.

build_stream() reads the train split of an unpacked corpus (corpus.py pack),
makes `variants` copies of every file (copy 0 as written, the others with
local identifiers consistently renamed, see rename.py), tokenizes them in
parallel and concatenates everything, each file followed by <|endoftext|>,
into one uint16 array.

Batches (BatchMaker.batch) mix the tasks of issue 3, each a window of T
tokens with one or more masked spans:
  line   - whole lines (from after the indentation to the end of the line),
  block  - 2-4 whole lines,
  cursor - from a random pre-token boundary inside a line to its end,
  mdlm   - random masks over the whole window (plain MDLM).
Span tasks use the over-allocation length scheme of the contract: a span of
L true tokens gets k extra positions right after it whose targets are
<|pad|>, so the model learns where the middle ends. Within the span (or the
window, for mdlm) each position is masked with probability t ~ U(eps, 1) and
the loss on masked positions is weighted 1/t, normalised by the span length
(MDLM's ELBO); pad targets count PAD_WEIGHT. Labels are -100 where there is no loss.
"""

import hashlib
import multiprocessing as mp
import os
import random
import time
from collections import Counter

import numpy as np

import corpus as corpus_mod
import gotok
import rename

TASKS = ("line", "block", "cursor", "mdlm")
DEFAULT_MIX = {"line": 0.3, "block": 0.2, "cursor": 0.25, "mdlm": 0.25}
CANVAS_SIZES = (8, 16, 24, 32, 48, 64, 96, 128)
# Loss weight of a <|pad|> target relative to a middle token: the pads after
# the first are easy, and a large over-allocation would otherwise drown the
# middle's loss.
PAD_WEIGHT = 0.5

_W = {}  # per-worker state for the pool


def _init_worker(corpus_dir, tok_path, pool_counts):
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _W["manifest"], _W["read"] = corpus_mod.load_unpacked(corpus_dir)
    _W["tok"] = gotok.Tokenizer(tok_path) if tok_path else None
    _W["pool"] = rename.NamePool(pool_counts) if pool_counts else None


def _analyse(rels):
    counts = Counter()
    for rel in rels:
        _, cands = rename.analyse(_W["read"](rel))
        counts.update(cands)
    return counts


def _encode(job):
    rels, variants, seed = job
    tok, pool, read = _W["tok"], _W["pool"], _W["read"]
    texts = []
    for rel in rels:
        src = read(rel)
        texts.append(src)
        if variants > 1:
            _, cands = rename.analyse(src)
            for v in range(1, variants):
                h = int.from_bytes(hashlib.sha1(f"{seed}/{v}/{rel}".encode()).digest()[:8], "big")
                rng = random.Random(h)
                texts.append(rename.rename(src, rename.random_mapping(src, cands, pool, rng)))
    ids = tok.encode_batch(texts)
    out = []
    for seq in ids:
        a = np.empty(len(seq) + 1, dtype=np.uint16)
        a[:-1] = seq
        a[-1] = tok.eos_id
        out.append(a)
    return out


def build_stream(corpus_dir, tok_path, variants=4, workers=None, seed=0, max_files=None, cache=None, log=print):
    """Returns a uint16 array of all train files (and their renamed variants)."""
    if cache and os.path.exists(cache):
        log(f"data: loading cached stream {cache}")
        return np.load(cache)
    t0 = time.time()
    manifest, _ = corpus_mod.load_unpacked(corpus_dir)
    rels = manifest["train"]
    if max_files:
        rels = random.Random(seed).sample(rels, min(max_files, len(rels)))
        rels.sort()
    workers = workers or os.cpu_count() or 1
    chunks = [rels[i : i + 16] for i in range(0, len(rels), 16)]
    ctx = mp.get_context("fork")
    counts = Counter()
    if variants > 1:
        with ctx.Pool(workers, _init_worker, (corpus_dir, None, None)) as pool:
            for c in pool.imap_unordered(_analyse, chunks):
                counts.update(c)
        # Names seen once are mostly noise; keep a plausible pool.
        counts = Counter({k: v for k, v in counts.items() if v >= 2 and len(k) <= 20}) or counts
        log(f"data: {len(counts)} local names in the pool ({time.time() - t0:.1f}s)")
    arrays = []
    ntexts = 0
    with ctx.Pool(workers, _init_worker, (corpus_dir, tok_path, counts)) as pool:
        jobs = [(c, variants, seed) for c in chunks]
        for i, out in enumerate(pool.imap(_encode, jobs, chunksize=4)):
            arrays.extend(out)
            ntexts += len(out)
    # Shuffle documents so neighbours across <|endoftext|> are unrelated.
    order = np.random.default_rng(seed).permutation(len(arrays))
    stream = np.concatenate([arrays[i] for i in order])
    log(
        f"data: {len(rels)} files x {variants} variants = {ntexts} texts, "
        f"{len(stream) / 1e6:.1f}M tokens in {time.time() - t0:.1f}s ({workers} workers)"
    )
    if cache:
        np.save(cache, stream)
    return stream


class TokenInfo:
    """Per-vocabulary tables the samplers need."""

    def __init__(self, tok):
        n = tok.size
        self.newline = np.zeros(n, dtype=bool)
        self.word_start = np.zeros(n, dtype=bool)
        self.word_end = np.zeros(n, dtype=bool)
        for i in range(n):
            b = tok.token_bytes(i)
            if i in tok.special_ids or not b:
                continue
            self.newline[i] = b"\n" in b
            first, last = chr(b[0]), chr(b[-1])
            self.word_start[i] = first.isalnum() or first == "_" or b[0] >= 0x80
            self.word_end[i] = last.isalnum() or last == "_" or b[-1] >= 0x80
        self.eos, self.mask, self.pad = tok.eos_id, tok.mask_id, tok.pad_id


class BatchMaker:
    def __init__(self, stream, info, seq_len=512, mix=None, eps=0.05, max_line=64, seed=0):
        self.s = stream
        self.T = seq_len
        self.info = info
        self.eps = eps
        self.max_line = max_line
        mix = mix or DEFAULT_MIX
        self.tasks = [t for t in TASKS if mix.get(t, 0) > 0]
        p = np.array([mix[t] for t in self.tasks], dtype=np.float64)
        self.p = p / p.sum()
        tok = stream.astype(np.int64)
        is_break = info.newline[tok] | (tok == info.eos)
        self.breaks = np.flatnonzero(is_break)
        # Line starts: right after a break, at a token that is not itself a break.
        starts = self.breaks[:-1] + 1
        starts = starts[~is_break[starts]]
        # Keep lines that fit a span.
        ends = self.breaks[np.searchsorted(self.breaks, starts)]
        ok = (ends - starts) <= max_line
        self.line_starts = starts[ok]
        self.is_break = is_break
        self.rng = np.random.default_rng(seed)

    def reseed(self, seed):
        self.rng = np.random.default_rng(seed)

    # --- spans

    def _line_end(self, s):
        return int(self.breaks[np.searchsorted(self.breaks, s)])

    def _span(self, kind, s):
        """(start, end) of the middle for a span anchored at line start s, or None."""
        e = self._line_end(s)
        if kind == "line":
            return s, e
        if kind == "block":
            n = int(self.rng.integers(2, 5))
            bi = int(np.searchsorted(self.breaks, s))
            for j in range(n - 1):
                b = self.breaks[bi + j] if bi + j < len(self.breaks) else None
                if b is None or self.s[b] == self.info.eos:
                    break
                e = int(self.breaks[bi + j + 1]) if bi + j + 1 < len(self.breaks) else e
            if e - s > 2 * self.max_line:
                return None
            return s, e
        # cursor: a pre-token boundary strictly inside the line, or (rarely) its end
        toks = self.s[s:e].astype(np.int64)
        if len(toks) < 2 or self.rng.random() < 0.05:
            return e, e
        inside = np.arange(1, len(toks))
        ok = ~(self.info.word_end[toks[:-1]] & self.info.word_start[toks[1:]])
        inside = inside[ok]
        if len(inside) == 0:
            return None
        c = s + int(self.rng.choice(inside))
        return c, e

    def _canvas(self, L):
        """Span positions for a middle of L tokens: L plus a random over-allocation, at least 1.

        Engines over-allocate a fixed mask count (diffill's: 16 a line, 32 a
        hole, 48 a block) or one sized from the context, so both kinds are
        trained: a size from CANVAS_SIZES (one of the next four that fit), or
        L plus up to max(8, L) positions.
        """
        if self.rng.random() < 0.4 or L > CANVAS_SIZES[-1]:
            return max(1, L + int(self.rng.integers(0, max(8, L) + 1)))
        sizes = [c for c in CANVAS_SIZES if c >= max(L, 1)][:4]
        return sizes[int(self.rng.integers(0, len(sizes)))]

    def _span_sample(self, kind, x, y, w):
        T, rng, info = self.T, self.rng, self.info
        n_stream = len(self.s)
        s0 = int(self.line_starts[rng.integers(0, len(self.line_starts))])
        sp = self._span(kind, s0)
        if sp is None:
            return False
        spans = [sp]
        S0 = self._canvas(sp[1] - sp[0])
        if S0 >= T // 2:
            return False
        # Context before the first span: uniform, so spans land anywhere in the window.
        a = int(rng.integers(0, T - S0 + 1))
        a = min(a, sp[0])
        w0 = sp[0] - a
        # More spans in the same window, sometimes.
        m = 1 if rng.random() < 0.5 else int(rng.integers(2, 3 + T // 256))
        if m > 1:
            lo = np.searchsorted(self.line_starts, sp[1] + 1)
            hi = np.searchsorted(self.line_starts, w0 + T)
            if hi > lo:
                picks = np.sort(rng.choice(np.arange(lo, hi), size=min(m - 1, hi - lo), replace=False))
                last_end = sp[1]
                for pi in picks:
                    s = int(self.line_starts[pi])
                    if s <= last_end:
                        continue
                    sp2 = self._span(kind, s)
                    if sp2 is None or sp2[0] <= last_end:
                        continue
                    spans.append(sp2)
                    last_end = sp2[1]
        t = self.eps + (1 - self.eps) * rng.random()
        pw = np.ones(T, dtype=np.float64)  # per-position loss weight: PAD_WEIGHT on pad targets
        pos = 0
        cur = w0
        masked_total = 0
        span_total = 0
        span_slices = []
        for i, (ms, me) in enumerate(spans):
            L = me - ms
            S = S0 if i == 0 else self._canvas(L)
            room = T - pos - (ms - cur)
            if S > room:
                break
            n = ms - cur
            x[pos : pos + n] = self.s[cur:ms]
            pos += n
            tgt = np.full(S, info.pad, dtype=np.int64)
            tgt[:L] = self.s[ms:me]
            m_ = rng.random(S) < t
            x[pos : pos + S] = np.where(m_, info.mask, tgt)
            y[pos : pos + S] = np.where(m_, tgt, -100)
            pw[pos + L : pos + S] = PAD_WEIGHT
            span_slices.append((pos, S, m_))
            masked_total += int(m_.sum())
            span_total += L + PAD_WEIGHT * (S - L)
            pos += S
            cur = me
        if not span_slices:
            return False
        n = min(T - pos, n_stream - cur)
        x[pos : pos + n] = self.s[cur : cur + n]
        pos += n
        if pos < T:  # end of the stream: pad out (no loss there)
            x[pos:] = info.eos
        if masked_total == 0:
            p0, S, _ = span_slices[0]
            j = p0 + int(rng.integers(0, S))
            y[j] = x[j]
            x[j] = info.mask
        w[:] = np.where(y >= 0, pw / (t * span_total), 0.0)
        return True

    def _mdlm_sample(self, x, y, w):
        T, rng, info = self.T, self.rng, self.info
        w0 = int(rng.integers(0, max(1, len(self.s) - T)))
        seg = self.s[w0 : w0 + T].astype(np.int64)
        x[: len(seg)] = seg
        x[len(seg) :] = info.eos
        t = self.eps + (1 - self.eps) * rng.random()
        m_ = rng.random(T) < t
        m_[len(seg) :] = False
        if not m_.any():
            m_[int(rng.integers(0, len(seg)))] = True
        y[:] = np.where(m_, x, -100)
        x[m_] = info.mask
        w[:] = np.where(m_, 1.0 / (t * T), 0.0)

    def batch(self, B):
        """x, y (int64 [B,T]) and w (float32 [B,T]); loss = sum(w * CE) / B."""
        T = self.T
        x = np.empty((B, T), dtype=np.int64)
        y = np.full((B, T), -100, dtype=np.int64)
        w = np.zeros((B, T), dtype=np.float32)
        kinds = self.rng.choice(len(self.tasks), size=B, p=self.p)
        for b in range(B):
            kind = self.tasks[kinds[b]]
            if kind != "mdlm":
                for _ in range(8):
                    y[b] = -100
                    if self._span_sample(kind, x[b], y[b], w[b]):
                        break
                else:
                    kind = "mdlm"
            if kind == "mdlm":
                self._mdlm_sample(x[b], y[b], w[b])
        return x, y, w
