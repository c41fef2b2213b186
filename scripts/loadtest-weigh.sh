#!/usr/bin/env bash
# Load test of POST /v1/weigh: a release steward on a loopback port, fed
# telemetry for the 100 hosts of etc/examples/weigh-100-hosts.json, then
# wrk from a second process (2 threads, 32 connections, 30 s by default).
# Targets: >= 5,000 requests/s and p99 <= 5 ms.
#
#   scripts/loadtest-weigh.sh                 # defaults
#   DURATION=10s CONNECTIONS=64 scripts/loadtest-weigh.sh
#   STRICT=1 scripts/loadtest-weigh.sh        # exit 1 when a target is missed
#
# Env: STEWARD_BIN (default target/release/steward), WEIGH_BODY, DURATION,
# THREADS, CONNECTIONS, STEWARD_LOG_LEVEL (steward's [logging] level,
# default info as in production), KEEP=1 keeps the work dir and log.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${STEWARD_BIN:-$ROOT/target/release/steward}
BODY=${WEIGH_BODY:-$ROOT/etc/examples/weigh-100-hosts.json}
DURATION=${DURATION:-30s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
LOG_LEVEL=${STEWARD_LOG_LEVEL:-info}

die() { echo "loadtest-weigh: $*" >&2; exit 2; }
command -v wrk >/dev/null || die "wrk not found: apt-get install -y wrk"
command -v curl >/dev/null || die "curl not found: apt-get install -y curl"
command -v python3 >/dev/null || die "python3 not found"
[ -x "$BIN" ] || die "no steward binary at $BIN: cargo build --release, or set STEWARD_BIN"
[ -r "$BODY" ] || die "cannot read the request $BODY"

WORK=$(mktemp -d /tmp/steward-loadtest.XXXXXX)
PID=
cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID"
        for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$PID" 2>/dev/null || true
    fi
    if [ "${KEEP:-0}" = 1 ]; then echo "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT

cat > "$WORK/steward.toml" <<TOML
# noauth is accepted on a loopback listener only; the load stays on this machine.
[server]
listen = "127.0.0.1:$PORT"
[auth]
strategy = "noauth"
[database]
url = "sqlite://$WORK/steward.sqlite?mode=rwc"
[telemetry]
max_age_seconds = 3600
[logging]
level = "$LOG_LEVEL"
TOML

# What the shim sends: compact JSON (the example file is indented to read).
python3 -c 'import json,sys; json.dump(json.load(open(sys.argv[1])), open(sys.argv[2], "w"), separators=(",", ":"))' \
    "$BODY" "$WORK/weigh.json"

# Telemetry for every host of the request (AZ, steal, load) and a role for
# a third of their VMs, so the steal and role plugins have data to score.
python3 - "$BODY" > "$WORK/telemetry.json" <<'PY'
import json, random, sys, time
req = json.load(open(sys.argv[1]))
rng = random.Random(7)
now = time.time()
hosts, vms = [], []
for h in req["hosts"]:
    hosts.append({"host": h["host"], "az": h["az"], "steal": round(rng.uniform(0, 0.3), 3),
                  "load5": round(rng.uniform(1, 40), 1), "vcpus": h["vcpus_total"], "observed_at": now})
    for i, vm in enumerate(h["instance_uuids"]):
        vms.append({"uuid": vm, "host": h["host"], "role": "web" if i % 3 == 0 else "batch",
                    "steal": round(rng.uniform(0, 0.2), 3), "load5": 1.0, "vcpus": 2, "observed_at": now})
json.dump({"hosts": hosts, "vms": vms}, sys.stdout)
PY

"$BIN" serve --config "$WORK/steward.toml" > "$WORK/steward.log" 2>&1 &
PID=$!
for _ in $(seq 100); do
    curl -fsS -o /dev/null "$URL/healthz" 2>/dev/null && break
    kill -0 "$PID" 2>/dev/null || { cat "$WORK/steward.log" >&2; die "steward exited at start (log above)"; }
    sleep 0.1
done
curl -fsS -o /dev/null "$URL/healthz" || { tail -20 "$WORK/steward.log" >&2; die "steward did not answer /healthz"; }

code=$(curl -sS -o "$WORK/telemetry.answer" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary @"$WORK/telemetry.json" "$URL/v1/telemetry")
[ "$code" = 202 ] || die "telemetry push answered $code: $(cat "$WORK/telemetry.answer")"

# One request first: the load must measure real answers, not errors.
code=$(curl -sS -o "$WORK/weigh.answer" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary @"$WORK/weigh.json" "$URL/v1/weigh")
[ "$code" = 200 ] || die "POST /v1/weigh answered $code: $(head -c 400 "$WORK/weigh.answer")"
python3 - "$WORK/weigh.json" "$WORK/weigh.answer" <<'PY' || die "the weigh answer does not cover the request's hosts"
import json, sys
req, ans = (json.load(open(p)) for p in sys.argv[1:3])
sent = [(h["host"], h["nodename"]) for h in req["hosts"]]
got = [(w["host"], w["nodename"]) for w in ans["weights"]]
assert got == sent, "weights do not match the hosts in order"
print("sanity: 100 weights in request order, profile=%s role=%s degraded=%s %s"
      % (ans.get("profile"), ans.get("role"), ans.get("degraded"), ans.get("degraded_reasons") or ""))
PY

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency POST $URL/v1/weigh ($(wc -c < "$WORK/weigh.json") bytes, $(nproc) cores shared by steward and wrk)"
WEIGH_BODY="$WORK/weigh.json" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
    -s "$ROOT/scripts/loadtest-weigh.lua" "$URL/v1/weigh" | tee "$WORK/wrk.out"

summary=$(grep '^SUMMARY' "$WORK/wrk.out")
val() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$summary"; }
rps=$(val rps); p99=$(val p99_ms)
errors=$(( $(val errors_connect) + $(val errors_read) + $(val errors_write) + $(val errors_timeout) + $(val non2xx) ))
verdict=$(python3 -c "import sys; r, p = float(sys.argv[1]), float(sys.argv[2]); print('PASS' if r >= 5000 and p <= 5.0 else 'MISS')" "$rps" "$p99")
echo "RESULT rps=$rps (target >= 5000) p99_ms=$p99 (target <= 5) errors=$errors -> $verdict"
[ "$errors" = 0 ] || { tail -20 "$WORK/steward.log" >&2; echo "loadtest-weigh: $errors failed requests" >&2; exit 1; }
if [ "${STRICT:-0}" = 1 ] && [ "$verdict" != PASS ]; then exit 1; fi
