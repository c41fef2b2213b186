#!/usr/bin/env bash
# Fuzz steward's API request parsers (issue 7, hostile input) with cargo-fuzz
# (libFuzzer) on the nightly toolchain. Each target feeds arbitrary bytes
# through the handlers' own parse + validate path (src/api/schema.rs:
# parse_callout, parse_telemetry, parse_repair_*) and asserts no panic and
# the invariants the handlers rely on (fuzz/fuzz_targets/*.rs).
#
#   scripts/fuzz.sh                        # every target, 300 s each
#   FUZZ_SECONDS=60 scripts/fuzz.sh callout
#
# Seeds: etc/examples/ (the callout and telemetry examples) and
# fuzz/seeds/<target>/; the corpus grows in fuzz/corpus/<target>/ and a crash
# is saved in fuzz/artifacts/<target>/ (both ignored by git). Prints one
# FUZZ line per target (executions, crashes) and exits 1 when any crashed.
#
# Env: FUZZ_SECONDS (per target), SANITIZER (default none: safe Rust gains little from ASan and runs 2x
# slower; `address` to use it), CARGO_BUILD_JOBS (default 1), NICE (10).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CARGO_FUZZ_VERSION=0.13.2
TOOLS=$ROOT/target/tools
SECONDS_PER_TARGET=${FUZZ_SECONDS:-300}
SANITIZER=${SANITIZER:-none}
NICE=${NICE:-10}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}
export PATH=$TOOLS/bin:$PATH
ALL_TARGETS=(callout telemetry repair)
if [ $# -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi

die() { echo "fuzz: $*" >&2; exit 2; }
rustup toolchain list | grep -q '^nightly' || die "the nightly toolchain is needed: rustup toolchain install nightly"
if ! cargo-fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION into $TOOLS (once)"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$TOOLS" >&2
fi

seed() {  # seed TARGET CORPUS_DIR
    case "$1" in
        callout) cp "$ROOT"/etc/examples/weigh-*.json "$ROOT"/etc/examples/filter-*.json "$2"/ ;;
        telemetry) cp "$ROOT"/etc/examples/telemetry-*.json "$2"/ ;;
        repair) cp "$ROOT"/fuzz/seeds/repair/*.json "$2"/ ;;
        *) die "no target $1; targets: ${ALL_TARGETS[*]}" ;;
    esac
}

cd "$ROOT/fuzz"
echo "+ cargo +nightly fuzz build --sanitizer $SANITIZER ${TARGETS[*]}"
for t in "${TARGETS[@]}"; do
    nice -n "$NICE" cargo +nightly fuzz build --sanitizer "$SANITIZER" "$t"
done

crashed=0
for t in "${TARGETS[@]}"; do
    corpus=$ROOT/fuzz/corpus/$t
    artifacts=$ROOT/fuzz/artifacts/$t
    mkdir -p "$corpus" "$artifacts"
    seed "$t" "$corpus"
    before=$(find "$artifacts" -type f | wc -l)
    log=$ROOT/fuzz/artifacts/$t.log
    cmd=(cargo +nightly fuzz run --sanitizer "$SANITIZER" "$t" "$corpus" --
         -max_total_time="$SECONDS_PER_TARGET" -max_len=65536 -timeout=10 -rss_limit_mb=2048
         -print_final_stats=1)
    echo "+ ${cmd[*]}"
    status=0
    nice -n "$NICE" "${cmd[@]}" > "$log" 2>&1 || status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\)/\1/p' "$log" | tail -1)
    crashes=$(( $(find "$artifacts" -type f | wc -l) - before ))
    [ "$status" = 0 ] || [ "$crashes" -gt 0 ] || crashes=1
    units=$(find "$corpus" -type f | wc -l)
    echo "FUZZ target=$t seconds=$SECONDS_PER_TARGET executions=${execs:-0} crashes=$crashes corpus=$units sanitizer=$SANITIZER (log: $log)"
    if [ "$crashes" -gt 0 ]; then
        crashed=1
        grep -m 20 -E "panicked at|SUMMARY|Test unit written" "$log" || tail -20 "$log"
    fi
done
exit "$crashed"
