#!/usr/bin/env bash
# Installs an exported model (gpu_job.sh's $OUT) as diffill's built-in model:
#
#   bash model/train/install_weights.sh OUTDIR
#
# copies config.json, model.safetensors, tokenizer.json and README.md into
# model/builtin/weights/ and golden.json into model/builtin/testdata/, checks
# the Go engine against the reference logits, measures the smoke quality and
# records its floors (model/builtin/testdata/quality.json). Commit afterwards:
#   git add model/builtin && git commit -m "model/builtin: GPU-trained weights"
set -euo pipefail
src=${1:?usage: install_weights.sh OUTDIR}
cd "$(dirname "$0")/../.."
for f in config.json model.safetensors tokenizer.json README.md golden.json; do
	[ -s "$src/$f" ] || { echo "missing $src/$f" >&2; exit 1; }
done
size=$(stat -c %s "$src/model.safetensors")
[ "$size" -le 32000000 ] || { echo "model.safetensors is $size bytes, over 32 MB" >&2; exit 1; }
cp "$src/config.json" "$src/model.safetensors" "$src/tokenizer.json" "$src/README.md" model/builtin/weights/
cp "$src/golden.json" model/builtin/testdata/golden.json
go test -count=1 -run 'Files|Load|Golden' ./model/builtin
go test -count=1 -run Quality -v ./model/builtin -args -update | grep -E 'built-in model|^ok|^FAIL|^---'
cat model/builtin/testdata/quality.json
