"""Steal right after a live migration, read by steward's default PromQL from
the real Prometheus (Debian).

The story: VM `mover` (2 vCPUs) has run for minutes on cmp-a, a noisy host
(30 % vCPU delay per vCPU), beside `resident` (2 vCPUs, 20 %). Then it is
live-migrated to cmp-b, a quieter host (6 %): its delay series leave cmp-a's
libvirt exporter (Prometheus writes staleness markers for them) and new
ones appear on cmp-b's. Prometheus scrapes every second; the history of the
minutes before is imported at one-second steps, so every `rate(..[5m])`
before the move covers a whole window.

Seconds after the move, well inside the 5-minute window:

- steward with its built-in queries gives `mover` the steal of its cmp-b
  series only (exactly what Prometheus computes for them alone), nothing
  of cmp-a, and cmp-a the steal of `resident` alone.
- Control, the same Prometheus read by a steward with the queries steward
  shipped before (`sum by (..) (rate(x[5m])) / count by (..) (x)`):
  `mover` still looks as stolen from as on cmp-a, and cmp-a's steal counts
  the departed VM's delay over the vCPUs that remain (about 20 % + 30 %).

Prometheus' own semantics, asserted first as the premise: the departed
series are gone from an instant selector but still have a rate.

The same for a host whose node exporter is gone (cmp-c, a host that
died: Prometheus marks its series stale): steward's built-in host_cpu_use
stops reading it at once, so its telemetry ages as host-failure recovery
expects; the old query read it on for 5 minutes, ever busier.

A series' `rate(..[5m])` divides its increase by the whole window, so the
new series on cmp-b read about rate x age / 300 s until they are five
minutes old: `mover` reads low on its new host for those minutes, never
high. The test compares with Prometheus' rate of the cmp-b series, not
with 6 %.
"""

import os
import time

import pytest

from harness.polling import wait_for
from harness.prometheus import Series
from harness.prometheus import flat
from harness.prometheus import start_prometheus
from harness.prometheus import write_openmetrics
from harness.steward import start_steward

DELAY = 'libvirt_domain_vcpu_delay_seconds_total'
CPU = 'node_cpu_seconds_total'
DEAD, IDLE, CPUS = 'cmp-c', 0.6, 2  # idle seconds per second per CPU
MOVER = '0b7d1c52-6f3e-4a8e-9d41-5a2f7c9e1b30'
RESIDENT = '4c9e8a17-2d5b-4f60-8e3a-71b6d0c4f925'
SOURCE, TARGET = 'cmp-a', 'cmp-b'
RATE = {(MOVER, SOURCE): 0.30, (RESIDENT, SOURCE): 0.20,
        (MOVER, TARGET): 0.06}
VCPUS = 2
HISTORY_SECONDS = 420  # more than the 5-minute rate window

# What steward shipped before: the numerator's rate() still holds series
# marked stale, the denominator's instant selector no longer does; and
# nothing drops them from host_cpu_use.
OLD_QUERIES = {
    'host_cpu_use': '1 - avg by (host) (rate(%s{mode="idle"}[5m]))' % CPU,
    'host_steal': 'sum by (host) (rate(%s[5m])) / count by (host) (%s)' % (
        DELAY, DELAY),
    'vm_steal': 'sum by (uuid) (rate(%s[5m])) / count by (uuid) (%s)' % (
        DELAY, DELAY),
}


def labels(uuid, host, vcpu):
    return {'job': 'libvirt', 'instance': '%s:9177' % host, 'host': host,
            'domain': 'instance-%s' % uuid[:8], 'uuid': uuid,
            'vcpu': str(vcpu)}


def idle_labels(cpu):
    return {'job': 'node', 'instance': '%s:9100' % DEAD, 'host': DEAD,
            'cpu': str(cpu), 'mode': 'idle'}



def get(st, path):
    status, body, _ = st.request('GET', path)
    assert status == 200, 'GET %s: expected 200, got %s %r' % (
        path, status, body)
    return body


def steal(st, path):
    """steal of GET `path`, None while steward does not know it yet."""
    status, body, _ = st.request('GET', path)
    return body['steal'] if status == 200 else None


def observed_at(st, path):
    """observed_at of GET `path`, 0 while steward does not know it yet."""
    status, body, _ = st.request('GET', path)
    return (body['observed_at'] or 0) if status == 200 else 0


def near(value, want, rel=0.03, abs_=1e-4):
    return value is not None and abs(value - want) <= max(abs_, rel * want)


@pytest.fixture
def world(tmp_path):
    """Prometheus with the minutes before the move (one-second steps) and
    the live exporters going on from there; two stewards reading it: `st`
    with the built-in queries, `control` with the old ones."""
    end = int(time.time())
    start = end - HISTORY_SECONDS
    series, last = [], {}
    for (uuid, host), rate in RATE.items():
        if host != SOURCE:
            continue
        for v in range(VCPUS):
            s = Series(DELAY, labels(uuid, host, v), flat(rate), 'counter',
                       noise=0.0)
            series.append(s)
            last[(uuid, host, v)] = list(s.samples(start, end, 1))[-1][1]
    idle = {}
    for c in range(CPUS):
        s = Series(CPU, idle_labels(c), flat(IDLE), 'counter', noise=0.0)
        series.append(s)
        idle[c] = list(s.samples(start, end, 1))[-1][1]
    path = str(tmp_path / 'history.om')
    write_openmetrics(path, series, end, step=1, start=start)
    prom = start_prometheus(tmp_path / 'prometheus', history=path, live=True)
    stewards = []
    try:
        for (uuid, host, v), value in last.items():
            prom.live.set(DELAY, labels(uuid, host, v),
                          lambda t, value=value, r=RATE[(uuid, host)]:
                          value + r * (t - end))
        for c, value in idle.items():
            prom.live.set(CPU, idle_labels(c),
                          lambda t, value=value: value + IDLE * (t - end))
        # Prometheus starts scraping a few seconds after it is ready: the
        # live series must be in a scrape before they can leave one.
        prom.wait_scraped()
        env = dict(os.environ, NO_PROXY='127.0.0.1,localhost',
                   no_proxy='127.0.0.1,localhost', STEWARD_LOG='info')
        for label, queries in (('defaults', None), ('control', OLD_QUERIES)):
            section = {'url': prom.url, 'interval_seconds': 1,
                       'rollup_interval_hours': 1000, 'history_weeks': 1,
                       'timeout_seconds': 5}
            if queries:
                section['queries'] = queries
            stewards.append(start_steward(
                tmp_path / label, env=env,
                extra={'logging': {'level': 'info'}, 'prometheus': section}))
        yield prom, stewards[0], stewards[1]
    finally:
        for st in stewards:
            st.stop()
        prom.stop()


def move(prom):
    """The live migration as the exporters see it: the series leave
    cmp-a and new ones, counting from zero, appear on cmp-b. Returns when
    it happened."""
    moved = time.time()
    for v in range(VCPUS):
        prom.live.remove(DELAY, labels(MOVER, SOURCE, v))
        prom.live.set(DELAY, labels(MOVER, TARGET, v),
                      lambda t, r=RATE[(MOVER, TARGET)]:
                      r * max(t - moved, 0.0))
    return moved


def rate_of(prom, selector, at):
    """Prometheus' mean per-series rate over `selector`'s series at `at`."""
    rows = prom.query('avg(rate(%s{%s}[5m]))' % (DELAY, selector), at=at)
    assert rows, 'Prometheus has no rate for %s at %s' % (selector, at)
    return float(rows[0]['value'][1])


def body(st, path):
    """GET `path`'s answer, None while steward does not know it."""
    status, answer, _ = st.request('GET', path)
    return answer if status == 200 else None


def reading(st, path):
    body = get(st, path)
    return body['steal'], body['observed_at']


def test_a_moved_vm_and_its_old_host_drop_the_departed_series(world):
    prom, st, control = world
    r_mover, r_resident = RATE[(MOVER, SOURCE)], RATE[(RESIDENT, SOURCE)]

    # Before the move both query sets agree, over whole 5-minute windows
    # that end in live samples.
    live = time.time()
    prom.wait_scraped()
    for s in (st, control):
        wait_for('%s: mover at %.2f and cmp-a at %.2f before the move' % (
            s.workdir, r_mover, (r_mover + r_resident) / 2), lambda s=s: (
            observed_at(s, '/v1/hosts/%s' % SOURCE) > live
            and near(steal(s, '/v1/vms/%s' % MOVER), r_mover)
            and near(steal(s, '/v1/hosts/%s' % SOURCE),
                     (r_mover + r_resident) / 2)))

    moved = move(prom)
    # Several scrapes of the new series, and a poll of each steward after.
    for _ in range(4):
        prom.wait_scraped()
    for s in (st, control):
        wait_for('%s: a poll 6 s after the move' % s.workdir, lambda s=s:
                 observed_at(s, '/v1/vms/%s' % MOVER) > moved + 6)

    # The premise: the departed series are stale for an instant selector
    # and still carry a rate.
    now = time.time()
    gone = 'uuid="%s",host="%s"' % (MOVER, SOURCE)
    assert prom.query('%s{%s}' % (DELAY, gone), at=now) == [], (
        'Prometheus still shows the departed series as present')
    assert rate_of(prom, gone, now) > 0.8 * r_mover

    vm, vm_at = reading(st, '/v1/vms/%s' % MOVER)
    host_a, host_a_at = reading(st, '/v1/hosts/%s' % SOURCE)
    host_b, host_b_at = reading(st, '/v1/hosts/%s' % TARGET)
    on_target = 'uuid="%s",host="%s"' % (MOVER, TARGET)
    want_vm = rate_of(prom, on_target, vm_at)
    assert 0 < want_vm < RATE[(MOVER, TARGET)], want_vm
    # One scrape more or less than steward saw moves it by rate / 300.
    assert near(vm, want_vm, abs_=2.5e-4), (
        'built-in vm_steal of %s %.1f s after its move: expected the rate of '
        'its %s series alone (%.5f), got %r' % (
            MOVER, vm_at - moved, TARGET, want_vm, vm))
    assert near(host_a, r_resident), (
        'built-in host_steal of %s after %s left: expected %s\'s %.2f alone, '
        'got %r' % (SOURCE, MOVER, RESIDENT, r_resident, host_a))
    assert near(host_b, rate_of(prom, on_target, host_b_at), abs_=2.5e-4), (
        host_b, TARGET)

    # Control: the old queries add the departed series' rate.
    old_vm, old_vm_at = reading(control, '/v1/vms/%s' % MOVER)
    old_a, _ = reading(control, '/v1/hosts/%s' % SOURCE)
    assert old_vm > 0.8 * r_mover, (
        'control: expected the old vm_steal to still read %s as on %s '
        '(about %.2f) %.1f s after the move, got %r' % (
            MOVER, SOURCE, r_mover, old_vm_at - moved, old_vm))
    assert old_a > r_resident + 0.8 * r_mover, (
        'control: expected the old host_steal of %s to count the departed '
        'VM\'s delay over the vCPUs left (about %.2f), got %r' % (
            SOURCE, r_resident + r_mover, old_a))


def test_a_host_whose_node_exporter_is_gone_is_not_read_on(world):
    prom, st, control = world
    path = '/v1/hosts/%s' % DEAD
    live = time.time()
    prom.wait_scraped()
    for s in (st, control):
        wait_for('%s: %s at %.2f CPU use' % (s.workdir, DEAD, 1 - IDLE),
                 lambda s=s: observed_at(s, path) > live and near(
                     body(s, path)['cpu_use'], 1 - IDLE))

    gone = time.time()
    for c in range(CPUS):
        prom.live.remove(CPU, idle_labels(c))
    for _ in range(4):
        prom.wait_scraped()
    # Both stewards polled well after the exporter went.
    for s in (st, control):
        wait_for('%s: a poll 8 s after %s went' % (s.workdir, DEAD),
                 lambda s=s: observed_at(s, '/v1/hosts/%s' % SOURCE)
                 > gone + 8)

    host = body(st, path)
    # Up to the scrape that marked the series stale (a second or so later,
    # more on a loaded machine).
    assert host['observed_at'] < gone + 4, (
        'built-in host_cpu_use: expected %s\'s last reading from before its '
        'exporter went (%.1f s ago), got one from %.1f s after: %r' % (
            DEAD, time.time() - gone, host['observed_at'] - gone, host))
    assert near(host['cpu_use'], 1 - IDLE), host

    old = body(control, path)
    assert old['observed_at'] > gone + 8, (
        'control: expected the old host_cpu_use to go on reading %s, got '
        '%r' % (DEAD, old))
    assert old['cpu_use'] > 1 - IDLE + 0.005, (
        'control: expected the old host_cpu_use to climb as the idle rate '
        'decays, got %r' % old)
