#!/usr/bin/env bash
# GPU check for diffill's CUDA backend (issue 7). Run from the repository root
# on the GPU machine, which has no Go: build the two binaries here first.
#
#   CGO_ENABLED=0 go build -o .carry/diffill ./cmd/diffill
#   CGO_ENABLED=0 go test -c -o .carry/cuda.test ./model/cuda
#
# then run it there (carry [".carry"], timeout_s 300; it needs 2-4 minutes and
# skips its optional stages when time runs short):
#
#   bash model/cuda/gpu_check.sh
#
# Stages, each under its own timeout so that one failure does not hide the
# others' results:
#   1. device facts, find cuBLAS;
#   2. transformers makes a tiny Qwen2 and a 0.5B Qwen2-shape checkpoint
#      (random bf16 weights) with float32 reference logits (full non-causal
#      attention);
#   3. the Go test binary: every kernel against its reference (poisoned
#      outputs), cuBLAS and the fallback product, the engine against a float64
#      forward, graphs vs eager, the model package's tiny goldens (both
#      families), the transformers checkpoints against transformers and the
#      CPU engine (relative error, argmax agreement), greedy decoding GPU ==
#      CPU, and the benchmark;
#   4. the plain transformers loop timed in the same run, and the table
#      (stdout and $OUT/gpu_table.txt);
#   5. if time allows: nvcc 13 builds kernels.cu for sm_90 and the kernel tests
#      run again on that cubin; `diffill bench --device cuda`; compute-sanitizer
#      memcheck over the kernel tests.
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
[ -n "$CUBLAS" ] && export LD_LIBRARY_PATH="$(dirname "$CUBLAS")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

stage "transformers: checkpoints and reference logits"
timeout 120 $PY model/cuda/gpu_check.py make "$W" 2>&1 | grep -v -i warn | tee "$OUT/make.log" | tail -12 || status=1

stage "Go tests on the GPU"
export DIFFILL_CUDA_REQUIRE=1
CKPTS=""
for d in "$W/qwen2-tiny-hf" "$W/qwen2-0.5b"; do [ -f "$d/config.json" ] && CKPTS="${CKPTS:+$CKPTS,}$d"; done
export DIFFILL_CUDA_CKPTS="$CKPTS"
[ -f "$W/qwen2-0.5b/config.json" ] && export DIFFILL_CUDA_BENCH="$W/qwen2-0.5b" DIFFILL_CUDA_BENCH_OUT="$OUT/diffill_bench.json"
(cd model/cuda && timeout 150 ../../.carry/cuda.test -test.v -test.count=1 -test.timeout=145s \
	-test.run 'TestGPU|TestPTXSignatures' >"$OUT/go_test.log" 2>&1)
rc=$?
grep -E "^ *--- (PASS|FAIL|SKIP)|^(PASS|FAIL|ok)|RESULT|device |panic|no GPU|differ|want|> [0-9]|exceed|cuda: |CUDA_ERROR|CUBLAS_" "$OUT/go_test.log" \
	| cut -c1-230 | tail -60
echo "go test exit: $rc"
[ $rc -eq 0 ] || status=1
unset DIFFILL_CUDA_BENCH DIFFILL_CUDA_CKPTS

stage "transformers loop (timed in this run)"
timeout 60 $PY model/cuda/gpu_check.py loop "$W" "$OUT/transformers_loop.json" 2>&1 | grep -v -i warn | tail -3 || status=1

stage "table"
$PY model/cuda/gpu_check.py table "$OUT/transformers_loop.json" "$OUT/diffill_bench.json" "$OUT/gpu_table.txt" >/dev/null
cat "$OUT/gpu_table.txt"

if command -v nvcc >/dev/null && [ "$(elapsed)" -lt 215 ]; then
	stage "nvcc $(nvcc --version | grep -o 'release [0-9.]*'): kernels.cu for sm_90, kernel tests on that cubin"
	if timeout 40 nvcc -cubin -arch=sm_90 -Xptxas -v -o "$W/kernels_sm90.cubin" model/cuda/kernels.cu >"$OUT/nvcc_sm90.log" 2>&1; then
		grep -cE "0 bytes spill stores" "$OUT/nvcc_sm90.log" | sed 's/^/  kernels without spills: /'
		(cd model/cuda && DIFFILL_CUDA_MODULE="$W/kernels_sm90.cubin" timeout 40 ../../.carry/cuda.test -test.count=1 -test.v \
			-test.run 'TestGPUKernels' >"$OUT/go_test_sm90.log" 2>&1)
		echo "  exit $?: $(grep -c -- '--- PASS' "$OUT/go_test_sm90.log") passed, $(grep -c -- '--- FAIL' "$OUT/go_test_sm90.log") failed"
	else
		echo "  nvcc sm_90 FAILED:"; tail -20 "$OUT/nvcc_sm90.log"; status=1
	fi
fi

if [ -x .carry/diffill ] && [ "$(elapsed)" -lt 240 ]; then
	stage "diffill bench --device cuda --model qwen2-0.5b"
	timeout 25 .carry/diffill bench --device cuda --model "$W/qwen2-0.5b" >"$OUT/diffill_bench_cli.txt" 2>&1
	echo "  exit $?: $(head -c 400 "$OUT/diffill_bench_cli.txt")"
fi

if command -v compute-sanitizer >/dev/null && [ "$(elapsed)" -lt 230 ]; then
	stage "compute-sanitizer memcheck over the kernel tests"
	(cd model/cuda && timeout 40 compute-sanitizer --tool memcheck --print-limit 5 ../../.carry/cuda.test -test.count=1 \
		-test.run 'TestGPUKernels' >"$OUT/sanitizer.log" 2>&1)
	echo "  exit $?: $(grep -E 'ERROR SUMMARY|Invalid|^PASS|^FAIL' "$OUT/sanitizer.log" | head -5 | tr '\n' ' ')"
fi

stage "done (status $status); logs in $OUT"
exit $status
