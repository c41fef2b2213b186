"""What StewardFilter + StewardWeigher add to Nova's scheduler, per request.

Runs Nova 34's default pipeline (the defaults of [filter_scheduler]
enabled_filters and weight_classes, read from nova.conf's option
definitions) over N real HostState objects, with and without the steward
classes appended, against a live release steward, alternating the two so
drift hits both. Then splits the steward part into body building, HTTP
round trip (steward's work plus loopback) and answer checking.

    tox -c tox-compat/tox.ini -e bench
    python tox-compat/bench/nova_pipeline.py --sizes 100,1000 --reps 10
"""

import argparse
import json
import logging
import os
import random
import statistics
import sys
import tempfile
import time

os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', '1')
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..'))


from harness import nova_scheduler as ns  # noqa: E402
from harness import start_steward  # noqa: E402
from harness.steward import REPO_ROOT  # noqa: E402
from steward_nova import body  # noqa: E402
from steward_nova import client  # noqa: E402
import steward_nova.conf  # noqa: E402, F401  (registers [steward])

STEWARD_FILTER = 'steward_nova.filters.StewardFilter'
STEWARD_WEIGHER = 'steward_nova.weighers.StewardWeigher'
AZS = ('az1', 'az2', 'az3')
DEFAULT_REPS = {100: 40, 1000: 15, 5000: 6}


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
        batch.append({'host': hs.host, 'az': body.host_az(hs),
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


def scheduler(with_steward, endpoint, token_file):
    defaults = ns.CONF.filter_scheduler
    enabled = list(defaults.enabled_filters)
    weight_classes = list(defaults.weight_classes)
    if with_steward:
        enabled.append('StewardFilter')
        weight_classes.append(STEWARD_WEIGHER)
    flags = ns.nova_flags(
        filter_scheduler={
            'available_filters': ['nova.scheduler.filters.all_filters',
                                  STEWARD_FILTER],
            'enabled_filters': enabled, 'weight_classes': weight_classes},
        steward={'endpoint': endpoint, 'token_file': token_file,
                 'timeout': 5.0})
    with flags:
        return ns.NovaScheduler()


def timed(fn, *args):
    t0 = time.perf_counter()
    result = fn(*args)
    return (time.perf_counter() - t0) * 1000.0, result


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
    """Median ms of each part of the two callouts, as the shim runs them,
    plus steward's own mean handling time from its /metrics."""
    parts = {k: [] for k in ('cold_encode', 'filter_encode', 'filter_http',
                             'filter_check',
                             'weigh_encode', 'weigh_http', 'weigh_check')}
    sess = client.session()
    headers = {'Authorization': 'Bearer ' + client.token()}
    before = server_seconds(steward)
    size = 0

    def clock(name, fn, *args, **kwargs):
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        parts[name].append((time.perf_counter() - t0) * 1000)
        return result

    def http(path, data):
        resp = sess.post(client.url(path), data=data, headers=headers,
                         timeout=10)
        assert resp.status_code == 200, resp.content[:300]
        return resp.content

    def check_filter(raw, keys):
        return client.check_filter_answer(json.loads(raw), set(keys))

    def check_weigh(raw, keys):
        return client.check_weigh_answer(json.loads(raw), keys)

    def encode(hs, spec):
        enc = body.encode_hosts(hs)
        return body.encode(spec, [f for _, f in enc]), [k for k, _ in enc]

    # Cold: nothing encoded before (a scheduler's first request).
    for _ in range(3):
        body.forget_encoded()
        clock('cold_encode', encode, hosts, request_spec(profile))

    for _ in range(reps):
        spec = request_spec(profile)
        data, keys = clock('filter_encode', encode, hosts, spec)
        size = len(data)
        raw = clock('filter_http', http, '/v1/filter', data)
        allowed = clock('filter_check', check_filter, raw, keys)
        passed = [hs for hs, k in zip(hosts, keys, strict=True)
                  if k in allowed]
        data, keys = clock('weigh_encode', encode, passed, spec)
        raw = clock('weigh_http', http, '/v1/weigh', data)
        weights = clock('weigh_check', check_weigh, raw, keys)
        # As FilterScheduler does with the host it picks: the next request
        # sees one changed host.
        best = max(range(len(passed)), key=weights.__getitem__)
        passed[best].consume_from_request(spec)
    after = server_seconds(steward)
    result = {k: statistics.median(v) for k, v in parts.items()}
    for route in ('/v1/filter', '/v1/weigh'):
        s0, c0 = before.get(route, (0.0, 0))
        s1, c1 = after.get(route, (0.0, 0))
        result['server ' + route] = (s1 - s0) / max(c1 - c0, 1) * 1000
    return result, size


def run(args):
    rng = random.Random(20261122)
    warn_counter = _CountWarnings()
    logging.getLogger('steward_nova').addHandler(warn_counter)
    workdir = tempfile.mkdtemp(prefix='steward-bench-')
    steward = start_steward(workdir, binary=args.steward_bin)
    rows, parts = [], []
    try:
        token_file = steward.token_file()
        plain = scheduler(False, steward.url, token_file)
        both = scheduler(True, steward.url, token_file)
        print('steward %s (%s), profile %s; Nova filters %s; %d weighers '
              '+ StewardWeigher' % (
                  steward.url, args.steward_bin, args.profile,
                  [type(f).__name__ for f in plain.filters],
                  len(plain.weighers)), flush=True)
        with ns.nova_flags(steward={'endpoint': steward.url,
                                    'token_file': token_file,
                                    'timeout': 5.0}):
            for n in args.sizes:
                reps = args.reps or DEFAULT_REPS.get(n, 5)
                hosts = make_cluster(n, rng)
                push_telemetry(steward, hosts, rng)
                for sched in (plain, both, plain, both):  # warm-up
                    sched.schedule(hosts, request_spec(args.profile))
                t_plain, t_both = [], []
                for _ in range(reps):
                    for sched, acc in ((plain, t_plain), (both, t_both)):
                        spec = request_spec(args.profile)
                        ms, result = timed(sched.schedule, hosts, spec)
                        acc.append(ms)
                        if not result:
                            raise SystemExit('no host passed at %d hosts' % n)
                        # FilterScheduler consumes the host it picks, so
                        # the next request sees it changed.
                        result[0].obj.consume_from_request(spec)
                if warn_counter.messages:
                    raise SystemExit('the shim failed open during the bench '
                                     '(numbers would be meaningless):\n' +
                                     '\n'.join(warn_counter.messages[:3]))
                a, b = statistics.median(t_plain), statistics.median(t_both)
                rows.append((n, reps, a, b, b - a, (b - a) / a * 100,
                             min(t_plain), min(t_both)))
                p, size = breakdown(steward, hosts, args.profile,
                                    max(3, reps // 2))
                parts.append((n, size, p))
                print('  %5d hosts done (%d reps)' % (n, reps), flush=True)
    finally:
        steward.stop()
    report(rows, parts)
    if args.keep_log:
        print('steward log: %s' % steward.process.log_path)


def report(rows, parts):
    print()
    print('Nova 34 default pipeline, median ms per scheduling request '
          '(filter + weigh)')
    print('%7s %5s %12s %20s %10s %8s | %s' % (
        'hosts', 'reps', 'nova ms/req', 'nova+steward ms/req', 'added ms',
        'added %', 'best of reps: nova, nova+steward, added %'))
    for n, reps, a, b, d, pct, best_a, best_b in rows:
        print('%7d %5d %12.1f %20.1f %10.1f %7.1f%% | %6.1f %6.1f %6.1f%%' % (
            n, reps, a, b, d, pct, best_a, best_b,
            (best_b - best_a) / best_a * 100))
    print()
    print('Where the steward part goes, median ms per request. HTTP = '
          'round trip seen by the shim; server = steward\'s own mean '
          'handling time (its /metrics histogram)')
    print('encode = JSON of all hosts while one changed since the last '
          'request; cold = with nothing encoded before')
    print('%6s %6s %6s | %7s %7s %7s %7s | %7s %7s %7s %7s' % (
        'hosts', 'KiB', 'cold', 'encode', 'HTTP', 'server', 'check',
        'encode', 'HTTP', 'server', 'check'))
    print('%6s %6s %6s | %-31s | %-31s' % ('', '', '', 'filter', 'weigh'))
    for n, size, p in parts:
        print('%6d %6.0f %6.2f | %7.2f %7.2f %7.2f %7.2f | %7.2f %7.2f %7.2f '
              '%7.2f'
              % (n, size / 1024, p['cold_encode'], p['filter_encode'],
                 p['filter_http'],
                 p['server /v1/filter'], p['filter_check'],
                 p['weigh_encode'], p['weigh_http'], p['server /v1/weigh'],
                 p['weigh_check']))


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
    parser.add_argument('--keep-log', action='store_true')
    run(parser.parse_args())


if __name__ == '__main__':
    main()
