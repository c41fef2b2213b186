"""The Ironic inventory repair (issue 4) against real peers.

One module-wide cloud: the real Keystone 30, Placement 16, Nova API 34 on
Nova's own schemas (API, cell0, cell1 on MariaDB, seeded with Nova's own
objects) and Ironic 39 with fake-hardware nodes. The `steward repair`
binary logs in through a clouds.yaml (Ironic is in the catalog as
`baremetal`) and reads Nova's API database, which names the cell
database in cell_mappings.

The StackHPC case: a gold node reporting VCPU 64, MEMORY_MB 131072,
DISK_GB 371 and CUSTOM_GOLD 1, with an instance whose flavor was half
migrated by the old `nova-manage db ironic_flavor_migration`
(resources:CUSTOM_GOLD=1 only), so it consumes all four classes. After
`apply` the node has CUSTOM_GOLD only with usage 1; Nova's own objects
load the rewritten flavor and request spec and ask for {CUSTOM_GOLD: 1}
only; `verify` passes; a second apply finds nothing to do; `rollback`
puts the instance's flavor back byte for byte. A deleted instance's
instance_extra row is never rewritten. An apply killed with SIGKILL in the
middle is finished by the next apply, under the same run id, and one
rollback undoes both.
"""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.parse

import pytest

from harness import mariadb
from harness.peers import Cloud
from harness.repair_runs import apply_interrupted
from harness.repair_runs import first_rewrite_run
from harness.repair_runs import steward_env
from harness.steward import default_binary
from harness.steward import start_steward

GOLD = {'vcpus': 64, 'memory_mb': 131072, 'disk_gb': 371}
SEED = {
    'hosts': [
        dict(host='bm-gold-1', ironic={'resource_class': 'GOLD'}, **GOLD),
        # A node without an instance: only its inventory changes.
        dict(host='bm-gold-2', ironic={'resource_class': 'GOLD'}, **GOLD),
        # In maintenance, its instance in ERROR: repaired all the same.
        dict(host='bm-gold-3', ironic={'resource_class': 'GOLD',
                                       'maintenance': True}, **GOLD),
        # Enrolled without a resource class: reported, never touched.
        dict(host='bm-noclass', ironic={'resource_class': ''}, **GOLD),
    ],
    'flavors': [{'name': 'bm.gold', 'vcpus': 64, 'memory_mb': 131072,
                 'root_gb': 371,
                 'extra_specs': {'resources:CUSTOM_GOLD': '1',
                                 'capabilities:boot_mode': 'uefi'}},
                {'name': 'm1.small', 'vcpus': 2, 'memory_mb': 4096,
                 'root_gb': 20}],
    'servers': [{'name': 'gold-inst', 'host': 'bm-gold-1',
                 'flavor': 'bm.gold'},
                # Deleted by the fixture (Nova's Instance.destroy()).
                {'name': 'gone-inst', 'host': 'bm-gold-2',
                 'flavor': 'bm.gold'},
                {'name': 'err-inst', 'host': 'bm-gold-3',
                 'flavor': 'bm.gold', 'vm_state': 'error'}],
}
# Five silver nodes, each with an instance: an apply run long enough to be
# killed in the middle.
SILVER = ['bm-silver-%d' % i for i in range(5)]
SEED['hosts'] += [dict(host=h, ironic={'resource_class': 'baremetal-silver'},
                       **GOLD) for h in SILVER]
SEED['flavors'].append({'name': 'bm.silver', 'vcpus': 64,
                        'memory_mb': 131072, 'root_gb': 371,
                        'extra_specs': {
                            'resources:CUSTOM_BAREMETAL_SILVER': '1'}})
SEED['servers'] += [{'name': 'inst-' + h, 'host': h, 'flavor': 'bm.silver'}
                    for h in SILVER]
# nova-conductor's record of a resize of the first silver instance (its
# allocation is moved onto it by the migration test).
MIGRATION = 'f0e1d2c3-0000-4000-8000-00000000cafe'
SEED['migrations'] = [{'uuid': MIGRATION, 'server': 'inst-' + SILVER[0],
                       'source': SILVER[0], 'dest': SILVER[0],
                       'status': 'post-migrating', 'type': 'resize'}]


@pytest.fixture(scope='module')
def cloud(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp('cloud'), keystone=True, nova=True,
              ironic=True)
    c.start()
    try:
        c.seed(SEED)
        gone = c.seeded['servers']['gone-inst']['uuid']
        c.nova.destroy(gone)
        c.placement.call('DELETE', '/allocations/%s' % gone, expect=204)
        c.steward_identity()
        yield c
    finally:
        c.stop()


@pytest.fixture(scope='module')
def steward(cloud, tmp_path_factory):
    """run(*args) -> (exit code, stdout, stderr) of `steward repair ...`
    with its own SQLite journal."""
    workdir = tmp_path_factory.mktemp('steward')
    env = steward_env(cloud, workdir)

    def run(*args):
        done = subprocess.run([default_binary(), 'repair'] + list(args),
                              env=env, capture_output=True, text=True,
                              timeout=300, cwd=str(workdir))
        return done.returncode, done.stdout, done.stderr

    return run


def node(cloud, host):
    return cloud.seeded['ironic_nodes'][host]


def instance_flavor_text(cloud, uuid):
    db = cloud.nova.db_names['cell1']
    return mariadb.execute(db, 'SELECT flavor FROM instance_extra WHERE '
                           'instance_uuid = %s', (uuid,))[0][0]


def request_spec_text(cloud, uuid):
    db = cloud.nova.db_names['api']
    return mariadb.execute(db, 'SELECT spec FROM request_specs WHERE '
                           'instance_uuid = %s', (uuid,))[0][0]


def assert_stopped_cleanly(journal, run_id, not_started):
    """The run is failed in the journal, every journaled write ended one way
    or the other (nothing left pending), and the nodes not started have no
    entry at all."""
    db = sqlite3.connect(journal)
    try:
        assert db.execute('SELECT status FROM repair_run WHERE id = ?',
                          (run_id,)).fetchone() == ('failed',)
        states = db.execute('SELECT node, state FROM repair_journal WHERE '
                            'run_id = ?', (run_id,)).fetchall()
    finally:
        db.close()
    assert {s for _, s in states} <= {'done', 'failed'}, states
    assert not {n for n, _ in states} & {n['node'] for n in not_started}, \
        states


def assert_silver_repaired(cloud, nodes, instances, env):
    """The silver nodes hold only their custom class, used once each; the
    instances' embedded flavors and request specs ask for it alone; and
    `steward repair verify` agrees."""
    for n in nodes:
        assert sorted(cloud.placement.inventories(n)) == [
            'CUSTOM_BAREMETAL_SILVER']
        assert cloud.placement.usages(n) == {'CUSTOM_BAREMETAL_SILVER': 1}
    seen = cloud.nova.inspect(*instances)
    for i in instances:
        assert seen[i]['cur']['resources'] == {'CUSTOM_BAREMETAL_SILVER': 1}
        assert seen[i]['request_spec']['resources'] == {
            'CUSTOM_BAREMETAL_SILVER': 1}
    check = subprocess.run([default_binary(), 'repair', 'verify',
                            '--resource-class', 'baremetal-silver'],
                           env=env, capture_output=True, text=True,
                           timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr


def assert_consistent_timings(t, peers):
    """steward's account of where a run's wall time went adds up: every
    peer it called is there with its calls; a peer's union of outstanding
    intervals is within the time waited on any peer, which is within the
    wall time, and no more than the sum of its calls' durations."""
    assert 0 < t['waiting_s'] <= t['wall_s']
    assert t['placement_and_databases_s'] <= t['waiting_s'] + 1e-6
    assert abs(t['wall_s'] - t['waiting_s'] - t['steward_s']) < 1e-3
    for p in peers:
        v = t['peers'][p]
        assert v['calls'] > 0, (p, t)
        assert 0 < v['union_s'] <= t['waiting_s'] + 1e-6, (p, t)
        assert v['sum_s'] >= v['union_s'] - 1e-6, (p, t)


def test_plan_repair_verify_rollback_the_gold_node(cloud, steward):
    gold = node(cloud, 'bm-gold-1')
    spare = node(cloud, 'bm-gold-2')
    noclass = node(cloud, 'bm-noclass')
    inst = cloud.seeded['servers']['gold-inst']['uuid']
    placement = cloud.placement
    assert placement.usages(gold) == {
        'VCPU': 64, 'MEMORY_MB': 131072, 'DISK_GB': 371, 'CUSTOM_GOLD': 1}
    flavor_before = instance_flavor_text(cloud, inst)
    gone = cloud.seeded['servers']['gone-inst']['uuid']
    gone_before = instance_flavor_text(cloud, gone)
    spec_before = request_spec_text(cloud, inst)
    inventory_before = placement.inventories(gold)

    # -- plan: says what is wrong, in order, and changes nothing ---------
    code, out, err = steward('plan', '-f', 'json')
    assert code == 0, err
    plan = json.loads(out)
    nodes = {n['node']: n for n in plan['nodes']}
    assert nodes[gold]['status'] == 'needs_repair'
    assert [s['action'] for s in nodes[gold]['steps']] == [
        'rewrite_instance_flavor', 'rewrite_request_spec',
        'shrink_allocation', 'set_custom_only_inventory', 'check_usage']
    assert nodes[spare]['status'] == 'needs_repair'
    maint = node(cloud, 'bm-gold-3')
    assert nodes[maint]['status'] == 'needs_repair'
    assert any('maintenance' in n for n in nodes[maint]['notes'])
    assert [s['action'] for s in nodes[spare]['steps']] == [
        'set_custom_only_inventory', 'check_usage']
    assert nodes[noclass]['status'] == 'skipped'
    assert noclass in nodes[noclass]['problems'][0]
    assert 'resource_class' in nodes[noclass]['problems'][0]
    assert {'action': 'ensure_resource_class', 'class': 'CUSTOM_GOLD'} in \
        plan['global']
    flavor_steps = [s for s in plan['global']
                    if s['action'] == 'set_flavor_extra_specs']
    assert sorted(s['flavor_name'] for s in flavor_steps) == [
        'bm.gold', 'bm.silver']
    assert instance_flavor_text(cloud, inst) == flavor_before
    assert placement.inventories(gold) == inventory_before

    code, out, err = steward('plan')
    assert code == 0, err
    assert 'needs_repair' in out and gold in out

    # -- apply needs a selection -----------------------------------------
    code, out, err = steward('apply')
    assert code == 127
    assert '--all' in err

    # -- apply the GOLD class --------------------------------------------
    code, out, err = steward('apply', '--resource-class', 'GOLD',
                             '-f', 'json')
    assert code == 0, out + err
    report = json.loads(out)
    results = {n['node']: n['result'] for n in report['nodes']}
    assert results == {gold: 'repaired', spare: 'repaired',
                       maint: 'repaired'}
    err = cloud.seeded['servers']['err-inst']['uuid']
    assert placement.usages(maint) == {'CUSTOM_GOLD': 1}
    assert cloud.nova.inspect(err)[err]['cur']['resources'] == {
        'CUSTOM_GOLD': 1}
    run_id = report['run_id']
    assert_consistent_timings(report['timings'], (
        'placement', 'nova_db', 'journal', 'ironic', 'nova_api',
        'keystone'))

    # Placement: the custom class only, used once.
    inv = placement.inventories(gold)
    assert sorted(inv) == ['CUSTOM_GOLD']
    assert inv['CUSTOM_GOLD']['total'] == 1
    assert placement.usages(gold) == {'CUSTOM_GOLD': 1}
    assert sorted(placement.inventories(spare)) == ['CUSTOM_GOLD']
    # The deleted instance's row is Nova's history: untouched.
    assert instance_flavor_text(cloud, gone) == gone_before
    assert placement.allocations(inst)['allocations'][gold]['resources'] \
        == {'CUSTOM_GOLD': 1}
    # ... as the OpenStack CLI (osc-placement) shows it.
    rows = json.loads(placement.openstack(
        'resource', 'provider', 'inventory', 'list', gold, '-f', 'json'))
    assert [(r['resource_class'], r['used']) for r in rows] == [
        ('CUSTOM_GOLD', 1)]
    usage = json.loads(placement.openstack(
        'resource', 'provider', 'usage', 'show', gold, '-f', 'json'))
    assert [(r['resource_class'], r['usage']) for r in usage] == [
        ('CUSTOM_GOLD', 1)]

    # Nova's own objects load what steward wrote and ask for the custom
    # class only; every other field is as Nova wrote it.
    seen = cloud.nova.inspect(inst)[inst]
    for copy in ('cur', 'request_spec'):
        assert seen[copy]['resources'] == {'CUSTOM_GOLD': 1}, copy
        assert seen[copy]['extra_specs'] == {
            'resources:CUSTOM_GOLD': '1', 'resources:VCPU': '0',
            'resources:MEMORY_MB': '0', 'resources:DISK_GB': '0',
            'capabilities:boot_mode': 'uefi'}
        assert (seen[copy]['name'], seen[copy]['vcpus'],
                seen[copy]['memory_mb'], seen[copy]['root_gb']) == (
            'bm.gold', 64, 131072, 371)
    before = json.loads(flavor_before)
    after = json.loads(instance_flavor_text(cloud, inst))
    specs = after['cur']['nova_object.data'].pop('extra_specs')
    before['cur']['nova_object.data'].pop('extra_specs')
    assert after == before
    assert specs['resources:VCPU'] == '0'
    # The flavor new instances boot from, through the Nova API.
    flavors = cloud.nova.get('/flavors/detail')['flavors']
    gold_flavor = [f for f in flavors if f['name'] == 'bm.gold'][0]
    assert gold_flavor['extra_specs']['resources:DISK_GB'] == '0'
    small = [f for f in flavors if f['name'] == 'm1.small'][0]
    assert small['extra_specs'] == {}

    # -- verify ------------------------------------------------------------
    code, out, err = steward('verify', '--resource-class', 'GOLD')
    assert code == 0, out + err
    # The node without a class is a problem verify reports (exit 3).
    code, out, err = steward('verify', '--resource-class', 'GOLD', '-f',
                             'json')
    assert code == 0, out + err
    assert json.loads(out) == {'clean': True, 'problems': [],
                               'unclassified': [], 'nodes': 3}
    # A node without a class is listed apart, not as broken (exit 5).
    code, out, err = steward('verify', '--node', noclass, '-f', 'json')
    assert code == 5, out + err
    found = json.loads(out)
    assert found['problems'] == []
    assert [u['node'] for u in found['unclassified']] == [noclass]

    # -- a second apply finds nothing to do --------------------------------
    code, out, err = steward('apply', '--resource-class', 'GOLD')
    assert code == 4, out + err
    assert 'nothing to do' in out

    # -- rollback: the flavor copies exactly as they were ------------------
    # Nova's copies alone would disagree with Placement: refused unless
    # asked for exactly that.
    code, out, err = steward('rollback', run_id, '-f', 'json')
    assert code == 127, out + err
    assert '--flavors-only' in err and '--placement' in err
    assert instance_flavor_text(cloud, inst) != flavor_before
    code, out, err = steward('rollback', run_id, '--flavors-only', '-f',
                             'json')
    assert code == 0, out + err
    items = {(i['action'], i['object']): i['result']
             for i in json.loads(out)}
    assert items[('rewrite_instance_flavor', 'instance %s' % inst)] == \
        'restored'
    assert items[('rewrite_request_spec', 'request_spec %s' % inst)] == \
        'restored'
    assert instance_flavor_text(cloud, inst) == flavor_before
    assert request_spec_text(cloud, inst) == spec_before
    seen = cloud.nova.inspect(inst)[inst]
    assert seen['cur']['extra_specs'] == {'resources:CUSTOM_GOLD': '1',
                                          'capabilities:boot_mode': 'uefi'}
    flavors = cloud.nova.get('/flavors/detail')['flavors']
    gold_flavor = [f for f in flavors if f['name'] == 'bm.gold'][0]
    assert gold_flavor['extra_specs'] == {'resources:CUSTOM_GOLD': '1',
                                          'capabilities:boot_mode': 'uefi'}
    # Placement is left repaired unless the operator asks for it too.
    assert placement.usages(gold) == {'CUSTOM_GOLD': 1}


def test_bad_input_names_the_object(steward):
    code, out, err = steward('plan', '--node',
                             '00000000-1111-2222-3333-444444444444')
    assert code == 127
    assert '00000000-1111-2222-3333-444444444444' in err
    code, out, err = steward('verify', '--cell', 'no-such-cell')
    assert code == 127
    assert 'no-such-cell' in err
    code, out, err = steward('rollback', 'repair-nope')
    assert code == 127
    assert 'repair-nope' in err


def test_a_killed_apply_is_finished_by_the_next_under_its_run_id(
        cloud, tmp_path):
    env = steward_env(cloud, tmp_path)
    env['STEWARD__REPAIR__CONCURRENCY'] = '1'
    journal = str(tmp_path / 'steward.sqlite')
    instances = [cloud.seeded['servers']['inst-' + h]['uuid']
                 for h in SILVER]
    nodes = [node(cloud, h) for h in SILVER]
    before = {i: instance_flavor_text(cloud, i) for i in instances}
    argv = [default_binary(), 'repair', 'apply', '--resource-class',
            'baremetal-silver', '-f', 'json']

    # Kill -9 as soon as the first instance's flavor is rewritten.
    first = subprocess.Popen(argv, env=env, cwd=str(tmp_path),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    run_id = None
    while time.monotonic() < deadline and first.poll() is None:
        run_id = first_rewrite_run(journal)
        if run_id:
            first.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    first.communicate(timeout=30)
    assert run_id is not None and first.returncode == -signal.SIGKILL, (
        'the first apply ended (%s) before it could be killed'
        % first.returncode)
    db = sqlite3.connect(journal)
    assert db.execute('SELECT status FROM repair_run WHERE id = ?',
                      (run_id,)).fetchone() == ('running',)
    db.close()

    # The next apply picks the run up and finishes it.
    done = subprocess.run(argv, env=env, cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert (report['run_id'], report['resumed'], report['ok']) == (
        run_id, True, True)
    assert_silver_repaired(cloud, nodes, instances, env)

    # One rollback covers what both processes wrote.
    back = subprocess.run([default_binary(), 'repair', 'rollback', run_id,
                           '--placement', '-f', 'json'], env=env,
                          capture_output=True, text=True, timeout=300)
    assert back.returncode == 0, back.stdout + back.stderr
    assert {i: instance_flavor_text(cloud, i) for i in instances} == before
    for n in nodes:
        assert cloud.placement.usages(n) == {
            'VCPU': 64, 'MEMORY_MB': 131072, 'DISK_GB': 371,
            'CUSTOM_BAREMETAL_SILVER': 1}


def test_the_api_plans_and_runs_a_repair(cloud, steward, tmp_path):
    """POST /v1/repair/plans and /v1/repair/runs (admin), then the run's
    progress and result from GET /v1/repair/runs/{id}. Whatever the
    tests before left (the gold flavors rolled back), GOLD needs work."""
    gold = node(cloud, 'bm-gold-1')
    st = start_steward(tmp_path, env=steward_env(cloud, tmp_path),
                       extra={'logging': {'level': 'info'}})
    try:
        status, p, _ = st.post('/v1/repair/plans',
                               {'resource_class': 'GOLD'}, role='admin')
        assert status == 200, p
        assert {n['node']: n['status'] for n in p['nodes']}[gold] == \
            'needs_repair'
        status, started, headers = st.post(
            '/v1/repair/runs', {'resource_class': 'GOLD'}, role='admin')
        assert status == 202, started
        run_id = started['run_id']
        assert headers['Location'] == '/v1/repair/runs/%s' % run_id
        deadline = time.monotonic() + 120
        while True:
            status, run, _ = st.request('GET', '/v1/repair/runs/%s' % run_id,
                                        role='admin')
            assert status == 200, run
            if run['status'] != 'running' or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert run['status'] == 'ok', run
        assert run['writes'].get('done', 0) >= 1
        results = {n['node']: n['result'] for n in run['result']['nodes']}
        assert results[gold] == 'repaired'
        status, text, _ = st.request('GET', '/metrics')
        assert 'steward_repair_runs_total{result="ok"} 1' in text
    finally:
        st.stop()
    code, out, err = steward('verify', '--resource-class', 'GOLD')
    assert code == 0, out + err
    assert cloud.nova.inspect(cloud.seeded['servers']['gold-inst']['uuid'])[
        cloud.seeded['servers']['gold-inst']['uuid']]['cur']['resources'] \
        == {'CUSTOM_GOLD': 1}

    # POST /v1/repair/runs/{id}/rollback (what `openstack steward repair
    # rollback` calls) puts the embedded flavor back from the journal kept
    # in the same database, and verify finds the problem again.
    st = start_steward(tmp_path, env=steward_env(cloud, tmp_path),
                       extra={'logging': {'level': 'info'}})
    try:
        # The run wrote Nova's copies only (Placement was left repaired
        # by the first test), so nothing would disagree: no flag needed.
        status, back, _ = st.post('/v1/repair/runs/%s/rollback' % run_id,
                                  {}, role='admin')
        assert status == 200, back
        assert back['status'] == 'rolled_back' and back['failed'] == 0, back
        restored = {(i['action'], i['object']): i['result']
                    for i in back['items']}
        inst = cloud.seeded['servers']['gold-inst']['uuid']
        assert restored[('rewrite_instance_flavor', 'instance %s' % inst)] \
            == 'restored', back
        assert not any(a in ('add_custom_inventory', 'shrink_allocation')
                       for a, _ in restored), 'no --placement: %r' % back
        status, run, _ = st.request('GET', '/v1/repair/runs/%s' % run_id,
                                    role='admin')
        assert run['status'] == 'rolled_back', run
        status, err, _ = st.post('/v1/repair/runs/run-nowhere/rollback', {},
                                 role='admin')
        assert status == 404 and 'run-nowhere' in err['error']['message']
        status, err, _ = st.post('/v1/repair/runs/%s/rollback' % run_id,
                                 {'placment': True}, role='admin')
        assert status == 400, err
    finally:
        st.stop()
    assert cloud.nova.inspect(inst)[inst]['cur'].get('resources') != \
        {'CUSTOM_GOLD': 1}
    code, out, err = steward('verify', '--resource-class', 'GOLD')
    assert code != 0, 'verify after the rollback: ' + out + err

def test_placement_silent_mid_run_stops_the_run_the_next_apply_finishes(
        cloud, tmp_path):
    """The real Placement stops answering (SIGSTOP on its gunicorn) while
    an apply is between nodes: the node in flight fails naming itself and
    what to do, the nodes not started are left alone, the run is marked
    failed with a consistent journal, and the next apply, Placement back,
    finishes the job."""
    import yaml
    env = steward_env(cloud, tmp_path)
    env['STEWARD__REPAIR__CONCURRENCY'] = '1'
    with open(cloud.identity['clouds_yaml'], encoding='utf-8') as f:
        clouds = yaml.safe_load(f)
    clouds['clouds']['steward']['api_timeout'] = 3
    impatient = tmp_path / 'clouds.yaml'
    impatient.write_text(yaml.safe_dump(clouds), encoding='utf-8')
    env['OS_CLIENT_CONFIG_FILE'] = str(impatient)
    journal = str(tmp_path / 'steward.sqlite')
    nodes = [node(cloud, h) for h in SILVER]
    argv = [default_binary(), 'repair', 'apply', '--resource-class',
            'baremetal-silver', '-f', 'json']

    placement = os.getpgid(cloud.placement.process.proc.pid)
    code, out, err = apply_interrupted(
        argv, env, str(tmp_path), journal,
        lambda: os.killpg(placement, signal.SIGSTOP),
        lambda: os.killpg(placement, signal.SIGCONT))
    assert code == 1, out + err
    report = json.loads(out)
    assert report['ok'] is False
    results = {n['node']: n for n in report['nodes']}
    assert set(results) == set(nodes)
    failed = [n for n in results.values() if n['result'] == 'failed']
    assert len(failed) == 1, report
    bad = failed[0]
    assert bad['node'] in bad['error'], bad
    assert 'no answer within' in bad['error'], bad
    assert 'steward repair apply' in bad['error'], bad
    later = [n for n in results.values() if n['result'] == 'not_started']
    assert later, report
    for n in later:
        assert n['steps_done'] == 0
        assert n['node'] in n['error'] and bad['node'] in n['error'], n
    assert all(n['result'] in ('repaired', 'failed', 'not_started')
               for n in results.values()), report
    assert_stopped_cleanly(journal, report['run_id'], later)
    for n in later:
        assert sorted(cloud.placement.inventories(n['node'])) == [
            'CUSTOM_BAREMETAL_SILVER', 'DISK_GB', 'MEMORY_MB', 'VCPU']

    # Placement answers again: the next apply finishes the job.
    done = subprocess.run(argv, env=env, cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    again = json.loads(done.stdout)
    assert again['ok'] is True and again['resumed'] is False
    instances = [cloud.seeded['servers']['inst-' + h]['uuid']
                 for h in SILVER]
    assert_silver_repaired(cloud, nodes, instances, env)

    # Both runs together are one repair: rolling them back, newest first,
    # restores every node (and leaves the silver nodes for the next test).
    for run_id in (again['run_id'], report['run_id']):
        back = subprocess.run([default_binary(), 'repair', 'rollback', run_id,
                               '--placement', '-f', 'json'], env=env,
                              capture_output=True, text=True, timeout=300)
        assert back.returncode == 0, back.stdout + back.stderr
    for n in nodes:
        assert cloud.placement.usages(n) == {
            'VCPU': 64, 'MEMORY_MB': 131072, 'DISK_GB': 371,
            'CUSTOM_BAREMETAL_SILVER': 1}


class TcpRelay:
    """127.0.0.1:<port> relayed to MariaDB; close() is the database going
    away: the listener and every open connection are closed."""

    def __init__(self, host, port):
        self.target = (host, port)
        self.listener = socket.create_server(('127.0.0.1', 0))
        self.port = self.listener.getsockname()[1]
        self.conns = []
        self.closed = False
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.closed:
                client.close()
                return
            server = socket.create_connection(self.target)
            with self.lock:
                self.conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b),
                                 daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        # shutdown() wakes the thread blocked in accept(); close() alone
        # would leave the socket listening until accept() returned.
        self.closed = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                    c.close()
                except OSError:
                    pass


def test_the_cell_database_gone_mid_run_stops_the_run_the_next_finishes(
        cloud, tmp_path):
    """Nova's cell database goes away (every connection cut, no new one
    accepted) while an apply is between nodes: the node that meets it fails
    naming itself and what to do, the rest are not started, the run is
    marked failed, and the next apply, the database back, finishes."""
    url = urllib.parse.urlsplit(cloud.nova.database_url('cell1'))
    relay = TcpRelay(url.hostname, url.port or 3306)
    env = steward_env(cloud, tmp_path)
    env['STEWARD__REPAIR__CONCURRENCY'] = '1'
    netloc = url.netloc.rsplit('@', 1)
    netloc[-1] = '127.0.0.1:%d' % relay.port
    relayed = url._replace(scheme='mysql', netloc='@'.join(netloc)).geturl()
    conf = tmp_path / 'relayed.toml'
    conf.write_text('[repair.cell_databases]\ncell1 = "%s"\n' % relayed,
                    encoding='utf-8')
    env['STEWARD_CONFIG'] = str(conf)
    journal = str(tmp_path / 'steward.sqlite')
    nodes = [node(cloud, h) for h in SILVER]
    argv = [default_binary(), 'repair', 'apply', '--resource-class',
            'baremetal-silver', '-f', 'json']
    code, out, err = apply_interrupted(argv, env, str(tmp_path), journal,
                                       relay.close, relay.close)
    assert code == 1, out + err
    report = json.loads(out)
    assert report['ok'] is False
    results = {n['node']: n for n in report['nodes']}
    assert set(results) == set(nodes)
    failed = [n for n in results.values() if n['result'] == 'failed']
    assert len(failed) == 1, report
    bad = failed[0]
    assert bad['node'] in bad['error'], bad
    assert "Nova's cell cell1 database" in bad['error'] or \
        'cell_databases' in bad['error'], bad
    assert 'steward repair apply' in bad['error'], bad
    later = [n for n in results.values() if n['result'] == 'not_started']
    assert later, report
    assert_stopped_cleanly(journal, report['run_id'], later)

    # The database is back (steward reads cell1 directly again).
    del env['STEWARD_CONFIG']
    done = subprocess.run(argv, env=env, cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)['ok'] is True
    for n in nodes:
        assert sorted(cloud.placement.inventories(n)) == [
            'CUSTOM_BAREMETAL_SILVER']
        assert cloud.placement.usages(n) == {'CUSTOM_BAREMETAL_SILVER': 1}
    instances = [cloud.seeded['servers']['inst-' + h]['uuid']
                 for h in SILVER]
    seen = cloud.nova.inspect(*instances)
    for i in instances:
        assert seen[i]['cur']['resources'] == {'CUSTOM_BAREMETAL_SILVER': 1}
    check = subprocess.run([default_binary(), 'repair', 'verify',
                            '--resource-class', 'baremetal-silver'],
                           env=env, capture_output=True, text=True,
                           timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr
    for run_id in (json.loads(done.stdout)['run_id'], report['run_id']):
        back = subprocess.run([default_binary(), 'repair', 'rollback', run_id,
                               '--placement', '-f', 'json'], env=env,
                              capture_output=True, text=True, timeout=300)
        assert back.returncode == 0, back.stdout + back.stderr


def test_an_allocation_held_by_a_migration_consumer_is_repaired(
        cloud, tmp_path):
    """Mid-resize, Nova moves the source node's allocation from the
    instance to the migration's uuid (POST /allocations, as nova-conductor
    does). The repair shrinks the migration consumer's allocation to the
    custom class too, notes it in the plan, and verify passes (the
    instance's flavor agrees with what its migration holds)."""
    host = SILVER[0]
    rp = node(cloud, host)
    inst = cloud.seeded['servers']['inst-' + host]['uuid']
    migration = MIGRATION
    held = cloud.placement.allocations(inst)
    resources = held['allocations'][rp]['resources']
    cloud.placement.call('POST', '/allocations', {
        migration: {'allocations': {rp: {'resources': resources}},
                    'project_id': held['project_id'],
                    'user_id': held['user_id'],
                    'consumer_generation': None,
                    'consumer_type': 'MIGRATION'},
        inst: {'allocations': {}, 'project_id': held['project_id'],
               'user_id': held['user_id'],
               'consumer_generation': held['consumer_generation'],
               'consumer_type': 'INSTANCE'},
    }, expect=(204,))
    env = steward_env(cloud, tmp_path)

    def steward(*args):
        done = subprocess.run([default_binary(), 'repair'] + list(args),
                              env=env, capture_output=True, text=True,
                              timeout=300, cwd=str(tmp_path))
        return done.returncode, done.stdout, done.stderr

    code, out, err = steward('plan', '--node', rp, '-f', 'json')
    assert code == 0, out + err
    p = json.loads(out)['nodes'][0]
    assert resources == {'VCPU': 64, 'MEMORY_MB': 131072, 'DISK_GB': 371,
                         'CUSTOM_BAREMETAL_SILVER': 1}
    shrinks = [s for s in p['steps'] if s['action'] == 'shrink_allocation']
    assert [s['consumer'] for s in shrinks] == [migration], p
    assert any(migration in n and 'migration' in n for n in p['notes']), p
    code, out, err = steward('apply', '--node', rp, '-f', 'json')
    assert code == 0, out + err
    assert cloud.placement.allocations(migration)['allocations'][rp][
        'resources'] == {'CUSTOM_BAREMETAL_SILVER': 1}
    assert cloud.placement.allocations(inst)['allocations'] == {}
    assert sorted(cloud.placement.inventories(rp)) == [
        'CUSTOM_BAREMETAL_SILVER']
    assert cloud.placement.usages(rp) == {'CUSTOM_BAREMETAL_SILVER': 1}
    code, out, err = steward('verify', '--node', rp)
    assert code == 0, out + err
