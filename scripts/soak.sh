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
# The load generator is hey (Debian's package, version checked): each of its
# workers sends at a fixed rate (`-q`, per worker) on its own kept-alive
# connection, whatever the answers' latency, so a steward that slows down
# shows as a rate under the target (checked) rather than as a queue. It has
# no latency correction: p99 is each request's own time. (wrk, as in
# scripts/loadtest-weigh.sh, has no fixed rate; oha 1.16.0 does not build
# without its TLS feature.) Steward and hey share the machine's cores; the
# figures say so, with the load average before and after.
#
# Env: STEWARD_BIN (default target/release/steward), WEIGH_BODY (callout
# body, default etc/examples/weigh-100-hosts.json), RATE (total requests/s),
# DURATION (seconds), CONNECTIONS (workers per route), STEWARD_LOG_LEVEL
# (default info, as in production), KEEP=1 keeps the work dir.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${STEWARD_BIN:-$ROOT/target/release/steward}
BODY=${WEIGH_BODY:-$ROOT/etc/examples/weigh-100-hosts.json}
RATE=${RATE:-1000}
DURATION=${DURATION:-600}
CONNECTIONS=${CONNECTIONS:-4}
LOG_LEVEL=${STEWARD_LOG_LEVEL:-info}
HEY_VERSION=0.1.4
FILTER_ROUTE='/v1/filter?weigh=true&compact=true'
WEIGH_ROUTE=/v1/weigh

die() { echo "soak: $*" >&2; exit 2; }
command -v curl >/dev/null || die "curl not found: apt-get install -y curl"
command -v python3 >/dev/null || die "python3 not found"
[ -x "$BIN" ] || die "no steward binary at $BIN: cargo build --release --bin steward, or set STEWARD_BIN"
[ -r "$BODY" ] || die "cannot read the request $BODY"
command -v hey >/dev/null || die "hey not found: apt-get install -y hey"
dpkg-query -W -f '${Version}' hey 2>/dev/null | grep -q "^$HEY_VERSION" ||
    echo "soak: warning: hey is not Debian's $HEY_VERSION; the figures in README.md were taken with it" >&2

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

per_worker=$(python3 -c "import sys; print('%g' % (float(sys.argv[1]) / 2 / int(sys.argv[2])))" "$RATE" "$CONNECTIONS")
echo "steward $BIN at $URL (pid $PID); request $(wc -c < "$WORK/weigh.json") bytes; $(nproc) cores shared by steward and hey"
echo "load before: $(uptime)"
run_hey() {  # run_hey ROUTE OUT
    local cmd=(hey -z "${DURATION}s" -c "$CONNECTIONS" -q "$per_worker" -t 10 -m POST
               -T application/json -D "$WORK/weigh.json" "$URL$1")
    echo "+ ${cmd[*]}"
    "${cmd[@]}" > "$2"
}
run_hey "$FILTER_ROUTE" "$WORK/hey-filter.txt" &
F=$!
run_hey "$WEIGH_ROUTE" "$WORK/hey-weigh.txt" &
W=$!
hey_failed=0
wait "$F" || hey_failed=1
wait "$W" || hey_failed=1
touch "$WORK/done"
wait "$SAMPLER" || true
echo "load after: $(uptime)"
kill -0 "$PID" 2>/dev/null || { tail -20 "$WORK/steward.log" >&2; die "steward died during the soak"; }
[ "$hey_failed" = 0 ] || die "hey failed (see above)"

python3 - "$WORK" "$RATE" "$DURATION" "$idle_rss" "${STRICT:-0}" "$FILTER_ROUTE" "$WEIGH_ROUTE" <<'PY'
import re, sys
work, rate, duration, idle_rss, strict = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
routes = sys.argv[6:8]
total = errors = 0
rps = 0.0
def parse_hey(path):
    """hey's summary: requests/s, latency percentiles (s), status codes, errors."""
    text = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", text).group(1))
    pct = {int(p): float(v) for p, v in re.findall(r"^\s+(\d+)%+ in ([0-9.]+) secs", text, re.M)}
    slowest = float(re.search(r"Slowest:\s+([0-9.]+)", text).group(1))
    codes = {int(c): int(n) for c, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", text)}
    errs = {}
    if "Error distribution:" in text:
        for n, what in re.findall(r"^\s+\[(\d+)\]\s+(.*)$", text.split("Error distribution:")[1], re.M):
            errs[what.strip()] = int(n)
    return rps, pct, slowest, codes, errs

for route, name in zip(routes, ("filter", "weigh")):
    r, pct, slowest, codes, errs = parse_hey("%s/hey-%s.txt" % (work, name))
    failed = sum(v for k, v in codes.items() if k != 200) + sum(errs.values())
    n = sum(codes.values()) + sum(errs.values())
    total += n; errors += failed; rps += r
    print("ROUTE %s requests=%d rps=%.1f errors=%d p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f slowest_ms=%.1f codes=%s errors_by_kind=%s"
          % (route, n, r, failed, pct[50] * 1000, pct[90] * 1000, pct[99] * 1000, slowest * 1000, codes, errs))
samples = [tuple(map(int, l.split())) for l in open("%s/rss.txt" % work) if len(l.split()) == 2]
if len(samples) < 2:
    sys.exit("soak: fewer than two RSS samples")
# "Start" is the first sample at least 10 s into the load (buffers and the
# connection pool warmed up); "flat" compares the last sample with it.
first = next((s for s in samples if s[0] >= 10), samples[0])
start, end = first[1], samples[-1][1]
peak = max(s[1] for s in samples)
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
