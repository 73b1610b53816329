#!/usr/bin/env bash
# Max throughput of rampart against nginx in adjacent pairs: a firmer look at goal 1 than the
# harness's three rounds on a host whose speed drifts by ±25 % within minutes. Each pair
# runs wrk (-t1 -c64, CPU 1) against nginx and rampart back to back, in alternating order,
# and the ratio within a pair cancels most of the drift. The same processes and configs as
# latency.sh: nginx upstream on CPU 1, nginx proxy (:18082) and rampart (:18090,
# benches/load/rampart-bench.yaml) on CPU 0. Prints each pair and the median ratio.
# Usage: [BIN=path] benches/load/pairs.sh [PAIRS] [PATH] [SECS]   (defaults 12 / 5)
set -euo pipefail
pairs=${1:-12}
path=${2:-/}
secs=${3:-5}
# Resolved before the move to the repository root, as in the other load scripts.
given=${BIN:+$(realpath "$BIN")}
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=benches/load/upstream.sh
source benches/load/upstream.sh
need nginx wrk curl taskset python3
bin=$(rampart_bin "$given")
start_compared "$bin"

# req/s of one wrk run on PORT; stops the script on socket errors, non-2xx answers or no run.
rate() {
    local port=$1 report
    report=$(taskset -c 1 wrk -t1 -c64 -d"${secs}s" "http://127.0.0.1:$port$path")
    if grep -qE "Non-2xx|Socket errors" <<<"$report" || ! grep -q "^Requests/sec:" <<<"$report"; then
        echo "errors against :$port:" >&2
        echo "$report" >&2
        exit 1
    fi
    awk '/^Requests\/sec:/ {print $2}' <<<"$report"
}

echo "max throughput, wrk -t1 -c64, ${secs}s per run, path $path, $pairs pairs"
for i in $(seq "$pairs"); do
    if ((i % 2)); then
        n=$(rate 18082); r=$(rate 18090)
    else
        r=$(rate 18090); n=$(rate 18082)
    fi
    echo "$n $r"
done > "$out/pairs.txt"
python3 - "$out/pairs.txt" <<'PY'
import statistics, sys
rows = [tuple(map(float, line.split())) for line in open(sys.argv[1])]
for n, r in rows:
    print(f"nginx {n:9,.0f}  rampart {r:9,.0f}  rampart/nginx {r / n:5.2f}")
ratios = sorted(r / n for n, r in rows)
print(f"median rampart/nginx {statistics.median(ratios):.3f} "
      f"(range {ratios[0]:.2f}-{ratios[-1]:.2f}); medians nginx "
      f"{statistics.median(n for n, _ in rows):,.0f}, rampart {statistics.median(r for _, r in rows):,.0f} req/s")
PY
