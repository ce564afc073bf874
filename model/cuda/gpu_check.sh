#!/usr/bin/env bash
# GPU check for diffill's CUDA backend (issue 7). Run from the repository root
# on the GPU machine, which has no Go: build the two binaries here first.
#
#   CGO_ENABLED=0 go build -ldflags="-s -w" -o .carry/diffill ./cmd/diffill
#   CGO_ENABLED=0 go test -c -ldflags="-s -w" -o .carry/cuda.test ./model/cuda
#
# then run it there (carry [".carry"], timeout_s 300; it needs 2-4 minutes and
# skips its optional stages when time runs short):
#
#   bash model/cuda/gpu_check.sh
#
# Stages, each in its own process under its own timeout so that one failure
# (even a sticky CUDA error) does not hide the others' results:
#   1. device facts, cuBLAS located; nvcc 13 builds kernels.cu for sm_90 in
#      the background (a cubin to fall back on if the driver cannot JIT the
#      embedded PTX, and a check that the source builds with the newer nvcc);
#   2. transformers makes a tiny Qwen2 and a 0.5B Qwen2-shape checkpoint
#      (random bf16 weights) with float32 reference logits (full non-causal
#      attention);
#   3. Go test binary, A: every kernel against its Go reference (poisoned
#      outputs), cuBLAS and the fallback product, the engine against a
#      float64 forward (both precisions), graph replay vs eager, the model
#      package's tiny goldens of both families through model.Forward;
#      B: the transformers checkpoints against transformers and the CPU engine
#      (relative error, argmax agreement), greedy decoding GPU == CPU;
#      C: the benchmark; D: where a step's time goes (every launch of an
#      eager prefill and step timed between events, by kernel and product
#      shape; graph-replayed step and prefill, wall clock);
#   4. the plain transformers loop, timed in the same run; the table (stdout
#      and $OUT/gpu_table.txt);
#   5. if time allows: the kernel tests on the sm_90 cubin, `diffill bench
#      --device cuda`, compute-sanitizer memcheck over the kernel tests.
# Full logs go to $OUT.
set -u -o pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/diffill_out}
mkdir -p "$OUT"
W=/tmp/diffill_gpu
mkdir -p "$W"
PY=python3
T0=$(date +%s)
elapsed() { echo $(( $(date +%s) - T0 )); }
stage() { echo "== [$(elapsed)s] $*"; }
status=0

stage "device"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv,noheader 2>&1 | tee "$OUT/device.txt"
echo "libcuda: $( (ldconfig -p 2>/dev/null | grep -m1 'libcuda.so.1 ') || echo 'not in ld.so.cache') LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
[ -x .carry/cuda.test ] || { echo "missing .carry/cuda.test: build it first (see the header)"; exit 2; }

CUBLAS=""
for root in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
	$($PY -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null); do
	[ -d "$root" ] || continue
	f=$(find "$root" -maxdepth 5 -name 'libcublas.so.1[0-9]*' 2>/dev/null | sort | head -1)
	if [ -n "$f" ]; then CUBLAS=$f; break; fi
done
echo "cuBLAS: ${CUBLAS:-not found (the engine falls back to its own matrix kernel)}"
export DIFFILL_CUBLAS="$CUBLAS"
GO_LD_PATH="${LD_LIBRARY_PATH:-}"
[ -n "$CUBLAS" ] && GO_LD_PATH="$(dirname "$CUBLAS")${GO_LD_PATH:+:$GO_LD_PATH}"

NVCC_PID=""
if command -v nvcc >/dev/null; then
	(timeout 90 nvcc -cubin -arch=sm_90 -Xptxas -v -o "$W/kernels_sm90.cubin" model/cuda/kernels.cu >"$OUT/nvcc_sm90.log" 2>&1; echo $? >"$W/nvcc.rc") &
	NVCC_PID=$!
fi

stage "transformers: checkpoints and reference logits"
timeout 120 $PY model/cuda/gpu_check.py make "$W" 2>&1 | grep -v -i warn | tee "$OUT/make.log" | tail -12 || status=1

if [ -n "$NVCC_PID" ]; then
	wait "$NVCC_PID"
	echo "nvcc $(nvcc --version | grep -o 'release [0-9.]*') sm_90 cubin: exit $(cat "$W/nvcc.rc" 2>/dev/null), $(grep -c '0 bytes spill stores' "$OUT/nvcc_sm90.log") kernels without spills"
	[ "$(cat "$W/nvcc.rc" 2>/dev/null)" = 0 ] || { tail -20 "$OUT/nvcc_sm90.log"; status=1; }
fi

export DIFFILL_CUDA_REQUIRE=1
# gotest NAME TIMEOUT REGEX: one test process; summary lines here, the log in $OUT.
gotest() {
	(cd model/cuda && LD_LIBRARY_PATH="$GO_LD_PATH" timeout "$2" ../../.carry/cuda.test -test.v -test.count=1 -test.timeout="$(( $2 - 5 ))s" \
		-test.run "$3" >"$OUT/go_$1.log" 2>&1)
	local rc=$?
	grep -E "^ *--- (PASS|FAIL|SKIP)|^(PASS|FAIL|ok)|RESULT|device |panic|no GPU|differ|want|> [0-9]|exceed|cuda: |CUDA_ERROR|CUBLAS_" "$OUT/go_$1.log" \
		| cut -c1-230 | tail -45
	echo "go test $1 exit: $rc"
	return $rc
}

stage "Go tests A0: open the GPU, load the kernels"
if ! gotest open 40 'TestGPUOpen$|TestPTXSignatures'; then
	status=1
	if [ -f "$W/kernels_sm90.cubin" ]; then
		echo "retrying with nvcc's sm_90 cubin instead of the embedded PTX"
		export DIFFILL_CUDA_MODULE="$W/kernels_sm90.cubin"
		gotest open_cubin 40 'TestGPUOpen$'
	fi
fi

stage "Go tests A: kernels, engine, goldens"
if ! gotest kernels 90 'TestGPUKernels|TestGPUEngine|TestGPUModel|TestGPUSelect'; then
	status=1
	echo "again with a wait after every launch (DIFFILL_CUDA_SYNC=1), so that a fault names its kernel:"
	DIFFILL_CUDA_SYNC=1 gotest engine_sync 60 'TestGPUEngine|TestGPUModelGoldens' | grep -E "FAIL|cuda|CUDA|kernel" | head -15
fi

CKPTS=""
for d in "$W/qwen2-tiny-hf" "$W/qwen2-0.5b"; do [ -f "$d/config.json" ] && CKPTS="${CKPTS:+$CKPTS,}$d"; done
if [ -n "$CKPTS" ]; then
	stage "Go tests B: transformers checkpoints vs transformers and the CPU engine, greedy decoding"
	DIFFILL_CUDA_CKPTS="$CKPTS" gotest checkpoints 120 'TestGPUCheckpoints' || status=1
fi
if [ -f "$W/qwen2-0.5b/config.json" ]; then
	stage "Go tests C: benchmark"
	DIFFILL_CUDA_BENCH="$W/qwen2-0.5b" DIFFILL_CUDA_BENCH_OUT="$OUT/diffill_bench.json" gotest bench 90 'TestGPUBench' || status=1
	grep -A8 "steps tok/step" "$OUT/go_bench.log" | cut -c1-150
	stage "Go tests D: profile of a prefill and a step"
	DIFFILL_CUDA_BENCH="$W/qwen2-0.5b" gotest profile 60 'TestGPUProfile' | grep -E "FAIL|exit" || status=1
	grep -o "PROFILE.*" "$OUT/go_profile.log" | grep -E "total|wall|step: |attention: .*attention" | cut -c1-140 | head -60
fi

stage "transformers loop (timed in this run)"
timeout 60 $PY model/cuda/gpu_check.py loop "$W" "$OUT/transformers_loop.json" 2>&1 | grep -v -i warn | tail -3 || status=1

stage "table"
$PY model/cuda/gpu_check.py table "$OUT/transformers_loop.json" "$OUT/diffill_bench.json" "$OUT/gpu_table.txt" >/dev/null
cat "$OUT/gpu_table.txt"

if [ -f "$W/kernels_sm90.cubin" ] && [ -z "${DIFFILL_CUDA_MODULE:-}" ] && [ "$(elapsed)" -lt 230 ]; then
	stage "kernel tests on nvcc's sm_90 cubin"
	DIFFILL_CUDA_MODULE="$W/kernels_sm90.cubin" gotest kernels_sm90 40 'TestGPUKernels' | tail -2
fi

if [ -x .carry/diffill ] && [ "$(elapsed)" -lt 240 ]; then
	stage "diffill bench --device cuda --model qwen2-0.5b"
	timeout 25 .carry/diffill bench --device cuda --model "$W/qwen2-0.5b" >"$OUT/diffill_bench_cli.txt" 2>&1
	echo "  exit $?: $(head -c 400 "$OUT/diffill_bench_cli.txt")"
fi

if command -v compute-sanitizer >/dev/null && [ "$(elapsed)" -lt 230 ]; then
	stage "compute-sanitizer memcheck over the kernel tests"
	(cd model/cuda && timeout 40 compute-sanitizer --tool memcheck --print-limit 5 ../../.carry/cuda.test -test.count=1 \
		-test.run 'TestGPUKernels/(attention|add_rmsnorm|ban_and_row_stats|qkv_rope)' >"$OUT/sanitizer.log" 2>&1)
	echo "  exit $?: $(grep -E 'ERROR SUMMARY|Invalid|^PASS|^FAIL' "$OUT/sanitizer.log" | head -5 | tr '\n' ' ')"
fi

stage "done (status $status); logs in $OUT"
cat "$OUT/gpu_table.txt" 2>/dev/null
exit $status
