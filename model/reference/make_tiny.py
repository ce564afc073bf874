"""Generates diffill's tiny test checkpoints and their golden logits.

    /usr/bin/python3 model/reference/make_tiny.py model/testdata

writes, for each of qwen2-tiny, qwen2-tiny-bf16, llada-tiny and llada-tiny-bf16:
config.json (the published keys of each family), model.safetensors (random
weights in the published tensor names, F32 or BF16), tokenizer.json (a tiny
byte-level BPE with diffill's special tokens <|endoftext|>, <|mask|>, <|pad|>
as ids 0..2) and golden.json + golden.bin: logits of reference.py for a few
sequences containing mask tokens, and for a cached (partial) forward.

Deterministic: the same seed gives the same files.
"""

import collections
import json
import os
import re
import sys

# One BLAS thread: results then do not depend on the machine's core count or
# load, and the files are reproducible bit for bit. Set before numpy/torch load.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference  # noqa: E402
import st  # noqa: E402

SPECIALS = ["<|endoftext|>", "<|mask|>", "<|pad|>"]
VOCAB = 320
# diffill's Go-aware pre-tokenizer split (contracts: built-in model facts).
SPLIT = r"(?:\r?\n)+[\t ]*| ?[\p{L}_][\p{L}\p{N}_]*| ?\p{N}{1,3}| ?[^\t\n\r \p{L}\p{N}_]+|[\t ]+|\r"

CORPUS = '''package main

import (
	"fmt"
	"strings"
)

func main() {
	for i := 0; i < 10; i++ {
		fmt.Println(strings.Repeat("x", i))
	}
}

// Sum returns the sum of xs.
func Sum(xs []int) int {
	total := 0
	for _, x := range xs {
		total += x
	}
	return total
}

type Server struct {
	name string
	port int
}

func (s *Server) String() string {
	return fmt.Sprintf("%s:%d", s.name, s.port)
}

func readFile(path string) ([]byte, error) {
	if path == "" {
		return nil, fmt.Errorf("empty path")
	}
	return nil, nil
}
'''


def byte_alphabet():
    """GPT-2's reversible byte -> printable character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def tokenizer_json():
    """A byte-level BPE: 256 byte tokens (ids 3..258) and merges learned on a
    little Go code up to VOCAB ids, in Hugging Face's tokenizer.json format."""
    alpha = byte_alphabet()
    # The special tokens are in the model's vocab too, as Hugging Face's BPE
    # trainer puts them: an added token missing from the vocab would be given
    # a new id past the vocab on loading, not the id written in added_tokens.
    vocab = {s: i for i, s in enumerate(SPECIALS)}
    for b in range(256):
        vocab[alpha[b]] = len(SPECIALS) + b
    # Pre-tokens for learning merges: an ASCII approximation of SPLIT (Python's
    # re has no \p{L}); any merge list is a valid BPE, the split only steers
    # which merges are learned.
    pieces = re.findall(r"(?:\r?\n)+[\t ]*| ?[A-Za-z_][A-Za-z0-9_]*| ?[0-9]{1,3}| ?[^\t\n\r A-Za-z0-9_]+|[\t ]+|\r", CORPUS)
    words = collections.Counter(tuple(alpha[b] for b in p.encode()) for p in pieces)
    merges = []
    while len(vocab) < VOCAB:
        pairs = collections.Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        (a, b), _ = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        merges.append(f"{a} {b}")
        vocab.setdefault(a + b, len(vocab))
        new = collections.Counter()
        for w, c in words.items():
            out = []
            i = 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] += c
        words = new
    added = [
        {"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
        for i, s in enumerate(SPECIALS)
    ]
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": SPLIT}, "behavior": "Isolated", "invert": False},
                byte_level,
            ],
        },
        "post_processor": None,
        "decoder": byte_level,
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": merges,
        },
    }


HIDDEN, LAYERS, HEADS, KV_HEADS, INTER = 64, 2, 4, 2, 128
HEAD_DIM = HIDDEN // HEADS


def qwen2_config(dtype):
    return {
        "architectures": ["Qwen2ForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "eos_token_id": 0,
        "hidden_act": "silu",
        "hidden_size": HIDDEN,
        "initializer_range": 0.02,
        "intermediate_size": INTER,
        "mask_token_id": 1,
        "max_position_embeddings": 512,
        "max_window_layers": LAYERS,
        "model_type": "qwen2",
        "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "num_key_value_heads": KV_HEADS,
        "pad_token_id": 2,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 10000.0,
        "shift_logits": False,
        "sliding_window": None,
        "tie_word_embeddings": True,
        "torch_dtype": dtype,
        "transformers_version": "4.46.2",
        "use_cache": False,
        "use_sliding_window": False,
        "vocab_size": VOCAB,
    }


def llada_config(dtype):
    # The keys of GSAI-ML/LLaDA-8B-Instruct's config.json, scaled down.
    return {
        "activation_type": "silu",
        "alibi": False,
        "alibi_bias_max": 8.0,
        "architectures": ["LLaDAModelLM"],
        "attention_dropout": 0.0,
        "attention_layer_norm": False,
        "attention_layer_norm_with_affine": True,
        "auto_map": {
            "AutoConfig": "configuration_llada.LLaDAConfig",
            "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM",
            "AutoModel": "modeling_llada.LLaDAModelLM",
        },
        "bias_for_layer_norm": False,
        "block_group_size": 1,
        "block_type": "llama",
        "d_model": HIDDEN,
        "embedding_dropout": 0.0,
        "embedding_size": VOCAB,
        "eos_token_id": 0,
        "flash_attention": False,
        "include_bias": False,
        "include_qkv_bias": False,
        "init_cutoff_factor": None,
        "init_device": "meta",
        "init_fn": "mitchell",
        "init_std": 0.02,
        "input_emb_norm": False,
        "layer_norm_type": "rms",
        "layer_norm_with_affine": True,
        "mask_token_id": 1,
        "max_sequence_length": 512,
        "mlp_hidden_size": INTER,
        "mlp_ratio": 2,
        "model_type": "llada",
        "multi_query_attention": None,
        "n_heads": HEADS,
        "n_kv_heads": KV_HEADS,
        "n_layers": LAYERS,
        "pad_token_id": 2,
        "precision": "amp_bf16" if dtype == "bfloat16" else "fp32",
        "residual_dropout": 0.0,
        "rms_norm_eps": 1e-05,
        "rope": True,
        "rope_full_precision": True,
        "rope_theta": 500000.0,
        "scale_logits": False,
        "transformers_version": "4.46.3",
        "use_cache": False,
        "vocab_size": VOCAB,
        "weight_tying": False,
    }


def random_weights(family, rng):
    """Weights scaled so that activations and logits are O(1)..O(10): clear
    argmax margins, non-trivial attention."""

    def lin(n, k):
        return rng.standard_normal((n, k)).astype(np.float32) / np.sqrt(k)

    def norm(n):
        return (1 + 0.2 * rng.standard_normal(n)).astype(np.float32)

    def bias(n):
        return (0.3 * rng.standard_normal(n)).astype(np.float32)

    w = {}
    q, kv = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
    cfg = reference.Config(qwen2_config("float32") if family == "qwen2" else llada_config("float32"))
    embed, final, head = reference.top_names(cfg)
    w[embed] = rng.standard_normal((VOCAB, HIDDEN)).astype(np.float32)
    for i in range(LAYERS):
        n = reference.names(cfg, i)
        w[n["attn_norm"]] = norm(HIDDEN)
        w[n["q"]] = 2 * lin(q, HIDDEN)
        w[n["k"]] = 2 * lin(kv, HIDDEN)
        w[n["v"]] = lin(kv, HIDDEN)
        w[n["o"]] = lin(HIDDEN, q)
        if cfg.qkv_bias:
            w[n["qb"]], w[n["kb"]], w[n["vb"]] = bias(q), bias(kv), bias(kv)
        w[n["mlp_norm"]] = norm(HIDDEN)
        w[n["gate"]] = lin(INTER, HIDDEN)
        w[n["up"]] = lin(INTER, HIDDEN)
        w[n["down"]] = lin(HIDDEN, INTER)
    w[final] = norm(HIDDEN)
    if head is not None:
        w[head] = 3 * lin(VOCAB, HIDDEN)
    return w


def cases(rng):
    """Token sequences with mask tokens (id 1), pads (2) and ordinary tokens."""
    out = []
    for name, n, masks in [("short", 7, [2, 3]), ("mid", 16, [4, 5, 6, 7, 12]), ("long", 40, list(range(10, 30)))]:
        t = rng.integers(3, VOCAB, size=n).tolist()
        for p in masks:
            t[p] = 1
        out.append((name, t))
    return out


def write_goldens(directory, ref, rng):
    """golden.bin holds float32 little-endian logits, case after case;
    golden.json says where each case's rows are and which positions they are."""
    blobs = []
    meta = {"vocab": ref.cfg.vocab, "cases": []}
    offset = 0

    def add(entry, logits):
        nonlocal offset
        a = logits.numpy().astype("<f4")
        top2 = np.sort(a, axis=-1)[:, -2:]
        margin = float((top2[:, 1] - top2[:, 0]).min())
        assert margin > 1e-3, f"{directory} {entry['name']}: argmax margin {margin} too small for a stable test"
        entry.update(offset=offset, rows=a.shape[0], min_argmax_margin=margin)
        meta["cases"].append(entry)
        blobs.append(a.tobytes())
        offset += a.size

    for name, toks in cases(rng):
        logits, _ = ref.forward(toks)
        add({"name": name, "tokens": toks, "compute": None, "logits": None}, logits)

    # Cached step (dual cache): fill the cache from a full forward of `before`,
    # then unmask some positions and recompute only a block of them.
    before = rng.integers(3, VOCAB, size=24).tolist()
    for p in range(8, 16):
        before[p] = 1
    _, cache = ref.forward(before)
    after = list(before)
    compute = [8, 9, 10, 11, 12, 13, 14, 15]
    for p in [9, 12, 13]:
        after[p] = int(rng.integers(3, VOCAB))
    want = [8, 10, 11, 14, 15]
    logits, _ = ref.forward(after, compute=compute, cache=cache)
    rows = [compute.index(p) for p in want]
    add({"name": "cached", "cache_tokens": before, "tokens": after, "compute": compute, "logits": want}, logits[rows])

    with open(os.path.join(directory, "golden.bin"), "wb") as f:
        for b in blobs:
            f.write(b)
    with open(os.path.join(directory, "golden.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")


def main():
    torch.set_num_threads(1)
    out = sys.argv[1] if len(sys.argv) > 1 else "model/testdata"
    tok = tokenizer_json()
    for family, seed in [("qwen2", 1), ("llada", 2)]:
        rng = np.random.default_rng(seed)
        w = random_weights(family, rng)
        for dtype, torch_dtype, suffix in [("F32", "float32", ""), ("BF16", "bfloat16", "-bf16")]:
            d = os.path.join(out, f"{family}-tiny{suffix}")
            os.makedirs(d, exist_ok=True)
            cfg = qwen2_config(torch_dtype) if family == "qwen2" else llada_config(torch_dtype)
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump(cfg, f, indent=2, sort_keys=True)
                f.write("\n")
            with open(os.path.join(d, "tokenizer.json"), "w") as f:
                json.dump(tok, f, ensure_ascii=False, indent=1)
                f.write("\n")
            st.write(os.path.join(d, "model.safetensors"), w, dtype=dtype, metadata={"format": "pt"})
            ref = reference.Reference(d)
            write_goldens(d, ref, np.random.default_rng(100 + seed))
            print(d, os.path.getsize(os.path.join(d, "model.safetensors")), "bytes")


if __name__ == "__main__":
    main()
