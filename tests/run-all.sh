#!/bin/bash
# Runs every test: installs missing packages (apt), builds with warnings as errors, runs the
# unit tests, the fuzz corpora and the integration tests; then builds again with
# AddressSanitizer and UBSan and runs all of them once more.
# Needs root: the integration tests create network namespaces and links.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
jobs=$(nproc)
for variant in build:OFF build-asan:ON; do
  dir=${variant%%:*}
  san=${variant##*:}
  echo "== $dir (sanitizers $san)"
  cmake -S . -B "$dir" -DMESHDNS_WERROR=ON -DMESHDNS_SANITIZE="$san" >/dev/null
  cmake --build "$dir" -j"$jobs"
  ctest --test-dir "$dir" --output-on-failure -L unit -j"$jobs"
  ctest --test-dir "$dir" --output-on-failure -L integration
done
echo "== all tests passed"
