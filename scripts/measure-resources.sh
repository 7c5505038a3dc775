#!/bin/bash
# Measures what the DaemonSet's resource requests and limits are sized from: resident memory
# (idle, cache filled until it evicts, peak) and CPU at several query rates, for one meshdns
# process on loopback. /metrics is scraped every second throughout, as Prometheus would.
#
#   scripts/measure-resources.sh [build/meshdns] [cache-size]
#
# The upstream is shared/bench/reflector.c (answers anything at once); meshdns is pinned to
# CPU 0, dnsperf and the reflector to CPU 1. Loopback only; every process started here is
# stopped by its PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/meshdns}
CACHE=${2:-64M}
REFLECTOR_SRC=${REFLECTOR_SRC:-../shared/bench/reflector.c}
UP=15399 DNS=15310 MET=19253
W=$(mktemp -d /tmp/meshdns-measure.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

gcc -O2 -o "$W/reflector" "$REFLECTOR_SRC"
taskset -c 1 "$W/reflector" $UP >/dev/null 2>&1 &
PIDS+=($!)
taskset -c 0 "$BIN" --no-interface --listen 127.0.0.1:$DNS --upstream 127.0.0.1:$UP \
  --cluster-dns 127.0.0.1:$UP --serviceentries none --health 127.0.0.1:18054 \
  --metrics 127.0.0.1:$MET --cache-size "$CACHE" --log-level warn 2>"$W/meshdns.log" &
M=$!
PIDS+=($M)
for _ in $(seq 50); do curl -sf http://127.0.0.1:18054/ready >/dev/null && break; sleep 0.1; done
while sleep 1; do curl -s -o /dev/null http://127.0.0.1:$MET/metrics || true; done &
PIDS+=($!)

kb() { awk -v k="$1:" '$1 == k { print $2 }' /proc/$M/status; }
ticks() { awk '{ s = $0; sub(/.*\) /, "", s); split(s, f, " "); print f[12] + f[13] }' /proc/$M/stat; }
metric() { curl -s http://127.0.0.1:$MET/metrics | awk -v n="$1" '$1 ~ "^"n { s += $2 } END { print s + 0 }'; }
HZ=$(getconf CLK_TCK)

# Names: 1,000 hot ones, and distinct ones to fill the cache.
for i in $(seq 1000); do echo "hot$i.example.org A"; done >"$W/hot.txt"
awk 'BEGIN { for (i = 0; i < 1500000; i++) printf "f%d.example.net A\n", i }' >"$W/fill.txt"
# 90 % hits, 10 % new names: a busy node's mix.
awk 'BEGIN { srand(7); for (i = 0; i < 200000; i++)
  if (i % 10 == 0) printf "m%d.example.com A\n", i; else printf "hot%d.example.org A\n", 1 + int(rand() * 1000) }' >"$W/mix.txt"

printf '%-34s %10s %10s\n' "phase" "RSS KiB" "CPU %"
printf '%-34s %10s %10s\n' "idle after start" "$(kb VmRSS)" "-"

# CPU share of one core over @secs seconds of dnsperf at @qps with @file.
load() {
  local label=$1 file=$2 qps=$3 secs=${4:-20} t0 t1
  t0=$(ticks)
  taskset -c 1 dnsperf -s 127.0.0.1 -p $DNS -d "$file" -l "$secs" -c 4 -q 2000 -Q "$qps" \
    >"$W/dnsperf.out" 2>&1 || true
  t1=$(ticks)
  local got
  got=$(awk '/Queries per second/ { print $4 }' "$W/dnsperf.out")
  printf '%-34s %10s %10s   (%s q/s answered)\n' "$label" "$(kb VmRSS)" \
    "$(awk -v a="$t0" -v b="$t1" -v hz="$HZ" -v s="$secs" 'BEGIN { printf "%.1f", (b - a) / hz / s * 100 }')" \
    "$got"
}

t0=$(ticks); sleep 20; t1=$(ticks)
printf '%-34s %10s %10s\n' "idle 20 s (scraped every 1 s)" "$(kb VmRSS)" \
  "$(awk -v a="$t0" -v b="$t1" -v hz="$HZ" 'BEGIN { printf "%.1f", (b - a) / hz / 20 * 100 }')"
taskset -c 1 dnsperf -s 127.0.0.1 -p $DNS -d "$W/hot.txt" -n 1 -q 100 >/dev/null 2>&1 || true
load "hits 1,000 q/s" "$W/hot.txt" 1000
load "hits 5,000 q/s" "$W/hot.txt" 5000
load "hits 20,000 q/s" "$W/hot.txt" 20000
load "mix 90/10 2,000 q/s" "$W/mix.txt" 2000

# Fill until the cache evicts (the bound is reached), in rounds of the distinct names.
taskset -c 1 dnsperf -s 127.0.0.1 -p $DNS -d "$W/fill.txt" -n 1 -c 4 -q 4000 -Q 25000 \
  >"$W/fill.out" 2>&1 || true
ev=$(metric coredns_cache_evictions_total)
printf '%-34s %10s %10s   (%s entries, %s evictions, cache %s bytes)\n' "cache filled (1.5M names)" \
  "$(kb VmRSS)" "-" "$(metric coredns_cache_entries)" "$ev" "$(metric meshdns_cache_bytes)"
load "full cache, mix 2,000 q/s" "$W/mix.txt" 2000
load "full cache, misses 10,000 q/s" "$W/fill.txt" 10000 10
printf '%-34s %10s\n' "peak (VmHWM)" "$(kb VmHWM)"
