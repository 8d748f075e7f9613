#!/usr/bin/env bash
# Cross-builds lowbit for 64-bit ARM (aarch64) on an x86-64 Debian 12 machine and runs the CPU
# kernel tests under qemu-user, once per emulated ARM CPU so that each Highway ARM target is the
# best one the CPU offers in some run:
#   neon      QEMU_CPU=max,sve=off                       NEON only
#   sve       QEMU_CPU=a64fx                             SVE without SVE2, 512-bit vectors
#   sve2      QEMU_CPU=max,sve-default-vector-length=64  SVE2, 512-bit vectors
#   sve2-256  QEMU_CPU=max,sve-default-vector-length=32  SVE2 at 256 bits (Highway SVE_256)
#   sve2-128  QEMU_CPU=max,sve-default-vector-length=16  SVE2 at 128 bits (Highway SVE2_128)
# The tests are parameterized over hwy::SupportedAndGeneratedTargets() and force each with
# hwy::SetSupportedTargetsForTest, so every run tests every target that the build compiled AND
# the emulated CPU offers. The top-level CMakeLists.txt compiles no SVE target (SVE CPUs run the
# NEON kernels), so by default the SVE runs check the NEON kernels and their dispatch on SVE CPUs;
# LOWBIT_ARM_SVE=1 compiles the SVE targets anyway to test the kernels on them.
#
#   bash scripts/cross-arm64.sh                  # about 5-10 minutes on 2 cores (cold build)
#   LOWBIT_ARM_SVE=1 bash scripts/cross-arm64.sh # also compile + test SVE, SVE2, SVE_256, SVE2_128
#
# Stages: 1. install missing Debian packages (arm64 multiarch, cross g++, qemu-user, arm64 hwy and
# gtest), 2. configure with cmake/aarch64-linux-gnu.cmake, 3. build the library and the kernel test
# binaries, 4. run them under qemu-aarch64 per CPU. Exits non-zero if any stage or test fails;
# prints the time of every stage.
#
# Environment:
#   LOWBIT_ARM_SVE=1           compile the SVE targets too (overrides HWY_DISABLED_TARGETS of
#                              CMakeLists.txt); each SVE run must then test its own target
#   LOWBIT_ARM_BUILD_DIR=DIR   build directory (default build/arm64, build/arm64-sve with SVE=1)
#   LOWBIT_ARM_JOBS=N          parallel build jobs (default 2); the build runs under nice -n 10
#   LOWBIT_ARM_RUNS="a b"      only these runs, of: neon sve sve2 sve2-256 sve2-128
#   LOWBIT_ARM_GTEST_FILTER=F  passed to every test binary as --gtest_filter
#   LOWBIT_ARM_TEST_TIMEOUT=S  seconds per test binary per run (default 600)
set -euo pipefail
cd "$(dirname "$0")/.."

SVE="${LOWBIT_ARM_SVE:-0}"
if [ "$SVE" = "1" ]; then BUILD_DIR="${LOWBIT_ARM_BUILD_DIR:-build/arm64-sve}"
else BUILD_DIR="${LOWBIT_ARM_BUILD_DIR:-build/arm64}"; fi
JOBS="${LOWBIT_ARM_JOBS:-2}"
RUNS="${LOWBIT_ARM_RUNS:-neon sve sve2 sve2-256 sve2-128}"
TEST_TIMEOUT="${LOWBIT_ARM_TEST_TIMEOUT:-600}"
GTEST_FILTER="${LOWBIT_ARM_GTEST_FILTER:-}"
TRIPLE=aarch64-linux-gnu
# No -L: the arm64 binaries use the multiarch glibc of libc6:arm64 (see the toolchain file).
QEMU=(qemu-aarch64)
# The kernel tests (tests/CMakeLists.txt): each runs on every compiled Highway target.
TESTS=(quantize_kernels_test dequantize_kernels_test matmul_test matmul_blocking_test int8act_test)

export DEBIAN_FRONTEND=noninteractive
export PKG_CONFIG_LIBDIR="/usr/lib/$TRIPLE/pkgconfig:/usr/share/pkgconfig"
unset PKG_CONFIG_PATH QEMU_CPU QEMU_LD_PREFIX GLIBC_TUNABLES

SUMMARY=()
stage_start=0
stage_begin() { stage_start=$SECONDS; echo; echo "=== cross-arm64: $1"; }
stage_end() {  # name, result
  local t=$((SECONDS - stage_start))
  printf '=== cross-arm64: %s: %s (%ds)\n' "$1" "$2" "$t"
  SUMMARY+=("$(printf '%-58s %-6s %4ds  %s' "$1" "$2" "$t" "${3:-}")")
}
print_summary() {
  echo
  echo "=== cross-arm64 summary (total ${SECONDS}s)"
  local line
  for line in "${SUMMARY[@]}"; do echo "  $line"; done
}
trap print_summary EXIT

# ---- 1. packages --------------------------------------------------------------------------------
stage_begin "install packages"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
need_update=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "adding dpkg architecture arm64"
  $SUDO dpkg --add-architecture arm64
  need_update=1
fi
PACKAGES=(cmake make pkg-config libeigen3-dev nlohmann-json3-dev g++-aarch64-linux-gnu qemu-user
          libc6:arm64 libstdc++6:arm64 libhwy-dev:arm64 libgtest-dev:arm64 libgmock-dev:arm64)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  need_update=1
fi
if [ "$need_update" -eq 1 ]; then $SUDO apt-get update -qq; fi
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
fi
echo "$(aarch64-linux-gnu-g++ --version | head -1); $(qemu-aarch64 --version | head -1)"
stage_end "install packages" ok

# ---- 2. configure -------------------------------------------------------------------------------
stage_begin "configure $BUILD_DIR"
CXX_FLAGS=""
if [ "$SVE" = "1" ]; then
  # CMAKE_CXX_FLAGS come after the targets' compile definitions on the command line, so this
  # replaces the HWY_DISABLED_TARGETS that CMakeLists.txt sets.
  CXX_FLAGS="-UHWY_DISABLED_TARGETS -DHWY_DISABLED_TARGETS=0"
  echo "LOWBIT_ARM_SVE=1: compiling SVE, SVE2, SVE_256 and SVE2_128 as well as NEON"
fi
mkdir -p "$BUILD_DIR"
GENERATOR=()
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ] && command -v ninja >/dev/null; then GENERATOR=(-G Ninja); fi
if ! cmake -S . -B "$BUILD_DIR" "${GENERATOR[@]}" \
    -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/aarch64-linux-gnu.cmake" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_FLAGS="$CXX_FLAGS" \
    -DLOWBIT_BUILD_TESTS=ON -DLOWBIT_BUILD_BENCH=OFF -DLOWBIT_BUILD_EXAMPLES=OFF \
    -DLOWBIT_BUILD_CLI=OFF -DLOWBIT_BUILD_FUZZ=OFF -DLOWBIT_BACKEND_CUDA=OFF \
    >"$BUILD_DIR/configure.log" 2>&1; then
  cat "$BUILD_DIR/configure.log"
  stage_end "configure" FAIL
  exit 1
fi
grep -E "lowbit:|Check for working CXX" "$BUILD_DIR/configure.log" || true
stage_end "configure" ok

# ---- 3. build -----------------------------------------------------------------------------------
stage_begin "build lowbit + kernel tests"
# Keep going after a failed file, so that one build lists every file that does not compile.
KEEP_GOING=(-k)
if grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja' "$BUILD_DIR/CMakeCache.txt"; then KEEP_GOING=(-k 0); fi
if ! nice -n 10 cmake --build "$BUILD_DIR" -j "$JOBS" --target lowbit "${TESTS[@]}" \
    -- "${KEEP_GOING[@]}" 2>&1 | tee "$BUILD_DIR/build.log"; then
  echo
  echo "=== cross-arm64: compiler errors (unique file:line: message, all targets):"
  grep -E '^[^ ]+:[0-9]+:[0-9]+: error: ' "$BUILD_DIR/build.log" | grep -v 'was not declared' |
    sed -E "s|^$PWD/||; s/ [{]aka [^}]*[}]//; s/N_(SVE2_128|SVE_256|SVE2|SVE)::/N_<target>::/g" |
    sort -u | head -40 || true
  stage_end "build" FAIL "errors listed above"
  exit 1
fi
# A tiny probe, compiled with every ARM target enabled: which Highway targets the emulated CPU
# offers (best first) and the SVE vector length qemu gives the process.
PROBE="$BUILD_DIR/arm_cpu_probe"
cat >"$PROBE.cc" <<'EOF'
#include <sys/prctl.h>
#include <cstdio>
#include "hwy/targets.h"
int main() {
  std::printf("cpu offers:");
  for (int64_t t : hwy::SupportedAndGeneratedTargets()) std::printf(" %s", hwy::TargetName(t));
  const int vl = prctl(PR_SVE_GET_VL);  // -1 (EINVAL) without SVE
  if (vl >= 0) std::printf("; SVE vector length %d bits", (vl & PR_SVE_VL_LEN_MASK) * 8);
  std::printf("\n");
  return 0;
}
EOF
aarch64-linux-gnu-g++ -std=c++17 -O1 -DHWY_SHARED_DEFINE "$PROBE.cc" -o "$PROBE" -lhwy
stage_end "build" ok

# ---- 4. test runs under qemu --------------------------------------------------------------------
# run name -> QEMU_CPU, and the Highway target the emulated CPU must offer as its best.
declare -A CPU=(
  [neon]="max,sve=off"
  [sve]="a64fx"
  [sve2]="max,sve-default-vector-length=64"
  [sve2-256]="max,sve-default-vector-length=32"
  [sve2-128]="max,sve-default-vector-length=16"
)
declare -A BEST=([neon]=NEON [sve]=SVE [sve2]=SVE2 [sve2-256]=SVE_256 [sve2-128]=SVE2_128)
failed=0
for run in $RUNS; do
  if [ -z "${CPU[$run]+x}" ]; then echo "unknown run '$run' in LOWBIT_ARM_RUNS"; exit 2; fi
  name="run $run (QEMU_CPU=${CPU[$run]})"
  stage_begin "$name"
  export QEMU_CPU="${CPU[$run]}"
  # On an A64FX, glibc picks its SVE memcpy/memset, which qemu emulates ~10x slower than the
  # rest (3 minutes instead of 15 s for this run); the generic ones leave lowbit's code as is.
  if [ "$run" = sve ]; then export GLIBC_TUNABLES=glibc.cpu.name=generic; fi
  result=ok
  probe_out="$("${QEMU[@]}" "$PROBE" 2>&1)" || { probe_out="probe failed: $probe_out"; result=FAIL; }
  echo "$probe_out"
  cpu_best="$(echo "$probe_out" | sed -n 's/^cpu offers: \([A-Z0-9_]*\).*/\1/p')"
  if [ "$cpu_best" != "${BEST[$run]}" ]; then
    echo "FAIL: the emulated CPU should offer ${BEST[$run]} as its best target, offers '$cpu_best'"
    result=FAIL
  fi
  # The targets the tests run on: the parameterized instances' suffixes (best first).
  tested="$("${QEMU[@]}" "$BUILD_DIR/tests/matmul_test" --gtest_list_tests 2>/dev/null |
            sed -n 's/^  [A-Za-z0-9_]*\/\([A-Z0-9_]*\)  #.*/\1/p' | awk '!seen[$0]++' | xargs || true)"
  echo "tests run on: ${tested:-nothing?}"
  note="targets tested: ${tested:-none}"
  if [ "${tested%% *}" != "${BEST[$run]}" ]; then
    if [ "$SVE" = "1" ] || [ -z "$tested" ]; then
      echo "FAIL: the tests do not run on ${BEST[$run]}"
      result=FAIL
    else
      note="$note (${BEST[$run]} not compiled: NEON kernels on this CPU)"
    fi
  fi
  for t in "${TESTS[@]}"; do
    args=(--gtest_brief=1 --gtest_color=no)
    if [ -n "$GTEST_FILTER" ]; then args+=("--gtest_filter=$GTEST_FILTER"); fi
    t0=$SECONDS
    log="$BUILD_DIR/$t.$run.log"
    if timeout "$TEST_TIMEOUT" "${QEMU[@]}" "$BUILD_DIR/tests/$t" "${args[@]}" >"$log" 2>&1; then
      printf '  %-26s ok   (%ds) %s\n' "$t" $((SECONDS - t0)) "$(grep -E '^\[  PASSED  \]' "$log" | head -1)"
    else
      rc=$?
      printf '  %-26s FAIL (%ds, exit %d%s), log %s:\n' "$t" $((SECONDS - t0)) "$rc" \
        "$([ "$rc" -eq 124 ] && echo ", timed out after ${TEST_TIMEOUT}s")" "$log"
      tail -40 "$log" | sed 's/^/    /'
      result=FAIL
    fi
  done
  unset QEMU_CPU GLIBC_TUNABLES
  stage_end "$name" "$result" "$note"
  if [ "$result" != ok ]; then failed=1; fi
done
exit "$failed"
