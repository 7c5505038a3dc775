#!/bin/bash
# Runs meshdns locally on its demo data: installs what is missing (apt), builds, and serves
# 127.0.0.1:5353 with the ServiceEntries of examples/serviceentries.json, forwarding every
# other name to this machine's resolvers. No interface is created (--no-interface).
# Try, from another terminal:
#   dig @127.0.0.1 -p 5353 reviews.default.cluster-2
#   curl -s 127.0.0.1:9253/metrics | grep coredns_dns_requests_total
# Stop with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target meshdns
exec build/meshdns --no-interface --listen 127.0.0.1:5353 \
	--serviceentries examples/serviceentries.json \
	--health 127.0.0.1:8054 --metrics 127.0.0.1:9253 "$@"
