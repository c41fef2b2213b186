"""`steward simulate --from-prometheus`: the twin replays the operator's own
cloud, read from the real Nova API (through Keystone and clouds.yaml, the
allocation ratios from the real Placement) and the real Prometheus holding
a week of imported per-VM CPU history.

The cloud: four hypervisors (az1: cmp-a1, cmp-a2 at cpu_allocation_ratio
2.0; az2: cmp-b1; cmp-x1 in no AZ aggregate, so Nova's default zone
"nova"), five servers. `node_load5{uuid=...}` (steward's default
`vm_load5` query) of each VM follows a daily curve without noise: the web
VMs peak at 20:00 UTC (3.5 cores), batch-1 at 02:00, db-1 is flat.
silent-1 has no series (left out of the replay and named), and one series
belongs to a VM Nova no longer lists (counted).

The checks can fail: the scenario's hosts, AZs, sizes, ratios, VMs,
roles and flavors are compared with what was seeded into Nova; the
replayed demand at 20:00 and 08:00 is compared with what Prometheus itself
answers for those VMs at those times (busy and quiet); every strategy,
Nova's and steward's, is reported; a Prometheus that is not there and a
configuration without one are refused naming the URL and the key.
"""

import json
import math
import subprocess
import time

import pytest

from harness.peers import Cloud
from harness.ports import free_port
from harness.prometheus import Series
from harness.prometheus import daily_peak
from harness.prometheus import flat
from harness.repair_runs import steward_env
from harness.steward import default_binary

DAY = 86400
STEP = 300
WEB_1 = '6a0f5d3e-1b2c-4d5e-8f90-a1b2c3d4e5f1'
WEB_2 = '6a0f5d3e-1b2c-4d5e-8f90-a1b2c3d4e5f2'
BATCH_1 = '6a0f5d3e-1b2c-4d5e-8f90-a1b2c3d4e5f3'
DB_1 = '6a0f5d3e-1b2c-4d5e-8f90-a1b2c3d4e5f4'
SILENT = '6a0f5d3e-1b2c-4d5e-8f90-a1b2c3d4e5f5'
DELETED = '6a0f5d3e-1b2c-4d5e-8f90-a1b2c3d4e5f6'

HOSTS = [
    {'host': 'cmp-a1', 'az': 'az1', 'vcpus': 16, 'memory_mb': 65536,
     'cpu_allocation_ratio': 2.0},
    {'host': 'cmp-a2', 'az': 'az1', 'vcpus': 16, 'memory_mb': 65536,
     'cpu_allocation_ratio': 2.0},
    {'host': 'cmp-b1', 'az': 'az2', 'vcpus': 8, 'memory_mb': 32768},
    {'host': 'cmp-x1', 'vcpus': 12, 'memory_mb': 49152},
]
EXPECTED_AZ = {'cmp-a1': 'az1', 'cmp-a2': 'az1', 'cmp-b1': 'az2',
               'cmp-x1': 'nova'}
SEED = {
    'hosts': HOSTS,
    'server_groups': [{'name': 'batch-tier', 'policy': 'anti-affinity'}],
    'servers': [
        {'name': 'web-1', 'uuid': WEB_1, 'host': 'cmp-a1', 'role': 'web',
         'flavor': 'm1.medium'},
        {'name': 'web-2', 'uuid': WEB_2, 'host': 'cmp-a2', 'role': 'web',
         'flavor': 'm1.medium'},
        # No role metadata: the role is the server group's name.
        {'name': 'batch-1', 'uuid': BATCH_1, 'host': 'cmp-b1',
         'group': 'batch-tier', 'flavor': 'm1.small'},
        # Neither: no role.
        {'name': 'db-1', 'uuid': DB_1, 'host': 'cmp-x1',
         'flavor': 'm1.large'},
        {'name': 'silent-1', 'uuid': SILENT, 'host': 'cmp-a2',
         'flavor': 'm1.small'},
    ],
}
# (expected role, roleless, vCPUs of the flavor)
EXPECTED_VMS = {WEB_1: ('web', False, 4), WEB_2: ('web', False, 4),
                BATCH_1: ('batch-tier', False, 2),
                DB_1: ('(no role)', True, 8)}

CURVES = {
    WEB_1: daily_peak(0.5, 3.0, hour=20.0),
    WEB_2: daily_peak(0.4, 2.0, hour=20.0),
    BATCH_1: daily_peak(0.2, 1.5, hour=2.0),
    DB_1: flat(1.0),
    DELETED: flat(0.7),
}


def history():
    return [Series('node_load5', {'job': 'node', 'instance': '%s:9100' % u,
                                  'uuid': u}, curve, 'gauge', noise=0.0)
            for u, curve in CURVES.items()]


@pytest.fixture(scope='module')
def cloud(tmp_path_factory):
    # History to the last full hour; the replay's window is the two days
    # before it.
    end = (int(time.time()) - 600) // 3600 * 3600
    with Cloud(tmp_path_factory.mktemp('cloud'), keystone=True, nova=True,
               prometheus=True, history=history(), weeks=1,
               history_end=end) as c:
        c.seed(SEED)
        c.steward_identity()
        c.history_end = end
        yield c


@pytest.fixture
def simulate(cloud, tmp_path):
    """run(*args, prometheus_url=...) -> (exit code, stdout, stderr) of
    `steward simulate --from-prometheus ...` configured for the cloud."""
    def run(*args, prometheus_url=None):
        env = steward_env(cloud, str(tmp_path))
        url = prometheus_url or cloud.prometheus.url
        if url != 'none':
            env['STEWARD__PROMETHEUS__URL'] = url
        done = subprocess.run(
            [default_binary(), 'simulate', '--from-prometheus'] + list(args),
            env=env, capture_output=True, text=True, timeout=600,
            cwd=str(tmp_path))
        return done.returncode, done.stdout, done.stderr
    return run


def window_args(cloud):
    return ['--since', '2d', '--end', str(cloud.history_end),
            '--step', '5m']


@pytest.fixture
def report(cloud, simulate):
    code, out, err = simulate(*window_args(cloud), '-f', 'json')
    assert code == 0, 'exit %d\nstdout: %s\nstderr: %s' % (code, out[-2000:],
                                                           err[-4000:])
    return json.loads(out), err


def test_the_scenario_is_the_cloud_nova_holds(cloud, report):
    rep, err = report
    hosts = {h['name']: h for h in rep['hosts']}
    assert {n: h['az'] for n, h in hosts.items()} == EXPECTED_AZ
    for h in HOSTS:
        got = hosts[h['host']]
        assert got['pcpus'] == h['vcpus'], got
        assert got['memory_mb'] == h['memory_mb'], got
        # From Placement's inventory, not a default.
        assert got['cpu_allocation_ratio'] == h.get(
            'cpu_allocation_ratio', 4.0), got
    assert rep['azs'] == 3
    vms = {v['uuid']: v for v in rep['vms']}
    assert set(vms) == set(EXPECTED_VMS), sorted(vms)
    for u, (role, roleless, vcpus) in EXPECTED_VMS.items():
        v = vms[u]
        assert (v['role'], v['roleless'], v['vcpus']) == (
            role, roleless, vcpus), v
        assert v['az'] == EXPECTED_AZ[
            cloud.seeded['servers'][name_of(u)]['host']], v
    notes = rep['scenario_as_run']['recorded']['notes']
    assert any(SILENT in n and 'no CPU series' in n for n in notes), notes
    assert any('1 CPU series of VMs Nova does not list' in n
               for n in notes), notes
    # Progress on stderr names where the series come from.
    assert 'reading CPU series from Prometheus at %s' % (
        cloud.prometheus.url) in err, err


def name_of(uuid):
    return next(s['name'] for s in SEED['servers'] if s['uuid'] == uuid)


def step_at(rep, t):
    k = (t - rep['start_unix']) / rep['step_seconds']
    assert k == int(k) and 0 <= k < rep['steps'], (t, rep['start_unix'])
    return int(k)


def test_the_replay_demand_is_what_prometheus_recorded(cloud, report):
    rep, _ = report
    assert rep['steps'] == 2 * DAY // STEP
    assert rep['start_unix'] == cloud.history_end - 2 * DAY
    index = {v['uuid']: i for i, v in enumerate(rep['vms'])}
    # The latest 20:00 UTC in the window, and 08:00 before it.
    evening = cloud.history_end // DAY * DAY + 20 * 3600
    if evening >= cloud.history_end:
        evening -= DAY
    morning = evening - 12 * 3600
    for at, busy in ((evening, True), (morning, False)):
        k = step_at(rep, at)
        for u in (WEB_1, WEB_2, BATCH_1, DB_1):
            rows = cloud.prometheus.query('node_load5{uuid="%s"}' % u, at=at)
            assert rows, 'Prometheus has no node_load5 for %s at %d' % (u, at)
            want = float(rows[0]['value'][1])
            got = rep['vm_demand'][k][index[u]]
            assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9), (
                u, at, got, want)
        # The control: web-1 is busy at 20:00 and quiet at 08:00.
        web = rep['vm_demand'][k][index[WEB_1]]
        assert (web > 3.4) if busy else (web < 0.6), (at, web)


def test_every_strategy_nova_and_steward_is_reported(report):
    rep, _ = report
    names = [s['strategy'] for s in rep['strategies']]
    for want in ('nova-default', 'nova-groups', 'steward-deployed',
                 'steward-deployed-rebalance', 'steward-placement'):
        assert want in names, names
    for s in rep['strategies']:
        # Every VM booted in the AZ it runs in now, and stayed there.
        assert s['unplaced'] == 0 and s['az_violations'] == 0, s['strategy']
        boots = [e for e in s['trace']['events'] if e['event'] == 'boot']
        assert len(boots) == len(EXPECTED_VMS), s['strategy']
        for b in boots:
            assert rep['hosts'][b['host']]['az'] == rep['vms'][b['vm']]['az']


def test_the_table_names_the_strategies_and_what_was_left_out(cloud,
                                                              simulate):
    code, out, err = simulate(*window_args(cloud))
    assert code == 0, err[-3000:]
    for want in ('nova-default', 'steward-deployed-rebalance',
                 'note: VM %s' % SILENT, '4 hosts'):
        assert want in out, out


def test_an_unreachable_prometheus_is_named_with_its_config_key(cloud,
                                                                simulate):
    url = 'http://127.0.0.1:%d' % free_port()
    code, out, err = simulate('--since', '1d', prometheus_url=url)
    assert code == 1, (code, out, err)
    assert url in err and '[prometheus] url' in err, err
    code, out, err = simulate('--since', '1d', prometheus_url='none')
    assert code == 1 and '[prometheus] url' in err, err
    code, out, err = simulate('--since', '40d')
    assert code == 1 and 'at most 28' in err, err
