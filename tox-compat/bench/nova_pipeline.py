"""What StewardFilter + StewardWeigher add to Nova's scheduler, per request.

Runs Nova 34's default pipeline (the defaults of [filter_scheduler]
enabled_filters and weight_classes, read from nova.conf's option
definitions) over N real HostState objects, against a live release
steward, in four variants alternated so drift hits all alike: Nova alone;
with a no-op filter and weigher appended (what Nova's handlers charge for
any one more filter and weigher); with the steward classes answered at once
by steward's last real answer (the shim's own Python, no round trip); with
the steward classes and steward. It checks that the shim made exactly one
HTTP call per request (POST /v1/filter?weigh=true, the weigher using its
weights). Then splits that round trip, as the shim runs it, into body
building, HTTP (steward's work plus loopback), JSON parsing, answer
checking and the weigher's hand-off. The added time is also split by
what ran inside the timed nova+steward runs themselves: the shim's
Python in StewardFilter.filter_all, the round trip it waits for,
StewardWeigher.weigh_objects, and the rest (Nova's handlers for one more
filter and weigher, and what the load beside did to the rest of the
request). --runs N runs the whole command N times, one after the other,
each in a new process with its own steward, and prints the paired
estimate of each run and their min / median / max.

    tox -c tox-compat/tox.ini -e bench
    tox -c tox-compat/tox.ini -e bench -- --sizes 1000 --reps 60 --runs 5
    python tox-compat/bench/nova_pipeline.py --sizes 100,1000 --reps 10
"""

import argparse
import gc
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', '1')
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..'))


from nova.scheduler import filters as nova_filters  # noqa: E402
from nova.scheduler import weights as nova_weights  # noqa: E402

from harness import nova_scheduler as ns  # noqa: E402
from harness import start_steward  # noqa: E402
from harness.steward import REPO_ROOT  # noqa: E402
from steward_nova import body  # noqa: E402
from steward_nova import client  # noqa: E402
from steward_nova import filters as steward_filters  # noqa: E402
from steward_nova import handoff  # noqa: E402
from steward_nova import weighers as steward_weighers  # noqa: E402
import steward_nova.conf  # noqa: E402, F401  (registers [steward])

STEWARD_FILTER = 'steward_nova.filters.StewardFilter'
STEWARD_WEIGHER = 'steward_nova.weighers.StewardWeigher'
AZS = ('az1', 'az2', 'az3')
DEFAULT_REPS = {100: 40, 1000: 40, 5000: 10}
ROUND_TRIP = '/v1/filter?weigh=true&compact=true'


class _CountWarnings(logging.Handler):
    """A fail-open callout is fast and meaningless: count them, abort."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def make_cluster(n, rng):
    """n hosts over three AZs, sizes and use as a mixed fleet has them."""
    aggs = {az: ns.az_aggregate(az) for az in AZS}
    hosts = []
    for i in range(n):
        az = AZS[i % 3]
        vcpus = rng.choice((32, 48, 64, 96, 128))
        mem = vcpus * rng.choice((4096, 8192))
        disk = rng.choice((960, 1920, 3840))
        n_inst = rng.randint(0, 6)
        hosts.append(ns.make_host_state(
            'cmp-%s-%05d' % (az, i), aggregates=[aggs[az]],
            instances=[ns.stable_uuid('vm', i, k) for k in range(n_inst)],
            vcpus=vcpus, vcpus_used=rng.randint(0, vcpus * 2),
            memory_mb=mem, free_ram_mb=rng.randint(mem // 8, mem),
            disk_gb=disk, free_disk_gb=rng.randint(disk // 8, disk),
            cpu_allocation_ratio=4.0, ram_allocation_ratio=1.0))
    return hosts


def push_telemetry(steward, hosts, rng):
    now = time.time()
    batch = []
    for hs in hosts:
        batch.append({'host': hs.host,
                      'az': body.host_az(hs, body.configured_default_az()),
                      'steal': round(rng.uniform(0.0, 0.3), 3),
                      'load5': round(rng.uniform(0.5, 40.0), 2),
                      'vcpus': hs.vcpus_total, 'observed_at': now})
        if len(batch) == 1000:
            steward.push_telemetry(hosts=batch)
            batch = []
    if batch:
        steward.push_telemetry(hosts=batch)


def request_spec(profile):
    flavor = ns.make_flavor('m1.web', vcpus=2, memory_mb=4096,
                            extra_specs={'steward:profile': profile})
    return ns.make_request_spec(flavor=flavor,
                                hints={'steward_role': ['web']})


class NoopFilter(nova_filters.BaseHostFilter):
    """Passes every host at once: what one more filter costs in Nova's
    filter handler, whatever the filter does."""

    RUN_ON_REBUILD = False

    def filter_all(self, filter_obj_list, spec_obj):
        return list(filter_obj_list)

    def host_passes(self, host_state, spec_obj):
        return True


class NoopWeigher(nova_weights.BaseHostWeigher):
    """Weighs every host 0.0 at once: what one more weigher costs in
    Nova's weight handler (its debug dicts, normalisation, the
    multiplier loop), whatever the weigher does."""

    def weigh_objects(self, weighed_obj_list, weight_properties):
        return [0.0] * len(weighed_obj_list)

    def _weigh_object(self, host_state, weight_properties):
        return 0.0


def scheduler(extra, endpoint, token_file):
    """Nova's default pipeline, plus `extra`: None, 'steward' (the shim's
    classes) or 'noop' (NoopFilter and NoopWeigher)."""
    defaults = ns.CONF.filter_scheduler
    enabled = list(defaults.enabled_filters)
    weight_classes = list(defaults.weight_classes)
    if extra == 'steward':
        enabled.append('StewardFilter')
        weight_classes.append(STEWARD_WEIGHER)
    elif extra == 'noop':
        enabled.append('NoopFilter')
        weight_classes.append(__name__ + '.NoopWeigher')
    flags = ns.nova_flags(
        filter_scheduler={
            'available_filters': ['nova.scheduler.filters.all_filters',
                                  STEWARD_FILTER, __name__ + '.NoopFilter'],
            'enabled_filters': enabled, 'weight_classes': weight_classes},
        steward={'endpoint': endpoint, 'token_file': token_file,
                 'timeout': 5.0})
    with flags:
        return ns.NovaScheduler()


class _Transport:
    """client._send replaced: 'record' sends and keeps the last answer,
    'canned' answers with it at once, so the shim runs without the
    round trip (the hosts are the same from one request to the next).
    `seconds` adds up the time of the real sends (the round trip as the
    shim waits for it: http.client, loopback, steward)."""

    def __init__(self):
        self.last = None
        self._real = client._send
        self.mode = 'record'
        self.seconds = 0.0

    def __call__(self, target, path, data, headers, timeout):
        if self.mode == 'canned':
            return self.last
        t0 = time.perf_counter()
        self.last = self._real(target, path, data, headers, timeout)
        self.seconds += time.perf_counter() - t0
        return self.last

    def __enter__(self):
        client._send = self
        return self

    def __exit__(self, *exc):
        client._send = self._real


class _ShimClock:
    """Times StewardFilter.filter_all and StewardWeigher.weigh_objects
    inside the timed runs themselves (two perf_counter reads per call, one
    call of each per request): where the added time goes in the very runs
    the added time comes from."""

    def __init__(self):
        self.filter = self.weigh = 0.0
        self._saved = []

    def _wrap(self, cls, name, attr):
        real = getattr(cls, name)
        clock = self

        def timed_call(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                setattr(clock, attr, getattr(clock, attr) +
                        time.perf_counter() - t0)

        self._saved.append((cls, name, real))
        setattr(cls, name, timed_call)

    def reset(self):
        self.filter = self.weigh = 0.0

    def __enter__(self):
        self._wrap(steward_filters.StewardFilter, 'filter_all', 'filter')
        self._wrap(steward_weighers.StewardWeigher, 'weigh_objects', 'weigh')
        return self

    def __exit__(self, *exc):
        for cls, name, real in self._saved:
            setattr(cls, name, real)
        self._saved = []


# As timeit does: collect before a timed run and keep the collector out of
# it, so that a full collection over Nova's objects (tens of ms at 1,000
# hosts) does not land in whichever run happens to cross the threshold.
# --gc leaves the collector on, as in nova-scheduler.
GC_OFF = True


def timed(fn, *args):
    if GC_OFF:
        gc.collect()
        gc.disable()
    try:
        t0 = time.perf_counter()
        result = fn(*args)
        return (time.perf_counter() - t0) * 1000.0, result
    finally:
        if GC_OFF:
            gc.enable()


def server_seconds(steward):
    """{route: (sum seconds, count)} of steward's own request histogram."""
    status, text, _ = steward.request('GET', '/metrics', role='admin')
    assert status == 200, text
    out = {}
    for line in text.splitlines():
        for part in ('sum', 'count'):
            prefix = 'steward_http_request_duration_seconds_%s{' % part
            if line.startswith(prefix) and 'route="/v1/' in line:
                route = line.split('route="', 1)[1].split('"', 1)[0]
                total, n = out.get(route, (0.0, 0))
                value = float(line.rsplit(' ', 1)[1])
                out[route] = ((total + value, n) if part == 'sum'
                              else (total, n + value))
    return out


def breakdown(steward, hosts, profile, reps):
    """Median ms of each part of the one round trip, as the shim runs it
    (client.call split in its steps), plus steward's own mean handling
    time from its /metrics."""
    parts = {k: [] for k in ('cold_encode', 'encode', 'http', 'parse',
                             'check', 'handoff', 'http_b2b')}
    headers = dict(client._HEADERS,
                   Authorization='Bearer ' + client.token())
    target = client._target(client.CONF.steward.endpoint)
    default_az = body.configured_default_az()
    before = server_seconds(steward)
    size = 0

    def clock(name, fn, *args, **kwargs):
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        parts[name].append((time.perf_counter() - t0) * 1000)
        return result

    known = client.known_refs(target)

    def encode(hs, spec, known):
        enc = body.encode_hosts(hs, True, default_az)
        return client.request_body(spec, enc, known), enc

    def http(data):
        status, raw, cache = client._send(target, target[3] + ROUND_TRIP,
                                          data, headers, 10.0)
        assert status == 200, raw[:300]
        return raw, cache is not None

    def check(answer, keys):
        indexes, weights = client.compact_answer(answer, len(keys))
        if indexes is None:
            passed, passed_keys = hosts, keys
        else:
            passed = [hosts[i] for i in indexes]
            passed_keys = [keys[i] for i in indexes]
        return passed, passed_keys, weights

    def hand_over(spec, passed, passed_keys, weights):
        handoff.put(spec, passed, passed_keys, weights)
        return handoff.take(spec, passed)

    # Cold: nothing encoded before, nothing known to steward (a
    # scheduler's first request).
    for _ in range(3):
        body.forget_encoded()
        data, _ = clock('cold_encode', encode, hosts, request_spec(profile),
                        set())
        full_size = len(data)

    for _ in range(reps):
        spec = request_spec(profile)
        data, enc = clock('encode', encode, hosts, spec, known)
        keys = [k for k, _, _ in enc]
        size = len(data)
        raw, cached = clock('http', http, data)
        client.remember(known, enc, cached)
        answer = clock('parse', json.loads, raw)
        passed, passed_keys, weights = clock('check', check, answer, keys)
        weights = clock('handoff', hand_over, spec, passed, passed_keys,
                        weights)
        # As FilterScheduler does with the host it picks: the next request
        # sees one changed host.
        best = max(range(len(passed)), key=weights.__getitem__)
        passed[best].consume_from_request(spec)
    # The same body again and again, each round trip right after the
    # last: steward's data and the caller's stay in the CPU caches.
    for _ in range(max(10, reps)):
        clock('http_b2b', http, data)
    after = server_seconds(steward)
    result = {k: statistics.median(v) for k, v in parts.items()}
    s0, c0 = before.get('/v1/filter', (0.0, 0))
    s1, c1 = after.get('/v1/filter', (0.0, 0))
    result['server'] = (s1 - s0) / max(c1 - c0, 1) * 1000
    return result, (size, full_size)


class _CountCalls:
    """Counts the shim's HTTP calls (client.post) while installed."""

    def __init__(self):
        self.paths = []
        self._real = client.post

    def __call__(self, path, data, req_id=None):
        self.paths.append(path)
        return self._real(path, data, req_id)

    def __enter__(self):
        client.post = self
        return self

    def __exit__(self, *exc):
        client.post = self._real


def run(args):
    global GC_OFF
    GC_OFF = not args.gc
    rng = random.Random(20261122)
    warn_counter = _CountWarnings()
    logging.getLogger('steward_nova').addHandler(warn_counter)
    # The hosts' services report once, when the bench makes them: keep them
    # up (ComputeFilter) however long the runs take.
    ns.CONF.set_override('service_down_time', 86400)
    workdir = tempfile.mkdtemp(prefix='steward-bench-')
    steward = start_steward(workdir, binary=args.steward_bin)
    rows, parts, raw_times = [], [], {}
    try:
        token_file = steward.token_file()
        plain = scheduler(None, steward.url, token_file)
        noop = scheduler('noop', steward.url, token_file)
        both = scheduler('steward', steward.url, token_file)
        print('steward %s (%s), profile %s; Nova filters %s; %d weighers '
              '+ StewardWeigher' % (
                  steward.url, args.steward_bin, args.profile,
                  [type(f).__name__ for f in plain.filters],
                  len(plain.weighers)), flush=True)
        with ns.nova_flags(steward={'endpoint': steward.url,
                                    'token_file': token_file,
                                    'timeout': 5.0}), _Transport() as wire, \
                _ShimClock() as clock:
            for n in args.sizes:
                reps = args.reps or DEFAULT_REPS.get(n, 5)
                hosts = make_cluster(n, rng)
                push_telemetry(steward, hosts, rng)
                # Alternated, so drift hits all four alike: Nova alone;
                # with a no-op filter and weigher; with the shim answered
                # at once (the last real answer); with the shim and steward.
                runs = (('nova', plain, 'record'), ('noop', noop, 'record'),
                        ('canned', both, 'canned'),
                        ('steward', both, 'record'))
                wire.mode = 'record'
                for sched in (both, plain, noop, both):  # warm-up
                    sched.schedule(hosts, request_spec(args.profile))
                times = {name: [] for name, _, _ in runs}
                # Inside each timed nova+steward run: the filter's and the
                # weigher's own time, and the round trip within the filter.
                inside = {'filter': [], 'weigh': [], 'round_trip': []}
                counter = _CountCalls()
                for rep in range(reps):
                    # Nova alone and Nova with the shim run back to back,
                    # each first every other rep (warm caches, drift); so
                    # do the no-op and canned variants.
                    order = (runs[0], runs[3], runs[1], runs[2])
                    if rep % 2:
                        order = (runs[3], runs[0], runs[2], runs[1])
                    for name, sched, mode in order:
                        spec = request_spec(args.profile)
                        wire.mode = mode
                        if name == 'steward':
                            clock.reset()
                            wire.seconds = 0.0
                            with counter:
                                ms, result = timed(sched.schedule, hosts,
                                                   spec)
                            inside['filter'].append(clock.filter * 1000)
                            inside['weigh'].append(clock.weigh * 1000)
                            inside['round_trip'].append(wire.seconds * 1000)
                        elif name == 'canned':
                            # The canned answer says steward keeps the
                            # hosts it was never sent: keep the shim's
                            # view of steward's cache as it really is.
                            known = {t: set(k)
                                     for t, k in client._KNOWN.items()}
                            ms, result = timed(sched.schedule, hosts, spec)
                            client._KNOWN.clear()
                            client._KNOWN.update(known)
                        else:
                            ms, result = timed(sched.schedule, hosts, spec)
                        times[name].append(ms)
                        if not result:
                            raise SystemExit('no host passed at %d hosts' % n)
                        # FilterScheduler consumes the host it picks, so
                        # the next request sees it changed.
                        result[0].obj.consume_from_request(spec)
                wire.mode = 'record'
                calls = len(counter.paths) / reps
                if counter.paths != [ROUND_TRIP] * reps:
                    raise SystemExit(
                        'expected one POST %s per request, the shim made '
                        '%s' % (ROUND_TRIP, counter.paths[:6]))
                if warn_counter.messages:
                    raise SystemExit('the shim failed open during the bench '
                                     '(numbers would be meaningless):\n' +
                                     '\n'.join(warn_counter.messages[:3]))
                med = {k: statistics.median(v) for k, v in times.items()}
                best = {k: min(v) for k, v in times.items()}
                # A rep's Nova and Nova + shim runs follow each other: the
                # median of their ratios is not moved by the machine
                # slowing down and speeding up over a run.
                pairs = list(zip(times['steward'], times['nova'],
                                 strict=True))
                med['paired'] = statistics.median(a - b for a, b in pairs)
                med['ratio'] = statistics.median(a / b for a, b in pairs)
                # The paired added ms split by what ran inside those very
                # runs; `rest` is what is left of it: Nova's handlers for
                # one more filter and weigher (the weigher's per-host
                # weight_multiplier among them), and what the load beside
                # did to the rest of the request.
                split = {
                    'shim_filter': statistics.median(
                        f - r for f, r in zip(inside['filter'],
                                              inside['round_trip'],
                                              strict=True)),
                    'round_trip': statistics.median(inside['round_trip']),
                    'shim_weigher': statistics.median(inside['weigh']),
                    'noop_pair': statistics.median(
                        a - b for a, b in zip(times['noop'], times['nova'],
                                              strict=True)),
                }
                split['rest'] = med['paired'] - (
                    split['shim_filter'] + split['round_trip'] +
                    split['shim_weigher'])
                med['split'] = split
                rows.append((n, reps, med, best, calls))
                raw_times[n] = times
                p, size = breakdown(steward, hosts, args.profile,
                                    max(3, reps // 2))
                parts.append((n, size, p))
                print('  %5d hosts done (%d reps)' % (n, reps), flush=True)
    finally:
        steward.stop()
    report(rows, parts)
    if args.json:
        summary = [{'hosts': n, 'reps': reps, 'nova_ms': med['nova'],
                    'steward_ms': med['steward'], 'added_ms': med['paired'],
                    'added_pct': (med['ratio'] - 1) * 100,
                    'split': med['split']}
                   for n, reps, med, _, _ in rows]
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump({'ms_per_request': raw_times, 'parts': parts,
                       'summary': summary}, f)
    if args.keep_log:
        print('steward log: %s' % steward.process.log_path)


def report(rows, parts):
    print()
    print('Nova 34 default pipeline, median ms per scheduling request '
          '(filter + weigh). added = median over reps of the nova+steward '
          'run against the nova run just before or after it (ms: of the '
          'differences, %: of the ratios); also the difference of the '
          'medians, and of the best of reps')
    print('%7s %5s %12s %20s %10s %8s %6s | %17s | %s' % (
        'hosts', 'reps', 'nova ms/req', 'nova+steward ms/req', 'added ms',
        'added %', 'calls', 'medians: added %',
        'best of reps: nova, nova+steward, added %'))
    for n, reps, med, best, calls in rows:
        a, b = med['nova'], med['steward']
        print('%7d %5d %12.1f %20.1f %10.1f %7.1f%% %6.2f | %16.1f%% | '
              '%6.1f %6.1f %6.1f%%' % (
                  n, reps, a, b, med['paired'], (med['ratio'] - 1) * 100,
                  calls, (b - a) / a * 100, best['nova'], best['steward'],
                  (best['steward'] - best['nova']) / best['nova'] * 100))
    print()
    print('The added ms split, from medians of the same alternated runs: '
          'Nova\'s handlers for one more filter and weigher (a no-op pair); '
          'the shim\'s Python with steward\'s answer given at once; the '
          'round trip (loopback and steward)')
    print('%7s | %14s %14s %14s | %s' % (
        'hosts', 'nova handlers', 'shim Python', 'round trip',
        'nova, +noop, +shim w/o round trip, +steward'))
    for n, _, med, _, _ in rows:
        print('%7d | %14.2f %14.2f %14.2f | %6.1f %6.1f %6.1f %6.1f' % (
            n, med['noop'] - med['nova'], med['canned'] - med['noop'],
            med['steward'] - med['canned'], med['nova'], med['noop'],
            med['canned'], med['steward']))
    print()
    print('The paired added ms split by what ran inside the timed '
          'nova+steward runs (medians): the shim\'s Python in '
          'StewardFilter.filter_all (without the round trip), the round '
          'trip it waits for, StewardWeigher.weigh_objects; rest = added '
          'minus those: Nova\'s handlers for one more filter and weigher '
          '(they call the weigher\'s weight_multiplier once per host), '
          'and whatever else made the run slower; beside it what a no-op '
          'pair adds (paired with the same rep\'s nova run)')
    print('%7s | %9s = %11s + %10s + %12s + %8s | %9s' % (
        'hosts', 'added ms', 'shim filter', 'round trip', 'shim weigher',
        'rest', 'noop pair'))
    for n, _, med, _, _ in rows:
        sp = med['split']
        print('%7d | %9.2f = %11.2f + %10.2f + %12.2f + %8.2f | %9.2f' % (
            n, med['paired'], sp['shim_filter'], sp['round_trip'],
            sp['shim_weigher'], sp['rest'], sp['noop_pair']))
    print()
    print('Where the steward part goes, median ms per request (the one '
          'round trip, %s). HTTP = round trip seen by the shim; server = '
          'steward\'s own mean handling time (its /metrics histogram)'
          % ROUND_TRIP)
    print('encode = the body while one host changed since the last '
          'request (steward holds the others: sent by reference); cold = '
          'with nothing encoded before and every host sent in full; KiB = '
          'body sent, then in full; check = allowed hosts and their '
          'weights; handoff = filter to weigher; HTTP b2b = the same round '
          'trip repeated back to back (steward\'s and the caller\'s data '
          'stay in the CPU caches); server = over both')
    print('%6s %13s %6s | %7s %7s %8s %7s %7s %7s %7s | %7s' % (
        'hosts', 'KiB', 'cold', 'encode', 'HTTP', 'HTTP b2b', 'server',
        'parse', 'check', 'handoff', 'shim'))
    for n, (size, full_size), p in parts:
        shim = p['encode'] + p['parse'] + p['check'] + p['handoff']
        print('%6d %6.0f/%6.0f %6.2f | %7.2f %7.2f %8.2f %7.2f %7.2f %7.2f '
              '%7.2f | %7.2f' % (
                  n, size / 1024, full_size / 1024, p['cold_encode'],
                  p['encode'], p['http'], p['http_b2b'], p['server'],
                  p['parse'], p['check'], p['handoff'], shim))
    print('shim = encode + parse + check + handoff: the shim\'s own Python '
          'time, without the round trip and Nova\'s handlers')


def _without_runs(argv):
    """argv without --runs and its value, and without --json (each run
    writes its own)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in ('--runs', '--json'):
            skip = True
        elif not a.startswith(('--runs=', '--json=')):
            out.append(a)
    return out


def several(args, argv):
    """The whole command `args.runs` times, one after the other, each in a
    new process with its own steward (as separate invocations would be);
    then the paired estimate of each run and their min / median / max."""
    results = []
    workdir = tempfile.mkdtemp(prefix='steward-bench-runs-')
    for i in range(1, args.runs + 1):
        out = os.path.join(workdir, 'run-%d.json' % i)
        print('=== run %d of %d' % (i, args.runs), flush=True)
        done = subprocess.run([sys.executable, os.path.abspath(__file__)] +
                              _without_runs(argv) + ['--json', out],
                              check=False)
        if done.returncode != 0:
            raise SystemExit('run %d failed (exit %d)' % (i, done.returncode))
        with open(out, encoding='utf-8') as f:
            results.append(json.load(f))
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump({'runs': results}, f)
    print()
    print('=== %d runs, one after the other: added = median over a run\'s '
          'reps of the nova+steward run against the nova run beside it '
          '(%%: of the ratios, ms: of the differences)' % args.runs)
    print('%7s %4s | %10s %8s | %9s = %11s + %10s + %12s + %8s' % (
        'hosts', 'run', 'nova ms', 'added %', 'added ms',
        'shim filter', 'round trip', 'shim weigher', 'rest'))
    for n in args.sizes:
        rows = [next(r for r in res['summary'] if r['hosts'] == n)
                for res in results]
        for i, r in enumerate(rows, 1):
            sp = r['split']
            print('%7d %4d | %10.1f %7.1f%% | %9.2f = %11.2f + %10.2f '
                  '+ %12.2f + %8.2f' % (
                      n, i, r['nova_ms'], r['added_pct'],
                      r['added_ms'], sp['shim_filter'], sp['round_trip'],
                      sp['shim_weigher'], sp['rest']))
        pct = sorted(r['added_pct'] for r in rows)
        ms = sorted(r['added_ms'] for r in rows)
        print('%7d  all | added %%: min %.1f  median %.1f  max %.1f;  added '
              'ms: min %.2f  median %.2f  max %.2f' % (
                  n, pct[0], statistics.median(pct), pct[-1], ms[0],
                  statistics.median(ms), ms[-1]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', default='100,1000,5000',
                        type=lambda s: [int(x) for x in s.split(',')])
    parser.add_argument('--reps', type=int, default=0,
                        help='repetitions per size (default: by size)')
    parser.add_argument('--profile', default='web',
                        help='steward profile the flavor asks for')
    parser.add_argument('--steward-bin', default=os.environ.get(
        'STEWARD_BIN') or os.path.join(REPO_ROOT, 'target', 'release',
                                       'steward'))
    parser.add_argument('--gc', action='store_true',
                        help='leave the garbage collector on in timed runs')
    parser.add_argument('--keep-log', action='store_true')
    parser.add_argument('--json', metavar='FILE',
                        help='also write every run\'s ms, per size and '
                        'variant, to FILE')
    parser.add_argument('--cpu', type=int, metavar='N',
                        help='pin the bench and the steward it starts to '
                        'CPU N (to see what the scheduler thread pays for '
                        'resuming after the round trip on a busy machine; '
                        'the figures are taken without it)')
    parser.add_argument('--runs', type=int, default=1,
                        help='run the whole command this many times, one '
                        'after the other (each in a new process with its '
                        'own steward), then print the min / median / max '
                        'of the added share over the runs')
    args = parser.parse_args()
    if args.cpu is not None:
        # Before steward starts: it inherits the affinity.
        os.sched_setaffinity(0, {args.cpu})
    if args.runs > 1:
        several(args, sys.argv[1:])
    else:
        run(args)


if __name__ == '__main__':
    main()
