#!/bin/sh
# Benchmark: every scenario family of etc/scenarios over 10 seeds with a release steward,
# the wall time of each family and of the whole. Not part of ./scripts/test.
#   scripts/bench-simulate.sh            (builds target/release/steward first)
#   STEWARD_BIN=/path/to/steward scripts/bench-simulate.sh
set -eu
cd "$(dirname "$0")/.."
bin=${STEWARD_BIN:-target/release/steward}
if [ -z "${STEWARD_BIN:-}" ]; then
    cargo build --release --bin steward >&2
fi
out=${OUT:-/tmp/steward-simulate-bench}
mkdir -p "$out"
total_start=$(date +%s.%N)
for f in etc/scenarios/*.toml; do
    name=$(basename "$f" .toml)
    start=$(date +%s.%N)
    "$bin" simulate --scenario "$f" --seeds 1..10 > "$out/$name.txt"
    end=$(date +%s.%N)
    printf '%-14s %6.1f s\n' "$name" "$(echo "$end - $start" | bc)"
done
total_end=$(date +%s.%N)
printf '%-14s %6.1f s   (tables in %s)\n' "all" "$(echo "$total_end - $total_start" | bc)" "$out"
