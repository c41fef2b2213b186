"""The harness starts real peers, seeded: Keystone, Placement, Nova API,
Prometheus.

Two clouds: `cloud` has Keystone in front of Placement and Nova (real
tokens, the catalog, the openstack CLI through clouds.yaml) and a
Prometheus with four weeks of steal history; `noauth` has Nova without
authtoken and Placement with noauth2 on SQLite, as tests that need no
identity run them.
"""

import json
import time

import pytest

from harness import mariadb
from harness.peers import Cloud
from harness.prometheus import steal_scenario
from harness.rest import request

HOSTS = [
    {'host': 'cmp-a1', 'az': 'az1', 'vcpus': 64, 'memory_mb': 262144,
     'disk_gb': 2000},
    {'host': 'cmp-a2', 'az': 'az1', 'vcpus': 64, 'memory_mb': 262144,
     'disk_gb': 2000},
    {'host': 'cmp-b1', 'az': 'az2', 'vcpus': 32, 'memory_mb': 131072,
     'disk_gb': 1000, 'cpu_allocation_ratio': 2.0},
    {'host': 'cmp-c1', 'az': 'az3', 'vcpus': 48, 'memory_mb': 196608,
     'disk_gb': 1500, 'up': False},
]
OTHER_PROJECT = '7f3e2d1c0b9a48f7a6e5d4c3b2a19080'
SEED = {
    'hosts': HOSTS,
    'aggregates': [{'name': 'ssd', 'metadata': {'disk': 'ssd'},
                    'hosts': ['cmp-a1', 'cmp-b1']}],
    'server_groups': [
        {'name': 'web-tier', 'policy': 'anti-affinity',
         'rules': {'max_server_per_host': 1}},
        {'name': 'db-tier', 'policy': 'affinity'},
    ],
    'servers': [
        {'name': 'web-1', 'host': 'cmp-a1', 'role': 'web',
         'group': 'web-tier'},
        {'name': 'web-2', 'host': 'cmp-b1', 'role': 'web',
         'group': 'web-tier'},
        {'name': 'web-3', 'host': 'cmp-a2', 'role': 'web',
         'group': 'web-tier', 'requested_az': 'az1'},
        {'name': 'db-1', 'host': 'cmp-a1', 'role': 'db', 'group': 'db-tier',
         'flavor': 'm1.large'},
        {'name': 'db-2', 'host': 'cmp-a1', 'role': 'db', 'group': 'db-tier',
         'flavor': 'm1.large'},
        {'name': 'cache-1', 'host': 'cmp-b1', 'role': 'cache',
         'flavor': 'm1.medium', 'project_id': OTHER_PROJECT},
    ],
}
HOUR = 3600
DAY = 24 * HOUR


@pytest.fixture(scope='module')
def cloud(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp('cloud'), keystone=True,
              placement=True, nova=True, prometheus=True,
              history=steal_scenario(noisy=['cmp-a1'], quiet=['cmp-b1']),
              weeks=4, live=True)
    c.start()
    try:
        c.seed(SEED)
        c.steward_identity(steward_url='http://127.0.0.1:8779')
        yield c
    finally:
        c.stop()


@pytest.fixture(scope='module')
def noauth(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp('noauth'), nova=True,
              placement_backend='sqlite', service_down_time=3)
    c.start()
    try:
        c.seed({'hosts': [{'host': 'cmp-n1', 'az': 'az1'},
                          {'host': 'cmp-n2', 'az': 'az2'},
                          {'host': 'cmp-n3', 'az': 'az2', 'up': False}],
                'servers': [{'name': 'n-web-1', 'host': 'cmp-n1',
                             'role': 'web'}]})
        yield c
    finally:
        c.stop()


def _catalog_types(token_body):
    return {e['type']: e for e in token_body['catalog']}


# -- Keystone --------------------------------------------------------------

def test_password_token_carries_the_registered_catalog(cloud):
    user = cloud.identity['user']
    _, body = cloud.keystone.login(user['name'], user['password'],
                                   project='service')
    catalog = _catalog_types(body)
    assert {'identity', 'compute', 'placement',
            'scheduler-steward'} <= set(catalog)
    urls = {e['interface']: e['url']
            for e in catalog['compute']['endpoints']}
    assert urls == dict.fromkeys(('public', 'internal', 'admin'),
                                 cloud.nova.url)
    steward = catalog['scheduler-steward']['endpoints'][0]
    assert steward['url'] == 'http://127.0.0.1:8779'
    assert {r['name'] for r in body['roles']} >= {'admin', 'service',
                                                  'reader'}


def test_app_credential_token_is_valid_and_scoped(cloud):
    cred = cloud.identity['app_credential']
    token, body = cloud.keystone.login_app_credential(cred['id'],
                                                      cred['secret'])
    assert body['project']['name'] == 'service'
    assert body['application_credential']['id'] == cred['id']
    assert 'placement' in _catalog_types(body)
    # Keystone vouches for it to a service, as keystonemiddleware asks.
    answer = request('GET', cloud.keystone.auth_url + '/auth/tokens',
                     headers={'X-Auth-Token': cloud.keystone.admin_token(),
                              'X-Subject-Token': token})
    assert answer.status == 200, answer.body
    assert answer.body['token']['user']['name'] == 'steward'


def test_openstack_cli_reads_the_catalog_through_clouds_yaml(cloud):
    out = cloud.keystone.openstack('catalog', 'list', '-f', 'json',
                                   cloud='steward-appcred')
    types = {entry['Type'] for entry in json.loads(out)}
    assert {'identity', 'compute', 'placement',
            'scheduler-steward'} <= types


def test_openstack_cli_lists_servers_through_the_catalog(cloud):
    out = cloud.keystone.openstack('server', 'list', '--all-projects',
                                   '-f', 'json', cloud='steward')
    assert {s['Name'] for s in json.loads(out)} == {
        'web-1', 'web-2', 'web-3', 'db-1', 'db-2', 'cache-1'}


# -- Nova ------------------------------------------------------------------

def test_hypervisors_detail_shows_the_seeded_hosts(cloud):
    hyps = cloud.nova.get('/os-hypervisors/detail',
                          microversion='2.87')['hypervisors']
    by_name = {h['hypervisor_hostname']: h for h in hyps}
    assert set(by_name) == {'cmp-a1', 'cmp-a2', 'cmp-b1', 'cmp-c1'}
    a1 = by_name['cmp-a1']
    assert (a1['vcpus'], a1['memory_mb'], a1['local_gb']) == (
        64, 262144, 2000)
    # web-1 (m1.small) + db-1 + db-2 (m1.large)
    assert a1['vcpus_used'] == 2 + 8 + 8
    assert a1['running_vms'] == 3
    assert a1['state'] == 'up' and a1['status'] == 'enabled'
    assert by_name['cmp-c1']['state'] == 'down'
    assert a1['id'] == cloud.seeded['hosts']['cmp-a1']['compute_node_uuid']
    # 2.88 would RPC to the compute for uptime: the seeded stats carry it.
    started = time.monotonic()
    newer = cloud.nova.get('/os-hypervisors/detail', microversion='2.88')
    assert time.monotonic() - started < 10
    assert all('up ' in h['uptime'] for h in newer['hypervisors'])


def test_aggregates_carry_availability_zones(cloud):
    aggs = {a['name']: a for a in cloud.nova.get('/os-aggregates')[
        'aggregates']}
    assert aggs['az1']['metadata'] == {'availability_zone': 'az1'}
    assert sorted(aggs['az1']['hosts']) == ['cmp-a1', 'cmp-a2']
    assert aggs['az2']['hosts'] == ['cmp-b1']
    assert aggs['az3']['availability_zone'] == 'az3'
    assert aggs['ssd']['metadata'] == {'disk': 'ssd'}
    zones = cloud.nova.get('/os-availability-zone/detail')[
        'availabilityZoneInfo']
    assert {z['zoneName'] for z in zones} >= {'az1', 'az2', 'az3'}


def test_servers_detail_shows_hosts_zones_and_roles(cloud):
    servers = {s['name']: s for s in cloud.nova.get(
        '/servers/detail?all_tenants=1')['servers']}
    assert set(servers) == {'web-1', 'web-2', 'web-3', 'db-1', 'db-2',
                            'cache-1'}
    web1 = servers['web-1']
    assert web1['OS-EXT-SRV-ATTR:host'] == 'cmp-a1'
    assert web1['OS-EXT-SRV-ATTR:hypervisor_hostname'] == 'cmp-a1'
    assert web1['OS-EXT-AZ:availability_zone'] == 'az1'
    assert web1['metadata'] == {'role': 'web'}
    assert web1['status'] == 'ACTIVE'
    assert web1['flavor']['original_name'] == 'm1.small'
    assert servers['web-2']['OS-EXT-AZ:availability_zone'] == 'az2'
    assert servers['cache-1']['tenant_id'] == OTHER_PROJECT
    assert servers['db-1']['flavor']['vcpus'] == 8
    # Booted into a named zone: pinned there (2.96+); the others are not.
    assert servers['web-3']['pinned_availability_zone'] == 'az1'
    assert web1['pinned_availability_zone'] is None
    assert web1['id'] == cloud.seeded['servers']['web-1']['uuid']


def test_nova_databases_hold_what_novas_objects_wrote(cloud):
    cell1 = cloud.nova.db_names['cell1']
    assert cloud.nova.database_url('cell1').endswith('/' + cell1)
    rows = mariadb.execute(
        cell1, 'SELECT i.host, i.availability_zone, e.flavor FROM instances'
        ' i JOIN instance_extra e ON e.instance_uuid = i.uuid'
        ' WHERE i.display_name = %s', ('db-1',))
    host, az, flavor = rows[0]
    assert (host, az) == ('cmp-a1', 'az1')
    cur = json.loads(flavor)['cur']
    assert cur['nova_object.name'] == 'Flavor'
    assert cur['nova_object.data']['name'] == 'm1.large'
    mappings = mariadb.execute(cloud.nova.db_names['api'],
                               'SELECT COUNT(*) FROM instance_mappings')
    assert mappings[0][0] == 6


def test_server_groups_list_their_members(cloud):
    groups = {g['name']: g for g in cloud.nova.get(
        '/os-server-groups?all_projects=1')['server_groups']}
    uuids = {n: s['uuid'] for n, s in cloud.seeded['servers'].items()}
    web = groups['web-tier']
    assert web['policy'] == 'anti-affinity'
    assert web['rules'] == {'max_server_per_host': 1}
    assert sorted(web['members']) == sorted(
        uuids[n] for n in ('web-1', 'web-2', 'web-3'))
    assert sorted(groups['db-tier']['members']) == sorted(
        [uuids['db-1'], uuids['db-2']])
    shown = cloud.nova.get('/servers/%s' % uuids['web-1'])['server']
    assert shown['server_groups'] == [web['id']]


# -- Placement -------------------------------------------------------------

def test_placement_lists_providers_with_inventories_and_usages(cloud):
    pl = cloud.placement
    providers = {p['name']: p for p in pl.providers()}
    assert set(providers) == {'cmp-a1', 'cmp-a2', 'cmp-b1', 'cmp-c1'}
    a1 = providers['cmp-a1']['uuid']
    assert a1 == cloud.seeded['hosts']['cmp-a1']['compute_node_uuid']
    inv = pl.inventories(a1)
    assert inv['VCPU']['total'] == 64
    assert inv['VCPU']['allocation_ratio'] == 4.0
    assert inv['MEMORY_MB']['total'] == 262144
    assert inv['DISK_GB']['total'] == 2000
    assert pl.inventories(providers['cmp-b1']['uuid'])['VCPU'][
        'allocation_ratio'] == 2.0
    assert pl.usages(a1) == {'VCPU': 18, 'MEMORY_MB': 4096 + 2 * 16384,
                             'DISK_GB': 20 + 2 * 80}
    aggs = pl.call('GET', '/resource_providers/%s/aggregates' % a1)
    seeded_aggs = cloud.seeded['aggregates']
    assert sorted(aggs['aggregates']) == sorted(
        [seeded_aggs['az1']['uuid'], seeded_aggs['ssd']['uuid']])
    alloc = pl.allocations(cloud.seeded['servers']['db-1']['uuid'])
    assert alloc['allocations'][a1]['resources'] == {
        'VCPU': 8, 'MEMORY_MB': 16384, 'DISK_GB': 80}
    assert alloc['consumer_type'] == 'INSTANCE'


def test_placement_refuses_a_request_without_a_token(cloud):
    answer = cloud.placement.request('GET', '/resource_providers',
                                     headers={'X-Auth-Token': 'bogus'})
    assert answer.status == 401


def test_openstack_cli_lists_placement_providers(cloud):
    out = cloud.keystone.openstack(
        '--os-placement-api-version', '1.39', 'resource', 'provider',
        'list', '-f', 'json', cloud='steward')
    assert {p['name'] for p in json.loads(out)} == {
        'cmp-a1', 'cmp-a2', 'cmp-b1', 'cmp-c1'}


# -- Prometheus ------------------------------------------------------------

def test_prometheus_history_shows_the_evening_steal_peak(cloud):
    prom = cloud.prometheus
    end = prom.history['end'] // DAY * DAY  # last full day ends here
    start = end - 21 * DAY
    assert prom.history['start'] <= start - 7 * DAY
    series = prom.query_range(
        'avg by (host) (rate(libvirt_domain_vcpu_delay_seconds_total[5m]))',
        start, end - HOUR, HOUR)
    by_host = {s['metric']['host']: [(int(t), float(v))
                                     for t, v in s['values']]
               for s in series}
    assert set(by_host) == {'cmp-a1', 'cmp-b1'}
    days = {}
    for t, v in by_host['cmp-a1']:
        days.setdefault(t // DAY, []).append((v, t))
    assert len(days) == 21
    for day, points in days.items():
        peak_value, peak_time = max(points)
        assert time.gmtime(peak_time).tm_hour == 20, (day, points)
        assert peak_value > 0.25
        assert min(points)[0] < 0.03
    assert max(v for _, v in by_host['cmp-b1']) < 0.01
    # The guests on the noisy host see the same steal at 20:00.
    guest = prom.query(
        'avg(rate(node_cpu_seconds_total{mode="steal",'
        'host=~"cmp-a1-vm.*"}[5m]))', at=end - 4 * HOUR)
    assert float(guest[0]['value'][1]) > 0.25
    load = prom.query('node_load5', at=end - 4 * HOUR)
    assert {r['metric']['host']: round(float(r['value'][1]))
            for r in load}['cmp-b1'] == 4


def test_prometheus_takes_live_samples_after_the_history(cloud):
    prom = cloud.prometheus
    labels = {'job': 'node', 'instance': 'cmp-b1:9100', 'host': 'cmp-b1'}
    prom.live.set('node_load5', labels, 42.0)
    prom.wait_scraped()
    now = prom.query('node_load5{host="cmp-b1"}')
    assert [float(r['value'][1]) for r in now] == [42.0]
    # The same series: history before, the live sample now.
    past = prom.query('node_load5{host="cmp-b1"}', at=time.time() - DAY)
    assert round(float(past[0]['value'][1])) == 4


# -- noauth Nova and Placement ---------------------------------------------

def test_noauth_nova_takes_identity_headers(noauth):
    headers = noauth.nova.headers(microversion='2.87')
    assert headers['OpenStack-API-Version'] == 'compute 2.87'
    assert headers['X-Roles'] == 'admin,member,reader'
    assert {'X-User-Id', 'X-Project-Id'} <= set(headers)
    hyps = noauth.nova.get('/os-hypervisors/detail', microversion='2.87')
    assert {h['hypervisor_hostname'] for h in hyps['hypervisors']} == {
        'cmp-n1', 'cmp-n2', 'cmp-n3'}
    # Real policy: a member may not list every project's servers.
    member = noauth.nova.request('GET', '/servers/detail?all_tenants=1',
                                 roles=('member', 'reader'))
    assert member.status == 403
    mine = noauth.nova.get('/servers/detail?all_tenants=1')['servers']
    assert [s['metadata'] for s in mine] == [{'role': 'web'}]


def test_noauth_placement_answers_the_openstack_cli(noauth):
    out = noauth.placement.openstack('resource', 'provider', 'list',
                                     '-f', 'json')
    assert {p['name'] for p in json.loads(out)} == {
        'cmp-n1', 'cmp-n2', 'cmp-n3'}
    assert noauth.placement.db_url.startswith('sqlite:')


def test_compute_services_stay_up_only_while_they_report(noauth):
    def states():
        return {h['hypervisor_hostname']: h['state'] for h in noauth.nova.get(
            '/os-hypervisors', microversion='2.87')['hypervisors']}

    deadline = time.monotonic() + 10
    while states()['cmp-n1'] == 'up':
        assert time.monotonic() < deadline, 'cmp-n1 never went down'
        time.sleep(0.5)
    noauth.nova.heartbeat()
    assert states() == {'cmp-n1': 'up', 'cmp-n2': 'up', 'cmp-n3': 'down'}
    noauth.nova.keep_up(every=1)
    time.sleep(4.5)  # longer than service_down_time (3 s)
    assert states() == {'cmp-n1': 'up', 'cmp-n2': 'up', 'cmp-n3': 'down'}
