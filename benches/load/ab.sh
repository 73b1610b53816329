#!/usr/bin/env bash
# CPU per request of two rampart builds in adjacent, alternating pairs: the firmer look at a
# change that the harness's rounds cannot resolve on this host, whose speed drifts by ±25 %
# within minutes (the ratio within a pair cancels most of it). OLD on :18090 and NEW on :18095
# (benches/load/rampart-bench.yaml), both pinned to CPU 0; the nginx upstream and wrk
# (-t1 -c64) on CPU 1. CPU is each process's user + system time from /proc/PID/stat.
# Prints each pair and the median NEW/OLD ratio.
# Usage: benches/load/ab.sh OLD_BIN NEW_BIN [PAIRS] [PATH] [SECS]   (defaults 8 / 5)
set -euo pipefail
old=$(realpath "$1")
new=$(realpath "$2")
pairs=${3:-8}
path=${4:-/}
secs=${5:-5}
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=benches/load/upstream.sh
source benches/load/upstream.sh
need nginx wrk curl taskset python3
for port in 18080 18090 18095; do
    ! curl -s -o /dev/null "http://127.0.0.1:$port/" || { echo "something already answers on :$port" >&2; exit 1; }
done
out=$(mktemp -d)
upstream_conf "$out"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null; rm -rf "$out"' EXIT
taskset -c 1 nginx -c "$out/upstream.conf" -p "$out" & pids+=($!)
start() {
    BENCH_LISTEN=127.0.0.1:$2 BENCH_UPSTREAM=127.0.0.1:18080 BENCH_ADMIN_PORT=$(($2 + 1)) RAMPART_LOG=warn \
        taskset -c 0 "$1" run -c benches/load/rampart-bench.yaml > "$out/$2.log" 2>&1 & pids+=($!)
}
start "$old" 18090
old_pid=$!
start "$new" 18095
new_pid=$!
for port in 18080 18090 18095; do
    ready=
    for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port$path" >/dev/null && { ready=1; break; }; sleep 0.1; done
    [ -n "$ready" ] || { echo "nothing answers on :$port" >&2; exit 1; }
done

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# "µs/req req/s" of one wrk run against PORT served by PID; stops on errors.
measure() {
    local port=$1 pid=$2 before report n
    before=$(ticks "$pid")
    report=$(taskset -c 1 wrk -t1 -c64 -d"${secs}s" "http://127.0.0.1:$port$path")
    if grep -qE "Non-2xx|Socket errors" <<<"$report"; then
        echo "errors against :$port:" >&2
        echo "$report" >&2
        exit 1
    fi
    n=$(awk '/requests in/ {print $1}' <<<"$report")
    python3 -c "import os; t = ($(ticks "$pid") - $before) / os.sysconf('SC_CLK_TCK'); print(f'{t * 1e6 / $n:.3f} {$n / $secs:.0f}')"
}
# Warm-up: connections, pools, page cache.
measure 18090 "$old_pid" >/dev/null
measure 18095 "$new_pid" >/dev/null
echo "CPU per request, wrk -t1 -c64, ${secs}s per run, path $path, $pairs pairs"
for i in $(seq "$pairs"); do
    if ((i % 2)); then
        o=$(measure 18090 "$old_pid"); n=$(measure 18095 "$new_pid")
    else
        n=$(measure 18095 "$new_pid"); o=$(measure 18090 "$old_pid")
    fi
    echo "$o $n"
done > "$out/pairs.txt"
python3 - "$out/pairs.txt" <<'PY'
import statistics, sys
rows = [tuple(map(float, line.split())) for line in open(sys.argv[1])]
for o, orate, n, nrate in rows:
    print(f"old {o:6.2f} µs {orate:9,.0f} req/s   new {n:6.2f} µs {nrate:9,.0f} req/s   new/old {n / o:5.3f}")
ratios = sorted(n / o for o, _, n, _ in rows)
print(f"median new/old CPU per request {statistics.median(ratios):.3f} "
      f"(range {ratios[0]:.3f}-{ratios[-1]:.3f})")
PY
