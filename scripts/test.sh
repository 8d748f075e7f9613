#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite with CTest.
#   bash scripts/test.sh          release preset
#   bash scripts/test.sh asan     AddressSanitizer + UndefinedBehaviorSanitizer preset
# In CI (CI=true), or with LOWBIT_TEST_ARM=1, the release run is followed by the aarch64 check
# (scripts/cross-arm64.sh: cross build, kernel tests under qemu-aarch64 on NEON/SVE/SVE2 CPUs;
# about 2 minutes once its packages are installed).
set -euo pipefail
cd "$(dirname "$0")/.."
PRESET="${1:-release}"
bash scripts/setup.sh
cmake --preset "$PRESET" >/dev/null
cmake --build --preset "$PRESET"
ctest --preset "$PRESET" -j2
if [[ "$PRESET" == "release" && ( "${CI:-}" == "true" || "${LOWBIT_TEST_ARM:-0}" == "1" ) ]]; then
  bash scripts/cross-arm64.sh
fi
