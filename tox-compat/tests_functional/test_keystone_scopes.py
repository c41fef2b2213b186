"""Nova's RBAC and Keystone's scopes, against the real Keystone and Nova API.

Nova shows a server's host and the hypervisors to admins only. Steward
does the same: with `[auth] strategy = "keystone"`,

- a project-scoped member reads its own project's VMs (AZ, role, flavor,
  steal) without the host, gets 404 for another project's VM (as Nova
  answers), and 403 on the hypervisor list, one hypervisor, the
  callout, the moves and the metrics, however the path is spelled;
- a system-scoped reader (`openstack --os-system-scope all`) sees every
  VM with its host and every hypervisor, and still writes nothing;
- an admin sees everything.

The VMs and their projects come from Nova through steward's refresh, the
projects are Keystone's, the tokens real password logins.
"""

import os
import time
import uuid

import pytest

from harness.peers import Cloud
from harness.steward import start_steward

VM_A = str(uuid.UUID('0a0a0a0a-1111-4222-8333-444455556666'))
VM_B = str(uuid.UUID('0b0b0b0b-1111-4222-8333-444455556666'))
CALLOUT = {'operation': 'boot', 'instance': {'uuid': VM_A},
           'hosts': [{'host': 'cmp-a1', 'az': 'az1'}]}


def steward_env(clouds_yaml):
    env = {k: v for k, v in os.environ.items() if not k.startswith('OS_')}
    env['OS_CLIENT_CONFIG_FILE'] = clouds_yaml
    env['NO_PROXY'] = env['no_proxy'] = '127.0.0.1,localhost'
    env['STEWARD_LOG'] = 'info'
    return env


@pytest.fixture(scope='module')
def cloud(tmp_path_factory):
    workdir = tmp_path_factory.mktemp('keystone-scopes')
    c = Cloud(workdir, keystone=True, nova=True)
    c.start()
    steward = None
    try:
        ks = c.keystone
        c.member_a = ks.create_user('member-a', project='proj-a',
                                    roles=('member',))
        c.member_b = ks.create_user('member-b', project='proj-b',
                                    roles=('member',))
        c.admin_user = ks.create_user('cloud-admin', roles=('admin',))
        c.sys_reader = ks.create_user('sys-reader', project='demo',
                                      roles=())
        ks.api('PUT', '/system/users/%s/roles/%s' % (
            c.sys_reader['id'], ks.role_id('reader')), expect=(204,))
        c.seed({
            'hosts': [{'host': 'cmp-a1', 'az': 'az1', 'vcpus': 64},
                      {'host': 'cmp-b1', 'az': 'az2', 'vcpus': 64}],
            'flavors': [{'name': 'm1.small', 'vcpus': 2,
                         'memory_mb': 4096, 'root_gb': 20}],
            'servers': [
                {'name': 'a-web', 'uuid': VM_A, 'host': 'cmp-a1',
                 'project_id': c.member_a['project_id'], 'role': 'web'},
                {'name': 'b-db', 'uuid': VM_B, 'host': 'cmp-b1',
                 'project_id': c.member_b['project_id'], 'role': 'db'},
            ],
        })
        identity = c.steward_identity()
        steward = start_steward(
            os.path.join(str(workdir), 'steward'), auth='keystone',
            env=steward_env(identity['clouds_yaml']),
            extra={'auth': {'strategy': 'keystone'},
                   'openstack': {'cloud': 'steward'},
                   'cluster': {'source': 'nova', 'refresh_seconds': 2}})
        c.steward = steward
        c.tokens = {
            'member_a': ks.login(c.member_a['name'], c.member_a['password'],
                                 project='proj-a')[0],
            'member_b': ks.login(c.member_b['name'], c.member_b['password'],
                                 project='proj-b')[0],
            'admin': ks.login(c.admin_user['name'], c.admin_user['password'],
                              project=c.admin_user['project_name'])[0],
            'sys_reader': ks.login(c.sys_reader['name'],
                                   c.sys_reader['password'], system=True)[0],
        }
        wait_for_vms(c)
        yield c
    finally:
        if steward is not None:
            steward.stop()
        c.stop()


def call(cloud, method, path, who, body=None):
    status, answer, _ = cloud.steward.request(
        method, path, body=body, role=None,
        headers={'X-Auth-Token': cloud.tokens[who]})
    return status, answer


def expect(cloud, method, path, who, status, body=None):
    got, answer = call(cloud, method, path, who, body)
    assert got == status, '%s %s as %s: expected %s, got %s %r' % (
        method, path, who, status, got, answer)
    return answer


def wait_for_vms(cloud, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        known = [call(cloud, 'GET', '/v1/vms/' + vm, 'admin')[0]
                 for vm in (VM_A, VM_B)]
        if known == [200, 200]:
            return
        time.sleep(0.5)
    raise AssertionError('steward did not learn both VMs from Nova')


def test_a_project_member_cannot_learn_another_projects_vm_or_its_host(cloud):
    # The control: the admin sees B's VM and where it runs.
    seen = expect(cloud, 'GET', '/v1/vms/' + VM_B, 'admin', 200)
    assert seen['host'] == 'cmp-b1' and seen['az'] == 'az2', seen
    # Project A's member: B's VM does not exist for it, as in Nova.
    answer = expect(cloud, 'GET', '/v1/vms/' + VM_B, 'member_a', 404)
    assert 'cmp-b1' not in repr(answer) and 'az2' not in repr(answer)
    # Its own VM: everything but the host (the same token works).
    own = expect(cloud, 'GET', '/v1/vms/' + VM_A, 'member_a', 200)
    assert own['host'] is None, own
    assert own['az'] == 'az1' and own['role'] == 'web', own
    assert own['project_id'] == cloud.member_a['project_id']
    # And the other way round.
    expect(cloud, 'GET', '/v1/vms/' + VM_A, 'member_b', 404)
    assert expect(cloud, 'GET', '/v1/vms/' + VM_B, 'member_b',
                  200)['host'] is None


def test_a_project_member_reaches_no_route_that_shows_hosts(cloud):
    for method, path, body in (
            ('GET', '/v1/hosts', None),
            ('GET', '/v1/%68osts', None),
            ('GET', '/v1/hosts/cmp-b1', None),
            ('POST', '/v1/filter', CALLOUT),
            ('POST', '/v1/weigh', CALLOUT),
            ('GET', '/v1/migrations', None),
            ('GET', '/v1/rebalance/plans', None),
            ('GET', '/metrics', None)):
        answer = expect(cloud, method, path, 'member_a', 403, body)
        assert 'cloud_reader' in answer['error']['message'], answer
        assert 'system-scope' in answer['error']['message'], answer
    # What is no project's stays readable.
    expect(cloud, 'GET', '/v1/profiles', 'member_a', 200)


def test_a_system_reader_sees_every_vm_and_host_and_writes_nothing(cloud):
    b = expect(cloud, 'GET', '/v1/vms/' + VM_B, 'sys_reader', 200)
    assert b['host'] == 'cmp-b1', b
    a = expect(cloud, 'GET', '/v1/vms/' + VM_A, 'sys_reader', 200)
    assert a['host'] == 'cmp-a1', a
    hosts = {h['host'] for h in expect(cloud, 'GET', '/v1/hosts',
                                       'sys_reader', 200)['hosts']}
    assert {'cmp-a1', 'cmp-b1'} <= hosts, hosts
    expect(cloud, 'POST', '/v1/filter', 'sys_reader', 200, CALLOUT)
    expect(cloud, 'POST', '/v1/rebalance/plans/%s/approve' % uuid.uuid4(),
           'sys_reader', 403, {})
    expect(cloud, 'POST', '/v1/telemetry', 'sys_reader', 403,
           {'hosts': [{'host': 'cmp-a1', 'steal': 0.1}]})
    # The admin passes where the system reader may not (the plan is unknown).
    expect(cloud, 'POST', '/v1/rebalance/plans/%s/approve' % uuid.uuid4(),
           'admin', 404, {})
