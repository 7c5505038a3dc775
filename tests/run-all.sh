#!/bin/bash
# Runs every test: installs missing packages, builds (warnings are errors), runs the unit and
# integration tests, then the unit tests again under AddressSanitizer and UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -DMESHDNS_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure
cmake -S . -B build-asan -DMESHDNS_WERROR=ON -DMESHDNS_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$(nproc)"
ctest --test-dir build-asan --output-on-failure -L unit
