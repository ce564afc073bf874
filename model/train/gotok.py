"""diffill's tokenizer in Python: Hugging Face `tokenizers` when installed
(the GPU machine), else a pure-Python byte-level BPE that reads the same
tokenizer.json (this machine's Debian python), with the pre-tokenizer written
out by hand from the pattern in the file.

Both give the same ids for the Go-aware pattern on ASCII text; on other text
the pure-Python fallback needs the `regex` module for exact \\p{L}/\\p{N}
classes (Debian: python3-regex) and approximates them with `re` otherwise.
"""

import json
import os

try:  # the GPU machine
    import tokenizers as _hf
except ImportError:  # pragma: no cover - depends on the machine
    _hf = None

try:
    import regex as _regex
except ImportError:  # pragma: no cover
    _regex = None
import re as _re

EOS, MASK, PAD = "<|endoftext|>", "<|mask|>", "<|pad|>"

# The contract's Go-aware split pattern P (also in tokenizer.mjs).
GO_PATTERN = (
    r"(?:\r?\n)+[\t ]*| ?[\p{L}_][\p{L}\p{N}_]*| ?\p{N}{1,3}| ?[^\t\n\r \p{L}\p{N}_]+|[\t ]+|\r"
)


def bytes_to_unicode():
    """GPT-2's byte-to-unicode table, as ByteLevel uses it."""
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def _compile(pattern):
    if _regex is not None:
        return _regex.compile(pattern)
    # Approximation of the Unicode classes with Python's re.
    p = pattern.replace(r"[\p{L}_]", r"[^\W\d]").replace(r"[\p{L}\p{N}_]", r"\w")
    p = p.replace(r"[^\t\n\r \p{L}\p{N}_]", r"[^\t\n\r \w]").replace(r"\p{N}", r"\d")
    if r"\p{" in p:
        raise ValueError(f"pattern {pattern!r} needs the regex module (Debian: python3-regex)")
    return _re.compile(p)


class Tokenizer:
    def __init__(self, path, force_python=False):
        self.path = path
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
        model = spec["model"]
        self.vocab = dict(model["vocab"])
        for t in spec.get("added_tokens", []):
            self.vocab[t["content"]] = t["id"]
        self.size = max(self.vocab.values()) + 1
        self.id_to_token = [""] * self.size
        for tok, i in self.vocab.items():
            self.id_to_token[i] = tok
        self.eos_id = self.vocab[EOS]
        self.mask_id = self.vocab[MASK]
        self.pad_id = self.vocab[PAD]
        self.special_ids = {t["id"] for t in spec.get("added_tokens", [])}
        b2u = bytes_to_unicode()
        self.u2b = {u: b for b, u in b2u.items()}
        self.b2u = b2u
        self._token_bytes = []
        for i, tok in enumerate(self.id_to_token):
            if i in self.special_ids:
                self._token_bytes.append(tok.encode())
            else:
                self._token_bytes.append(bytes(self.u2b[c] for c in tok))
        pattern = None
        for pt in spec["pre_tokenizer"].get("pretokenizers", []):
            if pt["type"] == "Split":
                pattern = pt["pattern"]["Regex"]
        if pattern is None:
            raise ValueError(f"{path}: no Split pre-tokenizer")
        self.pattern = pattern
        self.hf = None
        if _hf is not None and not force_python:
            self.hf = _hf.Tokenizer.from_file(path)
        else:
            self._split = _compile(pattern)
            merges = model["merges"]
            self.ranks = {}
            for r, m in enumerate(merges):
                a, b = m.split(" ") if isinstance(m, str) else m
                self.ranks[(a, b)] = r
            self._cache = {}

    # --- encoding

    def _bpe(self, word):
        ids = self._cache.get(word)
        if ids is not None:
            return ids
        parts = list(word)
        ranks = self.ranks
        while len(parts) > 1:
            best, bi = None, -1
            for i in range(len(parts) - 1):
                r = ranks.get((parts[i], parts[i + 1]))
                if r is not None and (best is None or r < best):
                    best, bi = r, i
            if best is None:
                break
            a, b = parts[bi], parts[bi + 1]
            merged, i = [], 0
            while i < len(parts):
                if i < len(parts) - 1 and parts[i] == a and parts[i + 1] == b:
                    merged.append(a + b)
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        ids = [self.vocab[p] for p in parts]
        if len(self._cache) < 1_000_000:
            self._cache[word] = ids
        return ids

    def encode(self, text):
        """Ids of text, no special-token matching (source code is ordinary text)."""
        if self.hf is not None:
            return self.hf.encode(text, add_special_tokens=False).ids
        out = []
        b2u = self.b2u
        n = 0
        for piece in self._split.findall(text):
            n += len(piece)
            word = "".join(b2u[b] for b in piece.encode("utf-8"))
            out.extend(self._bpe(word))
        if n != len(text):  # the split pattern must cover every character
            raise ValueError(f"pre-tokenizer dropped {len(text) - n} characters")
        return out

    def encode_batch(self, texts):
        if self.hf is not None:
            return [e.ids for e in self.hf.encode_batch(texts, add_special_tokens=False)]
        return [self.encode(t) for t in texts]

    def token_bytes(self, i):
        return self._token_bytes[i]

    def decode(self, ids):
        return b"".join(self._token_bytes[i] for i in ids).decode("utf-8", errors="replace")


def default_path():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(here, "tokenizer", "tokenizer.json")
