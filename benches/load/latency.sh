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
[ -z "$given" ] || [ -x "$given" ] || { echo "no binary at $given" >&2; exit 1; }
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
for tool in nginx oha curl taskset python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool (bash ../shared/bench/setup.sh)" >&2; exit 1; }
done
if [ -n "$given" ]; then
    bin=$given
else
    cargo build --release --locked --bin rampart >&2
    bin=$PWD/target/release/rampart
fi
out=$(mktemp -d)
mkdir -p "$out/px"
# shellcheck source=benches/load/upstream.sh
source benches/load/upstream.sh
upstream_conf "$out"
# The same resilience switched on as for rampart; the upstream is listed twice because nginx
# ignores max_fails for a single server and would have no peer to retry on.
cat > "$out/px.conf" <<NGINX
worker_processes 1;
daemon off;
pid $out/px.pid;
error_log $out/px-error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $out/px;
    proxy_temp_path $out/px;
    keepalive_requests 1000000;
    limit_req_zone \$binary_remote_addr zone=rl:10m rate=1000000r/s;
    upstream up {
        server 127.0.0.1:18080 max_fails=3 fail_timeout=10s;
        server 127.0.0.1:18080 max_fails=3 fail_timeout=10s;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:18082 backlog=4096;
        location / {
            limit_req zone=rl burst=100000 nodelay;
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_connect_timeout 1s;
            proxy_next_upstream error timeout http_502 http_503 http_504;
            proxy_next_upstream_tries 3;
        }
    }
}
NGINX
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null; rm -rf "$out"' EXIT
taskset -c 1 nginx -c "$out/upstream.conf" -p "$out" & pids+=($!)
taskset -c 0 nginx -c "$out/px.conf" -p "$out" & pids+=($!)
BENCH_LISTEN=127.0.0.1:18090 BENCH_UPSTREAM=127.0.0.1:18080 BENCH_ADMIN_PORT=18091 RAMPART_LOG=warn \
    taskset -c 0 "$bin" run -c benches/load/rampart-bench.yaml > "$out/rampart.log" 2>&1 & pids+=($!)
for port in 18080 18082 18090; do
    ready=
    for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/" >/dev/null && { ready=1; break; }; sleep 0.1; done
    [ -n "$ready" ] || { echo "nothing answers on :$port" >&2; exit 1; }
done

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
