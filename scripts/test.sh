#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite with CTest.
#   bash scripts/test.sh          release preset
#   bash scripts/test.sh asan     AddressSanitizer + UndefinedBehaviorSanitizer preset
set -euo pipefail
cd "$(dirname "$0")/.."
PRESET="${1:-release}"
bash scripts/setup.sh
cmake --preset "$PRESET" >/dev/null
cmake --build --preset "$PRESET"
ctest --preset "$PRESET" -j2
