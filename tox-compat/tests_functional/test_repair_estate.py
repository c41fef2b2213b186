"""The inventory repair on a messy legacy estate, against the real
Keystone, Placement, Nova's own schema (seeded with Nova's objects) and
Ironic with fake hardware.

- bm-held: its instance was booted from a flavor without the custom
  class, and a consumer Nova does not know holds CUSTOM_BAREMETAL_HELD=1:
  after the repair both would hold the one unit. Blocked, the stranger
  named; nothing of the node written (rows byte-equal, updated_at
  included).
- bm-two: two live instances on one node's history (Ironic holds the
  first): blocked, the second named.
- bm-mig: an instance and a migration record (nova-conductor's, moved
  there with POST /allocations) both on the node: blocked, the migration
  named as such.
- bm-ok-0..2: ordinary legacy GOLD nodes: killed at every write of a node
  and resumed; a write refused mid-node undone from the journal; a rollback
  scoped to one node; a full rollback byte-equal.
- bm-raw-1 (active, with an instance), bm-raw-2 (available) and bm-twice:
  racked before custom classes, no resource_class at all; their hardware
  facts in Ironic's properties and inspection inventory. `classify` gives
  the first two their class (bm-twice matches two rules: listed, not
  guessed), then the repair moves them and verify passes.
"""

import json
import sqlite3
import subprocess
import uuid as uuidlib

import pytest
import yaml

from harness import mariadb
from harness.fault_proxy import FaultProxy
from harness.peers import Cloud
from harness.repair_runs import steward_env
from harness.steward import default_binary

GOLD = {'vcpus': 64, 'memory_mb': 131072, 'disk_gb': 371}
OK = ['bm-ok-%d' % i for i in range(3)]
STRANGER = str(uuidlib.uuid4())
MIGRATION = str(uuidlib.uuid4())
HALF = {'vcpus': 32, 'memory_mb': 65536, 'root_gb': 185}
R640 = {'cpus': 48, 'memory_mb': 196608, 'local_gb': 894,
        'cpu_arch': 'x86_64', 'capabilities': 'boot_mode:uefi'}
RAW = {'vcpus': 48, 'memory_mb': 196608, 'disk_gb': 894}


def inventory(memory_mb):
    """An inspection inventory as ironic-python-agent reports it."""
    return {'cpu': {'model_name': 'Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz',
                    'count': 48, 'architecture': 'x86_64'},
            'memory': {'physical_mb': memory_mb},
            'disks': [{'name': '/dev/sda', 'size': 960197124096},
                      {'name': '/dev/sdb', 'size': 960197124096}],
            'system_vendor': {'manufacturer': 'Dell Inc.',
                              'product_name': 'PowerEdge R640'},
            'interfaces': [{'name': 'eno1',
                            'mac_address': '52:54:00:12:34:56'}]}


RULES = """
[[rule]]
name = "r640-gold"
class = "baremetal-r640"
[rule.match]
"properties.cpu_arch" = "x86_64"
"capabilities.boot_mode" = "uefi"
"inventory.system_vendor.product_name" = "PowerEdge R640"
"inventory.cpu.model_name" = { contains = "Gold 6248" }
"inventory.disks.#" = 2

[[rule]]
name = "big-memory"
class = "baremetal-bigmem"
[rule.match]
"inventory.memory.physical_mb" = { min = 500000 }
"""

SEED = {
    'hosts': [dict(host=h, ironic={'resource_class': 'GOLD'}, **GOLD)
              for h in OK] + [
        dict(host='bm-raw-1', ironic={'resource_class': '',
                                      'properties': R640}, **RAW),
        dict(host='bm-raw-2', ironic={'resource_class': '',
                                      'properties': R640}, **RAW),
        dict(host='bm-twice', ironic={'resource_class': '', 'properties': dict(
            R640, memory_mb=786432)}, **RAW)] + [
        dict(host='bm-held', ironic={'resource_class': 'baremetal-held'},
             **GOLD),
        dict(host='bm-two', ironic={'resource_class': 'GOLD'}, **GOLD),
        dict(host='bm-mig', ironic={'resource_class': 'GOLD'}, **GOLD)],
    'flavors': [
        # An operator once pinned DISK_GB: the repair changes a value
        # there (not only adds keys), and the rollback changes it back.
        {'name': 'bm.gold', 'vcpus': 64, 'memory_mb': 131072,
         'root_gb': 371, 'extra_specs': {'resources:CUSTOM_GOLD': '1',
                                         'resources:DISK_GB': '371'}},
        # Booted before custom classes: the standard classes only.
        {'name': 'bm.held', 'vcpus': 64, 'memory_mb': 131072,
         'root_gb': 371},
        {'name': 'bm.half', 'vcpus': 32, 'memory_mb': 65536,
         'root_gb': 185},
        # What legacy bare-metal flavors were: the node's exact sizes.
        {'name': 'bm.raw', 'vcpus': 48, 'memory_mb': 196608,
         'root_gb': 894}],
    'servers': [{'name': 'inst-' + h, 'host': h, 'flavor': 'bm.gold'}
                for h in OK] + [
        {'name': 'inst-held', 'host': 'bm-held', 'flavor': 'bm.held'},
        {'name': 'inst-raw-1', 'host': 'bm-raw-1', 'flavor': 'bm.raw'},
        {'name': 'inst-two-a', 'host': 'bm-two', 'flavor': 'bm.half'},
        {'name': 'inst-two-b', 'host': 'bm-two', 'flavor': 'bm.half'},
        {'name': 'inst-mig', 'host': 'bm-mig', 'flavor': 'bm.half'},
        # Moved away from bm-mig (on no node now); its migration record
        # still holds bm-mig.
        {'name': 'inst-moved', 'host': None, 'flavor': 'bm.half'}],
    'migrations': [{'uuid': MIGRATION, 'server': 'inst-moved',
                    'source': 'bm-mig', 'dest': 'bm-ok-0',
                    'status': 'finished', 'type': 'resize'}],
}


@pytest.fixture(scope='module')
def cloud(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp('cloud'), keystone=True, nova=True,
              ironic=True)
    c.start()
    try:
        c.seed(SEED)
        moved = c.seeded['servers']['inst-moved']
        p = c.placement
        held = c.seeded['servers']['inst-held']
        p.allocate(STRANGER, {node(c, 'bm-held'): {
            'CUSTOM_BAREMETAL_HELD': 1}}, project_id=held['project_id'],
            user_id=held['user_id'])
        p.allocate(MIGRATION, {node(c, 'bm-mig'): {
            'VCPU': 32, 'MEMORY_MB': 65536, 'DISK_GB': 185}},
            project_id=moved['project_id'], user_id=moved['user_id'],
            consumer_type='MIGRATION')
        for h, memory in (('bm-raw-1', 196608), ('bm-raw-2', 196608),
                          ('bm-twice', 786432)):
            c.ironic.store_inventory(node(c, h), inventory(memory))
        c.steward_identity()
        yield c
    finally:
        c.stop()


def node(cloud, host):
    return cloud.seeded['ironic_nodes'][host]


def inst(cloud, name):
    return cloud.seeded['servers'][name]['uuid']


@pytest.fixture()
def env(cloud, tmp_path):
    e = steward_env(cloud, tmp_path)
    e['STEWARD__REPAIR__CONCURRENCY'] = '1'
    return e


def repair(env, *args, extra_env=None):
    e = dict(env)
    e.update(extra_env or {})
    done = subprocess.run([default_binary(), 'repair'] + list(args),
                          env=e, capture_output=True, text=True,
                          timeout=300)
    return done.returncode, done.stdout, done.stderr


def rows(cloud, instance):
    """instance_extra.flavor and request_specs.spec of an instance, each
    with its updated_at, as stored."""
    cell = mariadb.execute(cloud.nova.db_names['cell1'],
                           'SELECT flavor, updated_at FROM instance_extra '
                           'WHERE instance_uuid = %s', (instance,))[0]
    api = mariadb.execute(cloud.nova.db_names['api'],
                          'SELECT spec, updated_at FROM request_specs '
                          'WHERE instance_uuid = %s', (instance,))[0]
    return tuple(cell), tuple(api)


def flavor_rows(cloud, name):
    """nova_api.flavor_extra_specs of flavor `name`, every column
    (created_at and updated_at included), by key."""
    return mariadb.execute(cloud.nova.db_names['api'],
                           'SELECT s.* FROM flavor_extra_specs s '
                           'JOIN flavors f ON f.id = s.flavor_id '
                           'WHERE f.name = %s ORDER BY s.`key`', (name,))


def snapshot(cloud, hosts, flavors=()):
    """Everything the repair may write for `hosts`: per instance on them
    its rows (updated_at included) and allocations (resources by
    provider; Placement's consumer generation counts every write); per
    node its inventory; per flavor of `flavors` its extra-spec rows."""
    out = {}
    for name in flavors:
        out['flavor ' + name] = flavor_rows(cloud, name)
    for name, s in cloud.seeded['servers'].items():
        if s['host'] in hosts:
            held = cloud.placement.allocations(s['uuid'])['allocations']
            out[name] = (rows(cloud, s['uuid']),
                         {rp: a['resources'] for rp, a in held.items()})
    for h in hosts:
        out[h] = cloud.placement.inventories(node(cloud, h))
    return out


def journal_states(env, run_id):
    path = env['STEWARD__DATABASE__URL'][len('sqlite://'):].split('?')[0]
    db = sqlite3.connect(path)
    try:
        return db.execute('SELECT node, action, state FROM repair_journal '
                          'WHERE run_id = ? ORDER BY id',
                          (run_id,)).fetchall()
    finally:
        db.close()


def assert_agree(cloud, instances, rp):
    """Nova's own objects ask Placement for what each instance holds on
    node `rp`: flavor, request spec and allocation agree."""
    seen = cloud.nova.inspect(*instances)
    for i in instances:
        held = cloud.placement.allocations(i)['allocations'][rp]['resources']
        assert seen[i]['cur']['resources'] == held, (i, seen[i], held)
        assert seen[i]['request_spec']['resources'] == held, (i, seen[i])


# -- blocked nodes ------------------------------------------------------------

def test_blocked_nodes_name_their_consumers_and_nothing_is_written(
        cloud, env):
    hosts = ['bm-held', 'bm-two', 'bm-mig']
    before = snapshot(cloud, hosts)
    code, out, err = repair(env, 'plan', '-f', 'json')
    assert code == 2, out + err
    nodes = {n['node']: n for n in json.loads(out)['nodes']}

    held = nodes[node(cloud, 'bm-held')]
    assert held['status'] == 'blocked' and held['steps'] == [], held
    [b] = held['blockers']
    assert (b['consumer'], b['kind']) == (STRANGER, 'unknown'), b
    assert b['command'] == (
        'openstack resource provider allocation show %s' % STRANGER)
    assert b['holds'] == {'CUSTOM_BAREMETAL_HELD': 1}
    # The instance itself would take the one unit.
    assert STRANGER in held['problems'][0]

    two = nodes[node(cloud, 'bm-two')]
    assert two['status'] == 'blocked', two
    [b] = two['blockers']
    assert (b['consumer'], b['kind']) == (inst(cloud, 'inst-two-b'),
                                          'instance'), b
    assert 'holds another instance' in b['what'], b

    mig = nodes[node(cloud, 'bm-mig')]
    assert mig['status'] == 'blocked', mig
    [b] = mig['blockers']
    assert (b['consumer'], b['kind']) == (MIGRATION, 'migration'), b
    assert inst(cloud, 'inst-moved') in b['what'], b

    # The command it names shows the consumer (osc-placement).
    shown = json.loads(cloud.placement.openstack(
        'resource', 'provider', 'allocation', 'show', STRANGER, '-f',
        'json'))
    assert shown[0]['resource_provider'] == node(cloud, 'bm-held')

    # apply: exit 2 (blocked), nothing of those nodes written.
    code, out, err = repair(env, 'apply', '--node', node(cloud, 'bm-held'),
                            '--node', node(cloud, 'bm-two'), '--node',
                            node(cloud, 'bm-mig'), '-f', 'json')
    assert code == 2, out + err
    assert 'blocked' in out
    assert snapshot(cloud, hosts) == before
    # The table says it too.
    code, out, err = repair(env, 'plan', '--node', node(cloud, 'bm-held'))
    assert code == 2 and 'blocked by %s' % STRANGER in out, out + err
    # verify reports them as broken (exit 3).
    code, out, err = repair(env, 'verify', '--node', node(cloud, 'bm-held'),
                            '-f', 'json')
    assert code == 3, out + err
    assert any(STRANGER in p['problem']
               for p in json.loads(out)['problems']), out


# -- a killed apply, at every write of a node, and resumed --------------------

@pytest.mark.parametrize('write', [1, 2, 3, 4, 5])
def test_killed_at_every_write_the_resume_settles_and_finishes(
        cloud, env, write):
    """Write 1 is the flavor's extra specs, 2-5 the node's embedded
    flavor, request spec, allocation and inventory. The process aborts
    right after write N landed and before the journal marked it done;
    the next apply settles that pending entry from the real state,
    finishes the node, and the instance agrees with its allocation."""
    host = 'bm-ok-1'
    rp = node(cloud, host)
    i = inst(cloud, 'inst-' + host)
    before = snapshot(cloud, [host], flavors=['bm.gold'])
    code, out, err = repair(env, 'apply', '--node', rp, '-f', 'json',
                            extra_env={
                                'STEWARD_REPAIR_CRASH_AFTER_WRITES':
                                str(write)})
    assert code != 0 and 'aborting after write %d' % write in err, (
        code, out, err)
    code, out, err = repair(env, 'status', '-f', 'json')
    assert code == 0, out + err
    run = json.loads(out)[0]
    assert run['status'] == 'running' and run['writes'].get('pending') == 1
    code, out, err = repair(env, 'apply', '--node', rp, '-f', 'json')
    assert code == 0, out + err
    report = json.loads(out)
    assert (report['run_id'], report['resumed'], report['settled']) == (
        run['id'], True, 1), report
    states = journal_states(env, run['id'])
    assert 'pending' not in {s for _, _, s in states}, states
    assert_agree(cloud, [i], rp)
    code, out, err = repair(env, 'verify', '--node', rp)
    assert code == 0, out + err
    code, out, err = repair(env, 'rollback', run['id'], '--placement')
    assert code == 0, out + err
    assert snapshot(cloud, [host], flavors=['bm.gold']) == before


# -- a write refused mid-node: the node's earlier writes undone --------------

def test_a_refused_allocation_write_undoes_the_nodes_earlier_writes(
        cloud, env, tmp_path):
    """Placement refuses the instance's allocation (409, as when a
    consumer took the node meanwhile) after its flavor and request spec
    were rewritten: both are put back from the journal, byte for byte,
    before apply returns, and verify finds flavor and allocation
    agreeing."""
    host = 'bm-ok-2'
    rp = node(cloud, host)
    i = inst(cloud, 'inst-' + host)
    proxy = FaultProxy(cloud.placement.url).start()
    try:
        with open(cloud.identity['clouds_yaml'], encoding='utf-8') as f:
            clouds = yaml.safe_load(f)
        clouds['clouds']['steward']['placement_endpoint_override'] = \
            proxy.url
        path = tmp_path / 'clouds.yaml'
        path.write_text(yaml.safe_dump(clouds), encoding='utf-8')
        e = dict(env, OS_CLIENT_CONFIG_FILE=str(path))
        before = snapshot(cloud, [host])
        proxy.fail(409, match=lambda method, p: method == 'PUT' and
                   p.endswith('/allocations/%s' % i))
        code, out, err = repair(e, 'apply', '--node', rp, '-f', 'json')
        proxy.heal()
        assert code == 1, out + err
        report = json.loads(out)
        [n] = report['nodes']
        assert n['result'] == 'failed' and 'put back' in n['error'], n
        after = snapshot(cloud, [host])
        # Only the flavor (run-wide) stays; the node is as before.
        assert after == before, (after, before)
        states = journal_states(e, report['run_id'])
        # The refused write and the two before it: put back (the
        # allocation was found as it was).
        assert [(a, s) for nd, a, s in states if nd == rp] == [
            ('rewrite_instance_flavor', 'undone'),
            ('rewrite_request_spec', 'undone'),
            ('shrink_allocation', 'undone')], states
        code, out, err = repair(e, 'verify', '--node', rp, '-f', 'json')
        assert not any('instance %s' % i == p['object']
                       for p in json.loads(out)['problems']), out
        code, out, err = repair(e, 'rollback', report['run_id'],
                                '--placement')
        assert code == 0, out + err
    finally:
        proxy.stop()


# -- rollback as selected -----------------------------------------------------

def test_rollback_scoped_to_one_node_and_a_full_one_byte_equal(cloud, env):
    hosts = ['bm-ok-0', 'bm-ok-1', 'bm-ok-2']
    flavors = ['bm.gold']
    seeded = snapshot(cloud, hosts, flavors)
    gold_flavor = [f for f in cloud.nova.get('/flavors/detail')['flavors']
                   if f['name'] == 'bm.gold'][0]['extra_specs']
    code, out, err = repair(env, 'apply', '--node', node(cloud, 'bm-ok-0'),
                            '--node', node(cloud, 'bm-ok-1'), '--node',
                            node(cloud, 'bm-ok-2'), '-f', 'json')
    assert code == 0, out + err
    run_id = json.loads(out)['run_id']
    repaired = snapshot(cloud, hosts, flavors)
    for key in repaired:
        assert repaired[key] != seeded[key], key

    # Without --placement: refused, the consequence spelled out.
    code, out, err = repair(env, 'rollback', run_id)
    assert code == 127, out + err
    assert '--placement' in err and '--flavors-only' in err
    assert 'heal_allocations' in err
    assert snapshot(cloud, hosts, flavors) == repaired
    # A selection that matches none of the run's nodes is refused.
    code, out, err = repair(env, 'rollback', run_id, '--resource-class',
                            'baremetal-held', '--placement')
    assert code == 127 and 'matches none' in err, out + err
    code, out, err = repair(env, 'rollback', run_id, '--cell', 'nope',
                            '--placement')
    assert code == 127 and 'nope' in err, out + err

    # --node X: X alone is back as seeded, byte for byte.
    x = node(cloud, 'bm-ok-1')
    code, out, err = repair(env, 'rollback', run_id, '--node', x,
                            '--placement', '-f', 'json')
    assert code == 0, out + err
    items = json.loads(out)
    assert {i['node'] for i in items if i['result'] != 'kept'} == {x}
    now = snapshot(cloud, hosts, flavors)
    for key in now:
        want = seeded if 'bm-ok-1' in key else repaired
        assert now[key] == want[key], key
    # The run-wide flavor write is kept by a scoped rollback.
    flavor = [f for f in cloud.nova.get('/flavors/detail')['flavors']
              if f['name'] == 'bm.gold'][0]['extra_specs']
    assert flavor['resources:VCPU'] == '0'

    # The full rollback: every row byte-equal, updated_at included, the
    # flavor's extra-spec rows too (a value changed and changed back
    # keeps its timestamps).
    code, out, err = repair(env, 'rollback', run_id, '--placement')
    assert code == 0, out + err
    now = snapshot(cloud, hosts, flavors)
    for key in seeded:
        assert now[key] == seeded[key], (key, now[key], seeded[key])
    flavor = [f for f in cloud.nova.get('/flavors/detail')['flavors']
              if f['name'] == 'bm.gold'][0]['extra_specs']
    assert flavor == gold_flavor
    code, out, err = repair(env, 'status', run_id, '-f', 'json')
    assert code == 0, out + err
    assert json.loads(out)['status'] == 'rolled_back'
    code, out, err = repair(env, 'status')
    assert code == 0 and run_id in out, out + err
    code, out, err = repair(env, 'status', 'repair-nope')
    assert code == 127 and 'repair-nope' in err, out + err


# -- classes from hardware facts ----------------------------------------------

def test_classify_then_apply_then_verify_on_nodes_without_classes(
        cloud, env, tmp_path):
    raw1, raw2, twice = (node(cloud, h) for h in
                         ('bm-raw-1', 'bm-raw-2', 'bm-twice'))
    i = inst(cloud, 'inst-raw-1')
    rules = tmp_path / 'rules.toml'
    rules.write_text(RULES, encoding='utf-8')
    selected = ['--node', raw1, '--node', raw2, '--node', twice]
    # Before: listed apart by verify, not as broken.
    code, out, err = repair(env, 'verify', *selected, '-f', 'json')
    assert code == 5, out + err
    assert {u['node'] for u in json.loads(out)['unclassified']} == {
        raw1, raw2, twice}

    code, out, err = repair(env, 'classify', '--rules', str(rules),
                            *selected, '-f', 'json')
    assert code == 3, out + err
    plan = json.loads(out)
    nodes = {n['node']: n for n in plan['nodes']}
    for n in (raw1, raw2):
        assert nodes[n]['verdict'] == 'classified', nodes[n]
        assert nodes[n]['class'] == 'baremetal-r640'
        assert nodes[n]['rules'] == ['r640-gold']
        assert nodes[n]['facts'][
            'inventory.system_vendor.product_name'] == 'PowerEdge R640'
        assert nodes[n]['facts']['inventory.disks.#'] == 2
    assert 'active' in nodes[raw1]['note']
    assert nodes[twice]['verdict'] == 'ambiguous'
    assert nodes[twice]['rules'] == ['r640-gold', 'big-memory']
    steps = [(s['action'], s.get('node') or s.get('flavor_name'))
             for s in plan['steps']]
    assert ('set_node_resource_class', twice) not in steps
    assert ('set_flavor_extra_specs', 'bm.raw') in steps, steps
    # The plan wrote nothing.
    assert not cloud.ironic.node(raw1).get('resource_class')

    code, out, err = repair(env, 'classify', '--rules', str(rules), '--node',
                            raw1, '--node', raw2, '--apply', '-f', 'json')
    assert code == 0, out + err
    classify_run = json.loads(out)['run']['run_id']
    for n in (raw1, raw2):
        assert cloud.ironic.node(n)['resource_class'] == 'baremetal-r640'
    assert cloud.ironic.node(raw1)['provision_state'] == 'active'
    raw = [f for f in cloud.nova.get('/flavors/detail')['flavors']
           if f['name'] == 'bm.raw'][0]['extra_specs']
    assert raw == {'resources:CUSTOM_BAREMETAL_R640': '1',
                   'resources:VCPU': '0', 'resources:MEMORY_MB': '0',
                   'resources:DISK_GB': '0'}

    # The existing repair handles the nodes from here.
    code, out, err = repair(env, 'apply', '--resource-class',
                            'baremetal-r640', '-f', 'json')
    assert code == 0, out + err
    repair_run = json.loads(out)['run_id']
    code, out, err = repair(env, 'verify', '--resource-class',
                            'baremetal-r640')
    assert code == 0, out + err
    assert cloud.placement.usages(raw1) == {'CUSTOM_BAREMETAL_R640': 1}
    assert_agree(cloud, [i], raw1)
    assert cloud.nova.inspect(i)[i]['cur']['resources'] == {
        'CUSTOM_BAREMETAL_R640': 1}

    # Rollback: the repair, then the classification. Ironic takes the
    # class back from the available node and refuses for the active one.
    code, out, err = repair(env, 'rollback', repair_run, '--placement')
    assert code == 0, out + err
    code, out, err = repair(env, 'rollback', classify_run, '-f', 'json')
    assert code == 1, out + err
    items = {(i['action'], i['object']): i for i in json.loads(out)}
    assert items[('set_node_resource_class', 'node %s' % raw2)][
        'result'] == 'restored'
    refused = items[('set_node_resource_class', 'node %s' % raw1)]
    assert refused['result'] == 'failed', refused
    assert 'manageable' in refused['message'], refused
    assert not cloud.ironic.node(raw2).get('resource_class')
    raw = [f for f in cloud.nova.get('/flavors/detail')['flavors']
           if f['name'] == 'bm.raw'][0]['extra_specs']
    assert raw == {}
