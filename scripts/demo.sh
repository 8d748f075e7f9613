#!/usr/bin/env bash
# Installs what is missing, builds (release), and runs lowbit's main job. Extra arguments go to
# the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release --target lowbit_cli
./build/release/tools/lowbit report "$@"
