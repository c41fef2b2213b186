"""The Ironic inventory repair over two cells, and with its peers failing
mid-run (issue 4's edge cases, issue 7's database and Placement faults).

One module-wide cloud: the real Keystone, Placement, Nova API and Ironic
as in test_repair.py, and Nova with TWO cells: cell1 on the shared
MariaDB and cell2 on a MariaDB server of this module's own (a private
mariadbd, which a test stops and starts again under a running apply,
never the server other tests share). Both cells carry Nova's own schema
(`nova-manage db sync`) and are mapped with `nova-manage cell_v2
create_cell`; their hosts, compute nodes and instances are written with
Nova's objects. Silver nodes live in cell1, bronze nodes in cell2.

Placement is reached through a fault proxy (harness/fault_proxy.py) for
the Placement tests: it forwards to the real Placement until told to
answer 500 or 503 in Placement's error format, or to stall past
steward's timeout.

Every test leaves the nodes as it found them (a rollback with
--placement), so they do not depend on their order.
"""

import json
import sqlite3
import subprocess

import pytest
import yaml

from harness import mariadb
from harness.fault_proxy import FaultProxy
from harness.peers import Cloud
from harness.repair_runs import apply_interrupted
from harness.repair_runs import steward_env
from harness.steward import default_binary

SIZE = {'vcpus': 32, 'memory_mb': 65536, 'disk_gb': 200}
LEGACY = {'VCPU': 32, 'MEMORY_MB': 65536, 'DISK_GB': 200}
SILVER = ['bm-silver-%d' % i for i in range(3)]
BRONZE = ['bm-bronze-%d' % i for i in range(3)]


def _cell_seed(cell, hosts, rc, flavor):
    return {
        'cell': cell,
        'hosts': [dict(host=h, ironic={'resource_class': rc}, **SIZE)
                  for h in hosts],
        'flavors': [{'name': flavor, 'vcpus': 32, 'memory_mb': 65536,
                     'root_gb': 200,
                     'extra_specs': {
                         'resources:' + 'CUSTOM_' + rc.upper().replace(
                             '-', '_'): '1'}}],
        'servers': [{'name': 'inst-' + h, 'host': h, 'flavor': flavor}
                    for h in hosts],
    }


@pytest.fixture(scope='module')
def cell2_server():
    server = mariadb.PrivateServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope='module')
def cloud(tmp_path_factory, cell2_server):
    c = Cloud(tmp_path_factory.mktemp('cloud'), keystone=True, nova=True,
              ironic=True)
    c.start()
    try:
        c.add_cell('cell2', mariadb.Databases(cell2_server.url))
        c.seed(_cell_seed('cell1', SILVER, 'baremetal-silver', 'bm.silver'))
        c.seed(_cell_seed('cell2', BRONZE, 'baremetal-bronze', 'bm.bronze'))
        c.steward_identity()
        yield c
    finally:
        c.stop()


def node(cloud, host):
    return cloud.seeded['ironic_nodes'][host]


def instance(cloud, host):
    return cloud.seeded['servers']['inst-' + host]['uuid']


def cell_of(host):
    return 'cell2' if host in BRONZE else 'cell1'


def flavor_text(cloud, host):
    """instance_extra.flavor as stored in the host's cell database."""
    cell = cell_of(host)
    server = cloud.nova.cell_servers.get(cell)
    return mariadb.execute(
        cloud.nova.db_names[cell], 'SELECT flavor FROM instance_extra '
        'WHERE instance_uuid = %s', (instance(cloud, host),),
        url=server.url if server else None)[0][0]


def spec_text(cloud, host):
    return mariadb.execute(cloud.nova.db_names['api'], 'SELECT spec FROM '
                           'request_specs WHERE instance_uuid = %s',
                           (instance(cloud, host),))[0][0]


def run(env, cwd, *args):
    done = subprocess.run([default_binary(), 'repair'] + list(args),
                          env=env, capture_output=True, text=True,
                          timeout=300, cwd=str(cwd))
    return done.returncode, done.stdout, done.stderr


def assert_repaired(cloud, hosts, env, cwd):
    """Each node holds its custom class only, used once; Nova's own
    objects load both flavor copies asking for it alone; verify agrees."""
    seen = cloud.nova.inspect(*[instance(cloud, h) for h in hosts])
    for h in hosts:
        rc = 'CUSTOM_BAREMETAL_' + ('BRONZE' if h in BRONZE else 'SILVER')
        assert sorted(cloud.placement.inventories(node(cloud, h))) == [rc]
        assert cloud.placement.usages(node(cloud, h)) == {rc: 1}
        i = instance(cloud, h)
        assert seen[i]['cur']['resources'] == {rc: 1}, h
        assert seen[i]['request_spec']['resources'] == {rc: 1}, h
    for cell in sorted({cell_of(h) for h in hosts}):
        code, out, err = run(env, cwd, 'verify', '--cell', cell)
        assert code == 0, out + err


def roll_back(env, cwd, *run_ids):
    """Undo runs, newest first, Placement too."""
    for run_id in run_ids:
        code, out, err = run(env, cwd, 'rollback', run_id, '--placement',
                             '-f', 'json')
        assert code == 0, out + err


def assert_as_seeded(cloud, hosts, flavors, specs):
    for h in hosts:
        assert flavor_text(cloud, h) == flavors[h], h
        assert spec_text(cloud, h) == specs[h], h
        usage = dict(LEGACY)
        usage['CUSTOM_BAREMETAL_' + ('BRONZE' if h in BRONZE
                                     else 'SILVER')] = 1
        assert cloud.placement.usages(node(cloud, h)) == usage, h


def journal_states(journal, run_id):
    db = sqlite3.connect(journal)
    try:
        status = db.execute('SELECT status FROM repair_run WHERE id = ?',
                            (run_id,)).fetchone()
        states = db.execute('SELECT node, state FROM repair_journal WHERE '
                            'run_id = ?', (run_id,)).fetchall()
    finally:
        db.close()
    return status, states


def assert_stopped_cleanly(report, journal, nodes, must_name):
    """One node failed naming itself, `must_name` and what to do; the
    nodes not started were left alone (no journal entry); the run is
    `failed`; every journaled write ended done or failed, none pending.
    Returns (failed node, nodes not started)."""
    assert report['ok'] is False
    results = {n['node']: n for n in report['nodes']}
    assert set(results) == set(nodes), report
    failed = [n for n in results.values() if n['result'] == 'failed']
    assert len(failed) == 1, report
    bad = failed[0]
    assert bad['node'] in bad['error'], bad
    for text in must_name:
        assert text.lower() in bad['error'].lower(), (text, bad)
    assert 'steward repair apply' in bad['error'], bad
    later = [n['node'] for n in results.values()
             if n['result'] == 'not_started']
    assert later, report
    assert {r['result'] for r in results.values()} <= {
        'repaired', 'failed', 'not_started'}, report
    status, states = journal_states(journal, report['run_id'])
    assert status == ('failed',)
    assert {s for _, s in states} <= {'done', 'failed'}, states
    assert not {n for n, _ in states} & set(later), states
    return bad['node'], later


# -- several cells ----------------------------------------------------------

def test_two_cells_plan_select_apply_verify_rollback(cloud, tmp_path):
    env = steward_env(cloud, tmp_path)
    hosts = SILVER + BRONZE
    cells = {c['name']: c['uuid'] for c in cloud.nova.cells()}
    flavors = {h: flavor_text(cloud, h) for h in hosts}
    specs = {h: spec_text(cloud, h) for h in hosts}

    # Every node of both cells, each instance read from its own cell.
    code, out, err = run(env, tmp_path, 'plan', '-f', 'json')
    assert code == 0, out + err
    plan = {n['node']: n for n in json.loads(out)['nodes']}
    assert set(plan) == {node(cloud, h) for h in hosts}
    for h in hosts:
        p = plan[node(cloud, h)]
        assert p['status'] == 'needs_repair', p
        rewrite = [s for s in p['steps']
                   if s['action'] == 'rewrite_instance_flavor']
        assert [s['instance'] for s in rewrite] == [instance(cloud, h)]
        assert rewrite[0]['cell'] in (cell_of(h), cells[cell_of(h)]), p

    # --cell picks one.
    for cell, members in (('cell2', BRONZE), ('cell1', SILVER)):
        code, out, err = run(env, tmp_path, 'plan', '--cell', cell, '-f',
                             'json')
        assert code == 0, out + err
        assert {n['node'] for n in json.loads(out)['nodes']} == {
            node(cloud, h) for h in members}, cell

    code, out, err = run(env, tmp_path, 'apply', '--all', '-f', 'json')
    assert code == 0, out + err
    report = json.loads(out)
    assert {n['node']: n['result'] for n in report['nodes']} == {
        node(cloud, h): 'repaired' for h in hosts}
    assert_repaired(cloud, hosts, env, tmp_path)
    code, out, err = run(env, tmp_path, 'verify', '-f', 'json')
    assert code == 0, out + err
    assert json.loads(out)['clean'] is True

    # One rollback puts both cells' flavor copies back byte for byte.
    roll_back(env, tmp_path, report['run_id'])
    assert_as_seeded(cloud, hosts, flavors, specs)


# -- MariaDB restarted under a running apply ----------------------------------

def test_cell_database_restarted_mid_apply_next_apply_finishes(
        cloud, cell2_server, tmp_path):
    """cell2's MariaDB server is shut down (every connection cut) once
    the apply has rewritten a first flavor there, and started again on
    the same port and datadir after the apply has ended: the node that
    met the outage fails naming itself, the cell's database and what to
    do, the rest of the cell is not started, the run is `failed` with
    every journal entry closed; the next apply finishes, verify passes,
    and the rollback restores every byte."""
    env = steward_env(cloud, tmp_path)
    env['STEWARD__REPAIR__CONCURRENCY'] = '1'
    journal = str(tmp_path / 'steward.sqlite')
    flavors = {h: flavor_text(cloud, h) for h in BRONZE}
    specs = {h: spec_text(cloud, h) for h in BRONZE}
    nodes = [node(cloud, h) for h in BRONZE]
    argv = [default_binary(), 'repair', 'apply', '--cell', 'cell2', '-f',
            'json']

    code, out, err = apply_interrupted(argv, env, str(tmp_path), journal,
                                       cell2_server.stop,
                                       cell2_server.start)
    assert code == 1, out + err
    report = json.loads(out)
    bad, later = assert_stopped_cleanly(report, journal, nodes,
                                        ['cell2'])
    for n in later:
        assert sorted(cloud.placement.inventories(n)) == [
            'CUSTOM_BAREMETAL_BRONZE', 'DISK_GB', 'MEMORY_MB', 'VCPU']

    # The server is back: the next apply finishes under a new run.
    code, out, err = run(env, tmp_path, 'apply', '--cell', 'cell2', '-f',
                         'json')
    assert code == 0, out + err
    again = json.loads(out)
    assert again['ok'] is True and again['resumed'] is False
    assert_repaired(cloud, BRONZE, env, tmp_path)
    roll_back(env, tmp_path, again['run_id'], report['run_id'])
    assert_as_seeded(cloud, BRONZE, flavors, specs)


# -- Placement answering 500, 503 or too late ---------------------------------

@pytest.fixture()
def proxied(cloud, tmp_path):
    """(env, proxy): steward reaching Placement through a FaultProxy
    (clouds.yaml placement_endpoint_override), with a 3 s api_timeout."""
    proxy = FaultProxy(cloud.placement.url).start()
    env = steward_env(cloud, tmp_path)
    env['STEWARD__REPAIR__CONCURRENCY'] = '1'
    with open(cloud.identity['clouds_yaml'], encoding='utf-8') as f:
        clouds = yaml.safe_load(f)
    clouds['clouds']['steward']['api_timeout'] = 3
    clouds['clouds']['steward']['placement_endpoint_override'] = proxy.url
    path = tmp_path / 'clouds.yaml'
    path.write_text(yaml.safe_dump(clouds), encoding='utf-8')
    env['OS_CLIENT_CONFIG_FILE'] = str(path)
    try:
        yield env, proxy
    finally:
        proxy.stop()


@pytest.mark.parametrize('fault', ['500', '503', 'stall'])
def test_placement_failing_mid_run_stops_the_run_the_next_finishes(
        cloud, proxied, tmp_path, fault):
    """Placement answers 500, or 503 (with Retry-After) to every call, or
    holds each call past steward's 3 s timeout (and then carries it out)
    from the moment a first flavor is rewritten: the node in flight fails
    naming itself, Placement, what it answered and what to do; the rest
    is not started; the journal is closed; once Placement is healthy the
    next apply finishes and verify passes."""
    env, proxy = proxied
    journal = str(tmp_path / 'steward.sqlite')
    flavors = {h: flavor_text(cloud, h) for h in SILVER}
    specs = {h: spec_text(cloud, h) for h in SILVER}
    nodes = [node(cloud, h) for h in SILVER]
    argv = [default_binary(), 'repair', 'apply', '--cell', 'cell1', '-f',
            'json']
    if fault == 'stall':
        def interrupt():
            proxy.stall(6)
        expect = ['placement', 'no answer within']
    else:
        def interrupt():
            proxy.fail(int(fault), retry_after=1)
        expect = ['Placement: ', 'answered %s' % fault]

    code, out, err = apply_interrupted(argv, env, str(tmp_path), journal,
                                       interrupt, proxy.heal)
    assert code == 1, out + err
    report = json.loads(out)
    bad, later = assert_stopped_cleanly(report, journal, nodes, expect)
    if fault == '503':
        # A 503 is retried (bounded, after Retry-After) before the node
        # gives up; a 500 is not.
        assert proxy.count('503') >= 2, proxy.log
    if fault == '500':
        assert proxy.count('500') == 1, proxy.log
    for n in later:
        assert sorted(cloud.placement.inventories(n)) == [
            'CUSTOM_BAREMETAL_SILVER', 'DISK_GB', 'MEMORY_MB', 'VCPU']

    code, out, err = run(env, tmp_path, 'apply', '--cell', 'cell1', '-f',
                         'json')
    assert code == 0, out + err
    again = json.loads(out)
    assert again['ok'] is True
    assert_repaired(cloud, SILVER, env, tmp_path)
    roll_back(env, tmp_path, again['run_id'], report['run_id'])
    assert_as_seeded(cloud, SILVER, flavors, specs)


def test_a_passing_503_is_retried_and_the_run_rides_through(
        cloud, proxied, tmp_path):
    """One 503 with Retry-After: 1 in the middle of the run (a Placement
    restarting behind its load balancer): steward waits and asks again,
    and the run ends ok without operator help."""
    env, proxy = proxied
    journal = str(tmp_path / 'steward.sqlite')
    flavors = {h: flavor_text(cloud, h) for h in SILVER}
    specs = {h: spec_text(cloud, h) for h in SILVER}
    argv = [default_binary(), 'repair', 'apply', '--cell', 'cell1', '-f',
            'json']
    code, out, err = apply_interrupted(
        argv, env, str(tmp_path), journal,
        lambda: proxy.fail(503, times=1, retry_after=1), proxy.heal)
    assert code == 0, out + err
    report = json.loads(out)
    assert report['ok'] is True, report
    assert proxy.count('503') == 1, proxy.log
    assert_repaired(cloud, SILVER, env, tmp_path)
    roll_back(env, tmp_path, report['run_id'])
    assert_as_seeded(cloud, SILVER, flavors, specs)


# -- Nova refusing the flavor extra-spec writes -------------------------------

@pytest.mark.parametrize('status', [409, 500])
def test_nova_refusing_the_flavor_write_stops_before_any_node(
        cloud, tmp_path, status):
    """The Nova API answers 409 (FlavorExtraSpecUpdateCreateFailed: Nova
    gave up on a flavor's extra specs after its own retries) or 500 to the
    repair's flavor extra-spec write. A 409 is read again and retried
    ([repair] max_attempts, 2 here), a 500 is not (it may hide a write).
    When the refusals last, the run stops before any node, the error
    names the flavor, Nova and what to do, the journal holds each attempt
    as failed; the next apply finishes (for 409, through one more
    refusal, retried)."""
    proxy = FaultProxy(cloud.nova.root_url).start()
    try:
        env = steward_env(cloud, tmp_path)
        env['STEWARD__REPAIR__MAX_ATTEMPTS'] = '2'
        with open(cloud.identity['clouds_yaml'], encoding='utf-8') as f:
            clouds = yaml.safe_load(f)
        clouds['clouds']['steward']['compute_endpoint_override'] = (
            proxy.url + '/v2.1')
        path = tmp_path / 'clouds.yaml'
        path.write_text(yaml.safe_dump(clouds), encoding='utf-8')
        env['OS_CLIENT_CONFIG_FILE'] = str(path)
        journal = str(tmp_path / 'steward.sqlite')
        flavors = {h: flavor_text(cloud, h) for h in BRONZE}
        specs = {h: spec_text(cloud, h) for h in BRONZE}
        flavor = cloud.seeded['flavors']['bm.bronze']
        def extra_specs_write(method, path):
            return method == 'POST' and path.endswith('/os-extra_specs')

        proxy.fail(status, style='nova', match=extra_specs_write)
        attempts = 2 if status == 409 else 1

        code, out, err = run(env, tmp_path, 'apply', '--cell', 'cell2',
                             '-f', 'json')
        assert code == 1, out + err
        report = json.loads(out)
        assert report['ok'] is False
        error = report['global_error']
        assert 'set_flavor_extra_specs' in error, error
        assert str(flavor['id']) in error or flavor['flavorid'] in error, \
            error
        assert 'bm.bronze' in error, error
        assert 'Nova: POST' in error and 'answered %d' % status in error, \
            error
        assert 'steward repair apply' in error, error
        assert proxy.count(str(status)) == attempts, proxy.log
        # Nothing past the flavor: no node touched, each write journaled
        # as failed (with its before-image), nothing pending.
        status_row, states = journal_states(journal, report['run_id'])
        assert status_row == ('failed',)
        assert states == [('-', 'failed')] * attempts, states
        for h in BRONZE:
            assert flavor_text(cloud, h) == flavors[h]
        extra = [f for f in cloud.nova.get('/flavors/detail')['flavors']
                 if f['name'] == 'bm.bronze'][0]['extra_specs']
        assert extra == {'resources:CUSTOM_BAREMETAL_BRONZE': '1'}

        proxy.heal()
        if status == 409:
            proxy.fail(409, times=1, style='nova', match=extra_specs_write)
        code, out, err = run(env, tmp_path, 'apply', '--cell', 'cell2',
                             '-f', 'json')
        assert code == 0, out + err
        again = json.loads(out)
        assert proxy.count(str(status)) == attempts + (status == 409)
        assert_repaired(cloud, BRONZE, env, tmp_path)
        roll_back(env, tmp_path, again['run_id'], report['run_id'])
        assert_as_seeded(cloud, BRONZE, flavors, specs)
    finally:
        proxy.stop()
