#!/usr/bin/env bash
# Installs what is missing, builds (release), and runs lowbit's main job: lowbit-demo quantizes
# the stories260K Llama model (models/stories260K) to every format plus GPTQ and AWQ int4, prints
# perplexity, Δppl vs float32, weight bytes, bits per weight and tokens/s per variant, then
# generates a story with the best 4-bit variant. Extra arguments go to lowbit-demo
# (--windows N|all, --json FILE, --variant NAME, --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release --target lowbit_demo
./build/release/examples/lowbit-demo "$@"
