"""Host-failure recovery in a real Nova (harness/nova_plane.py: Keystone,
Nova API, conductor, scheduler with the steward shim, six fake-driver
computes over RabbitMQ): steward serve runs the recovery loop in `auto`
mode, its telemetry is pushed for every live host by a thread, and the
fencing hook is a command whose answer each test chooses.

Layout: az1 = cmp-1, cmp-2, cmp-3; az2 = cmp-4, cmp-5, cmp-6.
Nova's service_down_time is 20 s, steward's [recovery] interval 2 s.

Controls: the partition test's two dead hosts are held where the first
test's one dead host is recovered; a failing fencing hook leaves the very
VM the succeeding hook lets move; the kill -9 test counts Nova's own
evacuation records, which a second evacuation would add to.
"""

import json
import os
import threading
import time

import pytest

from harness.peers import Cloud
from harness.steward import start_steward

AZS = {'az1': ['cmp-1', 'cmp-2', 'cmp-3'], 'az2': ['cmp-4', 'cmp-5', 'cmp-6']}
SERVICE_DOWN_TIME = 20



class Pusher:
    """Pushes fresh telemetry for every host not in `dead`, every second."""

    def __init__(self, st, hosts):
        self.st, self.hosts, self.dead = st, hosts, set()
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop_event.is_set():
            try:
                self.st.push_telemetry(hosts=[
                    {'host': h, 'steal': 0.01} for h in self.hosts
                    if h not in self.dead])
            except Exception:  # noqa: BLE001 - steward restarting (kill -9)
                pass
            self.stop_event.wait(1.0)


@pytest.fixture(scope='module')
def plane(tmp_path_factory):
    cloud = Cloud(tmp_path_factory.mktemp('plane'), plane=True, computes=6,
                  azs=AZS, service_down_time=SERVICE_DOWN_TIME)
    cloud.start()
    work = str(tmp_path_factory.mktemp('steward'))
    fail_flag = os.path.join(work, 'fence-fails')
    fence_log = os.path.join(work, 'fenced')
    st = None
    pusher = None
    try:
        env = dict(os.environ, OS_CLIENT_CONFIG_FILE=cloud.plane.clouds_yaml)
        st = start_steward(work, env=env, extra={
            'openstack': {'cloud': 'admin'},
            'recovery': {
                'mode': 'auto', 'interval_seconds': 2.0, 'poll_seconds': 1.0,
                'service_down_time': float(SERVICE_DOWN_TIME),
                'telemetry_max_age_seconds': 15.0,
                'vm_cooldown_seconds': 0.0, 'host_cooldown_seconds': 0.0,
                'max_concurrent_per_az': 1,
                'fence': {'exec': {
                    'fence': ['sh', '-c', 'test ! -e %s && echo {host} >> %s'
                              % (fail_flag, fence_log)],
                    'rejoin': ['true'], 'timeout_seconds': 10.0}},
            }})
        cloud.plane.use_steward(st)
        pusher = Pusher(st, cloud.plane.hosts)
        pusher.thread.start()
        yield cloud.plane, st, pusher, fail_flag
    finally:
        if pusher is not None:
            pusher.stop_event.set()
        if st is not None:
            st.stop()
        cloud.stop()


def boot_on(pl, name, host, role=None):
    extra = ['--hint', 'steward_role=%s' % role,
             '--hint', 'steward_profile=web'] if role else []
    out = json.loads(pl.openstack(
        '--os-compute-api-version', '2.74', 'server', 'create', '--flavor',
        'm1.small', '--image', 'cirros', '--nic', 'none', '--host', host,
        '--availability-zone', pl.az_of[host], *extra, name, '-f', 'json'))
    return pl.wait_server(out['id'], 'ACTIVE')['id']


def incidents(st):
    status, body, _ = st.request('GET', '/v1/recovery/evacuations',
                                 role='admin')
    assert status == 200, body
    return body['evacuations']


def incident_of(st, host):
    mine = [i for i in incidents(st) if i['host'] == host]
    return mine[0] if mine else None


def wait_incident(st, host, states, timeout):
    deadline = time.monotonic() + timeout
    while True:
        i = incident_of(st, host)
        if i and i['state'] in states:
            return i
        assert time.monotonic() < deadline, 'incident of %s: %r' % (host, i)
        time.sleep(0.5)


def evacuation_records(pl, server_id):
    return [m for m in pl.nova.get(
        '/os-migrations?instance_uuid=%s' % server_id)['migrations']
        if m['migration_type'] == 'evacuation']


def service(pl, host):
    return [s for s in pl.nova.get('/os-services?binary=nova-compute')
            ['services'] if s['host'] == host][0]


def metric(st, prefix):
    status, text, _ = st.request('GET', '/metrics', role='reader')
    for line in str(text).splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(' ', 1)[1])
    return None


def test_a_dead_host_is_fenced_forced_down_and_emptied_into_its_az(plane):
    """Two `web` servers (role cap 2 per host; cmp-2 and cmp-3 already hold
    one each) and one plain server on cmp-1; its nova-compute is killed and
    its telemetry stops. Every server ends ACTIVE on cmp-2 or cmp-3, no
    host holds more than 2 `web`, each is evacuated once; cmp-1 is forced
    down and the incident closes `done`."""
    pl, st, pusher, _ = plane
    # One `web` already on each target: with the cap, each can take one more.
    others = [boot_on(pl, 'web-on-%s' % h, h, role='web')
              for h in ('cmp-2', 'cmp-3')]
    vms = [boot_on(pl, 'web-%d' % i, 'cmp-1', role='web') for i in range(2)]
    vms.append(boot_on(pl, 'plain-1', 'cmp-1'))
    died = time.monotonic()
    pl.kill_compute('cmp-1')
    pusher.dead.add('cmp-1')
    i = wait_incident(st, 'cmp-1', ('done', 'failed', 'blocked'), 240)
    deadline = time.monotonic() + 60
    servers = [pl.wait_server(v, 'ACTIVE') for v in vms]
    while any(s['OS-EXT-SRV-ATTR:host'] == 'cmp-1' for s in servers):
        assert time.monotonic() < deadline
        servers = [pl.wait_server(v, 'ACTIVE') for v in vms]
    elapsed = time.monotonic() - died
    print('RECOVERY death-to-last-ACTIVE %.1f s (service_down_time %d s, '
          'interval 2 s, poll 1 s)' % (elapsed, SERVICE_DOWN_TIME))
    assert i['state'] == 'done', i
    hosts = [s['OS-EXT-SRV-ATTR:host'] for s in servers]
    assert set(hosts) <= {'cmp-2', 'cmp-3'}, hosts
    assert all(s['OS-EXT-AZ:availability_zone'] == 'az1' for s in servers)
    web_hosts = hosts[:2] + [pl.server(o)['OS-EXT-SRV-ATTR:host']
                             for o in others]
    assert max(web_hosts.count(h) for h in set(web_hosts)) <= 2, web_hosts
    assert all(len(evacuation_records(pl, v)) == 1 for v in vms)
    assert service(pl, 'cmp-1')['forced_down'] is True
    status, detail, _ = st.request(
        'GET', '/v1/recovery/evacuations/%s' % i['id'], role='admin')
    steps = [e['to'] for e in detail['events'] if e['vm_row'] is None]
    assert steps == ['suspected', 'fencing', 'fenced', 'forced_down',
                     'evacuating', 'done'], steps
    # Put cmp-1 back as the runbook says: nova-compute restarted (it
    # cleans up the evacuated servers), then `steward evacuate release`.
    pl.start_compute('cmp-1', wait=False)
    pusher.dead.discard('cmp-1')
    deadline = time.monotonic() + 120
    while True:
        status, body, _ = st.request(
            'POST', '/v1/recovery/hosts/cmp-1/release', role='admin')
        if status == 200:
            break
        assert time.monotonic() < deadline, body
        time.sleep(2)
    assert service(pl, 'cmp-1')['forced_down'] is False
    pl.wait_computes(['cmp-1'], 120)


def test_a_failed_fencing_hook_evacuates_nothing(plane):
    """The fencing command fails: the incident is `blocked`, the server
    stays on dead cmp-4, the service is not forced down, and the failure
    is counted for the page."""
    pl, st, pusher, fail_flag = plane
    vm = boot_on(pl, 'fence-fails', 'cmp-4')
    open(fail_flag, 'w').close()
    try:
        pl.kill_compute('cmp-4')
        pusher.dead.add('cmp-4')
        i = wait_incident(st, 'cmp-4', ('blocked', 'done', 'failed'), 240)
        time.sleep(4)  # two more rounds: still nothing moves
    finally:
        os.unlink(fail_flag)
    assert i['state'] == 'blocked', i
    assert pl.server(vm)['OS-EXT-SRV-ATTR:host'] == 'cmp-4'
    assert evacuation_records(pl, vm) == []
    assert service(pl, 'cmp-4')['forced_down'] is False
    assert metric(
        st, 'steward_recovery_fence_failures_total{host="cmp-4"}') == 1.0
    pl.start_compute('cmp-4')
    pusher.dead.discard('cmp-4')


def test_two_of_three_hosts_of_an_az_down_at_once_holds_the_guard(plane):
    """cmp-5 and cmp-6 die together: 2 of az2's 3 hosts is more than
    max_share_per_az (0.5). Nothing is fenced, forced down or evacuated;
    the guard metric (the alert's input) says az2."""
    pl, st, pusher, _ = plane
    vm = boot_on(pl, 'partitioned', 'cmp-5')
    for h in ('cmp-5', 'cmp-6'):
        pl.kill_compute(h)
        pusher.dead.add(h)
    deadline = time.monotonic() + 240
    while metric(st, 'steward_recovery_guard{scope="az:az2"}') != 1.0:
        assert time.monotonic() < deadline, 'the guard never held'
        time.sleep(1)
    time.sleep(6)
    assert incident_of(st, 'cmp-5') is None
    assert incident_of(st, 'cmp-6') is None
    assert evacuation_records(pl, vm) == []
    assert not service(pl, 'cmp-5')['forced_down']
    assert not service(pl, 'cmp-6')['forced_down']
    for h in ('cmp-5', 'cmp-6'):
        pl.start_compute(h, wait=False)
        pusher.dead.discard(h)


def test_steward_killed_mid_evacuation_resumes_without_a_second(plane):
    """Four servers on cmp-2, one evacuation at a time in az1: steward is
    killed with SIGKILL as soon as the first evacuation is journaled, then
    started again. Every server ends ACTIVE in az1 with exactly one
    evacuation record in Nova."""
    pl, st, pusher, _ = plane
    vms = [boot_on(pl, 'resume-%d' % i, 'cmp-2') for i in range(4)]
    pl.kill_compute('cmp-2')
    pusher.dead.add('cmp-2')
    deadline = time.monotonic() + 240
    while True:
        i = incident_of(st, 'cmp-2')
        if i and i['state'] == 'evacuating':
            status, d, _ = st.request(
                'GET', '/v1/recovery/evacuations/%s' % i['id'], role='admin')
            if any(v['state'] != 'pending' for v in d['vms']):
                break
        assert time.monotonic() < deadline, i
        time.sleep(0.2)
    st.kill()
    st.restart()
    i = wait_incident(st, 'cmp-2', ('done', 'failed', 'blocked'), 240)
    assert i['state'] == 'done', i
    for v in vms:
        s = pl.wait_server(v, 'ACTIVE')
        assert s['OS-EXT-SRV-ATTR:host'] in ('cmp-1', 'cmp-3'), s
        assert len(evacuation_records(pl, v)) == 1, evacuation_records(pl, v)


def test_the_same_steps_by_hand_with_the_cli(plane):
    """The baseline for the README: the same recovery of three servers on
    cmp-3, done with the real OpenStack CLI as an operator would script
    it (watch `compute service list` every 2 s like steward's round, force
    the service down, `server evacuate` each server, wait for ACTIVE).
    cmp-3 keeps its telemetry, so steward never suspects it (its other
    witness stays alive): only the CLI acts."""
    pl, st, pusher, _ = plane
    vms = [boot_on(pl, 'by-hand-%d' % i, 'cmp-3') for i in range(3)]
    died = time.monotonic()
    pl.kill_compute('cmp-3')
    while True:
        rows = pl.openstack_json('compute', 'service', 'list', '--service',
                                 'nova-compute', '--host', 'cmp-3')
        if rows and rows[0]['State'] == 'down':
            break
        assert time.monotonic() - died < 240
        time.sleep(2)
    pl.openstack('--os-compute-api-version', '2.11', 'compute', 'service',
                 'set', '--down', 'cmp-3', 'nova-compute')
    for v in vms:
        pl.openstack('--os-compute-api-version', '2.87', 'server',
                     'evacuate', v)
    for v in vms:
        deadline = time.monotonic() + 120
        while pl.server(v)['OS-EXT-SRV-ATTR:host'] == 'cmp-3' or \
                pl.server(v).get('OS-EXT-STS:task_state'):
            assert time.monotonic() < deadline
            time.sleep(0.5)
        pl.wait_server(v, 'ACTIVE')
    elapsed = time.monotonic() - died
    print('BY-HAND death-to-last-ACTIVE %.1f s (service_down_time %d s, '
          'CLI poll 2 s)' % (elapsed, SERVICE_DOWN_TIME))
    assert incident_of(st, 'cmp-3') is None
    assert all(pl.server(v)['OS-EXT-AZ:availability_zone'] == 'az1'
               for v in vms)
