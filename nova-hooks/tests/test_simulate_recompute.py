"""Every figure of `steward simulate -f json`, recomputed from its data.

Written apart from the twin and reading only the JSON: where each VM ran
at each step (from the boot and move events), what it demanded
(`vm_demand`), and each host's capacity (its cores, less the CPU of the
migrations copying to or from it). From those this test rebuilds
each host's demand per step, fluid and fair-share steal per VM, their
nearest-rank percentiles, unserved CPU and its physical limit per AZ, and
checks them against what the report says, for every strategy. The
control: a report whose one move is dropped from its events no longer
adds up.
"""

import copy
import json
import math
import os
import subprocess

from harness.steward import default_binary

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
SCENARIO = os.path.join(REPO, 'etc', 'scenarios', 'diurnal.toml')


def run_twin(*args):
    out = subprocess.run(
        [default_binary(), 'simulate', '--scenario', SCENARIO, *args,
         '-f', 'json'],
        capture_output=True, check=True,
        env={k: v for k, v in os.environ.items() if k != 'STEWARD_CONFIG'})
    return json.loads(out.stdout)


def placement_per_step(events, steps):
    """host[step][vm] (None: not running), from the events alone."""
    changes = {}
    for e in events:
        if e['event'] == 'boot':
            changes.setdefault(e['step'], []).append((e['vm'], e['host']))
        elif (e['event'] == 'move' and e['end_step'] is not None
              and e['converged']):
            changes.setdefault(e['end_step'], []).append((e['vm'], e['to']))
    where = {}
    for step in range(steps):
        for vm, host in changes.get(step, ()):
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
    out['unserved'] = unserved / total
    out['unserved_limit'] = limit / total
    return out


def test_every_figure_adds_up_from_the_per_step_data():
    report = run_twin('--hours', '24', '--seed', '5')
    names = [s['strategy'] for s in report['strategies']]
    assert 'nova-default' in names and 'steward-deployed-rebalance' in names
    moved = 0
    for s in report['strategies']:
        figures = recompute(report, s)
        for key, value in figures.items():
            # fair share: bisection against water-filling
            assert math.isclose(value, s[key], rel_tol=1e-6, abs_tol=1e-6), (
                s['strategy'], key, value, s[key])
        moved += sum(1 for e in s['trace']['events'] if e['event'] == 'move')
        assert s['unserved'] >= s['unserved_limit'] - 1e-12
    assert moved > 0, 'the rebalancer moved VMs, so moves are recomputed too'


def test_a_report_missing_a_move_does_not_add_up():
    report = run_twin('--hours', '24', '--seed', '5')
    s = next(x for x in report['strategies']
             if any(e['event'] == 'move' and e['end_step'] is not None
                    for e in x['trace']['events']))
    broken = copy.deepcopy(s)
    broken['trace']['events'] = [
        e for e in broken['trace']['events'] if e['event'] != 'move']
    recompute(report, s)
    try:
        recompute(report, broken)
    except AssertionError:
        return
    raise AssertionError('a dropped move went unnoticed')
