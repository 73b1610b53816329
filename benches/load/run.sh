#!/usr/bin/env bash
# rampart beside direct, nginx, HAProxy and Caddy on this machine, with ../shared/bench:
# one core each, 3 interleaved rounds, paths / and /4k, fixed rates 2000 and 5000 req/s.
# Two rampart targets: the bench route alone (rampart-bench.yaml) and the same route among
# 10,000 upstreams (cost independent of config size). Then 1,000 idle keep-alive client
# connections against rampart alone (RSS). Writes results/<run>/table.md with the figures of
# docs/performance.md. Needs ../shared/bench/setup.sh first (nginx, haproxy, caddy, wrk, oha).
# Then instructions per request for the route alone and among 10,000 (benches/load/profile.sh,
# valgrind). Usage: benches/load/run.sh [extra bench.py args, e.g. --quick]; with
# BIN=$(benches/load/pgo.sh) it measures the profile-guided build.
set -euo pipefail
# BIN measures a binary built elsewhere (benches/load/pgo.sh's) instead of the release build;
# resolved before the move to the repository root.
given=${BIN:+$(realpath "$BIN")}
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# Checked now, not after the half hour of harness rounds that come first.
for tool in nginx oha curl valgrind callgrind_control callgrind_annotate; do
    command -v "$tool" >/dev/null || { echo "missing $tool (bash ../shared/bench/setup.sh; apt-get install valgrind)" >&2; exit 1; }
done
root=$PWD
harness=${BENCH_HARNESS:-$root/../shared/bench/bench.py}
[ -f "$harness" ] || { echo "no harness at $harness" >&2; exit 1; }
# shellcheck source=benches/load/upstream.sh
source benches/load/upstream.sh
bin=$(rampart_bin "$given")
out=${OUT:-$root/benches/load/results/run-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
python3 "$root/benches/load/many_upstreams.py" 10000 > "$out/rampart-10k.yaml"
# The harness sets BENCH_LISTEN/BENCH_UPSTREAM; any values do for validation.
BENCH_LISTEN=127.0.0.1:1 BENCH_UPSTREAM=127.0.0.1:2 "$bin" validate -c "$out/rampart-10k.yaml" >&2

# The harness starts each target pinned to the proxy CPU; RAMPART_LOG=warn turns off the
# per-request access log, as every peer runs with access logging off.
cmd() { echo "RAMPART_LOG=warn BENCH_ADMIN_PORT=$2 exec $bin run -c $1"; }
python3 "$harness" \
    --target rampart=http://127.0.0.1:18090 \
    --target-cmd rampart="$(cmd "$root/benches/load/rampart-bench.yaml" 18091)" \
    --target rampart-10k=http://127.0.0.1:18092 \
    --target-cmd rampart-10k="$(cmd "$out/rampart-10k.yaml" 18093)" \
    --out "$out/harness" "$@"

python3 "$root/benches/load/idle_connections.py" "$bin" "$root/benches/load/rampart-bench.yaml" 1000 \
    > "$out/idle-connections.json"

# The route alone and among 10,000 upstreams again, as instructions per request (callgrind,
# benches/load/profile.sh): on a busy host the wall-clock CPU above moves by more than the
# 5 % the goal allows between rounds of the same build; instruction counts repeat.
instructions() {
    OUT="$out/callgrind-$1" CONFIG="$2" BIN="${BIN:-}" "$root/benches/load/profile.sh" 20000 / \
        | awk '/^instructions:/ {print $4}'
}
one=$(instructions rampart "$root/benches/load/rampart-bench.yaml")
many=$(instructions rampart-10k "$out/rampart-10k.yaml")
for n in "$one" "$many"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "no instruction count from profile.sh (got '$n')" >&2; exit 1; }
done
echo "{\"rampart\": $one, \"rampart-10k\": $many}" > "$out/instructions.json"

python3 "$root/benches/load/table.py" "$out/harness/results.json" "$out/idle-connections.json" \
    "$out/instructions.json" | tee "$out/table.md"
