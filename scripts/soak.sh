#!/usr/bin/env bash
# Soak of the Nova callout (issue 7, load): a release steward answers
# POST /v1/filter?weigh=true&compact=true (the shim's round trip) and
# POST /v1/weigh, half the rate each, at a FIXED rate for 10 minutes, while
# steward's RSS is read from /proc/<pid>/status every 10 s. It prints the
# rate reached, the errors (any non-200 or transport error), p50/p99/p99.9
# per route and RSS before the load, at its start and at its end.
#
#   scripts/soak.sh                             # 1,000 requests/s for 600 s
#   RATE=2000 DURATION=60 scripts/soak.sh       # a shorter, faster one
#   STRICT=1 scripts/soak.sh                    # exit 1 on an error or RSS growth > 10 %
#
# The load generator is oha (pinned, installed into target/tools by cargo):
# `-q` holds a fixed request rate whatever the answers' latency, and
# `--latency-correction` measures each request from when it was due, not
# from when a free connection sent it, so a stall shows in p99 instead of
# lowering the rate (wrk, as in scripts/loadtest-weigh.sh, has no fixed
# rate). Steward and oha share the machine's cores; the figures say so.
#
# Env: STEWARD_BIN (default target/release/steward), WEIGH_BODY (callout
# body, default etc/examples/weigh-100-hosts.json), RATE (total requests/s),
# DURATION (seconds), CONNECTIONS (per route), STEWARD_LOG_LEVEL (default
# info, as in production), OHA (a binary to use instead), KEEP=1.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${STEWARD_BIN:-$ROOT/target/release/steward}
BODY=${WEIGH_BODY:-$ROOT/etc/examples/weigh-100-hosts.json}
RATE=${RATE:-1000}
DURATION=${DURATION:-600}
CONNECTIONS=${CONNECTIONS:-4}
LOG_LEVEL=${STEWARD_LOG_LEVEL:-info}
OHA_VERSION=1.16.0
OHA=${OHA:-$ROOT/target/tools/bin/oha}
FILTER_ROUTE='/v1/filter?weigh=true&compact=true'
WEIGH_ROUTE=/v1/weigh

die() { echo "soak: $*" >&2; exit 2; }
command -v curl >/dev/null || die "curl not found: apt-get install -y curl"
command -v python3 >/dev/null || die "python3 not found"
[ -x "$BIN" ] || die "no steward binary at $BIN: cargo build --release --bin steward, or set STEWARD_BIN"
[ -r "$BODY" ] || die "cannot read the request $BODY"
if [ ! -x "$OHA" ]; then
    echo "soak: installing oha $OHA_VERSION into $ROOT/target/tools (once)"
    CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} cargo install oha --version "$OHA_VERSION" --locked \
        --no-default-features --root "$ROOT/target/tools" >&2 || die "cannot install oha $OHA_VERSION"
fi
"$OHA" --version | grep -q "$OHA_VERSION" || die "$OHA is not oha $OHA_VERSION"

# shellcheck source=scripts/lib/steward-under-load.sh
. "$ROOT/scripts/lib/steward-under-load.sh"

# One request per route first: the soak must measure real answers.
for route in "$FILTER_ROUTE" "$WEIGH_ROUTE"; do
    code=$(curl -sS -o "$WORK/answer" -w '%{http_code}' -H 'Content-Type: application/json' \
        --data-binary @"$WORK/weigh.json" "$URL$route")
    [ "$code" = 200 ] || die "POST $route answered $code: $(head -c 400 "$WORK/answer")"
done

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$PID/status"; }
idle_rss=$(rss_kb)
: > "$WORK/rss.txt"
(
    t0=$(date +%s)
    while [ ! -e "$WORK/done" ] && kill -0 "$PID" 2>/dev/null; do
        echo "$(( $(date +%s) - t0 )) $(rss_kb)" >> "$WORK/rss.txt"
        for _ in $(seq 100); do [ -e "$WORK/done" ] && break; sleep 0.1; done
    done
) &
SAMPLER=$!

half=$(python3 -c "import sys; print(float(sys.argv[1]) / 2)" "$RATE")
echo "steward $BIN at $URL (pid $PID); request $(wc -c < "$WORK/weigh.json") bytes; $(nproc) cores shared by steward and oha"
echo "load before: $(uptime)"
run_oha() {  # run_oha ROUTE OUT
    local cmd=("$OHA" --no-tui --output-format json -z "${DURATION}s" -q "$half" -c "$CONNECTIONS"
               --latency-correction -m POST -H 'Content-Type: application/json'
               -D "$WORK/weigh.json" "$URL$1")
    echo "+ ${cmd[*]}"
    "${cmd[@]}" > "$2"
}
run_oha "$FILTER_ROUTE" "$WORK/oha-filter.json" &
F=$!
run_oha "$WEIGH_ROUTE" "$WORK/oha-weigh.json" &
W=$!
oha_failed=0
wait "$F" || oha_failed=1
wait "$W" || oha_failed=1
touch "$WORK/done"
wait "$SAMPLER" || true
echo "load after: $(uptime)"
kill -0 "$PID" 2>/dev/null || { tail -20 "$WORK/steward.log" >&2; die "steward died during the soak"; }
[ "$oha_failed" = 0 ] || die "oha failed (see above)"

python3 - "$WORK" "$RATE" "$DURATION" "$idle_rss" "${STRICT:-0}" "$FILTER_ROUTE" "$WEIGH_ROUTE" <<'PY'
import json, sys
work, rate, duration, idle_rss, strict = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
routes = sys.argv[6:8]
total = errors = 0
rps = 0.0
for route, name in zip(routes, ("filter", "weigh")):
    o = json.load(open("%s/oha-%s.json" % (work, name)))
    codes = {int(k): v for k, v in (o.get("statusCodeDistribution") or {}).items()}
    failed = sum(v for k, v in codes.items() if k != 200) + sum((o.get("errorDistribution") or {}).values())
    n = sum(codes.values()) + sum((o.get("errorDistribution") or {}).values())
    pct = o["latencyPercentiles"]
    ms = lambda k: (pct.get(k) or 0.0) * 1000
    r = o["summary"]["requestsPerSec"]
    total += n; errors += failed; rps += r
    print("ROUTE %s requests=%d rps=%.1f errors=%d p50_ms=%.2f p99_ms=%.2f p999_ms=%.2f slowest_ms=%.1f codes=%s errors_by_kind=%s"
          % (route, n, r, failed, ms("p50"), ms("p99"), ms("p99.9"), o["summary"]["slowest"] * 1000,
             codes, o.get("errorDistribution") or {}))
samples = [tuple(map(int, l.split())) for l in open("%s/rss.txt" % work) if len(l.split()) == 2]
if len(samples) < 2:
    sys.exit("soak: fewer than two RSS samples")
start, end = samples[0][1], samples[-1][1]
peak = max(s[1] for s in samples)
# "Flat": the last sample against the first one under load.
growth = (end - start) / start * 100
print("RSS_SAMPLES " + " ".join("%ds=%dkB" % s for s in samples))
print("RESULT rate_target=%g rate=%.1f duration_s=%g requests=%d errors=%d rss_idle_kb=%d rss_start_kb=%d rss_end_kb=%d rss_peak_kb=%d rss_growth_pct=%.1f"
      % (rate, rps, duration, total, errors, idle_rss, start, end, peak, growth))
bad = errors != 0 or growth > 10.0 or rps < 0.95 * rate
if bad:
    print("soak: MISS (errors, RSS growth over 10 %, or rate under 95 % of the target)")
if strict and bad:
    sys.exit(1)
PY
