#!/usr/bin/env bash
# Profile-guided release build (PGO). Builds rampart instrumented, runs it under the load the
# harness measures (an nginx upstream on 127.0.0.1:18080, rampart with
# benches/load/rampart-bench.yaml on :18090, oha over HTTP/1.1 on / and /4k and over h2c on
# /), merges the profile with the toolchain's llvm-profdata and builds the release binary
# again with it. Code the training does not reach (TLS, CONNECT, retries after failures) is
# laid out as cold, not left out. Prints the binary's path: target/pgo/release/rampart.
# Usage: BIN=$(benches/load/pgo.sh) benches/load/run.sh
set -euo pipefail
secs=${PGO_SECS:-10}
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$PWD
for tool in nginx oha curl rustup; do
    command -v "$tool" >/dev/null || { echo "missing $tool (bash ../shared/bench/setup.sh)" >&2; exit 1; }
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

# shellcheck source=benches/load/upstream.sh
source benches/load/upstream.sh
upstream_conf "$work"
nginx -c "$work/upstream.conf" -p "$work" & pids+=($!)
LLVM_PROFILE_FILE="$work/server/%p.profraw" BENCH_LISTEN=127.0.0.1:18090 \
    BENCH_UPSTREAM=127.0.0.1:18080 BENCH_ADMIN_PORT=18091 RAMPART_LOG=warn \
    target/pgo-generate/release/rampart run -c benches/load/rampart-bench.yaml >&2 &
server=$!
pids+=("$server")
ready=
for _ in $(seq 50); do curl -sf http://127.0.0.1:18090/ >/dev/null && { ready=1; break; }; sleep 0.1; done
[ -n "$ready" ] || { echo "the instrumented rampart did not answer on :18090" >&2; exit 1; }
for run in "/" "/4k" "--http2 /"; do
    path=${run##* }
    flags=${run% *}
    [ "$flags" = "$run" ] && flags=
    # shellcheck disable=SC2086
    oha --no-tui -z "${secs}s" -c 64 $flags "http://127.0.0.1:18090$path" > "$work/oha.txt"
    grep -q '\[200\]' "$work/oha.txt" || { echo "training on $run got no 200s" >&2; cat "$work/oha.txt" >&2; exit 1; }
done
# The profile is written when the server exits.
kill -TERM "$server"
wait "$server"
"$profdata" merge -o "$root/target/pgo.profdata" "$work/server"
RUSTFLAGS="-Cprofile-use=$root/target/pgo.profdata" \
    cargo build --release --locked --bin rampart --target-dir target/pgo >&2
echo "$root/target/pgo/release/rampart"
