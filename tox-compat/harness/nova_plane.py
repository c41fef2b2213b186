"""A whole Nova control plane: the real nova-conductor, nova-scheduler (with
steward's shim, configured as docs/operations.md says) and N nova-compute
processes on the fake virt driver, behind the real Keystone and Nova API.

Start (a test module; ~6 computes):

    cloud = Cloud(workdir, keystone=True, nova=True, plane=True,
                  computes=6, azs={'az1': 3, 'az2': 3}).start()
    plane = cloud.plane
    plane.use_steward(st)               # scheduler restarted with the shim
    out = plane.openstack('server', 'create', '--flavor', 'm1.small',
                          '--image', 'cirros', '--nic', 'none', '--wait',
                          'vm1', '-f', 'json')

Start (a developer, one command; prints how to use it, Ctrl-C stops):

    tox -c tox-compat/tox.ini -e plane                  # 6 computes, steward
    tox -c tox-compat/tox.ini -e plane -- --computes 3 --no-steward

What runs: one RabbitMQ vhost of its own (harness/rabbitmq.py: the
machine's broker, else a private node), the nova.conf of the Nova API
(same databases, Keystone, Placement) read by every service, plus one
small override file per service (its `host`, state and lock paths, the
compute driver, the scheduler's [filter_scheduler] and [steward]).
Computes are named cmp-1..cmp-N, each its own host and node
(`compute_driver = fake.FakeDriverWithoutFakeNodes`, which restarts
cleanly), put in AZ aggregates through the API (`azs`: {az: count} in
order, or {az: [hosts]}), mapped by `nova-manage cell_v2 discover_hosts`
called here (the scheduler's periodic discovery is off, so a test knows
when a host is mapped). With `nodes=M` (Cloud(..., plane_opts={'nodes':
M})) each compute serves M fake nodes cmp-i-n0..n{M-1} instead
(harness/fake_nodes.py, FakeDriver._set_nodes as Nova's own functional
tests use it), every node's provider put in its host's AZ aggregate in
Placement too. The image API is harness/image_stub.py (one
active image `cirros`, in the catalog as `image`); flavors m1.small
(1 vCPU, 512 MB, 1 GB), m1.medium (2 vCPU, 1024 MB, 1 GB) and m1.huge
(1,000 vCPU, 780,000 MB: a fake host's RAM all but full, a quarter of
its vCPUs) exist.

Ready means: conductor and scheduler each consume their RPC queue
(rabbitmqctl list_queues), every compute service is up in
GET /os-services and its hypervisor is listed in GET /os-hypervisors.

The API of a started plane:

    plane.hosts                     ['cmp-1', ...]; plane.az_of[host]
    plane.openstack(*args, cloud='admin')   the real CLI (clouds.yaml)
    plane.clouds_yaml               admin (project admin), demo (member)
    plane.use_steward(st, **steward_opts)   restart nova-scheduler with
                                    the shim pointing at steward `st`
                                    (a harness.steward.Steward)
    plane.remove_shim()             restart nova-scheduler without it
                                    (Nova's own filters and weighers)
    plane.scheduler_log()           nova-scheduler's log text
    plane.kill_compute(host)        SIGKILL its nova-compute
    plane.stop_compute(host)        SIGTERM (a clean stop)
    plane.start_compute(host)       (re)start it; waits until it is up
    plane.stop_heartbeat(host)      SIGSTOP: the process stays, its
                                    service reports stop (goes down after
                                    service_down_time); resume_heartbeat
    plane.force_down(host, True)    PUT /os-services/{id} forced_down
    plane.recover_host(host)        after an evacuation: restart, wait for
                                    the cleanup, unset forced_down
    plane.add_compute(host=None, az=None)   one more compute, mapped and
                                    in `az`'s aggregate; returns its name
    plane.wait_server(id, 'ACTIVE') the server (GET /servers/{id})
    plane.wait_migration(server_id, before) its newest migration not in
                                    `before`, once final
    plane.live_migrate(id, host=None)  migrate --live-migration; the new
                                    migration and the server once settled
    plane.server_host(id)           OS-EXT-SRV-ATTR:host
    plane.stop()                    everything above, and the vhost
"""

import argparse
import concurrent.futures
import json
import os
import re
import signal
import sys
import time

from harness import fake_nodes
from harness.commands import run_tool
from harness.image_stub import ImageStub
from harness.process import ManagedProcess
from harness.process import PeerStartError
from harness.rabbitmq import Vhost
from harness.venvs import peer_bin
from harness.venvs import peer_env

REPO_ROOT = os.path.abspath(
    os.path.join(os.path.dirname(__file__), '..', '..'))
SNIPPET = os.path.join(REPO_ROOT, 'etc', 'nova.conf.steward-snippet')
FLAVORS = {'m1.small': (1, 512, 1), 'm1.medium': (2, 1024, 1),
           # On a fake host (1,000 vCPU at Nova's 4.0 ratio, at most 1,000 per
           # server; 800,000 MB): RAM all but full, room left for a few small
           # servers. Nova's RAM and CPU weighers then rank the host last by
           # a margin its I/O-ops weigher cannot undo (fresh boots count as
           # I/O ops until the compute's next resource update).
           'm1.huge': (1000, 780000, 1)}
_LOG_LEVELS = ('amqp=WARN,amqplib=WARN,oslo.messaging=INFO,'
               'oslo_messaging=INFO,sqlalchemy=WARN,keystoneauth=WARN,'
               'keystonemiddleware=WARN,urllib3.connectionpool=WARN,'
               'stevedore=WARN,oslo_policy=INFO,steward_nova=DEBUG')
FINAL_MIGRATION = ('completed', 'confirmed', 'done', 'finished', 'error',
                   'failed', 'cancelled', 'reverted')


class PlaneBus:
    """What the Nova API's nova.conf must name before it starts: the
    vhost (transport_url) and the image API."""

    def __init__(self):
        self.vhost = Vhost()
        self.images = ImageStub()

    def start(self):
        self.vhost.create()
        self.images.start()
        return self

    def stop(self):
        if self.images is not None:
            self.images.stop()
            self.images = None
        if self.vhost is not None:
            self.vhost.delete()
            self.vhost = None


def az_layout(hosts, azs):
    """{host: az}: `azs` is {az: count} (hosts taken in order) or
    {az: [hosts]}; None puts every host in no AZ."""
    if not azs:
        return dict.fromkeys(hosts)
    out, rest_ = {}, list(hosts)
    for az, members in azs.items():
        if isinstance(members, int):
            members, rest_ = rest_[:members], rest_[members:]
        for h in members:
            out[h] = az
    for h in hosts:
        out.setdefault(h, None)
    return out


class NovaPlane:
    def __init__(self, workdir, nova, keystone, bus, computes=6, azs=None,
                 service_down_time=60, nodes=None, scheduler_log_levels='',
                 placement=None):
        self.workdir = os.path.abspath(str(workdir))
        os.makedirs(self.workdir, exist_ok=True)
        self.nova = nova
        self.keystone = keystone
        self.bus = bus
        self.hosts = ['cmp-%d' % i for i in range(1, computes + 1)]
        self.az_of = az_layout(self.hosts, azs)
        self.service_down_time = service_down_time
        # nodes: each compute serves that many fake nodes (harness/
        # fake_nodes.py), named <host>-n0..; None: one node named as
        # its host (FakeDriverWithoutFakeNodes).
        self.nodes = nodes
        self.placement = placement
        self.aggregate_uuids = {}
        # e.g. 'nova.scheduler.manager=DEBUG,nova.filters=DEBUG': Nova's
        # own scheduling lines (bench/plane_latency.py reads them).
        self.scheduler_log_levels = scheduler_log_levels
        self.env = peer_env('nova', nova.venv)
        self.procs = {}
        self.aggregates = {}
        self.steward = None
        self.steward_opts = {}
        self.clouds_yaml = None
        self.timings = {}

    # -- files ------------------------------------------------------------

    def _override(self, name, sections):
        """Write <workdir>/<name>.conf from {section: {key: value}} (a
        list value: the key repeated, as a MultiStrOpt is written)."""
        path = os.path.join(self.workdir, name + '.conf')
        with open(path, 'w', encoding='utf-8') as f:
            f.write(_render(sections))
        return path

    def _service(self, name, binary, sections, argv0=None, env=None):
        path = self._override(name, sections)
        argv = (argv0 or [peer_bin('nova', binary, self.nova.venv)]) + [
            '--config-file', self.nova.conf_path, '--config-file', path]
        return ManagedProcess(name, argv, self.workdir, env=env or self.env)

    def nodes_of(self, host):
        """The hypervisor (node) names `host`'s compute reports."""
        if not self.nodes:
            return [host]
        return fake_nodes.node_names(host, self.nodes)

    def _compute_proc(self, host):
        d = os.path.join(self.workdir, host)
        for sub in ('state', 'instances', 'locks'):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        argv0, env, driver = None, None, 'fake.FakeDriverWithoutFakeNodes'
        if self.nodes:
            argv0 = [peer_bin('nova', 'python', self.nova.venv), '-m',
                     'harness.fake_nodes']
            env = dict(self.env, **{fake_nodes.ENV: str(self.nodes)})
            env['PYTHONPATH'] = os.pathsep.join(filter(None, (
                os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                env.get('PYTHONPATH'))))
            driver = fake_nodes.DRIVER
        return self._service(host, 'nova-compute', {
            'DEFAULT': {
                'host': host,
                'compute_driver': driver,
                'state_path': os.path.join(d, 'state'),
                'instances_path': os.path.join(d, 'instances'),
                'heal_instance_info_cache_interval': -1,
                'sync_power_state_interval': -1,
                'default_log_levels': _LOG_LEVELS},
            'oslo_concurrency': {'lock_path': os.path.join(d, 'locks')},
            'vnc': {'enabled': 'false'},
        }, argv0=argv0, env=env)

    def _scheduler_sections(self):
        sections = {
            'DEFAULT': {'host': 'plane-scheduler',
                        'default_log_levels': ','.join(filter(None, (
                            _LOG_LEVELS, self.scheduler_log_levels)))},
            'scheduler': {'discover_hosts_in_cells_interval': -1,
                          'workers': 1},
        }
        if self.steward is not None:
            sections.update(shim_sections(self.steward, **self.steward_opts))
        return sections

    # -- lifecycle --------------------------------------------------------

    def start(self):
        """Conductor, scheduler and computes at once; then discover the
        hosts, make the AZ aggregates and flavors, and wait until ready."""
        started = time.monotonic()
        self.procs['conductor'] = self._service(
            'nova-conductor', 'nova-conductor', {
                'DEFAULT': {'host': 'plane-conductor',
                            'default_log_levels': _LOG_LEVELS},
                'conductor': {'workers': 1}}).start()
        self.procs['scheduler'] = self._service(
            'nova-scheduler', 'nova-scheduler',
            self._scheduler_sections()).start()
        for host in self.hosts:
            self.procs[host] = self._compute_proc(host).start()
        self._identity()
        self._flavors()
        self.wait_queue('conductor')
        self.wait_queue('scheduler')
        # Each fake node is a compute node record and a resource provider
        # with its inventory, created by its compute at start: a plane of
        # hundreds of nodes per compute takes longer than the default wait.
        nodes = len(self.hosts) * (self.nodes or 1)
        self.wait_computes(self.hosts, max(180.0, 0.5 * nodes))
        self._aggregates()
        self.timings['plane'] = round(time.monotonic() - started, 2)
        return self

    def stop(self):
        procs = list(self.procs.values())
        for p in procs:
            if p.running():
                try:
                    p.proc.send_signal(signal.SIGCONT)
                except OSError:
                    pass
        with concurrent.futures.ThreadPoolExecutor(max(len(procs), 1)) as ex:
            list(ex.map(lambda p: p.stop(grace=3), procs))

    # -- readiness --------------------------------------------------------

    def wait_queue(self, queue, timeout=180.0):
        """Until `queue` has a consumer (the service is listening)."""
        deadline = time.monotonic() + timeout
        name = 'nova-%s' % queue
        while self.bus.vhost.consumers(queue) < 1:
            proc = self.procs.get(queue)
            if proc is not None and not proc.running():
                raise PeerStartError('%s exited %s; log %s:\n%s' % (
                    name, proc.proc.returncode, proc.log_path,
                    proc.log_tail()))
            if time.monotonic() > deadline:
                raise PeerStartError('%s did not consume its queue within '
                                     '%.0f s; log %s:\n%s' % (
                                         name, timeout, proc.log_path,
                                         proc.log_tail()))
            time.sleep(1)

    def services(self):
        """{host: os-services entry} of nova-compute."""
        return {s['host']: s for s in self.nova.get(
            '/os-services?binary=nova-compute')['services']}

    def wait_computes(self, hosts, timeout=180.0):
        """Until every host's nova-compute service is up, then map the
        hosts (discover_hosts) and wait until their nodes are listed
        (GET /os-hypervisors shows mapped hosts only)."""
        deadline = time.monotonic() + timeout
        self._wait(hosts, deadline, lambda: {
            h for h, s in self.services().items() if s['state'] == 'up'},
            'up in GET /os-services')
        self.discover_hosts()
        discovered = time.monotonic()

        def listed():
            nonlocal discovered
            names = self.hypervisor_names()
            done = {h for h in hosts if set(self.nodes_of(h)) <= names}
            # A compute that had written no node record yet when hosts
            # were discovered is not mapped: discover again, now and then.
            if done != set(hosts) and time.monotonic() - discovered > 15:
                self.discover_hosts()
                discovered = time.monotonic()
            return done
        self._wait(hosts, deadline, listed, 'listed in GET /os-hypervisors')

    def _wait(self, hosts, deadline, seen, what):
        while True:
            missing = [h for h in hosts if h not in seen()]
            if not missing:
                return
            for h in missing:
                p = self.procs.get(h)
                if p is not None and not p.running():
                    raise PeerStartError('nova-compute %s exited %s; log %s:'
                                         '\n%s' % (h, p.proc.returncode,
                                                   p.log_path, p.log_tail()))
            if time.monotonic() > deadline:
                raise PeerStartError('computes not %s in time: %s' % (
                    what, ', '.join(missing)))
            time.sleep(0.5)

    def hypervisor_names(self):
        """Every node GET /os-hypervisors lists, page by page: Nova gives
        at most [api] max_limit (1,000) a page."""
        names, marker, size = set(), None, 500
        while True:
            path = '/os-hypervisors?limit=%d' % size
            if marker:
                path += '&marker=' + marker
            # 2.53: `marker` is the hypervisor's UUID.
            page = self.nova.get(path, microversion='2.53')['hypervisors']
            names.update(h['hypervisor_hostname'] for h in page)
            if len(page) < size:
                return names
            marker = page[-1]['id']

    def discover_hosts(self):
        """nova-manage cell_v2 discover_hosts (maps new computes)."""
        return run_tool([peer_bin('nova', 'nova-manage', self.nova.venv),
                         '--config-file', self.nova.conf_path, 'cell_v2',
                         'discover_hosts', '--verbose'], self.workdir,
                        'nova-manage', env=self.env)

    # -- setup through the API ---------------------------------------------

    def _identity(self):
        ks = self.keystone
        ks.register_service('image', self.bus.images.url, name='glance')
        demo = ks.create_user('plane-demo', project='demo',
                              roles=('member', 'reader'))
        self.demo = demo
        self.clouds_yaml = ks.write_clouds_yaml({
            'admin': ks.password_cloud(ks.admin),
            'demo': ks.password_cloud(demo)},
            path=os.path.join(self.workdir, 'clouds.yaml'))

    def _flavors(self):
        for name, (vcpus, ram, disk) in FLAVORS.items():
            self.nova.call('POST', '/flavors', {'flavor': {
                'name': name, 'vcpus': vcpus, 'ram': ram, 'disk': disk}},
                expect=(200,))
        # Tests boot more than Nova's default 10 instances per project.
        for project in ('admin', 'demo'):
            self.nova.call('PUT', '/os-quota-sets/%s' % (
                self.keystone.create_project(project)), {'quota_set': {
                    'instances': -1, 'cores': -1, 'ram': -1}},
                expect=(200,))

    def _aggregates(self):
        for az in sorted({a for a in self.az_of.values() if a}):
            self._aggregate(az)
        for host, az in self.az_of.items():
            if az:
                self._add_to_aggregate(host, az)

    def _aggregate(self, az):
        if az not in self.aggregates:
            agg = self.nova.call('POST', '/os-aggregates', {
                'aggregate': {'name': 'agg-' + az, 'availability_zone': az}},
                expect=(200,))['aggregate']
            self.aggregates[az] = agg['id']
            self.aggregate_uuids[az] = agg['uuid']
        return self.aggregates[az]

    def _add_to_aggregate(self, host, az):
        self.nova.call('POST', '/os-aggregates/%s/action' % self._aggregate(
            az), {'add_host': {'host': host}}, expect=(200,))
        self.az_of[host] = az
        if self.nodes and self.placement is not None:
            # Nova mirrors a host into the aggregate's placement aggregate
            # by its first node only (compute/api.py, add_host_to_aggregate),
            # and Nova asks Placement for candidates in the AZ's aggregate
            # ([scheduler] query_placement_for_availability_zone): put every
            # node's provider in it, as an operator of a multi-node driver
            # must.
            for node in self.nodes_of(host):
                rp = self.placement.providers(name=node)[0]['uuid']
                have = self.placement.call(
                    'GET', '/resource_providers/%s/aggregates' % rp)[
                        'aggregates']
                if self.aggregate_uuids[az] not in have:
                    self.placement.set_aggregates(
                        rp, have + [self.aggregate_uuids[az]])

    # -- the scheduler --------------------------------------------------------

    def _restart_scheduler(self):
        old = self.procs.get('scheduler')
        if old is not None:
            # It keeps nothing: no need to wait out its graceful shutdown,
            # but its forked worker must be gone before the new one starts,
            # or it may take (and lose) a request meanwhile.
            old.stop(grace=1, group=True)
        self.procs['scheduler'] = self._service(
            'nova-scheduler', 'nova-scheduler',
            self._scheduler_sections()).start()
        # The old consumer may linger in the queue listing for a moment:
        # wait for the new process's own start line as well.
        deadline = time.monotonic() + 180
        while 'Starting scheduler node' not in self.procs[
                'scheduler'].log_text().split('\n--- restart ---\n')[-1]:
            if not self.procs['scheduler'].running() or (
                    time.monotonic() > deadline):
                raise PeerStartError('nova-scheduler did not start; log '
                                     '%s:\n%s' % (
                                         self.procs['scheduler'].log_path,
                                         self.procs['scheduler'].log_tail()))
            time.sleep(0.5)
        self.wait_queue('scheduler')

    def use_steward(self, steward, **opts):
        """nova-scheduler restarted with the shim, as docs/operations.md
        installs it, pointing at `steward`; `opts` override [steward]
        options (e.g. timeout=5, fail_open='false')."""
        self.steward, self.steward_opts = steward, opts
        self._mark_restart()
        self._restart_scheduler()

    def remove_shim(self):
        """nova-scheduler restarted with Nova's own filters and weighers
        (the control case: "To remove the shim" in docs/operations.md)."""
        self.steward, self.steward_opts = None, {}
        self._mark_restart()
        self._restart_scheduler()

    def _mark_restart(self):
        p = self.procs.get('scheduler')
        if p is not None:
            with open(p.log_path, 'a', encoding='utf-8') as f:
                f.write('\n--- restart ---\n')

    def scheduler_log(self):
        """nova-scheduler's log since its last (re)start."""
        return self.procs['scheduler'].log_text().split(
            '\n--- restart ---\n')[-1]

    # -- computes -------------------------------------------------------------

    def kill_compute(self, host):
        """SIGKILL the host's nova-compute (a crashed hypervisor host)."""
        p = self.procs[host]
        if p.running():
            p.proc.kill()
            p.proc.wait(10)

    def stop_compute(self, host):
        self.procs[host].stop()

    def start_compute(self, host, timeout=180.0, wait=True):
        """(Re)start the host's nova-compute; wait until it is up (not
        with wait=False: a forced-down service never shows up)."""
        if self.procs.get(host) is None or not self.procs[host].running():
            self.procs[host] = self._compute_proc(host).start()
        if wait:
            self.wait_computes([host], timeout)

    def recover_host(self, host, timeout=180.0):
        """After an evacuation from `host`: start its nova-compute (which
        cleans up the evacuated servers and moves their migrations from
        `done` to `completed`, as Nova requires before a force up), then
        unset forced_down and wait until it is up."""
        self.start_compute(host, wait=False)
        deadline = time.monotonic() + timeout
        while any(m['status'] == 'done' and m['source_compute'] == host
                  for m in self.nova.get('/os-migrations?migration_type='
                                         'evacuation')['migrations']):
            if time.monotonic() > deadline:
                raise PeerStartError('evacuations from %s still `done` after '
                                     '%.0f s; log %s' % (
                                         host, timeout,
                                         self.procs[host].log_path))
            time.sleep(0.5)
        self.force_down(host, False)
        self.wait_computes([host], timeout)

    def stop_heartbeat(self, host):
        """Freeze the host's nova-compute (SIGSTOP): no more service
        reports; it shows down after service_down_time."""
        self.procs[host].proc.send_signal(signal.SIGSTOP)

    def resume_heartbeat(self, host):
        self.procs[host].proc.send_signal(signal.SIGCONT)

    def force_down(self, host, down=True):
        """PUT /os-services/{id} {"forced_down": down} (2.53+)."""
        svc = self.services()[host]
        return self.nova.call('PUT', '/os-services/%s' % svc['id'], {
            'forced_down': down}, expect=(200,))

    def add_compute(self, host=None, az=None):
        """One more nova-compute, mapped and in `az`'s aggregate."""
        host = host or 'cmp-%d' % (len(self.hosts) + 1)
        self.hosts.append(host)
        self.procs[host] = self._compute_proc(host).start()
        self.wait_computes([host])
        if az:
            self._add_to_aggregate(host, az)
        else:
            self.az_of[host] = None
        return host

    # -- servers --------------------------------------------------------------

    def openstack(self, *args, cloud='admin', timeout=180.0):
        """The real `openstack` CLI as `cloud` (admin or demo); stdout."""
        return self.keystone.openstack(*args, cloud=cloud,
                                       clouds_yaml=self.clouds_yaml,
                                       timeout=timeout)

    def openstack_json(self, *args, **kw):
        return json.loads(self.openstack(*args, '-f', 'json', **kw))

    def server(self, server_id):
        return self.nova.get('/servers/%s' % server_id)['server']

    def server_host(self, server_id):
        return self.server(server_id).get('OS-EXT-SRV-ATTR:host')

    def wait_server(self, server_id, status='ACTIVE', timeout=120.0):
        """The server once its status is `status` and no task runs; raise
        with its fault when it goes ERROR instead."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.server(server_id)
            if s['status'] == status and not s.get('OS-EXT-STS:task_state'):
                return s
            if s['status'] == 'ERROR' and status != 'ERROR':
                raise AssertionError('server %s went ERROR: %s' % (
                    server_id, s.get('fault')))
            if time.monotonic() > deadline:
                raise AssertionError('server %s is %s/%s, not %s after %.0f '
                                     's' % (server_id, s['status'], s.get(
                                         'OS-EXT-STS:task_state'), status,
                                         timeout))
            time.sleep(0.5)

    def migrations(self, server_id):
        """Every migration of the server (GET /os-migrations)."""
        return self.nova.get('/os-migrations?instance_uuid=%s'
                             % server_id)['migrations']

    def wait_migration(self, server_id, before=(), timeout=120.0):
        """The server's newest migration once its status is final, ignoring
        the ids in `before` (the migrations that existed before the action:
        the API answers 202 before conductor records the new one, so
        without them an older, completed migration reads as this one)."""
        deadline = time.monotonic() + timeout
        before = {m if isinstance(m, int) else m['id'] for m in before}
        while True:
            migs = sorted((m for m in self.migrations(server_id)
                           if m['id'] not in before), key=lambda m: m['id'])
            if migs and migs[-1]['status'] in FINAL_MIGRATION:
                return migs[-1]
            if time.monotonic() > deadline:
                raise AssertionError('migration of %s not final after %.0f '
                                     's: %s' % (server_id, timeout, migs))
            time.sleep(0.5)

    def live_migrate(self, server_id, host=None):
        """`openstack server migrate --live-migration [--host]`, then the
        new migration once final and the server once no task runs; returns
        (migration, server)."""
        before = self.migrations(server_id)
        status = self.server(server_id)['status']
        args = ['--host', host] if host else []
        self.openstack('--os-compute-api-version', '2.95', 'server',
                       'migrate', '--live-migration', *args, server_id)
        mig = self.wait_migration(server_id, before)
        return mig, self.wait_server(server_id, status)

    def log_paths(self):
        return {name: p.log_path for name, p in self.procs.items()}


def snippet_sections(path=SNIPPET):
    """{section: {key: [values]}} of etc/nova.conf.steward-snippet."""
    sections, current = {}, None
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            m = re.match(r'^\[(.+)\]$', line)
            if m:
                current = sections.setdefault(m.group(1), {})
                continue
            key, value = [x.strip() for x in line.split('=', 1)]
            current.setdefault(key, []).append(value)
    return sections


def shim_sections(steward, timeout=None, **opts):
    """The sections of etc/nova.conf.steward-snippet (docs/operations.md,
    "Install the shim into Nova's scheduler"), with `endpoint` at
    `steward` and `token_file` holding its reader token; `opts` override
    [steward] options. The plane raises `timeout` to 5 s by default: a
    debug steward on a shared 2-core machine can take longer than 0.5 s,
    and a fail-open would hide what the tests check."""
    sections = snippet_sections()
    st = sections['steward']
    st['endpoint'] = [steward.url]
    st['token_file'] = [steward.token_file('reader')]
    st['timeout'] = [5 if timeout is None else timeout]
    for key, value in opts.items():
        st[key] = [value]
    return sections


def _render(sections):
    lines = []
    for section, values in sections.items():
        lines.append('[%s]' % section)
        for key, value in values.items():
            for v in (value if isinstance(value, list) else [value]):
                lines.append('%s = %s' % (key, v))
    return '\n'.join(lines) + '\n'


# -- one command for a developer ---------------------------------------------

def main(argv=None):
    from harness.peers import Cloud
    from harness.steward import start_steward
    p = argparse.ArgumentParser(prog='python -m harness.nova_plane',
                                description=__doc__.split('\n\n')[0])
    p.add_argument('command', choices=['up'], nargs='?', default='up')
    p.add_argument('--computes', type=int, default=6)
    p.add_argument('--azs', default='az1:3,az2:3',
                   help='AZ:count,... (hosts in order); "" for none')
    p.add_argument('--no-steward', action='store_true',
                   help='no steward; nova-scheduler without the shim')
    p.add_argument('--workdir', default=None)
    args = p.parse_args(argv)
    azs = {}
    for part in filter(None, args.azs.split(',')):
        az, n = part.split(':')
        azs[az] = int(n)
    workdir = args.workdir or os.path.join(REPO_ROOT, 'target', 'plane')
    os.makedirs(workdir, exist_ok=True)
    cloud = Cloud(workdir, keystone=True, nova=True, plane=True,
                  computes=args.computes, azs=azs)
    cloud.start()
    st = None
    try:
        if not args.no_steward:
            st = start_steward(os.path.join(workdir, 'steward'))
            cloud.plane.use_steward(st)
        _print_usage(cloud, st)
        signal.sigwait([signal.SIGINT, signal.SIGTERM])
    finally:
        if st is not None:
            st.stop()
        cloud.stop()


def _print_usage(cloud, st):
    plane = cloud.plane
    print('Nova control plane up in %.0f s (%s)' % (
        cloud.timings.get('start', 0), ', '.join(
            '%s %s' % (h, plane.az_of[h] or '-') for h in plane.hosts)))
    print('  export OS_CLIENT_CONFIG_FILE=%s OS_CLOUD=admin   # or demo'
          % plane.clouds_yaml)
    print('  openstack server create --flavor m1.small --image cirros '
          '--nic none --wait vm1')
    print('  openstack compute service list; openstack aggregate list')
    if st is not None:
        print('  steward %s (tokens in %s); its log %s' % (
            st.url, os.path.join(st.workdir, 'tokens'),
            st.process.log_path))
    print('  logs: %s' % plane.workdir)
    print('Ctrl-C stops everything.')
    sys.stdout.flush()


if __name__ == '__main__':
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT, signal.SIGTERM])
    main()
