#!/usr/bin/env bash
# One GPU training run of diffill's built-in model, from the repository root:
#
#   OUT=/path/to/out [TRAIN_MINUTES=6] bash model/train/gpu_job.sh
#
# with .carry/corpus.tar.xz present (python3 model/train/corpus.py pack --out .carry/corpus.tar.xz).
# Unpacks the corpus, tokenizes it with renamed variants (all cores), trains
# for TRAIN_MINUTES, exports the model into $OUT (config.json,
# model.safetensors, tokenizer.json, README.md, train.log, eval.json,
# golden.json) and evaluates it on the held-out cases. Needs no network and no Go.
#
# Knobs (environment): TRAIN_MINUTES (6), DEVICE (cuda if available), CONFIG
# (small), BATCH (128 on cuda, 8 on cpu), SEQ_LEN (1024 on cuda: the engine's
# default context; 512 on cpu), LR (2e-3), VARIANTS (8 on cuda, 2 on
# cpu), MAX_FILES (all on cuda, 300 on cpu), COMPILE (1 on cuda), EVAL_LIMIT (0
# = all cases on cuda, 6 on cpu), INIT (an exported model dir to start from),
# JOB_SECONDS (510: the whole job's deadline; training is cut to fit it),
# WORK (scratch dir), PYTHON, GIT_COMMIT (named in the model card), CKPT (write a
# resumable checkpoint there), LOADER_WORKERS (batch-making processes; 6 on cuda).
#
# CPU smoke test (this machine): TRAIN_MINUTES=0.5 DEVICE=cpu OUT=/tmp/out bash model/train/gpu_job.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

t0=$(date +%s)
stamp() { echo "== [$(($(date +%s) - t0))s] $*"; }

: "${OUT:?set OUT to the output directory}"
mkdir -p "$OUT"
CORPUS=${CORPUS:-.carry/corpus.tar.xz}
[ -e "$CORPUS" ] || { echo "missing $CORPUS: python3 model/train/corpus.py pack --out $CORPUS" >&2; exit 1; }

# The Python with torch: python3 on the GPU machine, Debian's on this one.
if [ -z "${PYTHON:-}" ]; then
	PYTHON=python3
	"$PYTHON" -c 'import torch' 2>/dev/null || PYTHON=/usr/bin/python3
fi
if [ -z "${DEVICE:-}" ]; then
	DEVICE=$("$PYTHON" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')
fi
if [ "$DEVICE" = cuda ]; then
	: "${BATCH:=128}" "${SEQ_LEN:=1024}" "${VARIANTS:=8}" "${MAX_FILES:=0}" "${COMPILE:=1}" "${EVAL_LIMIT:=0}" "${EVAL_PER_STEP:=1}"
	command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
else
	: "${BATCH:=8}" "${SEQ_LEN:=512}" "${VARIANTS:=2}" "${MAX_FILES:=300}" "${COMPILE:=0}" "${EVAL_LIMIT:=6}" "${EVAL_PER_STEP:=16}"
fi
: "${TRAIN_MINUTES:=6}" "${CONFIG:=small}" "${LR:=2e-3}" "${WORK:=/tmp/diffill-work}"
if [ -z "${GIT_COMMIT:-}" ]; then
	GIT_COMMIT=$(git rev-parse HEAD 2>/dev/null || echo unknown)
fi
export GIT_COMMIT
nproc_=$(nproc 2>/dev/null || echo 1)
stamp "python $PYTHON, device $DEVICE, $nproc_ cores, config $CONFIG, batch $BATCH x $SEQ_LEN, variants $VARIANTS, ${TRAIN_MINUTES} min"
"$PYTHON" -c 'import torch, sys; print("torch", torch.__version__, "python", sys.version.split()[0])'

args=(
	model/train/train.py
	--corpus "$CORPUS" --work "$WORK" --out "$OUT"
	--config "$CONFIG" --batch "$BATCH" --seq-len "$SEQ_LEN" --lr "$LR" --minutes "$TRAIN_MINUTES"
	--variants "$VARIANTS" --device "$DEVICE"
	--eval-limit "$EVAL_LIMIT" --eval-per-step "$EVAL_PER_STEP"
)
[ "$MAX_FILES" != 0 ] && args+=(--max-files "$MAX_FILES")
[ "$COMPILE" = 1 ] && args+=(--compile)
[ -n "${INIT:-}" ] && args+=(--init "$INIT")
[ -n "${CKPT:-}" ] && args+=(--ckpt "$CKPT")
[ -n "${LOADER_WORKERS:-}" ] && args+=(--loader-workers "$LOADER_WORKERS")
# The whole job must end within JOB_SECONDS: training stops early if data
# preparation ran long, leaving AFTER_SECONDS for export, eval and checks.
: "${JOB_SECONDS:=510}" "${AFTER_SECONDS:=90}"
args+=(--stop-at $((t0 + JOB_SECONDS - AFTER_SECONDS)))

stamp "train"
"$PYTHON" "${args[@]}"

stamp "check the export against the training code's reference"
"$PYTHON" model/train/check_export.py "$OUT" || echo "check_export: FAILED (see above)"

stamp "reference logits for model/builtin's Go test"
"$PYTHON" model/train/golden.py "$OUT" "$OUT/golden.json" || echo "golden: FAILED (see above)"

stamp "outputs"
ls -la "$OUT"
n=$(find "$OUT" -maxdepth 1 -type f | wc -l)
big=$(find "$OUT" -maxdepth 1 -type f -size +16M | wc -l)
echo "files: $n (at most 8), over 16 MB: $big"
[ "$big" -eq 0 ] || { echo "an output file is over 16 MB" >&2; exit 1; }
stamp "done"
