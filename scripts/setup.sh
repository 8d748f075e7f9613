#!/usr/bin/env bash
# Installs the Debian 12 packages lowbit needs, only those that are missing. Non-interactive;
# needs root (or sudo) when something is missing. Nothing is downloaded besides Debian packages.
set -euo pipefail
PACKAGES=(cmake g++ make pkg-config python3 libhwy-dev libeigen3-dev libgtest-dev libgmock-dev
          libbenchmark-dev nlohmann-json3-dev libcli11-dev)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "lowbit setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
