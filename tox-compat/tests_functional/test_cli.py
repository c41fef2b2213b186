"""The real `openstack steward ...` commands against a live steward found
in the real Keystone's catalog.

The functional venv holds python-openstackclient with steward's plugin
(nova-hooks, entry point openstack.cli.extension). Keystone 30 and Nova
API 34 run seeded with three hypervisors in two AZs and a flavor with a
steward profile; steward runs with `[auth] strategy = "keystone"` and
`[cluster] source = "nova"`, and is registered in Keystone as service type
`scheduler-steward`. An operator (role admin: Nova shows hypervisors to admins
only, and so does steward) has a clouds.yaml entry and
nothing else: the CLI logs in, finds steward in the catalog, and Nova's
flavor through the same session.

- `host list -f json` shows the hosts and AZs steward read from Nova;
- `host show` of an unknown host exits non-zero with steward's message;
- `score` of a flavor in a requested AZ allows that AZ's hosts (ranked by
  weight) and rejects the other with the plugin and reason steward gives,
  identical to what steward answers the same callout directly;
- `profile show` shows the profile's plugins and weights;
- an admin (role admin, its own clouds.yaml entry) runs `repair plan -f
  json` against the real Ironic (registered in the catalog as baremetal)
  and Nova's API database, gets what steward's API answers, `repair
  verify` passes, an unknown node and an unknown run (rollback) are
  refused naming them; `rebalance plan
  list` and `migration list` answer (empty: no rebalancer ran) and
  `rebalance plan show` of an unknown plan exits non-zero naming it.
"""

import json
import os
import subprocess
import time

import pytest

from harness.peers import Cloud
from harness.steward import start_steward
from harness.venvs import peer_bin
from harness.venvs import peer_env

SEED = {
    'hosts': [
        {'host': 'cmp-a1', 'az': 'az1', 'vcpus': 64},
        {'host': 'cmp-a2', 'az': 'az1', 'vcpus': 32},
        {'host': 'cmp-b1', 'az': 'az2', 'vcpus': 64},
    ],
    'flavors': [
        {'name': 'm1.small', 'vcpus': 2, 'memory_mb': 4096, 'root_gb': 20},
        {'name': 'm1.web', 'vcpus': 4, 'memory_mb': 8192, 'root_gb': 40,
         'extra_specs': {'steward:profile': 'web'}},
    ],
    'servers': [
        {'name': 'web-1', 'host': 'cmp-a1', 'role': 'web'},
        {'name': 'db-1', 'host': 'cmp-b1', 'role': 'db'},
    ],
}
# An Ironic node Nova never reported (enrolled, no instance): the repair
# plan lists it, clean. Not in SEED so the hypervisors above stay the
# three the host and score tests expect.
SPARE_NODE = 'bm-spare-1'
EXPECTED_AZ = {'cmp-a1': 'az1', 'cmp-a2': 'az1', 'cmp-b1': 'az2'}


def steward_env(clouds_yaml):
    env = {k: v for k, v in os.environ.items() if not k.startswith('OS_')}
    env['OS_CLIENT_CONFIG_FILE'] = clouds_yaml
    env['NO_PROXY'] = env['no_proxy'] = '127.0.0.1,localhost'
    env['STEWARD_LOG'] = 'info'
    return env


@pytest.fixture(scope='module')
def cloud(tmp_path_factory):
    workdir = tmp_path_factory.mktemp('cli')
    c = Cloud(workdir, keystone=True, nova=True, ironic=True)
    c.start()
    steward = None
    try:
        c.seed(SEED)
        c.spare_node = c.ironic.create_node(SPARE_NODE, 'GOLD')
        identity = c.steward_identity()
        env = steward_env(identity['clouds_yaml'])
        # The repair routes read Nova's API database (then its cells').
        env['STEWARD__REPAIR__API_DATABASE'] = c.nova.database_url('api')
        steward = start_steward(
            os.path.join(str(workdir), 'steward'), auth='keystone',
            env=env,
            extra={'auth': {'strategy': 'keystone'},
                   'openstack': {'cloud': 'steward'},
                   'cluster': {'source': 'nova', 'refresh_seconds': 2}})
        c.steward = steward
        c.keystone.register_service('scheduler-steward', steward.url,
                                    name='steward')
        # Steward shows hosts as Nova does (to admins; Nova's flavor extra
        # specs, which `score` reads, need a project-scoped token), so the
        # operator is a project admin; a member is refused.
        operator = c.keystone.create_user('operator', roles=('admin',))
        c.operator_token, _ = c.keystone.login(
            operator['name'], operator['password'],
            project=operator['project_name'])
        member = c.keystone.create_user('member', roles=('member',))
        ops_cloud = c.keystone.password_cloud(operator)
        # The repair and rebalance routes are admin only.
        admin = c.keystone.create_user('cloud-admin', roles=('admin',))
        c.admin_token, _ = c.keystone.login(
            admin['name'], admin['password'], project=admin['project_name'])
        # The operators' own clouds.yaml: nothing of steward in it.
        c.cli_clouds = c.keystone.write_clouds_yaml(
            {'ops': ops_cloud,
             'member': c.keystone.password_cloud(member),
             'admin': c.keystone.password_cloud(admin)},
            path=os.path.join(str(workdir), 'operator-clouds.yaml'))
        wait_for_view(c)
        yield c
    finally:
        if steward is not None:
            steward.stop()
        c.stop()


def steward_get(cloud, path):
    status, body, _ = cloud.steward.request(
        'GET', path, role=None,
        headers={'X-Auth-Token': cloud.operator_token})
    assert status == 200, 'GET %s: %s %r' % (path, status, body)
    return body


def wait_for_view(cloud, timeout=60.0):
    deadline = time.monotonic() + timeout
    hosts = None
    while time.monotonic() < deadline:
        hosts = {h['host']: h['az']
                 for h in steward_get(cloud, '/v1/hosts')['hosts']}
        if hosts == EXPECTED_AZ:
            return
        time.sleep(0.5)
    raise AssertionError('steward did not read the seeded hosts from Nova '
                         'within %.0fs; last /v1/hosts: %r'
                         % (timeout, hosts))


def openstack(cloud, *args, os_cloud='ops'):
    """Run the real `openstack --os-cloud ops ...` (or another cloud of
    the operators' clouds.yaml); (exit code, stdout, stderr). Only the
    clouds.yaml tells the CLI where anything is."""
    env = peer_env('osc', None, {'OS_CLIENT_CONFIG_FILE': cloud.cli_clouds})
    for key in [k for k in env if k.startswith('OS_') and k not in (
            'OS_CLIENT_CONFIG_FILE', 'OS_NOVA_DISABLE_EVENTLET_PATCHING')]:
        del env[key]
    program = peer_bin('osc', 'openstack')
    done = subprocess.run(
        [program, '--os-cloud', os_cloud] + list(args),
        env=env, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL)
    if 'Unknown command' in done.stderr:
        raise AssertionError(
            '%s does not know `openstack steward`: install the plugin into '
            'its venv (pip install -e nova-hooks; tox -e functional does)\n%s'
            % (program, done.stderr))
    return done.returncode, done.stdout, done.stderr


def openstack_json(cloud, *args, os_cloud='ops'):
    code, out, err = openstack(cloud, *args, '-f', 'json', os_cloud=os_cloud)
    assert code == 0, 'openstack %s exited %d:\n%s%s' % (
        ' '.join(args), code, out, err)
    return json.loads(out), err


def test_host_list_shows_what_steward_knows(cloud):
    rows, _ = openstack_json(cloud, 'steward', 'host', 'list')
    assert {r['Host']: r['AZ'] for r in rows} == EXPECTED_AZ, rows
    direct = steward_get(cloud, '/v1/hosts')['hosts']
    assert [r['Host'] for r in rows] == [h['host'] for h in direct]
    assert all(r['Source'] == 'nova' and r['Fresh'] is False for r in rows)


def test_host_show_and_an_unknown_host(cloud):
    shown, _ = openstack_json(cloud, 'steward', 'host', 'show', 'cmp-a1')
    assert shown['host'] == 'cmp-a1' and shown['az'] == 'az1'
    assert shown['roles'] == 'web=1', shown
    code, out, err = openstack(cloud, 'steward', 'host', 'show', 'cmp-zz')
    assert code != 0, 'unknown host: expected a non-zero exit, got 0: %s' % out
    assert 'steward.not_found' in err and \
        'steward knows no hypervisor "cmp-zz"' in err, err


def test_score_ranks_the_requested_az_and_says_why_not_the_other(cloud):
    rows, err = openstack_json(cloud, 'steward', 'score', '--flavor',
                               'm1.web', '--availability-zone', 'az1',
                               '--role', 'web')
    allowed = [r for r in rows if r['Allowed']]
    rejected = [r for r in rows if not r['Allowed']]
    assert sorted(r['Host'] for r in allowed) == ['cmp-a1', 'cmp-a2'], rows
    assert [r['Rank'] for r in allowed] == [1, 2]
    assert allowed[0]['Weight'] >= allowed[1]['Weight']
    assert [r['Host'] for r in rejected] == ['cmp-b1'], rows
    assert rejected[0]['Plugin'] == 'same_az'
    assert 'az2' in rejected[0]['Reason'] and 'az1' in rejected[0]['Reason']
    # the flavor's steward:profile extra spec came from Nova
    assert 'profile web, role web' in err, err

    # What steward answers the same callout directly: same verdicts and
    # weights (the CLI adds nothing of its own).
    flavor = {'name': 'm1.web', 'vcpus': 4, 'memory_mb': 8192,
              'root_gb': 40, 'ephemeral_gb': 0, 'swap': 0,
              'extra_specs': {'steward:profile': 'web'}}
    hosts = [{'host': h, 'nodename': h, 'az': EXPECTED_AZ[h]}
             for h in sorted(EXPECTED_AZ)]
    status, direct, _ = cloud.steward.request(
        'POST', '/v1/filter?weigh=true', body={
            'operation': 'boot', 'hosts': hosts, 'instance': {
                'uuid': '7e57a11d-0000-4000-8000-000000000001',
                'flavor': flavor, 'requested_az': 'az1',
                'scheduler_hints': {'steward_role': ['web']}}},
        role=None, headers={'X-Auth-Token': cloud.operator_token})
    assert status == 200, direct
    weights = {w['host']: round(w['weight'], 4) for w in direct['weights']}
    assert {r['Host']: r['Weight'] for r in allowed} == weights
    assert {r['Host']: r['Reason'] for r in rejected} == {
        r['host']: r['reason'] for r in direct['rejected']}


def test_score_table_and_explain(cloud):
    code, out, err = openstack(cloud, 'steward', 'score', '--flavor',
                               'm1.small', '--explain')
    assert code == 0, out + err
    for host in EXPECTED_AZ:
        assert host in out
    assert 'Scores' in out and 'steal=' in out, out


def test_score_of_a_flavor_nova_does_not_have(cloud):
    code, out, err = openstack(cloud, 'steward', 'score', '--flavor',
                               'm9.none')
    assert code != 0
    assert "Nova has no flavor 'm9.none'" in err, err


def test_profile_show(cloud):
    shown, _ = openstack_json(cloud, 'steward', 'profile', 'show', 'web')
    assert shown['name'] == 'web'
    assert shown['plugin same_az'].startswith('weight '), shown
    rows, _ = openstack_json(cloud, 'steward', 'profile', 'list')
    assert {'default', 'web', 'batch'} <= {r['Name'] for r in rows}


def test_repair_plan_verify_and_the_rebalance_lists_as_an_admin(cloud):
    rows, _ = openstack_json(cloud, 'steward', 'repair', 'plan',
                             os_cloud='admin')
    by_node = {r['Node']: r for r in rows}
    spare = by_node.get(cloud.spare_node)
    assert spare is not None, 'no row for Ironic node %s: %r' % (
        cloud.spare_node, rows)
    assert spare['Name'] == SPARE_NODE and spare['Status'] == 'clean', spare
    assert spare['Steps'] == 0 and spare['Problems'] == '', spare
    # What steward's API answers the same plan, admin token: same nodes
    # and statuses (the CLI adds nothing of its own).
    status, direct, _ = cloud.steward.request(
        'POST', '/v1/repair/plans', body={}, role=None,
        headers={'X-Auth-Token': cloud.admin_token})
    assert status == 200, direct
    assert {r['Node']: r['Status'] for r in rows if r['Node'] != '(global)'} \
        == {n['node']: n['status'] for n in direct['nodes']}

    code, out, err = openstack(cloud, 'steward', 'repair', 'verify',
                               '--node', cloud.spare_node, os_cloud='admin')
    assert code == 0, out + err
    assert '1 node(s) checked' in err, err

    code, out, err = openstack(cloud, 'steward', 'repair', 'plan',
                               '--node', 'bm-nowhere', os_cloud='admin')
    assert code != 0, 'unknown node: expected a non-zero exit: %s' % out
    assert 'bm-nowhere' in err and 'POST /v1/repair/plans' in err, err

    code, out, err = openstack(cloud, 'steward', 'repair', 'rollback',
                               'run-nowhere', os_cloud='admin')
    assert code != 0 and 'no repair run run-nowhere' in err, out + err

    # A member is refused, with steward's message, not a traceback.
    code, out, err = openstack(cloud, 'steward', 'repair', 'plan',
                               os_cloud='member')
    assert code != 0 and 'answered 403' in err, out + err
    code, out, err = openstack(cloud, 'steward', 'host', 'list',
                               os_cloud='member')
    assert code != 0 and 'answered 403' in err, out + err

    plans, _ = openstack_json(cloud, 'steward', 'rebalance', 'plan', 'list',
                              os_cloud='admin')
    assert plans == []
    moves, _ = openstack_json(cloud, 'steward', 'migration', 'list',
                              '--state', 'planned', os_cloud='admin')
    assert moves == []
    code, out, err = openstack(
        cloud, 'steward', 'rebalance', 'plan', 'show',
        '00000000-0000-4000-8000-000000000000', os_cloud='admin')
    assert code != 0
    assert "no rebalance plan '00000000-0000-4000-8000-000000000000'" in err
