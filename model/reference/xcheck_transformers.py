"""Cross-checks a tiny Qwen2-layout checkpoint against Hugging Face
transformers' own Qwen2ForCausalLM, run with a full (non-causal) attention
mask, the strongest independent reference for diffill's Qwen2 family.

    python3 model/reference/xcheck_transformers.py model/testdata/qwen2-tiny

For every full-sequence case of DIR/golden.json it runs transformers and
prints the max relative error (max|a-b| / max|b|) and the argmax agreement
against the goldens (made by reference.py, which the Go engine is tested
against) and against reference.py itself. Exits 1 when an error exceeds 1e-4
or an argmax differs, 2 when transformers is not installed. LLaDA has no
transformers class (its modeling code ships with the checkpoint), so LLaDA
directories are reported and skipped. Needs only torch, numpy and
transformers; no network.
"""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    directory = sys.argv[1]
    try:
        import torch
        import transformers
        from transformers import Qwen2ForCausalLM
    except ImportError as e:
        print(f"xcheck: transformers is not installed ({e}); nothing checked")
        return 2
    import reference

    with open(os.path.join(directory, "config.json")) as f:
        raw = json.load(f)
    if reference.Config(raw).family != "qwen2":
        print(f"xcheck: {directory} is {raw.get('model_type')}: no transformers class, skipped")
        return 0

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    kwargs = dict(torch_dtype=torch.float32)
    try:
        model = Qwen2ForCausalLM.from_pretrained(directory, attn_implementation="eager", **kwargs)
    except TypeError:  # transformers before attn_implementation
        model = Qwen2ForCausalLM.from_pretrained(directory, **kwargs)
    model.eval()
    # Bidirectional: a 4-D mask is taken as given, with no causal part added.
    # transformers 4.36-4.39 read it as 1 = attend; 4.40 and later as an
    # additive mask (0 = attend). The flag covers paths that consult is_causal.
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    attend = 1.0 if (major, minor) < (4, 40) else 0.0
    for layer in model.model.layers:
        layer.self_attn.is_causal = False

    def hf_logits(tokens):
        ids = torch.tensor([tokens])
        mask = torch.full((1, 1, len(tokens), len(tokens)), attend, dtype=torch.float32)
        with torch.no_grad():
            return model(input_ids=ids, attention_mask=mask).logits[0].float().numpy()

    # Sanity: the first position must see the last token.
    probe = [5, 6, 7, 8, 9]
    a = hf_logits(probe)
    b = hf_logits(probe[:-1] + [10])
    if np.abs(a[0] - b[0]).max() == 0:
        print("xcheck: transformers ran causally (position 0 ignores later tokens); mask handling changed?")
        return 1

    with open(os.path.join(directory, "golden.json")) as f:
        golden = json.load(f)
    data = np.fromfile(os.path.join(directory, "golden.bin"), dtype="<f4")
    V = golden["vocab"]
    ref = reference.Reference(directory)
    ok = True
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, {directory}")
    for case in golden["cases"]:
        if case["compute"] is not None:
            print(f"  {case['name']}: cached step, not expressible in transformers; skipped")
            continue
        hf = hf_logits(case["tokens"])
        gold = data[case["offset"] : case["offset"] + case["rows"] * V].reshape(case["rows"], V)
        mine, _ = ref.forward(case["tokens"])
        mine = mine.numpy()
        for name, other in (("golden", gold), ("reference.py", mine)):
            rel = np.abs(hf - other).max() / np.abs(other).max()
            agree = (hf.argmax(-1) == other.argmax(-1)).mean()
            status = "ok" if rel <= 1e-4 and agree == 1 else "MISMATCH"
            ok &= status == "ok"
            print(f"  {case['name']:6s} vs {name:12s}: max rel error {rel:.2e}, argmax agreement {agree * 100:.1f}%  {status}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
