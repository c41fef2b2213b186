"""Steward's live migration request, answered by the real Nova API 34.

The real Keystone and Nova API (seeded with Nova's own objects; no
compute service runs, so an accepted migration never progresses):

- an approved plan run by `steward rebalance run-once` sends
  os-migrateLive (host, block_migration "auto") through steward's Nova
  client: Nova answers 202 and the server goes MIGRATING, as seen
  through Nova's own API; the journal holds the action as migrating,
  accepted, and run-once exits 3 (unfinished: the next run resumes);
- a second os-migrateLive through the same client is refused by Nova
  with 409 (task_state migrating), and steward names Nova's reason;
- a second plan for the same server is not sent to Nova at all: the
  executor sees the server is not ACTIVE and closes the action aborted.

And first, the planner's room per the real Placement: `steward serve` in
dry-run plans the busy, stolen VM onto cmp-a2 while cmp-a2's provider has
room for it, as `openstack resource provider inventory list` and `usage
show` count it; once cmp-a2's reserved RAM leaves less than the VM's
flavor (Nova's hypervisor listing still shows it all free) the candidate
is skipped, cmp-a2 refused "without RAM room".
"""

import json
import os
import subprocess
import time

import pytest

from harness import tomlw
from harness.peers import Cloud
from harness.steward import default_binary
from harness.steward import start_steward

SEED = {
    'hosts': [{'host': 'cmp-a1', 'az': 'az1', 'vcpus': 32},
              {'host': 'cmp-a2', 'az': 'az1', 'vcpus': 32}],
    'servers': [{'name': 'web-1', 'host': 'cmp-a1', 'role': 'web'}],
}


@pytest.fixture(scope='module')
def cloud(tmp_path_factory):
    # keep_up: Nova refuses a live migration whose source compute is down.
    c = Cloud(tmp_path_factory.mktemp('cloud'), keystone=True, nova=True,
              keep_up=True)
    c.start()
    try:
        c.seed(SEED)
        c.steward_identity()
        yield c
    finally:
        c.stop()


def placement_room(cloud, rp, rc):
    """Room left on a provider for one class, from what the OpenStack
    CLI shows: (total - reserved) * allocation_ratio - used."""
    inv = {i['resource_class']: i for i in json.loads(
        cloud.placement.openstack('resource', 'provider', 'inventory',
                                  'list', rp, '-f', 'json'))}[rc]
    used = {u['resource_class']: u['usage'] for u in json.loads(
        cloud.placement.openstack('resource', 'provider', 'usage', 'show',
                                  rp, '-f', 'json'))}[rc]
    return (inv['total'] - inv['reserved']) * inv['allocation_ratio'] - used


def newest_plan(st, after, timeout=60.0):
    """The newest plan journaled after `after` (unix seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        status, body, _ = st.request('GET', '/v1/rebalance/plans?limit=1',
                                     role='admin')
        assert status == 200, body
        if body['plans'] and body['plans'][0]['created_at'] > after:
            return body['plans'][0]
        assert time.monotonic() < deadline, 'no plan after %s' % after
        time.sleep(0.3)


def test_dry_run_plans_with_room_per_placement(cloud, tmp_path):
    server = cloud.seeded['servers']['web-1']
    rp = cloud.seeded['hosts']['cmp-a2']['compute_node_uuid']
    env = {k: v for k, v in os.environ.items() if not k.startswith('OS_')}
    env.update({'OS_CLIENT_CONFIG_FILE': cloud.identity['clouds_yaml'],
                'NO_PROXY': '127.0.0.1,localhost',
                'no_proxy': '127.0.0.1,localhost',
                'STEWARD_LOG': 'steward=info'})
    st = start_steward(tmp_path, env=env, extra={
        'openstack': {'cloud': 'steward'},
        'rebalance': {'mode': 'dry-run', 'min_samples': 1,
                      'interval_seconds': 0.5,
                      'execution': {'cycle_seconds': 0.5}}})
    inventory = cloud.placement.inventories(rp)
    try:
        def push():
            now = time.time()
            st.push_telemetry(
                hosts=[{'host': 'cmp-a1', 'steal': 0.3, 'cpu_use': 0.95,
                        'load5': 30.4, 'vcpus': 32, 'observed_at': now},
                       {'host': 'cmp-a2', 'steal': 0.0, 'cpu_use': 0.2,
                        'load5': 6.4, 'vcpus': 32, 'observed_at': now}],
                vms=[{'uuid': server['uuid'], 'host': 'cmp-a1',
                      'steal': 0.3, 'load5': 1.8, 'vcpus': 2,
                      'observed_at': now}])
            return now

        assert placement_room(cloud, rp, 'MEMORY_MB') >= \
            server['memory_mb'], inventory
        plan = newest_plan(st, push())
        assert plan['mode'] == 'dry-run', plan
        [action] = plan['actions']
        assert (action['vm'], action['source'], action['target']) == \
            (server['uuid'], 'cmp-a1', 'cmp-a2'), plan
        assert action['ram_mb'] == server['memory_mb'], plan

        # cmp-a2's RAM reserved for the host but 2 GiB: Nova's hypervisor
        # listing still shows all of it free, Placement does not.
        ram = dict(inventory['MEMORY_MB'])
        ram['reserved'] = ram['total'] - 2048
        cloud.placement.set_inventory(rp, dict(inventory, MEMORY_MB=ram))
        assert placement_room(cloud, rp, 'MEMORY_MB') < server['memory_mb']
        plan = newest_plan(st, push())
        assert plan['actions'] == [], plan
        [skipped] = plan['summary']['skipped']
        assert skipped['vm'] == server['uuid'], plan
        assert skipped['limit'] == 'no_destination', plan
        assert '1 without RAM room' in skipped['detail'], plan
        log = st.log_text()
        assert 'cannot read this compute node' not in log, log
        assert 'has no resource provider' not in log, log
    finally:
        cloud.placement.set_inventory(rp, inventory)
        st.stop()


def steward(workdir, cloud, *args, timeout=120):
    env = {k: v for k, v in os.environ.items() if not k.startswith('OS_')}
    env['OS_CLIENT_CONFIG_FILE'] = cloud.identity['clouds_yaml']
    env['NO_PROXY'] = env['no_proxy'] = '127.0.0.1,localhost'
    env['STEWARD_LOG'] = 'steward=info'
    return subprocess.run(
        [default_binary(), '--config', os.path.join(workdir, 'steward.toml')]
        + list(args), cwd=workdir, env=env, capture_output=True, text=True,
        timeout=timeout, check=False)


def write_config(workdir):
    config = {
        'database': {'url': 'sqlite://%s?mode=rwc' % os.path.join(
            workdir, 'steward.sqlite'), 'auto_upgrade': True},
        'openstack': {'cloud': 'steward'},
        'rebalance': {'mode': 'approve',
                      'execution': {'poll_seconds': 0.5}},
    }
    with open(os.path.join(workdir, 'steward.toml'), 'w',
              encoding='utf-8') as f:
        f.write(tomlw.dumps(config))


def import_plan(workdir, cloud, server, approve):
    path = os.path.join(workdir, 'plan.json')
    with open(path, 'w', encoding='utf-8') as f:
        json.dump({'actions': [{
            'vm': server['uuid'], 'vm_name': 'web-1', 'source': 'cmp-a1',
            'target': 'cmp-a2', 'az': 'az1', 'ram_mb': server['memory_mb'],
            'disk_gb': server['disk_gb'], 'block_migration': True,
            'reason': 'functional test'}]}, f)
    args = ['rebalance', 'import-plan', path, '-f', 'json']
    if approve:
        args.append('--approve')
    out = steward(workdir, cloud, *args)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def actions(workdir, cloud):
    out = steward(workdir, cloud, 'rebalance', 'list', '-f', 'json')
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def nova_server(cloud, uuid):
    return cloud.nova.get('/servers/%s' % uuid)['server']


def test_os_migrate_live_is_accepted_then_refused_while_migrating(
        cloud, tmp_path):
    workdir = str(tmp_path)
    write_config(workdir)
    server = cloud.seeded['servers']['web-1']
    assert nova_server(cloud, server['uuid'])['status'] == 'ACTIVE'

    plan = import_plan(workdir, cloud, server, approve=False)
    assert plan['state'] == 'proposed'
    out = steward(workdir, cloud, 'rebalance', 'approve', plan['plan'])
    assert out.returncode == 0, out.stderr

    # One cycle, stopped after a few seconds: Nova took the request, but
    # no compute service will ever finish it.
    out = steward(workdir, cloud, 'rebalance', 'run-once',
                  '--max-seconds', '6', '-f', 'json')
    assert out.returncode == 3, (out.stdout, out.stderr)
    report = json.loads(out.stdout)
    assert report['out_of_time'] is True
    assert report['unfinished'] == 1
    # The leader planned first, over the real Nova's listings (2.87
    # hypervisors, servers, groups, aggregates): no telemetry, no candidate.
    assert report['errors'] == [], report
    assert report['plan'] is not None, report
    assert report['plan']['candidates'] == 0, report
    assert report['plan']['id'] is None, report
    [action] = actions(workdir, cloud)
    assert action['state'] == 'migrating', action
    assert action['accepted_at'] is not None, action
    assert action['error'] is None, action

    # Nova's own view: the request was accepted and the server migrates.
    seen = nova_server(cloud, server['uuid'])
    assert seen['status'] == 'MIGRATING', seen
    assert seen['OS-EXT-STS:task_state'] == 'migrating', seen
    assert seen['OS-EXT-SRV-ATTR:host'] == 'cmp-a1', seen

    # A second os-migrateLive through steward's client: Nova says 409.
    out = steward(workdir, cloud, 'rebalance', 'debug-live-migrate',
                  server['uuid'], 'cmp-a2')
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert 'answered 409' in out.stderr, out.stderr
    assert 'task_state migrating' in out.stderr, out.stderr

    # A second plan for the same server never reaches Nova: the executor
    # sees it is not ACTIVE and closes the action without draining.
    import_plan(workdir, cloud, server, approve=True)
    out = steward(workdir, cloud, 'rebalance', 'run-once',
                  '--max-seconds', '3', '-f', 'json')
    assert out.returncode == 3, (out.stdout, out.stderr)
    first, second = actions(workdir, cloud)
    assert first['state'] == 'migrating', first
    assert second['state'] == 'aborted', second
    assert 'MIGRATING' in second['error'], second
