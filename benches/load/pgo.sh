#!/usr/bin/env bash
# Profile-guided release build (PGO). Builds rampart instrumented, runs it under the load the
# harness measures (an nginx upstream on 127.0.0.1:18080, rampart with
# benches/load/rampart-bench.yaml on :18090; wrk over HTTP/1.1 on / and /4k, h2load over h2c
# on /), merges the profile with the toolchain's llvm-profdata and builds the release binary
# again with it. Code the training does not reach (TLS, CONNECT, retries after failures) is
# laid out as cold, not left out. Prints the binary's path: target/pgo/release/rampart.
# The Dockerfile's build stage runs this same script, so it needs only Debian packages
# (nginx, wrk, nghttp2-client) and rustup: no curl, no cargo-installed tools.
# Usage: BIN=$(benches/load/pgo.sh) benches/load/run.sh
set -euo pipefail
secs=${PGO_SECS:-10}
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$PWD
for tool in nginx wrk h2load rustup; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install nginx wrk nghttp2-client)" >&2; exit 1; }
done
rustup component add llvm-tools >&2
profdata=$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | awk '/^host:/ {print $2}')/bin/llvm-profdata
[ -x "$profdata" ] || { echo "no llvm-profdata at $profdata" >&2; exit 1; }

work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT
# Build scripts are instrumented too and write profiles of their own there; the server's
# profile goes to a directory of its own. A fixed path keeps the build cached between runs.
RUSTFLAGS="-Cprofile-generate=$root/target/pgo-generate/build-profiles" \
    cargo build --release --locked --bin rampart --target-dir target/pgo-generate >&2
instrumented=target/pgo-generate/release/rampart

# shellcheck source=benches/load/upstream.sh
source benches/load/upstream.sh
upstream_conf "$work"
nginx -c "$work/upstream.conf" -p "$work" & pids+=($!)
LLVM_PROFILE_FILE="$work/server/%p.profraw" BENCH_LISTEN=127.0.0.1:18090 \
    BENCH_UPSTREAM=127.0.0.1:18080 BENCH_ADMIN_PORT=18091 RAMPART_LOG=warn \
    "$instrumented" run -c benches/load/rampart-bench.yaml >&2 &
server=$!
pids+=("$server")
# `rampart probe` is the readiness check; its own profile goes elsewhere, not into the server's.
ready=
for _ in $(seq 50); do
    LLVM_PROFILE_FILE="$work/probe/%p.profraw" "$instrumented" probe http://127.0.0.1:18090/ \
        >/dev/null 2>&1 && { ready=1; break; }
    sleep 0.1
done
[ -n "$ready" ] || { echo "the instrumented rampart did not answer on :18090" >&2; exit 1; }
for path in / /4k; do
    wrk -t1 -c64 -d"${secs}s" "http://127.0.0.1:18090$path" > "$work/load.txt"
    # "N requests in Ts": N must not be 0. "Non-2xx or 3xx responses" appears only when
    # some answers were neither.
    if grep -q 'Non-2xx' "$work/load.txt" || ! awk '/ requests in / { n = $1 } END { exit !(n > 0) }' "$work/load.txt"; then
        echo "training on $path got no answers, or answers other than 2xx/3xx" >&2; cat "$work/load.txt" >&2; exit 1
    fi
done
h2load -c64 -m1 -t1 -D"$secs" http://127.0.0.1:18090/ > "$work/load.txt"
# "status codes: N 2xx, 0 3xx, 0 4xx, 0 5xx": every answer must be a 2xx.
awk '/^status codes:/ { ok = ($3 + 0 > 0 && $5 + 0 == 0 && $7 + 0 == 0 && $9 + 0 == 0) } END { exit !ok }' \
    "$work/load.txt" || { echo "training on h2c / got no answers, or answers other than 2xx" >&2; cat "$work/load.txt" >&2; exit 1; }
# The profile is written when the server exits.
kill -TERM "$server"
wait "$server"
"$profdata" merge -o "$root/target/pgo.profdata" "$work/server"
RUSTFLAGS="-Cprofile-use=$root/target/pgo.profdata" \
    cargo build --release --locked --bin rampart --target-dir target/pgo >&2
echo "$root/target/pgo/release/rampart"
