#!/usr/bin/env bash
# Load test of POST /v1/weigh: a release steward on a loopback port, fed
# telemetry for the 100 hosts of etc/examples/weigh-100-hosts.json, then
# wrk from a second process. Targets: >= 5,000 requests/s AND p99 <= 5 ms.
#
#   scripts/loadtest-weigh.sh                    # 1 wrk thread, 8 connections, 30 s
#   CONNECTIONS="1 2 4 8 16 32" DURATION=10s scripts/loadtest-weigh.sh   # a sweep
#   ROUTE='/v1/filter?weigh=true' scripts/loadtest-weigh.sh  # the shim's round trip
#   STRICT=1 scripts/loadtest-weigh.sh           # exit 1 when a target is missed
#
# Why 8 connections and 1 wrk thread by default:
# - wrk keeps every connection busy all the time (no think time), so its
#   connection count IS the number of requests in flight, and Little's law
#   ties the two figures: in flight = throughput x mean latency. 32
#   connections at 6-7k req/s force a mean latency of 32 / 7,000 s = 4.6 ms
#   whatever steward does, so p99 <= 5 ms cannot hold there: that setting
#   measured wrk's own queue, not steward.
# - What a scheduler fleet puts in flight: a nova-scheduler worker makes one
#   callout per scheduling request and spends the rest of it (some 95 %:
#   Nova's own filters and weighers, 70+ ms at 1,000 hosts) in Python under
#   its GIL, so it has at most about one callout in flight at a time. 8 in
#   flight is 8 workers (say 2-4 controllers x 2-4 scheduler workers) all
#   waiting on steward at the same instant: more than a real fleet does, and
#   enough to drive steward to 7,500-8,700 req/s here (p99 1.9-3.7 ms). At
#   16, p99 sits at the 5 ms line (3.7-5.1 ms over runs); past it, latency
#   is queueing by construction. Each RESULT line prints the mean latency
#   Little's law imposes for its connection count.
# - 1 wrk thread: wrk and steward share the machine's cores (2 here); a
#   second wrk thread takes CPU from steward and adds to what it measures.
#
# Env: STEWARD_BIN (default target/release/steward), WEIGH_BODY, ROUTE
# (/v1/weigh, /v1/filter or /v1/filter?weigh=true), DURATION, THREADS,
# CONNECTIONS (one count or a space-separated list, run one after the
# other against the same steward), STEWARD_LOG_LEVEL (steward's [logging]
# level, default info as in production), KEEP=1 keeps the work dir and log.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${STEWARD_BIN:-$ROOT/target/release/steward}
BODY=${WEIGH_BODY:-$ROOT/etc/examples/weigh-100-hosts.json}
DURATION=${DURATION:-30s}
THREADS=${THREADS:-1}
CONNECTIONS=${CONNECTIONS:-8}
ROUTE=${ROUTE:-/v1/weigh}
LOG_LEVEL=${STEWARD_LOG_LEVEL:-info}

die() { echo "loadtest-weigh: $*" >&2; exit 2; }
command -v wrk >/dev/null || die "wrk not found: apt-get install -y wrk"
command -v curl >/dev/null || die "curl not found: apt-get install -y curl"
command -v python3 >/dev/null || die "python3 not found"
[ -x "$BIN" ] || die "no steward binary at $BIN: cargo build --release, or set STEWARD_BIN"
[ -r "$BODY" ] || die "cannot read the request $BODY"
case "$ROUTE" in
    /v1/weigh|/v1/filter|'/v1/filter?weigh=true') ;;
    *) die "ROUTE must be /v1/weigh, /v1/filter or /v1/filter?weigh=true" ;;
esac

# shellcheck source=scripts/lib/steward-under-load.sh
. "$ROOT/scripts/lib/steward-under-load.sh"

# One request first: the load must measure real answers, not errors.
code=$(curl -sS -o "$WORK/weigh.answer" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary @"$WORK/weigh.json" "$URL$ROUTE")
[ "$code" = 200 ] || die "POST $ROUTE answered $code: $(head -c 400 "$WORK/weigh.answer")"
python3 - "$WORK/weigh.json" "$WORK/weigh.answer" "$ROUTE" <<'PY' || die "the answer does not cover the request's hosts"
import json, sys
req, ans = (json.load(open(p)) for p in sys.argv[1:3])
route = sys.argv[3]
sent = [(h["host"], h["nodename"]) for h in req["hosts"]]
if route == "/v1/weigh":
    got = [(w["host"], w["nodename"]) for w in ans["weights"]]
    assert got == sent, "weights do not match the hosts in order"
    what = "%d weights in request order" % len(got)
else:
    allowed = [(a["host"], a["nodename"]) for a in ans["allowed"]]
    rejected = [(r["host"], r["nodename"]) for r in ans.get("rejected") or []]
    assert sorted(allowed + rejected) == sorted(sent), "allowed + rejected are not the hosts sent"
    assert allowed == [k for k in sent if k in set(allowed)], "allowed not in request order"
    what = "%d allowed, %d rejected" % (len(allowed), len(rejected))
    if route.endswith("weigh=true"):
        got = [(w["host"], w["nodename"]) for w in ans["weights"]]
        assert got == allowed, "weights do not match the allowed hosts in order"
        what += ", %d weights" % len(got)
print("sanity: %s: %s, profile=%s role=%s degraded=%s %s"
      % (route, what, ans.get("profile"), ans.get("role"), ans.get("degraded"),
         ans.get("degraded_reasons") or ""))
PY

echo "steward $BIN at $URL; request $(wc -c < "$WORK/weigh.json") bytes; $(nproc) cores shared by steward and wrk"
missed=0
for conns in $CONNECTIONS; do
    cmd=(wrk -t"$THREADS" -c"$conns" -d"$DURATION" --latency -s "$ROOT/scripts/loadtest-weigh.lua" "$URL$ROUTE")
    echo "+ WEIGH_BODY=$WORK/weigh.json ${cmd[*]}"
    WEIGH_BODY="$WORK/weigh.json" "${cmd[@]}" > "$WORK/wrk.out"
    grep -v '^SUMMARY' "$WORK/wrk.out"
    summary=$(grep '^SUMMARY' "$WORK/wrk.out")
    val() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$summary"; }
    rps=$(val rps); p50=$(val p50_ms); p90=$(val p90_ms); p99=$(val p99_ms); p999=$(val p999_ms)
    errors=$(( $(val errors_connect) + $(val errors_read) + $(val errors_write) + $(val errors_timeout) + $(val non2xx) ))
    verdict=$(python3 -c "import sys; r, p = float(sys.argv[1]), float(sys.argv[2]); print('PASS' if r >= 5000 and p <= 5.0 else 'MISS')" "$rps" "$p99")
    # Little's law: the mean latency that `conns` requests always in flight
    # at this throughput impose, whatever steward does.
    imposed=$(python3 -c "import sys; print('%.2f' % (int(sys.argv[1]) / float(sys.argv[2]) * 1000))" "$conns" "$rps")
    echo "RESULT route=$ROUTE threads=$THREADS connections=$conns rps=$rps (target >= 5000) p50_ms=$p50 p90_ms=$p90 p99_ms=$p99 (target <= 5) p999_ms=$p999 littles_law_mean_ms=$imposed errors=$errors -> $verdict"
    if [ "$errors" != 0 ]; then
        tail -20 "$WORK/steward.log" >&2
        echo "loadtest-weigh: $errors failed requests" >&2
        exit 1
    fi
    [ "$verdict" = PASS ] || missed=1
done
if [ "${STRICT:-0}" = 1 ] && [ "$missed" != 0 ]; then exit 1; fi
