"""The noisy-neighbour rebalancer's whole dance on a real Nova control plane
(harness/nova_plane.py: Keystone, Nova API, conductor, nova-scheduler with
the steward shim, five fake-driver computes), with steal read from the real
Prometheus as libvirt-exporter and the guests' node exporter publish it.

Layout: az1 = cmp-1 (noisy), cmp-2, cmp-3; az2 = cmp-4 (noisy), cmp-5.
Servers are booted first with the real `openstack server create --host`
(no AZ asked, so Nova alone would move them anywhere): `mover` and
`refused` on cmp-1, `doomed` on cmp-4, one quiet server on each other
host. Prometheus then holds a day of history for them and a thread of
this module goes on as the exporters would: per ACTIVE server, the vCPU
delay counter (`libvirt_domain_vcpu_delay_seconds_total{host, domain,
uuid}`) grows at its current host's steal (cmp-1 and cmp-4 30 %, cmp-2
2 %, cmp-3 4 %, cmp-5 0.2 %: the quietest host is in az2), and
`node_load5{uuid}` says the three on noisy hosts are busy.

steward serve reads Nova (the cluster view, through its own Keystone user)
and that Prometheus, and runs the rebalancer in `auto` mode with an HTTP
drain/rejoin hook to a receiver this module runs (standing in for the
workload's orchestrator). The receiver also plays the world moving on
during a drain: the owner of `refused` stops it (Nova then answers
os-migrateLive with 409), and an operator disables cmp-5, the only other
host of az2 (Nova's scheduler then refuses it and the migration of
`doomed` ends `error`).

- `mover` is drained, live-migrated by Nova's conductor and compute
  (migration `completed`), rejoined, and ends ACTIVE on cmp-2 or cmp-3 of
  az1 as `openstack server show` says; the action is `done`.
- `refused` and `doomed` are drained and rejoined all the same, their
  actions end `failed` naming Nova's 409, and Nova's migration with its
  `error` and the reason Nova gives.
- `doomed` is not planned again onto the disabled host: no second drain.

Controls: the same steward in `dry-run` first plans the very moves and
nothing happens (no hook called, no migration in Nova, every server where
it was booted); Prometheus itself ranks cmp-5 quietest, so a move that
left its AZ would have gone there; the receiver checks at each call where
Nova has the server, so a drain after the move, or a rejoin before it,
fails the test.
"""

import http.server
import json
import os
import threading
import time

import pytest

from harness.httpstub import LoopbackServer
from harness.peers import Cloud
from harness.prometheus import DAY
from harness.prometheus import WEEK
from harness.prometheus import Series
from harness.prometheus import flat
from harness.prometheus import start_prometheus
from harness.steward import start_steward

AZS = {'az1': ['cmp-1', 'cmp-2', 'cmp-3'], 'az2': ['cmp-4', 'cmp-5']}
STEAL = {'cmp-1': 0.30, 'cmp-2': 0.02, 'cmp-3': 0.04, 'cmp-4': 0.30,
         'cmp-5': 0.002}
BOOTS = {'mover': 'cmp-1', 'refused': 'cmp-1', 'doomed': 'cmp-4',
         'quiet-2': 'cmp-2', 'quiet-3': 'cmp-3', 'quiet-5': 'cmp-5'}
BUSY = ('mover', 'refused', 'doomed')
STEP = 60


class Receiver(LoopbackServer):
    """The drain/rejoin hook's far end: records each call with where Nova
    has the server at that moment, and runs `on_drain[name](server)`
    before answering a drain."""

    def __init__(self, plane):
        self.calls = []
        self.on_drain = {}
        self.names = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get('Content-Length') or 0)
                body = json.loads(self.rfile.read(length) or b'{}')
                step = self.path.strip('/').split('/')[0]
                s = plane.server(body['vm'])
                name = receiver.names.get(body['vm'], body['vm'])
                with receiver.lock:
                    receiver.calls.append({
                        'step': step, 'name': name, 'body': body,
                        'host': s['OS-EXT-SRV-ATTR:host'],
                        'status': s['status'],
                        'task_state': s.get('OS-EXT-STS:task_state')})
                if step == 'drain' and name in receiver.on_drain:
                    receiver.on_drain[name](s)
                self.send_response(200)
                self.send_header('Content-Length', '0')
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(Handler)

    def of(self, name):
        with self.lock:
            return [c for c in self.calls if c['name'] == name]


class Exporters:
    """libvirt-exporter on each compute and node exporter in each guest,
    as Prometheus scrapes them: every second, per ACTIVE server in Nova,
    its vCPU delay counter grows at its host's steal (a new series on a
    new host, as the exporter there starts one) and its load5 is set."""

    def __init__(self, plane, live, counters, loads, since):
        self.plane, self.live = plane, live
        self.counters = dict(counters)  # (uuid, host) -> seconds
        self.loads = loads  # uuid -> load5
        self.shown = {}  # uuid -> (labels of the libvirt and node series)
        # The counters' time: the history's end, so they grow on from it.
        self.last = since
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def tick(self):
        now = time.time()
        dt, self.last = now - self.last, now
        servers = self.plane.nova.get('/servers/detail?all_tenants=1')[
            'servers']
        seen = set()
        for s in servers:
            host = s['OS-EXT-SRV-ATTR:host']
            if s['status'] != 'ACTIVE' or host not in STEAL:
                continue
            uuid = s['id']
            seen.add(uuid)
            key = (uuid, host)
            self.counters[key] = self.counters.get(key, 0.0) + \
                STEAL[host] * dt
            vcpu, load = libvirt_labels(s, host), node_labels(s)
            old = self.shown.get(uuid)
            if old and old[0] != vcpu:
                self.live.remove('libvirt_domain_vcpu_delay_seconds_total',
                                 old[0])
            self.live.set('libvirt_domain_vcpu_delay_seconds_total', vcpu,
                          self.counters[key])
            self.live.set('node_load5', load, self.loads.get(uuid, 0.1))
            self.shown[uuid] = (vcpu, load)
        for uuid in [u for u in self.shown if u not in seen]:
            vcpu, load = self.shown.pop(uuid)
            self.live.remove('libvirt_domain_vcpu_delay_seconds_total', vcpu)
            self.live.remove('node_load5', load)

    def run(self):
        while not self.stop_event.is_set():
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the next second tries again
                pass
            self.stop_event.wait(1.0)


def libvirt_labels(server, host):
    return {'job': 'libvirt', 'instance': '%s:9177' % host, 'host': host,
            'domain': server['OS-EXT-SRV-ATTR:instance_name'],
            'uuid': server['id'], 'vcpu': '0'}


def node_labels(server):
    return {'job': 'node', 'instance': '%s:9100' % server['name'],
            'uuid': server['id']}


def boot(pl, name, host):
    """openstack server create --host (admin, 2.74), no AZ asked."""
    out = json.loads(pl.openstack(
        '--os-compute-api-version', '2.74', 'server', 'create', '--flavor',
        'm1.small', '--image', 'cirros', '--nic', 'none', '--host', host,
        name, '-f', 'json'))
    return out['id']


def wait_for_inventories(cloud, timeout=120.0):
    """Until every compute node's resource provider has its VCPU
    inventory in Placement: nova-compute reports it after its hypervisor
    is listed (a failed first report is retried by its next periodic
    task, a minute later), and a boot before then finds no valid host."""
    deadline = time.monotonic() + timeout
    for hv in cloud.nova.get('/os-hypervisors')['hypervisors']:
        while True:
            r = cloud.placement.request(
                'GET', '/resource_providers/%s/inventories' % hv['id'])
            if r.status == 200 and 'VCPU' in r.body['inventories']:
                break
            assert time.monotonic() < deadline, (hv, r.status, r.body)
            time.sleep(0.5)


def history(servers, loads, end, weeks):
    """History per server on its host from `weeks` before the UTC
    midnight preceding `end` (as start_prometheus writes it), each
    libvirt counter's value at its last sample, and that sample's time
    (where the live samples go on)."""
    series, counters = [], {}
    end = int(end) // STEP * STEP
    start = end - end % DAY - int(weeks * WEEK)
    for s in servers:
        host = s['OS-EXT-SRV-ATTR:host']
        delay = Series('libvirt_domain_vcpu_delay_seconds_total',
                       libvirt_labels(s, host), flat(STEAL[host]),
                       'counter', noise=0.0)
        series.append(delay)
        series.append(Series('node_load5', node_labels(s),
                             flat(loads[s['id']]), 'gauge', noise=0.0))
        counters[(s['id'], host)] = list(delay.samples(start, end, STEP))[
            -1][1]
    return series, counters, end


@pytest.fixture(scope='module')
def plane(tmp_path_factory):
    cloud = Cloud(tmp_path_factory.mktemp('plane'), plane=True, computes=5,
                  azs=AZS)
    cloud.start()
    prom = exporters = receiver = st = None
    try:
        pl = cloud.plane
        wait_for_inventories(cloud)
        ids = {name: boot(pl, name, host) for name, host in BOOTS.items()}
        servers = [pl.wait_server(i, 'ACTIVE') for i in ids.values()]
        assert {s['name']: s['OS-EXT-SRV-ATTR:host']
                for s in servers} == BOOTS
        loads = {ids[n]: (1.6 if n in BUSY else 0.1) for n in BOOTS}
        weeks = 1 / 7
        end = time.time()
        series, counters, since = history(servers, loads, end, weeks)
        prom = start_prometheus(tmp_path_factory.mktemp('prometheus'),
                                history=series, weeks=weeks, end=end,
                                step=STEP, live=True)
        exporters = Exporters(pl, prom.live, counters, loads, since)
        exporters.tick()
        exporters.thread.start()
        receiver = Receiver(pl).start()
        receiver.names = {v: k for k, v in ids.items()}
        identity = cloud.steward_identity()
        work = str(tmp_path_factory.mktemp('steward'))
        env = {k: v for k, v in os.environ.items()
               if not k.startswith('OS_')}
        env.update(OS_CLIENT_CONFIG_FILE=identity['clouds_yaml'],
                   NO_PROXY='127.0.0.1,localhost',
                   no_proxy='127.0.0.1,localhost')
        body = ('{"vm": "{vm}", "name": "{vm_name}", "source": "{source}", '
                '"target": "{target}", "az": "{az}", "action": "{action}"}')
        st = start_steward(work, env=env, extra={
            'logging': {'level': 'info'},
            'openstack': {'cloud': 'steward'},
            'cluster': {'source': 'nova', 'refresh_seconds': 1},
            'prometheus': {'url': prom.url, 'interval_seconds': 1,
                           'history_weeks': 1, 'timeout_seconds': 5},
            'rebalance': {
                'mode': 'dry-run', 'interval_seconds': 1,
                'window_seconds': 8, 'min_samples': 3,
                'max_concurrent_per_source': 2,
                # A restarted steward leads again at once.
                'execution': {'cycle_seconds': 0.5, 'poll_seconds': 0.5,
                              'lease_seconds': 3,
                              'rejoin_retry_seconds': 0.5},
                'hooks': {'http': [{
                    'name': 'orchestrator', 'method': 'POST',
                    'drain_url': receiver.url + '/drain/{vm}',
                    'rejoin_url': receiver.url + '/rejoin/{vm}',
                    'body': body}]}}})
        pl.use_steward(st)
        yield {'cloud': cloud, 'pl': pl, 'st': st, 'ids': ids,
               'prom': prom, 'receiver': receiver}
    finally:
        if exporters is not None:
            exporters.stop_event.set()
        if st is not None:
            st.stop()
        if receiver is not None:
            receiver.stop()
        if prom is not None:
            prom.stop()
        cloud.stop()


def actions(st):
    status, body, _ = st.request('GET', '/v1/migrations?limit=10000',
                                 role='admin')
    assert status == 200, body
    return body['migrations']


def plans(st, limit=50):
    status, body, _ = st.request('GET', '/v1/rebalance/plans?limit=%d'
                                 % limit, role='admin')
    assert status == 200, body
    return body['plans']


def wait_for(what, fn, timeout):
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        assert time.monotonic() < deadline, 'no %s after %.0f s' % (
            what, timeout)
        time.sleep(0.5)


def test_dry_run_plans_the_moves_and_nothing_happens(plane):
    """The control: steward in `dry-run` finds the three busy servers on
    the noisy hosts and plans a move for each inside its AZ, yet no hook
    is called, Nova records no migration and every server stays where it
    was booted. The real Prometheus ranks cmp-5 (az2) quietest."""
    pl, st, ids, receiver = (plane[k] for k in ('pl', 'st', 'ids',
                                                'receiver'))
    busy = {ids[n] for n in BUSY}

    def full_plan():
        for p in plans(st, 5):
            if {a['vm'] for a in p['actions']} == busy:
                return p
        return None

    plan = wait_for('dry-run plan of the three busy servers', full_plan, 90)
    assert plan['mode'] == 'dry-run', plan
    by_name = {receiver.names[a['vm']]: a for a in plan['actions']}
    assert by_name['mover']['source'] == 'cmp-1'
    assert by_name['mover']['target'] in ('cmp-2', 'cmp-3'), plan
    assert by_name['doomed']['target'] == 'cmp-5', plan
    time.sleep(3)  # a few more cycles: still nothing runs
    assert receiver.calls == []
    assert actions(st) == [] or all(
        a['state'] == 'planned' for a in actions(st)), actions(st)
    for name, host in BOOTS.items():
        assert pl.server_host(ids[name]) == host, name
        assert pl.migrations(ids[name]) == [], name
    steal = {r['metric']['host']: float(r['value'][1])
             for r in plane['prom'].query(
                 'avg by (host) (rate(libvirt_domain_vcpu_delay_seconds_'
                 'total[5m]) and libvirt_domain_vcpu_delay_seconds_total)')}
    assert min(steal, key=steal.get) == 'cmp-5', steal
    assert steal['cmp-1'] > 0.25 and steal['cmp-4'] > 0.25, steal


@pytest.fixture(scope='module')
def dance(plane):
    """steward restarted in `auto` (same port, tokens and database); the
    receiver stops `refused` and disables cmp-5 during their drains.
    Returns once the three busy servers' first actions are closed and two
    more plans were made."""
    pl, st, ids, receiver = (plane[k] for k in ('pl', 'st', 'ids',
                                                'receiver'))

    def stop_server(s):
        pl.nova.call('POST', '/servers/%s/action' % s['id'],
                     {'os-stop': None}, expect=(202,))
        pl.wait_server(s['id'], 'SHUTOFF', timeout=25)

    def disable_cmp5(s):
        svc = pl.services()['cmp-5']
        pl.nova.call('PUT', '/os-services/%s' % svc['id'], {
            'status': 'disabled',
            'disabled_reason': 'maintenance while steward drains'},
            expect=(200,))

    receiver.on_drain = {'refused': stop_server, 'doomed': disable_cmp5}
    with open(st.config_path, encoding='utf-8') as f:
        config = f.read()
    assert 'mode = "dry-run"' in config
    with open(st.config_path, 'w', encoding='utf-8') as f:
        f.write(config.replace('mode = "dry-run"', 'mode = "auto"'))
    started = time.time()
    st.restart()
    busy = {ids[n] for n in BUSY}

    def closed():
        firsts = {}
        for a in sorted(actions(st), key=lambda a: a['created_at']):
            if a['vm'] in busy and a['created_at'] >= started:
                firsts.setdefault(a['vm'], a)
        if set(firsts) == busy and all(
                a['state'] in ('done', 'failed', 'aborted')
                for a in firsts.values()):
            return firsts
        return None

    firsts = wait_for('closed actions of the three busy servers', closed, 150)
    closed_at = time.time()
    wait_for('two plans after the actions closed', lambda: len(
        [p for p in plans(st, 10) if p['created_at'] > closed_at]) >= 2, 30)
    return {'first': {receiver.names[v]: a for v, a in firsts.items()},
            'started': started}


def test_the_noisy_server_moves_within_its_az_between_drain_and_rejoin(
        plane, dance):
    """`mover` was drained while Nova still had it ACTIVE on cmp-1, Nova's
    conductor and compute live-migrated it (migration `completed`, the one
    the journal names), it was rejoined once ACTIVE on its new host, and it
    ends ACTIVE on a quieter host of az1, as `openstack server show` says."""
    pl, st, ids, receiver = (plane[k] for k in ('pl', 'st', 'ids',
                                                'receiver'))
    a = dance['first']['mover']
    assert a['state'] == 'done', a
    assert a['error'] is None, a
    shown = pl.openstack_json('server', 'show', ids['mover'])
    host = shown['OS-EXT-SRV-ATTR:host']
    assert shown['status'] == 'ACTIVE', shown
    assert host == a['target'], (shown, a)
    assert host in ('cmp-2', 'cmp-3'), shown
    assert shown['OS-EXT-AZ:availability_zone'] == 'az1', shown
    assert STEAL[host] < STEAL['cmp-1']
    [mig] = pl.migrations(ids['mover'])
    assert mig['migration_type'] == 'live-migration', mig
    assert mig['status'] == 'completed', mig
    assert (mig['source_compute'], mig['dest_compute']) == ('cmp-1', host)
    assert a['migration_id'] == str(mig['id']), a
    calls = receiver.of('mover')
    assert [c['step'] for c in calls] == ['drain', 'rejoin'], calls
    drain, rejoin = calls
    assert (drain['host'], drain['status'], drain['task_state']) == (
        'cmp-1', 'ACTIVE', None), drain
    assert (rejoin['host'], rejoin['status']) == (host, 'ACTIVE'), rejoin
    for c in calls:
        assert c['body'] == {
            'vm': ids['mover'], 'name': 'mover', 'source': 'cmp-1',
            'target': host, 'az': 'az1', 'action': a['id']}, c


def test_a_migration_nova_refuses_with_409_ends_failed_after_rejoin(
        plane, dance):
    """`refused` was stopped by its owner while it drained: Nova answers
    os-migrateLive with 409, records no migration, and the action ends
    `failed` naming the 409, after the rejoin hook ran."""
    pl, ids, receiver = (plane[k] for k in ('pl', 'ids', 'receiver'))
    a = dance['first']['refused']
    assert a['state'] == 'failed', a
    assert '409' in a['error'] and 'refused' in a['error'], a
    assert pl.migrations(ids['refused']) == []
    s = pl.server(ids['refused'])
    assert (s['status'], s['OS-EXT-SRV-ATTR:host']) == ('SHUTOFF', 'cmp-1')
    calls = receiver.of('refused')
    assert [c['step'] for c in calls] == ['drain', 'rejoin'], calls
    assert calls[0]['status'] == 'ACTIVE', calls
    assert calls[1]['status'] == 'SHUTOFF', calls


def test_a_migration_that_ends_in_error_ends_failed_after_rejoin(
        plane, dance):
    """`doomed`'s only target, cmp-5, was disabled while it drained:
    Nova's scheduler refuses it, the conductor ends the migration
    `error` and puts the server back ACTIVE on cmp-4; the action ends
    `failed` after the rejoin hook ran, naming Nova's migration and the
    reason Nova gives (no valid host)."""
    pl, ids, receiver = (plane[k] for k in ('pl', 'ids', 'receiver'))
    a = dance['first']['doomed']
    assert a['state'] == 'failed', a
    assert a['target'] == 'cmp-5', a
    mig = min(pl.migrations(ids['doomed']), key=lambda m: m['id'])
    assert (mig['migration_type'], mig['status']) == (
        'live-migration', 'error'), mig
    # The scheduler refused the requested host: Nova never set a destination.
    assert (mig['source_compute'], mig['dest_compute']) == ('cmp-4', None)
    s = pl.wait_server(ids['doomed'], 'ACTIVE')
    assert s['OS-EXT-SRV-ATTR:host'] == 'cmp-4', s
    # The journal names Nova's migration, its end and Nova's own reason.
    assert a['migration_id'] == str(mig['id']), a
    assert 'ACTIVE on cmp-4 (wanted cmp-5)' in a['error'], a
    assert 'Nova migration %s is error' % mig['id'] in a['error'], a
    assert 'No valid host was found' in a['error'], a
    calls = receiver.of('doomed')
    assert [c['step'] for c in calls[:2]] == ['drain', 'rejoin'], calls
    # Rejoined once Nova had put the server back, not while it migrated.
    assert (calls[1]['host'], calls[1]['status'], calls[1]['task_state']) == (
        'cmp-4', 'ACTIVE', None), calls


def test_a_disabled_host_is_not_planned_again(plane, dance):
    """After `doomed`'s failed move, the plans that follow skip it (cmp-5's
    compute service is disabled, so no host of az2 qualifies): no second
    drain, no second migration."""
    pl, st, ids, receiver = (plane[k] for k in ('pl', 'st', 'ids',
                                                'receiver'))
    assert [c['step'] for c in receiver.of('doomed')] == [
        'drain', 'rejoin'], receiver.of('doomed')
    assert len(pl.migrations(ids['doomed'])) == 1
    later = [a for a in actions(st) if a['vm'] == ids['doomed']
             and a['created_at'] >= dance['started']]
    assert len(later) == 1, later
    skipped = [s for p in plans(st, 3) for s in p['summary']['skipped']
               if s['vm'] == ids['doomed']]
    assert skipped, plans(st, 3)
    assert all(s['limit'] == 'no_destination' for s in skipped), skipped
    assert all('disabled' in s['detail'] for s in skipped), skipped
