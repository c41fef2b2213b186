"""Every figure of `steward simulate -f json`, recomputed from its data.

Written apart from the twin and reading only the JSON: where each VM ran
at each step (from the boot, move and departure events), what it demanded
(`vm_demand`), and each host's capacity (its cores, less the CPU of the
migrations copying to or from it). From those this test rebuilds
each host's demand per step, fluid and fair-share steal per VM, their
nearest-rank percentiles, unserved CPU and its physical limit per AZ, and
checks them against what the report says, for every strategy, on the
shipped scenario and on a living cloud whose VMs arrive and are deleted
(some while they move). The controls: a report whose one move, or one
departure, is dropped from its events no longer adds up.
"""

import copy
import json
import math
import os
import subprocess
import tempfile

from harness.steward import default_binary

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
SCENARIO = os.path.join(REPO, 'etc', 'scenarios', 'diurnal.toml')


# A living cloud: web VMs arrive and live about 6 h, batch VMs about 2 h,
# databases stay; a move copies for several steps, so some VMs are deleted
# while they move.
LIVING = """
name = "living"
hours = 24
azs = ["az1", "az2"]
hosts_per_az = 3
roleless_share = 0.1
migration_gib_per_second = 0.01

[telemetry]
warmup_weeks = 1

[host]
pcpus = 16
memory_mb = 131072
disk_gb = 2000

[[roles]]
name = "web"
count = 18
vcpus = 4
memory_mb = 8192
disk_gb = 20
curve = "web"
base = 0.2
peak = 0.9
spread = 0.4
arrivals_per_hour = 3
lifetime_hours = 6

[[roles]]
name = "batch"
count = 4
vcpus = 8
memory_mb = 16384
curve = "batch"
base = 0.1
peak = 0.9
arrivals_per_hour = 1
lifetime_hours = 2

[[roles]]
name = "db"
count = 4
vcpus = 4
memory_mb = 16384
curve = "flat"
base = 0.5

[rebalance]
interval_seconds = 300
min_samples = 1
load_enter = 0.5
steal_enter = 0.02
load_exit = 0.4
steal_exit = 0.01
steal_margin = 0.0
cooldown_hours = 1
no_return_hours = 1
# Steward believes the link is fast (the default is the scenario's slow
# one), so it plans moves that copy for several steps.
copy_gib_per_second = 1.0
"""


def run_living(*args):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'living.toml')
        with open(path, 'w') as f:
            f.write(LIVING)
        return run_twin(*args, scenario=path)


def run_twin(*args, scenario=SCENARIO):
    out = subprocess.run(
        [default_binary(), 'simulate', '--scenario', scenario, *args,
         '-f', 'json'],
        capture_output=True, check=True,
        env={k: v for k, v in os.environ.items() if k != 'STEWARD_CONFIG'})
    return json.loads(out.stdout)


def placement_per_step(events, steps):
    """host[step][vm] (None: not running), from the events alone.

    Within a step the events come in the order they happened: a move that
    ends there, then a departure (a VM deleted as it moved ends the move
    not converged, then departs), then boots.
    """
    changes = {}
    for e in events:
        if e['event'] == 'boot':
            changes.setdefault(e['step'], []).append((e['vm'], e['host']))
        elif e['event'] == 'departure':
            changes.setdefault(e['step'], []).append((e['vm'], None))
        elif (e['event'] == 'move' and e['end_step'] is not None
              and e['converged']):
            changes.setdefault(e['end_step'], []).append((e['vm'], e['to']))
    where = {}
    for step in range(steps):
        for vm, host in changes.get(step, ()):
            if host is None:
                del where[vm]
            else:
                where[vm] = host
        yield dict(where)


def fair_share_steal(vms, capacity):
    """Max-min fair share per vCPU, by bisection on the per-vCPU level."""
    if sum(d for _, d in vms) <= capacity:
        return [0.0] * len(vms)
    lo, hi = 0.0, max(d / v for v, d in vms)
    for _ in range(200):
        mid = (lo + hi) / 2
        if sum(min(d, v * mid) for v, d in vms) > capacity:
            hi = mid
        else:
            lo = mid
    return [1 - min(d, v * lo) / d if d > 0 else 0.0 for v, d in vms]


def nearest_rank(values, q):
    values = sorted(values)
    if not values:
        return 0.0
    return values[min(max(math.ceil(q * len(values)), 1), len(values)) - 1]


def copying(events, step, host):
    """Migrations copying to or from `host` during `step`."""
    return sum(
        1 for e in events
        if e['event'] == 'move' and host in (e['from'], e['to'])
        and e['start_step'] < step
        and (e['end_step'] is None or step < e['end_step']))


def recompute(report, s):
    hosts = report['hosts']
    cpu_cost = report['scenario_as_run']['migration']['cpu_cores']
    fluid, fair = [], []
    total = unserved = limit = 0.0
    for step, where in enumerate(
            placement_per_step(s['trace']['events'], report['steps'])):
        demand = report['vm_demand'][step]
        on_host = {}
        for vm, h in where.items():
            on_host.setdefault(h, []).append(
                (report['vms'][vm]['vcpus'], demand[vm]))
        az_load = {}
        for h, host in enumerate(hosts):
            vms = on_host.get(h, [])
            d = sum(x for _, x in vms)
            c = max(0.0, host['pcpus'] - cpu_cost * copying(
                s['trace']['events'], step, h))
            assert math.isclose(d, s['trace']['host_demand'][step][h],
                                rel_tol=1e-9, abs_tol=1e-9), (step, h)
            assert math.isclose(c, s['trace']['host_capacity'][step][h],
                                abs_tol=1e-9), (step, h)
            steal = 1 - c / d if d > c else 0.0
            assert math.isclose(steal, s['trace']['host_steal'][step][h],
                                abs_tol=1e-12)
            fluid += [steal] * len(vms)
            fair += fair_share_steal(vms, c)
            total += d
            unserved += max(0.0, d - c)
            a = az_load.setdefault(host['az'], [0.0, 0.0])
            a[0] += d
            a[1] += c
        limit += sum(max(0.0, d - c) for d, c in az_load.values())
    out = {}
    for q in (50, 95, 99):
        out[f'steal_p{q}'] = nearest_rank(fluid, q / 100)
        out[f'fair_steal_p{q}'] = nearest_rank(fair, q / 100)
    out['vm_steps'] = len(fluid)
    out['unserved'] = unserved / total
    out['unserved_limit'] = limit / total
    return out


def check(report, s):
    """Every figure of strategy `s`, recomputed, is the one it reports."""
    for key, value in recompute(report, s).items():
        # fair share: bisection against water-filling
        assert math.isclose(value, s[key], rel_tol=1e-6, abs_tol=1e-6), (
            s['strategy'], key, value, s[key])


def assert_adds_up(report):
    names = [s['strategy'] for s in report['strategies']]
    assert 'nova-default' in names and 'steward-deployed-rebalance' in names
    moved = 0
    for s in report['strategies']:
        check(report, s)
        moved += sum(1 for e in s['trace']['events'] if e['event'] == 'move')
        assert s['unserved'] >= s['unserved_limit'] - 1e-12
    assert moved > 0, 'the rebalancer moved VMs, so moves are recomputed too'


def test_every_figure_adds_up_from_the_per_step_data():
    assert_adds_up(run_twin('--hours', '24', '--seed', '5'))


def test_a_living_cloud_adds_up_with_its_arrivals_and_departures():
    report = run_living('--seed', '3')
    vms = report['vms']
    assert any(v['boot_step'] > 0 for v in vms), 'VMs arrive in the run'
    assert_adds_up(report)
    cut_short = 0
    for s in report['strategies']:
        events = s['trace']['events']
        booted = {e['vm'] for e in events if e['event'] == 'boot'}
        departed = {(e['vm'], e['step']) for e in events
                    if e['event'] == 'departure'}
        # Every VM that ran and is deleted in the run departs at its step.
        assert departed == {(vm, vms[vm]['depart_step']) for vm in booted
                            if vms[vm]['depart_step'] is not None}, (
            s['strategy'])
        for e in events:
            if e['event'] == 'move' and e['vm_deleted']:
                cut_short += 1
                assert not e['converged']
                assert e['end_step'] == vms[e['vm']]['depart_step']
    assert cut_short > 0, 'a VM deleted as it moved: that case is recomputed'
def test_hosts_of_two_sizes_and_shaped_demand_add_up_too():
    """Host kinds, weekends, persistent, shared and bursty noise: the JSON
    still carries every host's cores and every VM's demand."""
    with open(SCENARIO) as f:
        text = f.read()
    host = ('[host]\npcpus = 24\nmemory_mb = 262144\ndisk_gb = 4000\n'
            'cpu_allocation_ratio = 4.0\nram_allocation_ratio = 1.0\n')
    kinds = ('[[host_kinds]]\ncount_per_az = 2\npcpus = 48\n'
             'memory_mb = 524288\ndisk_gb = 8000\n'
             '[[host_kinds]]\ncount_per_az = 4\npcpus = 16\n'
             'memory_mb = 131072\ndisk_gb = 2000\n')
    shape = ('spread = 0.4\nweekend_factor = 0.3\nnoise_correlation = 0.5\n'
             'noise_minutes = 30\nbursts_per_day = 3\nburst_minutes = 20\n'
             'burst_height = 0.4\nburst_correlation = 0.3\n')
    # From Friday noon into the weekend.
    friday = 'step_minutes = 5\nstart_unix = 1795780800\n'
    for old, new in (('hosts_per_az = 8\n', ''), (host, kinds),
                     ('spread = 0.4\n', shape),
                     ('step_minutes = 5\n', friday)):
        assert old in text, old
        text = text.replace(old, new)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'shaped.toml')
        with open(path, 'w') as f:
            f.write(text)
        report = run_twin('--hours', '24', '--seed', '3', scenario=path)
    assert {h['pcpus'] for h in report['hosts']} == {48, 16}
    for s in report['strategies']:
        check(report, s)


def test_a_report_missing_a_move_does_not_add_up():
    report = run_twin('--hours', '24', '--seed', '5')
    s = next(x for x in report['strategies']
             if any(e['event'] == 'move' and e['end_step'] is not None
                    for e in x['trace']['events']))
    broken = copy.deepcopy(s)
    broken['trace']['events'] = [
        e for e in broken['trace']['events'] if e['event'] != 'move']
    check(report, s)
    try:
        check(report, broken)
    except AssertionError:
        return
    raise AssertionError('a dropped move went unnoticed')


def test_a_report_missing_a_departure_does_not_add_up():
    report = run_living('--seed', '3')
    s = report['strategies'][0]
    broken = copy.deepcopy(s)
    events = broken['trace']['events']
    first = next(i for i, e in enumerate(events) if e['event'] == 'departure')
    del events[first]
    check(report, s)
    try:
        check(report, broken)
    except AssertionError:
        return
    raise AssertionError('a dropped departure went unnoticed')
