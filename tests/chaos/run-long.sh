#!/usr/bin/env bash
# The chaos suite's long form: the same faults, clients and invariants as the short run in
# `.ci/test` (tests/e2e/chaos/), with the load running SECONDS (default 300) as fast as the
# clients go instead of 6 s at 300 requests/s. Options: --rate R (requests/s, 0 = unpaced),
# --release (optimised proxy and clients: more requests per second).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

usage() { echo "usage: $0 [SECONDS] [--rate R] [--release]" >&2; exit 2; }
seconds=300
rate=0
profile=()
while [ $# -gt 0 ]; do
    case $1 in
        --release) profile=(--release) ;;
        --rate) [ $# -ge 2 ] || usage; rate=$2; shift ;;
        *[!0-9]* | '') usage ;;
        *) seconds=$1 ;;
    esac
    shift
done
[[ $rate =~ ^[0-9]+$ ]] || usage

RAMPART_CHAOS_SECONDS=$seconds RAMPART_CHAOS_RATE=$rate cargo test "${profile[@]}" --locked \
    --test e2e chaos::faults_under_load_keep_every_invariant -- --exact --nocapture
