#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60), one after another, and prints the
# executions each made. A crash, hang (-timeout) or memory blow-up (-rss_limit_mb) stops that
# target, leaves the input in fuzz/artifacts/<target>/, and makes the script exit 1.
# cargo-fuzz passes nightly -Z flags; RUSTC_BOOTSTRAP=1 lets the pinned stable toolchain take
# them. Usage: fuzz/run.sh [SECONDS] [TARGET...]   (docs/fuzzing.md)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=${1:-60}
shift || true
export RUSTC_BOOTSTRAP=1

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
cargo fuzz build

failed=()
summary=()
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target"
    out="fuzz/artifacts/$target.log"
    mkdir -p "fuzz/artifacts"
    printf '==> %s for %ss\n' "$target" "$seconds"
    # First corpus directory collects new inputs; the checked-in seeds only start it.
    if cargo fuzz run "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$out" 2>&1; then
        status=ok
    else
        status=FAILED
        failed+=("$target")
        tail -n 40 "$out"
    fi
    runs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$out" | tail -n1 || true)
    corpus=$(find "fuzz/corpus/$target" -type f | wc -l)
    summary+=("$(printf '%-14s %-6s %s; corpus %s inputs' "$target" "$status" "${runs:-no run count}" "$corpus")")
done

printf '\n'
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    printf 'failed: %s (inputs in fuzz/artifacts/)\n' "${failed[*]}" >&2
    exit 1
fi
