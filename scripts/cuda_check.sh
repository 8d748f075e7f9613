#!/usr/bin/env bash
# One-shot CUDA backend verification for a machine with an NVIDIA GPU (sm_80 or newer).
#
#   bash scripts/cuda_check.sh            configure + build + parity tests + short benchmarks
#   BENCH_FILTER='4096x4096' bash scripts/cuda_check.sh    fewer benchmarks
#   SKIP_BENCH=1 / SKIP_MEMCHECK=1        leave those steps out (memcheck: up to MEMCHECK_TIMEOUT
#                                         seconds, default 300; skip it when device time is short)
#
# Writes logs to $OUT (default: <build dir>/cuda-check): cuda_test.txt, memcheck.txt,
# cuda_bench.json / .txt. Exits non-zero when any step fails, or when a CudaParity test was
# skipped (that means the GPU was not usable and nothing was verified).
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD="${BUILD:-build/cuda-check}"
OUT="${OUT:-$BUILD/cuda-check}"
JOBS="${JOBS:-$(nproc)}"
mkdir -p "$OUT"
status=0

nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv || true

# Release build with the CUDA backend forced on; archs 80;90 (A100, H100/H200) unless overridden.
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DLOWBIT_BACKEND_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-80;90}" \
  -DLOWBIT_BUILD_EXAMPLES=OFF -DLOWBIT_BUILD_CLI=OFF || exit 1
cmake --build "$BUILD" -j"$JOBS" --target cuda_test lowbit_cuda_bench || exit 1

# 1. Parity tests (every CUDA op vs the CPU reference).
"$BUILD/tests/cuda_test" 2>&1 | tee "$OUT/cuda_test.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
if grep -q '^\[  SKIPPED \] CudaParity' "$OUT/cuda_test.txt"; then
  echo "cuda_check: CudaParity tests were SKIPPED: the GPU is not usable here" >&2
  status=1
fi

# 2. Out-of-bounds / race check of the kernels on the same tests (slow, small shapes).
if [ -z "${SKIP_MEMCHECK:-}" ] && command -v compute-sanitizer >/dev/null 2>&1; then
  timeout "${MEMCHECK_TIMEOUT:-300}" compute-sanitizer --tool memcheck --error-exitcode 3 \
    "$BUILD/tests/cuda_test" --gtest_filter='CudaParity.*' > "$OUT/memcheck.txt" 2>&1 ||
    { echo "memcheck failed or timed out (see $OUT/memcheck.txt)" >&2; status=1; }
  tail -n 3 "$OUT/memcheck.txt"
fi

# 3. Short benchmarks: BM_Gemv_cuda/<format>/<act>/<N>x<K> and the bf16 cuBLAS baseline.
if [ -z "${SKIP_BENCH:-}" ]; then
  "$BUILD/bench/lowbit_cuda_bench" --benchmark_min_time="${BENCH_MIN_TIME:-0.05}" \
    --benchmark_filter="${BENCH_FILTER:-.}" --benchmark_counters_tabular=true \
    --benchmark_out="$OUT/cuda_bench.json" --benchmark_out_format=json 2>&1 | tee "$OUT/cuda_bench.txt"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
fi

echo "cuda_check: status $status (logs in $OUT)"
exit $status
