#!/usr/bin/env python3
"""Writes reference logits of an exported model for the Go engine's test.

  golden.py MODEL_DIR OUT.json

The input is a fixed Go snippet with a run of <|mask|> between a prefix and a
suffix, tokenized here (the Go test checks its tokenizer gives the same ids).
For a few positions (the masks and some context) it stores the top-10 logits
and the logits of a few fixed ids, computed in float32 from the stored
weights with modeling.py, the code that trained them. model/builtin's test
holds model.Forward to these numbers.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402

import gotok  # noqa: E402
import modeling  # noqa: E402

PREFIX = 'package main\n\nimport (\n\t"fmt"\n\t"os"\n)\n\nfunc main() {\n\tf, err := os.Open("go.mod")\n\tif err != nil {\n\t\t'
SUFFIX = '\n\t}\n\tdefer f.Close()\n\tfmt.Println(f.Name())\n}\n'
MASKS = 6
PROBE = [0, 1, 2, 3, 100, 1000, 4000, 8191]


def main():
    d, out = sys.argv[1], sys.argv[2]
    tok = gotok.Tokenizer(os.path.join(d, "tokenizer.json"))
    model = modeling.load_hf_dir(d)
    pre, suf = tok.encode(PREFIX), tok.encode(SUFFIX)
    ids = pre + [tok.mask_id] * MASKS + suf
    with torch.no_grad():
        logits = model(torch.tensor([ids]))[0].float()
    positions = [0, len(pre) // 2, len(pre) - 1] + list(range(len(pre), len(pre) + MASKS)) + [len(ids) - 1]
    rows = []
    for p in positions:
        v, i = logits[p].topk(10)
        rows.append({
            "position": p,
            "top": [[int(a), float(b)] for a, b in zip(i, v)],
            "probe": [float(logits[p, j]) for j in PROBE if j < logits.shape[1]],
        })
    with open(out, "w") as f:
        json.dump({"prefix": PREFIX, "suffix": SUFFIX, "masks": MASKS, "ids": ids, "probe_ids": PROBE, "rows": rows}, f, indent=1)
        f.write("\n")
    print(f"golden: {len(rows)} positions of {len(ids)} tokens -> {out}")


if __name__ == "__main__":
    main()
