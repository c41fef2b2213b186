# Sourced by scripts/loadtest-weigh.sh and scripts/soak.sh: a release steward on a
# free loopback port (noauth, SQLite in a temp dir), fed telemetry for every host
# of the callout body so the steal and role plugins have data to score.
#
# In:  ROOT, BIN, BODY (an indented callout example), LOG_LEVEL, KEEP, and die();
#      optional TELEMETRY_MAX_AGE, TELEMETRY_NICE ([server] telemetry_nice).
# Out: WORK (temp dir), PID (steward), URL, $WORK/weigh.json (the body as the
#      shim sends it: compact JSON). An EXIT trap stops steward and removes WORK.

WORK=$(mktemp -d /tmp/steward-load.XXXXXX)
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
${TELEMETRY_NICE:+telemetry_nice = $TELEMETRY_NICE}
[auth]
strategy = "noauth"
[database]
url = "sqlite://$WORK/steward.sqlite?mode=rwc"
[telemetry]
max_age_seconds = ${TELEMETRY_MAX_AGE:-3600}
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
