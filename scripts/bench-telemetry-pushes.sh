#!/usr/bin/env bash
# Telemetry pushes at scale beside the callout load: a push must cost what it
# carries, not the size of the cloud. A release steward (noauth, SQLite, as
# scripts/loadtest-weigh.sh starts it) is seeded through POST /v1/telemetry
# with 5,000 hosts and 100,000 VMs; then, per run, wrk drives POST /v1/weigh
# (the 100-host example, 8 connections, 1 thread, as the load test) alone for
# DURATION/2 seconds, then for DURATION seconds beside PUSH_RATE telemetry pushes/s
# from PUSH_CLIENTS concurrent pushers (hey at a fixed rate per pusher: 50
# pushers at 10 pushes/s stand for 5,000 hypervisors' agents each pushing every
# 10 s; each push one host and its 20 VMs with new readings, five different
# hosts), then alone again for DURATION/2 (the two alone halves pooled, so a drift
# of the machine's speed weighs on both sides alike). Printed per run: callout rps,
# p50 and p99 alone and with the pushes, and the
# p99 ratio (target <= 1.10), the pushes' achieved rate, their p99 latency
# (the slowest of the five hey processes) and non-202 answers,
# steward's RSS every 5 s of the push phase (target: flat), and steward's CPU
# time per push with the pushes alone (a quarter of DURATION), in all and by
# steward's threads. PUSHER_NICE runs the pushers at that nice value (they stand
# for agents on other hosts; 19 gives them only CPU steward and the callouts leave
# idle); PUSHER_SCHED=idle runs them under Linux's SCHED_IDLE policy instead (they only
# get a core nothing else wants, and give it up at once when a callout wakes, which a nice
# value does not promise); TELEMETRY_NICE sets steward's [server] telemetry_nice.
# BLOCKS=N cuts each run into N such alone/pushed/alone blocks of DURATION/N with
# the pushes, pooled, so that the two sides of the ratio are measured in the same
# minutes (on a shared host the machine's speed drifts over a run). The last line
# gives min/median/max of the ratio over the runs.
#
#   scripts/bench-telemetry-pushes.sh                 # 1 run, 60 s with the pushes
#   RUNS=3 scripts/bench-telemetry-pushes.sh          # 3 runs
#   DURATION=20 PUSH_RATE=500 scripts/bench-telemetry-pushes.sh
#
# Env: STEWARD_BIN (default target/release/steward), RUNS, DURATION (s),
# PUSH_RATE (pushes/s), PUSH_CLIENTS (a multiple of 5 dividing PUSH_RATE),
# HOSTS, VMS, CONNECTIONS, KEEP=1, CALLOUT_RATE, PUSHER_NICE, PUSHER_SCHED (other or
# idle), TELEMETRY_NICE, BLOCKS,
# PUSH_TO (self, or other: the pushes go to a second steward, the control).
#
# By default the callouts are the load test's closed loop (wrk: each of the 8
# connections sends its next request when the last is answered), which keeps
# both cores busy: there, whatever CPU the pushes and the pushers take comes
# out of the callouts' throughput and queueing. CALLOUT_RATE=N sends the
# callouts at a fixed N requests/s instead (hey, CONNECTIONS workers), as
# nova-schedulers send them, so the ratio shows what pushes do to a callout's
# latency when the machine is not already saturated.
# Needs wrk and hey (Debian), curl, python3; steward, wrk and hey share the
# machine's cores, as in production a scheduler's callouts and pushers do not.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${STEWARD_BIN:-$ROOT/target/release/steward}
BODY=$ROOT/etc/examples/weigh-100-hosts.json
RUNS=${RUNS:-1}
DURATION=${DURATION:-60}
PUSH_RATE=${PUSH_RATE:-500}
HOSTS=${HOSTS:-5000}
VMS=${VMS:-100000}
CONNECTIONS=${CONNECTIONS:-8}
CALLOUT_RATE=${CALLOUT_RATE:-}
LOG_LEVEL=${STEWARD_LOG_LEVEL:-info}
PUSH_CLIENTS=${PUSH_CLIENTS:-50}
PUSHER_NICE=${PUSHER_NICE:-0}
PUSHER_SCHED=${PUSHER_SCHED:-other}
PUSH_TO=${PUSH_TO:-self}
BLOCKS=${BLOCKS:-1}
PUSHERS=5  # hey processes, one push body (one host) each

die() { echo "bench-telemetry-pushes: $*" >&2; exit 2; }
for tool in wrk hey curl python3; do
    command -v "$tool" >/dev/null || die "$tool not found: apt-get install -y $tool"
done
[ -x "$BIN" ] || die "no steward binary at $BIN: cargo build --release --bin steward, or set STEWARD_BIN"
BLOCK=$((DURATION / BLOCKS))
[ "$BLOCK" -ge 2 ] || die "DURATION / BLOCKS must be at least 2 seconds"
[ $((PUSH_CLIENTS % PUSHERS)) = 0 ] || die "PUSH_CLIENTS must be a multiple of $PUSHERS"
[ $((PUSH_RATE % PUSH_CLIENTS)) = 0 ] || die "PUSH_RATE must be a multiple of PUSH_CLIENTS ($PUSH_CLIENTS)"

# shellcheck source=scripts/lib/steward-under-load.sh
. "$ROOT/scripts/lib/steward-under-load.sh"

# The seed (5,000 hosts and 100,000 VMs in all, the example's included) in
# bodies of 250 hosts, and one push body per pusher: a host and its VMs.
python3 - "$BODY" "$HOSTS" "$VMS" "$WORK" "$PUSHERS" <<'PY'
import json, random, sys, time
body, hosts, vms, work, pushers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
req = json.load(open(body))
have_hosts = len(req["hosts"])
have_vms = sum(len(h.get("instance_uuids") or []) for h in req["hosts"])
extra_hosts = hosts - have_hosts
per_host = (vms - have_vms) // extra_hosts
rng = random.Random(11)
now = time.time()
def host(i):
    name = "bench-%05d" % i
    h = {"host": name, "az": "az%d" % (i % 3 + 1), "steal": round(rng.uniform(0, 0.3), 3),
         "load5": round(rng.uniform(1, 40), 1), "vcpus": 64, "observed_at": now}
    count = per_host + (1 if i < (vms - have_vms) % extra_hosts else 0)
    vs = [{"uuid": "%08x-0000-4000-8000-%012x" % (i, j), "host": name,
           "role": "web" if j % 3 == 0 else "batch", "steal": round(rng.uniform(0, 0.2), 3),
           "load5": 1.0, "vcpus": 2, "observed_at": now} for j in range(count)]
    return h, vs
chunk, n = [], 0
for i in range(extra_hosts):
    chunk.append(host(i))
    if len(chunk) == 250 or i == extra_hosts - 1:
        json.dump({"hosts": [h for h, _ in chunk], "vms": [v for _, vs in chunk for v in vs]},
                  open("%s/seed-%03d.json" % (work, n), "w"), separators=(",", ":"))
        chunk, n = [], n + 1
for p in range(pushers):
    h, vs = host(p * 97)
    for v in vs:
        v.pop("observed_at")  # stamped on arrival: every push is the newest reading
    h.pop("observed_at")
    json.dump({"hosts": [h], "vms": vs}, open("%s/push-%d.json" % (work, p), "w"), separators=(",", ":"))
PY
seed() {  # $1: the steward's URL
    for f in "$WORK"/seed-*.json; do
        code=$(curl -sS -o "$WORK/seed.answer" -w '%{http_code}' -H 'Content-Type: application/json' \
            --data-binary @"$f" "$1/v1/telemetry")
        [ "$code" = 202 ] || die "seeding $f answered $code: $(head -c 400 "$WORK/seed.answer")"
    done
}
seed "$URL"
# Where the pushes go: this steward, or (PUSH_TO=other, the control) a second steward, seeded
# alike, on the same cores, so what the pushes cost the callouts through the machine alone
# (cores, caches, memory) shows apart from what they cost inside the steward that answers.
PUSH_URL=$URL PUSH_PID=$PID OTHER_PID=
if [ "$PUSH_TO" = other ]; then
    OTHER_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    mkdir "$WORK/other"
    sed -e "s|127.0.0.1:$PORT|127.0.0.1:$OTHER_PORT|" -e "s|$WORK/steward.sqlite|$WORK/other/steward.sqlite|" \
        "$WORK/steward.toml" > "$WORK/other/steward.toml"
    "$BIN" serve --config "$WORK/other/steward.toml" > "$WORK/other/steward.log" 2>&1 &
    OTHER_PID=$!
    trap '[ -n "$OTHER_PID" ] && kill "$OTHER_PID" 2>/dev/null; cleanup' EXIT
    PUSH_URL=http://127.0.0.1:$OTHER_PORT PUSH_PID=$OTHER_PID
    for _ in $(seq 100); do curl -fsS -o /dev/null "$PUSH_URL/healthz" 2>/dev/null && break; sleep 0.1; done
    seed "$PUSH_URL"
elif [ "$PUSH_TO" != self ]; then
    die "PUSH_TO is self or other, not $PUSH_TO"
fi
known=$(curl -sS "$URL/metrics" | awk '/^steward_cluster_(hosts|vms) / {printf "%s=%s ", $1, $2}')
echo "steward $BIN at $URL; seeded: $known; $(nproc) cores shared by steward, wrk and hey"

thread_ticks() {  # one line a thread: tid, name, user+system ticks
    for t in /proc/"$PUSH_PID"/task/*; do
        printf '%s\t%s\t%s\n' "${t##*/}" "$(tr ' ' _ < "$t/comm")" "$(sed 's/.*) //' "$t/stat" | awk '{print $12 + $13}')"
    done
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$PUSH_PID/status"; }
# One callout phase: $1 label, $2 seconds. wrk prints its SUMMARY line; hey keeps every
# request's latency (CSV) for summarize below.
callout() {
    if [ -z "$CALLOUT_RATE" ]; then
        WEIGH_BODY="$WORK/weigh.json" wrk -t1 -c"$CONNECTIONS" -d"${2}s" --latency \
            -s "$ROOT/scripts/loadtest-weigh.lua" "$URL/v1/weigh" > "$WORK/wrk-$1.out"
    else
        hey -z "${2}s" -c "$CONNECTIONS" -q $((CALLOUT_RATE / CONNECTIONS)) -m POST -o csv \
            -T application/json -D "$WORK/weigh.json" "$URL/v1/weigh" > "$WORK/hey-callout-$1.csv"
    fi
}
# A SUMMARY line (rps, p50_ms, p99_ms, non2xx) over the phases named: with hey, percentiles
# of every request of those phases pooled; with wrk (no per-request latencies), the phases'
# own figures averaged.
summarize() {
    if [ -z "$CALLOUT_RATE" ]; then
        python3 - "$WORK" "$@" <<'PY'
import re, sys
work, labels = sys.argv[1], sys.argv[2:]
rows = [dict(re.findall(r"(\w+)=([0-9.]+)", [l for l in open("%s/wrk-%s.out" % (work, x)) if l.startswith("SUMMARY")][0])) for x in labels]
avg = lambda k: sum(float(r[k]) for r in rows) / len(rows)
print("SUMMARY rps=%.0f p50_ms=%.3f p99_ms=%.3f non2xx=%d" % (avg("rps"), avg("p50_ms"), avg("p99_ms"), sum(int(r["non2xx"]) for r in rows)))
PY
    else
        python3 - "$WORK" "$BLOCK" "$@" <<'PY'
import csv, sys
work, duration, labels = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
lat, bad, seconds = [], 0, 0.0
for x in labels:
    n = 0
    for row in csv.DictReader(open("%s/hey-callout-%s.csv" % (work, x))):
        n += 1
        lat.append(float(row["response-time"]) * 1000)
        bad += row["status-code"] != "200"
    seconds += duration if x.startswith("pushed") else duration / 2
lat.sort()
pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print("SUMMARY rps=%.0f p50_ms=%.3f p99_ms=%.3f non2xx=%d" % (len(lat) / seconds, pct(0.50), pct(0.99), bad))
PY
    fi
}
# The pushers, for $1 seconds, each writing its hey report to $WORK/$2-N.out; their PIDs
# in pids.
start_pushers() {
    pids=()
    for p in $(seq 0 $((PUSHERS - 1))); do
        chrt "--$PUSHER_SCHED" 0 nice -n "$PUSHER_NICE" hey -z "${1}s" -c $((PUSH_CLIENTS / PUSHERS)) -q $((PUSH_RATE / PUSH_CLIENTS)) \
            -m POST -T application/json -D "$WORK/push-$p.json" "$PUSH_URL/v1/telemetry" > "$WORK/$2-$p.out" &
        pids+=($!)
    done
}
val() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$2"; }

ratios=()
for run in $(seq "$RUNS"); do
    # Callouts alone for half of a block before the pushes and half after, so a drift of
    # the machine's speed over the run weighs on both sides of the ratio alike; BLOCKS
    # such blocks a run, each DURATION/BLOCKS with the pushes, pooled.
    : > "$WORK/rss.txt"
    for b in $(seq "$BLOCKS"); do
        callout "alone-before-$b" $((BLOCK / 2))
        start_pushers "$BLOCK" "hey-$b"
        ( while kill -0 "${pids[0]}" 2>/dev/null; do rss_kb >> "$WORK/rss.txt"; sleep 5; done ) &
        sampler=$!
        callout "pushed-$b" "$BLOCK"
        wait "${pids[@]}"
        wait "$sampler" 2>/dev/null || true
        callout "alone-after-$b" $((BLOCK / 2))
    done
    alone_labels=() pushed_labels=()
    for b in $(seq "$BLOCKS"); do alone_labels+=("alone-before-$b" "alone-after-$b"); pushed_labels+=("pushed-$b"); done
    alone=$(summarize "${alone_labels[@]}")
    pushed=$(summarize "${pushed_labels[@]}")
    push_rps=0; non202=0; push_p99=0
    for b in $(seq "$BLOCKS"); do
        for p in $(seq 0 $((PUSHERS - 1))); do
            r=$(awk '/Requests\/sec/ {print $2}' "$WORK/hey-$b-$p.out")
            push_rps=$(python3 -c "print(round($push_rps + $r / $BLOCKS, 1))")
            bad=$(awk '/Status code distribution/ {on=1; next} on && /\[[0-9]+\]/ {gsub(/[\[\]]/, "", $1); if ($1 != 202) n += $2} END {print n + 0}' "$WORK/hey-$b-$p.out")
            errs=$(awk '/Error distribution/ {on=1; next} on && /\[[0-9]+\]/ {gsub(/[\[\]]/, "", $1); n += $1} END {print n + 0}' "$WORK/hey-$b-$p.out")
            non202=$((non202 + bad + errs))
            p99=$(awk '/ 99% in / {print $3 * 1000}' "$WORK/hey-$b-$p.out")
            push_p99=$(python3 -c "print(round(max($push_p99, ${p99:-0}), 1))")
        done
    done
    # The pushes alone, for a quarter of DURATION: steward's CPU per push.
    ticks0=$(awk '{print $14 + $15}' "/proc/$PUSH_PID/stat")
    thread_ticks > "$WORK/threads0.txt"
    start_pushers $((DURATION / 4)) hey-solo
    wait "${pids[@]}"
    ticks1=$(awk '{print $14 + $15}' "/proc/$PUSH_PID/stat")
    thread_ticks > "$WORK/threads1.txt"
    solo_n=$(awk '/Status code distribution/ {on=1; next} on && /\[202\]/ {n += $2} END {print n + 0}' "$WORK"/hey-solo-*.out)
    # Where that CPU went, by steward's thread names (workers, telemetry lane, SQLite, ...).
    by_thread=$(python3 - "$WORK/threads0.txt" "$WORK/threads1.txt" "$(getconf CLK_TCK)" "$solo_n" <<'PY'
import collections, sys
def load(path):
    out = {}
    for line in open(path):
        tid, name, ticks = line.rstrip("\n").split("\t")
        out[tid] = (name, int(ticks))
    return out
before, after = load(sys.argv[1]), load(sys.argv[2])
hz, n = int(sys.argv[3]), max(int(sys.argv[4]), 1)
per = collections.Counter()
for tid, (name, ticks) in after.items():
    per[name] += ticks - before.get(tid, (name, 0))[1]
print(" ".join("%s=%.3f" % (k, v / hz * 1000 / n) for k, v in per.most_common() if v))
PY
)
    cpu_per_push=$(python3 -c "print('%.3f' % (($ticks1 - $ticks0) / $(getconf CLK_TCK) * 1000 / max($solo_n, 1)))")
    a99=$(val p99_ms "$alone"); b99=$(val p99_ms "$pushed")
    ratio=$(python3 -c "print('%.3f' % ($b99 / $a99))")
    ratios+=("$ratio")
    rss=$(tr '\n' ' ' < "$WORK/rss.txt")
    echo "RUN $run alone: rps=$(val rps "$alone") p50_ms=$(val p50_ms "$alone") p99_ms=$a99 | with pushes: rps=$(val rps "$pushed") p50_ms=$(val p50_ms "$pushed") p99_ms=$b99 | p99 ratio=$ratio (target <= 1.10) | pushes/s=$push_rps (target $PUSH_RATE) push_p99_ms=$push_p99 non202=$non202 | pushes alone: steward_cpu_ms_per_push=$cpu_per_push (by thread: $by_thread) | rss_kb every 5 s: $rss"
    if [ "$non202" != 0 ]; then tail -20 "$WORK/steward.log" >&2; die "$non202 pushes failed"; fi
done
python3 - "${ratios[@]}" <<'PY'
import statistics, sys
r = sorted(float(x) for x in sys.argv[1:])
print("SUMMARY runs=%d p99_ratio min=%.3f median=%.3f max=%.3f" % (len(r), r[0], statistics.median(r), r[-1]))
PY
