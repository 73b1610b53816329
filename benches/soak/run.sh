#!/usr/bin/env bash
# Soak: MINUTES (default 10) of mostly healthy traffic with every chaos fault mixed in, at a
# steady rate (RAMPART_SOAK_RATE, default 500 requests/s), against the release build of
# rampart, on loopback only; stops by itself. Prints a Markdown report (per minute: requests,
# latency p50/p90/p99, RSS, descriptors; totals by status) and saves it under target/soak/.
# The run fails if any chaos invariant broke (docs/reliability.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

minutes=${1:-10}
rate=${RAMPART_SOAK_RATE:-500}
[[ $minutes =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [MINUTES]" >&2; exit 2; }
[[ $rate =~ ^[1-9][0-9]*$ ]] || { echo "RAMPART_SOAK_RATE must be a positive integer" >&2; exit 2; }

mkdir -p target/soak
report="$PWD/target/soak/soak-$(date -u +%Y%m%dT%H%M%SZ).md"

echo "==> building rampart and the load driver in release (cargo test --release --no-run)"
cargo test --release --locked --test e2e --no-run

echo "==> soak: $minutes min at $rate requests/s (report: $report)"
RAMPART_SOAK_MINUTES=$minutes RAMPART_SOAK_RATE=$rate RAMPART_SOAK_REPORT=$report \
    cargo test --release --locked --test e2e chaos::soak::soak -- --ignored --exact --nocapture

{
    echo
    echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, Linux $(uname -r); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "Command: benches/soak/run.sh $minutes (RAMPART_SOAK_RATE=$rate), commit $(git rev-parse --short HEAD)."
} >>"$report"
echo "==> report saved to $report"
