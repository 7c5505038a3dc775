#!/bin/bash
# The project's benchmark. Every figure is a ratio between servers measured in the same run,
# with the method of ../shared/bench/compare.sh (whose functions it reuses, so the table is
# the same one): CPU microseconds the server spends per answered query, from the kernel's
# accounting of the server process; the server pinned to CPU 0, dnsperf and the upstream
# (the reflector, which is also the floor) on CPU 1.
#
#   bench/run.sh            everything below, in one run
#   bench/run.sh compare    meshdns next to unbound, dnsmasq, dnsdist, kresd, pdns-recursor
#   bench/run.sh hitfloor N cache hits against the floor, N pairs in turn, median ratio
#   bench/run.sh missdnsdist N  cache misses against dnsdist, N pairs in turn, median ratio
#   bench/run.sh mesh N     mesh answers next to cache hits, N pairs in turn (default 7),
#                           median ratio (PERF.md: within 5 %)
#   bench/run.sh instr      user-space instructions per hit, mesh answer and miss (callgrind)
#   bench/run.sh threads N  --threads 1 and 2: CPU per query per thread at the same load,
#                           N pairs in turn (default 5), median ratio
#   bench/run.sh sync       100,000 ServiceEntries from the test API server (bench/sync_bench.py)
#
# Needs root (taskset, peers), the peers (installed on first use with compare.sh install),
# and ../shared/bench/compare.sh from the project's shared material (COMPARE=path overrides).
set -u
cd "$(dirname "$0")/.."
TOP=$(pwd)
COMPARE=${COMPARE:-$TOP/../shared/bench/compare.sh}
[ -f "$COMPARE" ] || { echo "bench: $COMPARE not found (set COMPARE=)" >&2; exit 2; }
export BENCH_DIR=${BENCH_DIR:-/tmp/meshdns-bench}
mkdir -p "$BENCH_DIR"

build() {
	bash scripts/deps.sh
	cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DMESHDNS_TESTS=OFF >/dev/null &&
		cmake --build build-bench -j"$(nproc)" --target meshdns >/dev/null || exit 1
	command -v dnsdist >/dev/null && command -v pdns_recursor >/dev/null ||
		bash "$COMPARE" install
}

AGENT_BASE="$TOP/build-bench/meshdns --no-interface --upstream 127.0.0.1:5399 --cluster-dns 127.0.0.1:5399 --metrics off --health off"

compare() {
	echo "== compare: meshdns and its peers (compare.sh run)"
	AGENT="$AGENT_BASE --listen 127.0.0.1:5310 --serviceentries none" bash "$COMPARE" run |
		tee "$BENCH_DIR/compare.txt"
	awk 'NR>1 && $1=="reflector"{f=$2} NR>1 && $1!="reflector" && $2!="nan"{
		printf "  %-10s hit/floor %.2f\n", $1, $2/f }' "$BENCH_DIR/compare.txt"
	awk '$1=="dnsdist"{d=$3} $1=="meshdns"{m=$3} END{ if (d>0) printf "  meshdns miss_us / dnsdist miss_us %.2f\n", m/d }' \
		"$BENCH_DIR/compare.txt"
}

# Generates a ServiceEntries list with N hosts in zone bench-mesh (one per entry).
mesh_file() {
	/usr/bin/python3 - "$1" "$2" <<'EOF'
import json, sys
n, path = int(sys.argv[1]), sys.argv[2]
items = [{"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
          "metadata": {"name": "svc%d" % i, "namespace": "bench", "uid": "u%d" % i,
                       "resourceVersion": str(i + 1), "creationTimestamp": "2026-01-01T00:00:00Z"},
          "spec": {"hosts": ["svc%d.ns.bench-mesh" % i],
                   "addresses": ["240.%d.%d.%d" % (i >> 16 & 255, i >> 8 & 255, i & 255)],
                   "location": "MESH_INTERNAL", "resolution": "DNS"}} for i in range(n)]
json.dump({"apiVersion": "v1", "kind": "List", "items": items}, open(path, "w"))
EOF
}

# The ServiceEntries of mesh_file with 1,000 hosts, and a query for each in mesh.txt.
mesh_set() {
	mesh_file 1000 "$BENCH_DIR/mesh.json"
	for i in $(seq 0 999); do echo "svc$i.ns.bench-mesh A"; done >"$BENCH_DIR/mesh.txt"
}

# Starts the reflector and one meshdns (extra flags in $1, run under the command in $2 if
# any); sets RPID and APID.
start_pair() {
	gcc -O2 -o "$BENCH_DIR/reflector" "$(dirname "$COMPARE")/reflector.c" || exit 1
	taskset -c 1 "$BENCH_DIR/reflector" 5399 </dev/null >/dev/null 2>&1 &
	RPID=$!
	# shellcheck disable=SC2086
	setsid ${2:-} $AGENT_BASE --listen 127.0.0.1:5310 $1 </dev/null >"$BENCH_DIR/agent.log" 2>&1 &
	APID=$!
	sleep 1
	pin "$APID"
}

stop_pair() {
	kill "$APID" "$RPID" 2>/dev/null
	wait "$APID" "$RPID" 2>/dev/null
}

# Pair $1 of a series: CPU per query of two servers on the same queries, the first one
# first in odd pairs. $2, $3, $4: port, process and query file of the first; $5, $6, $7:
# of the second; $8: the rate. Sets A_US and B_US.
in_turn() {
	if [ $(($1 % 2)) -eq 1 ]; then
		A_US=$(per_query "$2" "$3" "$4" "$8")
		B_US=$(per_query "$5" "$6" "$7" "$8")
	else
		B_US=$(per_query "$5" "$6" "$7" "$8")
		A_US=$(per_query "$2" "$3" "$4" "$8")
	fi
}

# CPU per mesh answer and per cache hit of one agent, measured in turn N times (the order
# alternating); the median of the N ratios. Single pairs here range over +-10 %.
mesh() {
	local n=${1:-7} i h m ratios=""
	echo "== mesh: $n paired measurements of cache hits and mesh answers, same process"
	mesh_set
	start_pair "--serviceentries $BENCH_DIR/mesh.json"
	taskset -c 1 dnsperf -s 127.0.0.1 -p 5310 -d "$BENCH_DIR/hot.txt" -n 2 -q 100 >/dev/null 2>&1
	for i in $(seq 1 "$n"); do
		in_turn "$i" 5310 "$APID" "$BENCH_DIR/hot.txt" 5310 "$APID" "$BENCH_DIR/mesh.txt" \
			"$HIT_QPS"
		h=$A_US m=$B_US
		ratios="$ratios $(awk -v h="$h" -v m="$m" 'BEGIN{ printf "%.3f", m / h }')"
		printf '  pair %d: hit_us %s, mesh_us %s\n' "$i" "$h" "$m"
	done
	stop_pair
	median_of "mesh/hit" "$ratios"
}

# User-space instructions per answer under callgrind (valgrind), which counts the same on a
# busy machine as on an idle one: the kernel's share (about 80 % of a miss) is not counted,
# so this shows the code's own cost and its changes, not the ratios above. 10,000 cache hits
# (1,000 hot names), 10,000 mesh answers and 20,000 misses, each set between a zeroing and a
# dump of the counters of one running agent, at 3,000 q/s (valgrind runs it about 50 x slower).
instr() {
	echo "== instr: user-space instructions per answer (callgrind; hits, mesh answers, misses)"
	command -v valgrind >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		valgrind >/dev/null || { echo "  valgrind is not installed" >&2; return; }
	mesh_set
	tail -n 20000 "$BENCH_DIR/unique.txt" >"$BENCH_DIR/instr-miss.txt"
	# outside the directory the agent watches for its ServiceEntries file
	local cg=$BENCH_DIR/callgrind
	rm -rf "$cg" && mkdir -p "$cg"
	start_pair "--serviceentries $BENCH_DIR/mesh.json" \
		"valgrind --tool=callgrind --callgrind-out-file=$cg/out"
	for _ in $(seq 60); do
		kdig @127.0.0.1 -p 5310 +short +time=1 +tries=1 svc0.ns.bench-mesh >/dev/null 2>&1 &&
			break
		sleep 0.5
	done
	taskset -c 1 dnsperf -s 127.0.0.1 -p 5310 -d "$BENCH_DIR/hot.txt" -n 2 -q 20 -Q 3000 \
		>/dev/null 2>&1
	local part=0 set file n done_q ir
	local -A per
	for set in hit mesh miss; do
		case $set in
		hit) file=$BENCH_DIR/hot.txt n=10 ;;
		mesh) file=$BENCH_DIR/mesh.txt n=10 ;;
		miss) file=$BENCH_DIR/instr-miss.txt n=1 ;;
		esac
		callgrind_control -z "$APID" >/dev/null 2>&1
		done_q=$(taskset -c 1 dnsperf -s 127.0.0.1 -p 5310 -d "$file" -n "$n" -q 20 -Q 3000 \
			2>&1 | awk '/Queries completed/{print $3}')
		callgrind_control -d "$set" "$APID" >/dev/null 2>&1
		part=$((part + 1))
		ir=$(awk '/^summary:/{print $2}' "$cg/out.$part")
		per[$set]=$(awk -v i="$ir" -v q="$done_q" \
			'BEGIN{ if (q > 0) printf "%.0f", i / q; else print "nan" }')
		printf '  %-5s %s answers, %s instructions each\n' "$set" "$done_q" "${per[$set]}"
	done
	stop_pair
	awk -v h="${per[hit]}" -v m="${per[mesh]}" \
		'BEGIN{ printf "  mesh/hit %.3f (instructions)\n", m / h }'
}

# CPU microseconds per query of a meshdns with $1 threads while dnsperf offers $2 q/s of hot
# names from 32 client sockets (so that SO_REUSEPORT spreads them evenly over the threads).
threads_run() {
	start_pair "--serviceentries none --threads $1"
	taskset -c 1 dnsperf -s 127.0.0.1 -p 5310 -d "$BENCH_DIR/hot.txt" -n 2 -q 100 >/dev/null 2>&1
	local c0 c1 out
	c0=$(cpu_ticks "$APID")
	out=$(taskset -c 1 dnsperf -s 127.0.0.1 -p 5310 -d "$BENCH_DIR/hot.txt" -l "$SECS" -c 32 \
		-q 2000 -Q "$2" 2>&1)
	c1=$(cpu_ticks "$APID")
	cat /proc/"$APID"/task/*/stat | awk '{ t = t (t ? ":" : "") $14 + $15 } END{ print t }' \
		>"$BENCH_DIR/threads-$1.txt"
	stop_pair
	echo "$out" | awk -v c=$((c1 - c0)) -v t="$(getconf CLK_TCK)" \
		'/Queries completed/{n=$3} END{ if (n > 0) printf "%.2f", c * 1e6 / t / n; else printf "nan" }'
}

threads() {
	local n=${1:-5} i one two ratios=""
	echo "== threads: CPU per query per thread, --threads 1 at Q/2 and --threads 2 at Q, $n pairs"
	echo "   Each worker thread sees the same load in both runs. The machine has 2 cores and"
	echo "   dnsperf needs one, so both workers share CPU 0: if no lock or shared cache line"
	echo "   were contended, CPU per query is the same, and each thread on its own core would"
	echo "   serve what one thread serves alone. On a shared core each thread's socket fills"
	echo "   while the other runs, so wake-ups read more queries: a ratio above 2 is that"
	echo "   batching. Ratio per pair: 2 x cpu1 / cpu2."
	local q=$((HIT_QPS / 2))
	for i in $(seq 1 "$n"); do
		one=$(threads_run 1 "$q")
		two=$(threads_run 2 $((2 * q)))
		ratios="$ratios $(awk -v a="$one" -v b="$two" 'BEGIN{ printf "%.3f", 2 * a / b }')"
		printf '  pair %d: threads=1 at %d q/s %s, threads=2 at %d q/s %s (ticks per thread %s)\n' \
			"$i" "$q" "$one" $((2 * q)) "$two" "$(cat "$BENCH_DIR/threads-2.txt")"
	done
	median_of "throughput ratio with 2 idle cores" "$ratios"
}

# Prints label $1 with the median, min and max of the ratios in $2 (space-separated).
median_of() {
	echo "$2" | tr ' ' '\n' | grep . | sort -n |
		awk -v l="$1" '{ r[NR] = $1 } END{ printf "  %s: median %.3f (min %.3f, max %.3f, %d pairs)\n",
			l, r[int((NR + 1) / 2)], r[1], r[NR], NR }'
}

# hit_us of meshdns and of the floor measured in turn N times; the median of the N ratios is
# steadier than one pair on a noisy virtual machine (single pairs here range over +-10 %).
hitfloor() {
	local n=${1:-9} i f h ratios=""
	echo "== hitfloor: $n paired measurements of the floor and of meshdns cache hits"
	gcc -O2 -o "$BENCH_DIR/reflector" "$(dirname "$COMPARE")/reflector.c" || exit 1
	start_pair "--serviceentries none"
	taskset -c 1 dnsperf -s 127.0.0.1 -p 5310 -d "$BENCH_DIR/hot.txt" -n 2 -q 100 >/dev/null 2>&1
	for i in $(seq 1 "$n"); do
		pin "$RPID"
		f=$(per_query 5399 "$RPID" "$BENCH_DIR/hot.txt" "$HIT_QPS")
		taskset -pc 1 "$RPID" >/dev/null
		h=$(per_query 5310 "$APID" "$BENCH_DIR/hot.txt" "$HIT_QPS")
		ratios="$ratios $(awk -v h="$h" -v f="$f" 'BEGIN{ printf "%.3f", h / f }')"
		printf '  pair %d: floor %s, meshdns %s\n' "$i" "$f" "$h"
	done
	stop_pair
	median_of "hit/floor" "$ratios"
}

# miss_us of meshdns and of dnsdist measured in turn N times, each pair on the same names,
# new to both; the order alternates. Single runs of compare swing by +-15 % on this VM.
missdnsdist() {
	local n=${1:-7} i a d ratios="" from
	echo "== missdnsdist: $n paired measurements of cache misses, meshdns and dnsdist"
	start_pair "--serviceentries none"
	cat >"$BENCH_DIR/dnsdist.conf" <<EOC
setLocal("127.0.0.1:5313")
newServer({address="127.0.0.1:$UP"})
pc = newPacketCache(500000, {maxTTL=86400, minTTL=0})
getPool(""):setCache(pc)
setSecurityPollSuffix("")
EOC
	setsid dnsdist --supervised --disable-syslog -C "$BENCH_DIR/dnsdist.conf" </dev/null \
		>"$BENCH_DIR/dnsdist.log" 2>&1 &
	local DPID=$!
	sleep 2
	pin "$DPID"
	for i in $(seq 1 "$n"); do
		from=$((1000001 + (i - 1) * MISS_QPS * (SECS + 2)))
		tail -n +"$from" "$BENCH_DIR/unique.txt" | head -n $((MISS_QPS * (SECS + 2))) \
			>"$BENCH_DIR/miss-pair.txt"
		in_turn "$i" 5310 "$APID" "$BENCH_DIR/miss-pair.txt" 5313 "$DPID" \
			"$BENCH_DIR/miss-pair.txt" "$MISS_QPS"
		a=$A_US d=$B_US
		ratios="$ratios $(awk -v a="$a" -v d="$d" 'BEGIN{ printf "%.3f", a / d }')"
		printf '  pair %d: meshdns %s, dnsdist %s\n' "$i" "$a" "$d"
	done
	kill "$DPID" 2>/dev/null
	wait "$DPID" 2>/dev/null
	stop_pair
	median_of "miss meshdns/dnsdist" "$ratios"
}

sync_bench() {
	echo "== sync: 100,000 ServiceEntries from the test API server"
	if [ -f bench/sync_bench.py ]; then
		MESHDNS="$TOP/build-bench/meshdns" /usr/bin/python3 bench/sync_bench.py
	else
		echo "  bench/sync_bench.py is not in this tree"
	fi
}

# Anything else on the benchmark's ports would take part of the load: a leftover agent in
# the SO_REUSEPORT group answers half the queries, and every figure halves with it. The
# peers of a run just before may take a few seconds to exit.
for _ in $(seq 20); do
	busy=$(ss -Hulpn 2>/dev/null | awk '$4 ~ /:(53(1[0-5]|99))$/')
	[ -z "$busy" ] && break
	sleep 0.5
done
if [ -n "$busy" ]; then
	echo "bench: ports 5310-5315 and 5399 must be free; in use:" >&2
	echo "$busy" >&2
	exit 2
fi

COMPARE_LIB=1 source "$COMPARE"
queries
build
case "${1:-all}" in
compare) compare ;;
hitfloor) hitfloor "${2:-9}" ;;
missdnsdist) missdnsdist "${2:-7}" ;;
mesh) mesh "${2:-7}" ;;
instr) instr ;;
threads) threads "${2:-5}" ;;
sync) sync_bench ;;
all)
	echo "machine: $(nproc) cores, $(awk '/model name/{$1=$2=$3="";print;exit}' /proc/cpuinfo), $(uname -r)"
	compare
	hitfloor 9
	missdnsdist 7
	mesh
	instr
	threads
	sync_bench
	;;
*)
	echo "usage: bench/run.sh [all|compare|hitfloor [N]|missdnsdist [N]|mesh [N]|instr|threads [N]|sync]" >&2
	exit 2
	;;
esac
