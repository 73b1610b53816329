#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind (repeatable on a busy machine, unlike
# wall time): an nginx upstream on 127.0.0.1:18080, rampart (profiling build) on :18090 with
# $CONFIG (default benches/load/rampart-bench.yaml), a fixed number of keep-alive requests
# from oha, then Ir / request. Usage: benches/load/profile.sh [REQUESTS] [PATH]
# (defaults 20000 /). Leaves callgrind.out in $OUT (default /tmp/rampart-profile) for
# callgrind_annotate. BIN=path profiles that binary instead of building one.
set -euo pipefail
requests=${1:-20000}
path=${2:-/}
out=${OUT:-/tmp/rampart-profile}
mkdir -p "$out"
out=$(realpath "$out")
# Relative to where the script was called from, before it moves to the repository root.
config=$(realpath "${CONFIG:-$(dirname "${BASH_SOURCE[0]}")/rampart-bench.yaml}")
# BIN profiles a binary built elsewhere (a PGO build, another commit) instead.
given=${BIN:+$(realpath "$BIN")}
[ -z "$given" ] || [ -x "$given" ] || { echo "no binary at $given" >&2; exit 1; }
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
for tool in nginx oha curl valgrind callgrind_control callgrind_annotate; do
    command -v "$tool" >/dev/null || { echo "missing $tool (bash ../shared/bench/setup.sh; apt-get install valgrind)" >&2; exit 1; }
done
if [ -n "$given" ]; then
    bin=$given
else
    cargo build --profile profiling --locked --bin rampart >&2
    bin=target/profiling/rampart
fi

# shellcheck source=benches/load/upstream.sh
source benches/load/upstream.sh
upstream_conf "$out"
nginx -c "$out/upstream.conf" -p "$out" &
nginx_pid=$!
trap 'kill $nginx_pid $proxy_pid 2>/dev/null || true' EXIT
proxy_pid=
for _ in $(seq 50); do curl -sf http://127.0.0.1:18080/ >/dev/null && break; sleep 0.1; done

export BENCH_LISTEN=127.0.0.1:18090 BENCH_UPSTREAM=127.0.0.1:18080 BENCH_ADMIN_PORT=18091 RAMPART_LOG=${RAMPART_LOG:-warn}
valgrind --tool=callgrind --compress-strings=no --compress-pos=no --callgrind-out-file="$out/callgrind.out" \
    "$bin" run -c "$config" 2>"$out/valgrind.log" &
proxy_pid=$!
# Up to 2 minutes: 10,000 upstreams take a while to build under valgrind.
ready=
for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:18090$path" >/dev/null && { ready=1; break; }
    sleep 0.2
done
[ -n "$ready" ] || { echo "rampart did not answer $path within 2 minutes (see $out/valgrind.log)" >&2; exit 1; }
# Instructions spent starting up and on the sanity request, measured apart.
callgrind_control --dump=startup "$proxy_pid" >/dev/null
callgrind_control --zero "$proxy_pid" >/dev/null
oha --no-tui -n "$requests" -c 16 "http://127.0.0.1:18090$path" > "$out/oha.txt"
callgrind_control --dump=load "$proxy_pid" >/dev/null
kill -TERM "$proxy_pid"; wait "$proxy_pid" || true
proxy_pid=
load=$(ls -t "$out"/callgrind.out* | while read -r f; do grep -q '^desc: Trigger: dump load' "$f" && { echo "$f"; break; }; done)
ir=$(callgrind_annotate "$load" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
ok=$(awk '/\[200\]/ {print $2; exit}' "$out/oha.txt")
# A count that includes refused or failed requests would not be per proxied request.
[ "${ok:-0}" = "$requests" ] || { echo "only ${ok:-0} of $requests requests answered 200 (see $out/oha.txt)" >&2; exit 1; }
[ -n "$ir" ] || { echo "no instruction count in $load" >&2; exit 1; }
echo "requests: $requests ($ok answered 200), path $path"
echo "instructions: $ir total, $((ir / requests)) per request"
echo "profile: callgrind_annotate $load | head -60"
