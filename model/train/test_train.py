"""Tests of the training pipeline: /usr/bin/python3 -m unittest discover -s model/train

Needs torch and numpy (Debian: python3-torch); the Go corpus comes from GOROOT.
"""

import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import corpus  # noqa: E402
import data  # noqa: E402
import evaluate  # noqa: E402
import gotok  # noqa: E402
import make_cases  # noqa: E402
import modeling  # noqa: E402
import rename  # noqa: E402

TOK = os.path.join(HERE, "tokenizer", "tokenizer.json")
GOROOT = corpus.goroot_default()
SAMPLES = ["src/bytes/buffer.go", "src/strings/builder.go", "src/sort/sort.go", "src/errors/wrap.go"]


def read(rel):
    with open(os.path.join(GOROOT, rel), encoding="utf-8") as f:
        return f.read()


class TokenizerTest(unittest.TestCase):
    def setUp(self):
        self.tok = gotok.Tokenizer(TOK, force_python=True)

    def test_specials(self):
        self.assertEqual([self.tok.eos_id, self.tok.mask_id, self.tok.pad_id], [0, 1, 2])
        self.assertEqual(self.tok.size, 8192)

    def test_round_trip(self):
        for rel in SAMPLES:
            src = read(rel)
            self.assertEqual(self.tok.decode(self.tok.encode(src)), src, rel)

    def test_newline_and_indent_is_one_token(self):
        ids = self.tok.encode("if x {\n\t\treturn\n\t}\n")
        pieces = [self.tok.token_bytes(i) for i in ids]
        self.assertIn(b"\n\t\t", pieces)
        self.assertIn(b"\n\t", pieces)

    def test_prefix_middle_suffix_tokenize_apart(self):
        # A line cut after its indentation tokenizes as the parts do: what the
        # infill engine sees equals what training saw.
        src = read("src/bytes/buffer.go")
        lines = src.split("\n")
        off = 0
        for i, l in enumerate(lines[:200]):
            ind = len(l) - len(l.lstrip("\t "))
            if l.strip():
                s, e = off + ind, off + len(l)
                whole = self.tok.encode(src)
                parts = self.tok.encode(src[:s]) + self.tok.encode(src[s:e]) + self.tok.encode(src[e:])
                self.assertEqual(whole, parts, f"line {i + 1}")
                break
            off += len(l) + 1


class RenameTest(unittest.TestCase):
    def test_candidates(self):
        _, c = rename.analyse(read("src/bytes/buffer.go"))
        for name in ("n", "err", "m", "i"):
            self.assertIn(name, c)
        for name in ("buf", "off", "Buffer", "io", "len", "bytes", "nil"):
            self.assertNotIn(name, c)  # fields (after '.'), exported, imports, builtins

    def test_rename_is_consistent(self):
        pool = rename.NamePool(Counter({"alpha": 5, "beta": 3, "gamma": 2, "delta": 1, "q": 4}))
        for rel in SAMPLES:
            src = read(rel)
            _, cands = rename.analyse(src)
            mapping = rename.random_mapping(src, cands, pool, random.Random(1), keep=0.0)
            out = rename.rename(src, mapping)
            a = [(k, t) for k, t, _ in rename.lex(src) if k not in ("com", "str")]
            b = [(k, t) for k, t, _ in rename.lex(out) if k not in ("com", "str")]
            self.assertEqual(len(a), len(b), rel)
            inv = {}
            for (ka, ta), (kb, tb) in zip(a, b):
                self.assertEqual(ka, kb)
                if ta != tb:
                    self.assertEqual(mapping.get(ta), tb, rel)
                inv.setdefault(tb, set()).add(ta)
            for new in mapping.values():
                self.assertEqual(len(inv.get(new, ())), 1, f"{rel}: {new} names two things")


class DataTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tok = gotok.Tokenizer(TOK, force_python=True)
        arrs = []
        for rel in SAMPLES:
            arrs.append(np.array(cls.tok.encode(read(rel)) + [cls.tok.eos_id], dtype=np.uint16))
        cls.stream = np.concatenate(arrs)
        cls.info = data.TokenInfo(cls.tok)

    def test_batches(self):
        for kind in data.TASKS:
            mix = {k: float(k == kind) for k in data.TASKS}
            bm = data.BatchMaker(self.stream, self.info, seq_len=256, mix=mix, seed=3)
            for _ in range(20):
                x, y, w = bm.batch(16)
                self.assertEqual(x.shape, (16, 256))
                sel = y >= 0
                self.assertTrue(sel.any(axis=1).all(), kind)
                self.assertTrue((x[sel] == self.tok.mask_id).all(), kind)
                self.assertTrue(((w > 0) == sel).all(), kind)
                self.assertTrue((y[sel] < self.tok.size).all())
                self.assertFalse((x == self.tok.pad_id).any() and kind == "mdlm")

    def test_span_targets_are_middle_then_pad(self):
        bm = data.BatchMaker(self.stream, self.info, seq_len=256, mix={"line": 1.0}, seed=5, eps=0.999)
        text = self.tok.decode(self.stream.tolist())
        lines = {l.strip() for l in text.split("\n")}
        x, y, w = bm.batch(32)
        for b in range(32):
            sel = np.flatnonzero(y[b] >= 0)
            # first span: contiguous run of masked positions
            run = [sel[0]]
            for p in sel[1:]:
                if p != run[-1] + 1:
                    break
                run.append(p)
            tgt = y[b, run].tolist()
            if self.tok.pad_id in tgt:
                k = tgt.index(self.tok.pad_id)
                self.assertTrue(all(t == self.tok.pad_id for t in tgt[k:]))
                tgt = tgt[:k]
            self.assertIn(self.tok.decode(tgt).strip(), lines)


class ModelTest(unittest.TestCase):
    def test_export_round_trip_and_decode(self):
        tok = gotok.Tokenizer(TOK, force_python=True)
        torch.manual_seed(0)
        m = modeling.DiffusionLM(modeling.CONFIGS["tiny"]).eval()
        d = tempfile.mkdtemp()
        try:
            modeling.save_safetensors(modeling.export_tensors(m, torch.float32), os.path.join(d, "model.safetensors"))
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump(modeling.hf_config(m.cfg, tok, "float32"), f)
            shutil.copy(TOK, os.path.join(d, "tokenizer.json"))
            m2 = modeling.load_hf_dir(d)
            ids = torch.randint(3, 8192, (2, 40))
            with torch.no_grad():
                self.assertTrue(torch.allclose(m(ids), m2(ids), atol=1e-5))
                # bidirectional: a later token changes an earlier position's logits
                ids2 = ids.clone()
                ids2[:, -1] = (ids2[:, -1] + 1) % 8192
                self.assertFalse(torch.allclose(m(ids)[:, 0], m(ids2)[:, 0]))
                self.assertTrue(torch.allclose(m(ids, causal=True)[:, 0], m(ids2, causal=True)[:, 0], atol=1e-6))
            cases = evaluate.load_cases(evaluate.DEFAULT_CASES, {"line"}, 2)
            answers = evaluate.decode(m2, tok, cases, seq_len=128, per_step=8)
            self.assertEqual(len(answers), 2)
            self.assertTrue(all("\n" not in a for a in answers))
        finally:
            shutil.rmtree(d)


class CasesTest(unittest.TestCase):
    def test_committed_cases(self):
        cases = evaluate.load_cases(evaluate.DEFAULT_CASES)
        self.assertGreaterEqual(len(cases), 300)
        kinds = Counter(c["kind"] for c in cases)
        self.assertGreater(kinds["line"], 0)
        self.assertGreater(kinds["block"], 0)
        for c in cases:
            self.assertTrue(c["middle"].strip())
            self.assertEqual(c["middle"], c["middle"].lstrip(" \t"))
            if c["kind"] == "line":
                self.assertNotIn("\n", c["middle"])
                self.assertTrue(c["suffix"] == "" or c["suffix"].startswith("\n"))
            self.assertTrue(c["prefix"] == "" or re.search(r"(^|\n)[\t ]*$", c["prefix"]))
        _, heldout, _ = corpus.classify(GOROOT)
        self.assertTrue({c["file"] for c in cases} <= set(heldout))


if __name__ == "__main__":
    unittest.main()
