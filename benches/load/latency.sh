#!/usr/bin/env bash
# Added latency at a fixed rate, rampart against nginx as a reverse proxy, in alternating
# runs: a quicker look at goal 2 than the harness (benches/load/run.sh), which measures it
# among all peers. An nginx upstream on 127.0.0.1:18080 (CPU 1), nginx proxying it on :18082
# (one worker, retries, keep-alive pool and a rate limit far above the load, CPU 0) and
# rampart (release build or $BIN, benches/load/rampart-bench.yaml) on :18090 (CPU 0); oha on CPU 1
# sends RATE req/s over 64 connections for SECS seconds, open loop with latency correction,
# to the upstream directly, then each proxy. Prints p50/p90/p99/p99.9 per run.
# Usage: [BIN=path] benches/load/latency.sh [ROUNDS] [RATE] [SECS]   (defaults 3 5000 8)
set -euo pipefail
rounds=${1:-3}
rate=${2:-5000}
secs=${3:-8}
# BIN measures a binary built elsewhere (benches/load/pgo.sh's) instead of the release build;
# resolved before the move to the repository root.
given=${BIN:+$(realpath "$BIN")}
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=benches/load/upstream.sh
source benches/load/upstream.sh
need nginx oha curl taskset python3
bin=$(rampart_bin "$given")
start_compared "$bin"

echo "fixed rate $rate req/s, 64 connections, ${secs}s per run, latency in µs (oha, latency-corrected)"
for round in $(seq "$rounds"); do
    for target in direct:18080 nginx:18082 rampart:18090; do
        name=${target%%:*}
        port=${target##*:}
        taskset -c 1 oha -n $((rate * secs)) -q "$rate" -c 64 --latency-correction --no-tui \
            --output-format json -t 5s "http://127.0.0.1:$port/" > "$out/$name.json"
        python3 - "$round" "$name" "$out/$name.json" <<'PY'
import json, sys
round_, name, path = sys.argv[1:]
d = json.load(open(path))
p = {k: v * 1e6 for k, v in d["latencyPercentiles"].items()}
codes = d["statusCodeDistribution"]
ok = codes.get("200", 0)
print(f"round {round_} {name:8s} p50 {p['p50']:6.0f} p90 {p['p90']:6.0f} p99 {p['p99']:6.0f} "
      f"p99.9 {p['p99.9']:6.0f}  200s {ok} of {sum(codes.values())}")
PY
    done
done
