"""One object that starts the real OpenStack peers a test module asks
for, seeds them consistently and tears them all down.

    cloud = Cloud(tmp_path_factory.mktemp('cloud'), keystone=True,
                  placement=True, nova=True, prometheus=True,
                  history=steal_scenario(), live=True).start()
    cloud.seed({'hosts': [...], 'servers': [...]})
    ...
    cloud.stop()

Peers run on free loopback ports. With keystone=True, Placement and Nova
validate real tokens (keystonemiddleware) and sit in the catalog;
otherwise Placement runs noauth2 and Nova without authtoken. seed()
writes Nova's side with Nova's objects and mirrors it into Placement as
nova-compute and the scheduler would (one provider per compute node with
its inventory and aggregates, one allocation per server). With
ironic=True the real Ironic runs too, and a seeded host that carries
"ironic" (see seed()) is a bare-metal node: a fake-hardware node in
Ironic whose uuid is the compute node's, its provider's and the
instance's `node`. Every peer keeps its log under the workdir;
failure_report() gathers their tails.
"""

import concurrent.futures
import copy
import json
import os
import re
import time
import uuid as uuidlib

from harness.ironic import start_ironic
from harness.keystone import start_keystone
from harness.nova_api import start_nova_api
from harness.nova_plane import NovaPlane
from harness.nova_plane import PlaneBus
from harness.placement import start_placement
from harness.prometheus import start_prometheus

_ACTIVE = []


def active_clouds():
    """Clouds started and not yet stopped (for failure reports)."""
    return list(_ACTIVE)


class Cloud:
    """The peers of one test module. `keystone`, `placement`, `nova`,
    `prometheus` choose what runs (nova implies placement);
    `placement_backend` is 'mysql' or 'sqlite'; `history` (Series from
    harness.prometheus), `weeks`, `history_end` and `live` shape
    Prometheus; `service_down_time` is Nova's, and `keep_up` starts the
    nova-compute heartbeat loop after seed(). `plane` runs the whole Nova
    control plane (harness/nova_plane.py: conductor, scheduler and
    `computes` fake-driver computes in the AZs `azs`; implies keystone
    and nova; `plane_opts` go to NovaPlane, e.g. nodes=50 fake nodes per
    compute). After start(), the peers are .keystone, .placement, .nova,
    .prometheus, .ironic, .plane (None if not asked)."""

    def __init__(self, workdir, keystone=False, placement=False, nova=False,
                 prometheus=False, placement_backend='mysql', history=None,
                 weeks=4, history_end=None, live=False,
                 service_down_time=60, keep_up=False, ironic=False,
                 plane=False, computes=6, azs=None, plane_opts=None):
        self.workdir = os.path.abspath(str(workdir))
        self.want = {'keystone': keystone or plane,
                     'placement': placement or nova or plane,
                     'nova': nova or plane, 'prometheus': prometheus,
                     'ironic': ironic, 'plane': plane}
        self.computes = computes
        self.azs = azs
        self.plane_opts = plane_opts or {}
        self.plane = None
        self.bus = None
        self.placement_backend = placement_backend
        self.history = history
        self.weeks = weeks
        self.history_end = history_end
        self.live = live
        self.service_down_time = service_down_time
        self.keep_up_services = keep_up
        self.keystone = None
        self.placement = None
        self.nova = None
        self.prometheus = None
        self.ironic = None
        self.ironic_nodes = {}
        self.seeded = None
        self.identity = None
        self.timings = {}

    # -- lifecycle ------------------------------------------------------

    def _dir(self, name):
        path = os.path.join(self.workdir, name)
        os.makedirs(path, exist_ok=True)
        return path

    def _timed(self, name, fn):
        started = time.monotonic()
        try:
            return fn()
        finally:
            self.timings[name] = round(time.monotonic() - started, 2)

    def _openstack_chain(self):
        if self.want['keystone']:
            self.keystone = self._timed('keystone', lambda: start_keystone(
                self._dir('keystone')))
        if self.want['placement']:
            self.placement = self._timed('placement', lambda: start_placement(
                self._dir('placement'), keystone=self.keystone,
                backend=self.placement_backend))
        if self.want['plane']:
            self.bus = PlaneBus().start()
        if self.want['nova']:
            self.nova = self._timed('nova', lambda: start_nova_api(
                self._dir('nova'), placement=self.placement,
                keystone=self.keystone,
                service_down_time=self.service_down_time,
                transport_url=self.bus and self.bus.vhost.transport_url,
                glance_url=self.bus and self.bus.images.url))
        if self.want['plane']:
            self.plane = NovaPlane(self._dir('plane'), self.nova,
                                   self.keystone, self.bus, self.computes,
                                   self.azs, self.service_down_time,
                                   placement=self.placement,
                                   **self.plane_opts)
            self._timed('plane', self.plane.start)

    def _prometheus(self):
        self.prometheus = self._timed('prometheus', lambda: start_prometheus(
            self._dir('prometheus'), history=self.history, weeks=self.weeks,
            end=self.history_end, live=self.live))

    def _ironic(self):
        self.ironic = self._timed('ironic', lambda: start_ironic(
            self._dir('ironic')))

    def start(self):
        """Start the peers asked for; Prometheus beside the OpenStack
        chain (Keystone, then Placement, then Nova, which each need the
        one before). On any failure everything started is stopped and
        the error names the peer and its log."""
        _ACTIVE.append(self)
        started = time.monotonic()
        jobs = []
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            if any(self.want[p] for p in ('keystone', 'placement', 'nova')):
                jobs.append(pool.submit(self._openstack_chain))
            if self.want['prometheus']:
                jobs.append(pool.submit(self._prometheus))
            if self.want['ironic']:
                jobs.append(pool.submit(self._ironic))
            errors = [j.exception() for j in jobs if j.exception()]
        if errors:
            self.stop()
            raise errors[0]
        self.timings['start'] = round(time.monotonic() - started, 2)
        return self

    def stop(self):
        """Stop every peer (SIGTERM, then kill), drop their databases;
        leave timings.json (seconds per peer start, seed) in the workdir."""
        started = time.monotonic()
        if self.plane is not None:
            # Its services hold connections to Nova's databases and vhost.
            self.plane.stop()
        peers = [p for p in (self.nova, self.placement, self.keystone,
                             self.prometheus, self.ironic) if p is not None]
        # In parallel: each waits out its own grace period.
        with concurrent.futures.ThreadPoolExecutor(max(len(peers), 1)) as pool:
            jobs = [pool.submit(p.stop) for p in peers]
            errors = [j.exception() for j in jobs if j.exception()]
        if self.bus is not None:
            self.bus.stop()
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        self.timings['stop'] = round(time.monotonic() - started, 2)
        with open(os.path.join(self.workdir, 'timings.json'), 'w',
                  encoding='utf-8') as f:
            json.dump(self.timings, f, indent=1, sort_keys=True)
        if errors:
            raise errors[0]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- seeding --------------------------------------------------------

    def seed(self, description, workers=1, timeout=300.0):
        """Seed Nova (nova_seed.py SEED FORMAT) and mirror it into
        Placement; return the seeder's summary. `workers` Ironic nodes
        and Placement providers are written at a time (a benchmark's
        thousands of nodes); `timeout` bounds Nova's seeder.

        A host may carry "ironic": {"resource_class": "GOLD",
        "state": "active", "maintenance": false, "legacy": true} (needs
        ironic=True; legacy: Placement holds VCPU, MEMORY_MB and DISK_GB
        beside CUSTOM_GOLD, else CUSTOM_GOLD only): it
        becomes one Ironic node, as Nova's Ironic driver sees it: the
        node's uuid is the compute node's uuid and hypervisor_hostname
        (so the instances' `node`), hypervisor_type is ironic, and the
        node's instance_uuid is the first server seeded on that host.
        The summary's "ironic_nodes" maps host name to node uuid.
        Seeding again (another cell: "cell": NAME, see add_cell) merges
        into the summary; "cells" then lists every seeded cell's uuid."""
        if self.nova is None:
            raise ValueError('seed() needs nova=True')
        started = time.monotonic()
        description, bare_metal = self._bare_metal(description)
        seeded = self.nova.seed(description, timeout=timeout)
        seeded['ironic_nodes'] = {}
        first = {}
        for s in description.get('servers', []):
            first.setdefault(s.get('host'), s['uuid'] if s.get('host') in
                             bare_metal else None)

        def enroll(host, node, ir):
            instance = first.get(host)
            self.ironic.create_node(
                host, ir.get('resource_class', ''), uuid=node,
                instance_uuid=instance if ir.get(
                    'instance', True) else None,
                state=ir.get('state', 'active' if instance else
                             'available'),
                maintenance=bool(ir.get('maintenance')),
                properties=ir.get('properties'))

        # Ironic's API server resets connections beyond a few at a time.
        _each(min(workers, 6), [(host, node, ir) for host, (node, ir) in
                                bare_metal.items()], enroll)
        for host, (node, _) in bare_metal.items():
            seeded['ironic_nodes'][host] = node
            self.ironic_nodes[host] = node
        if self.placement is not None:
            mirror_to_placement(self.placement, seeded, description,
                                workers=workers)
        if self.seeded is None:
            self.seeded = seeded
        else:
            # A later seed (another cell) adds to the summary.
            for key, value in seeded.items():
                if isinstance(value, dict):
                    self.seeded.setdefault(key, {}).update(value)
            self.seeded.setdefault('cells', [self.seeded['cell']])
            self.seeded['cells'].append(seeded['cell'])
        if self.keep_up_services:
            self.nova.keep_up()
        self.timings['seed'] = round(time.monotonic() - started, 2)
        return self.seeded

    def add_cell(self, name, databases=None):
        """A second (third...) Nova cell named `name` with Nova's own
        schema (see NovaApi.add_cell), its database on the server of
        `databases` (a mariadb.Databases, e.g. on a PrivateServer) or on
        the shared one; seed() into it with "cell": name."""
        if self.nova is None:
            raise ValueError('add_cell() needs nova=True')
        return self._timed('cell ' + name, lambda: self.nova.add_cell(
            name, databases))

    def _bare_metal(self, description):
        """The description with every "ironic" host given a node uuid
        (as uuid and node) and hypervisor_type ironic, and every server
        on such a host a uuid; and {host: (node uuid, ironic spec)}."""
        desc = copy.deepcopy(description)
        bare_metal = {}
        for h in desc.get('hosts', []):
            ir = h.get('ironic')
            if ir is None:
                continue
            if self.ironic is None:
                raise ValueError('host %r is an Ironic node: start the '
                                 'cloud with ironic=True' % h['host'])
            node = h.get('uuid') or str(uuidlib.uuid4())
            h.update(uuid=node, node=node, hypervisor_type='ironic')
            h.setdefault('cpu_allocation_ratio', 1.0)
            h.setdefault('ram_allocation_ratio', 1.0)
            h.setdefault('disk_allocation_ratio', 1.0)
            # What Nova's Ironic driver reported before custom classes
            # (legacy, the default: the node's sizes, whole, reserved 0,
            # beside the custom class) or today (the custom class only).
            rc = normalize_rc_name(ir.get('resource_class') or '')
            whole = {'VCPU': h.get('vcpus', 64),
                     'MEMORY_MB': h.get('memory_mb', 262144),
                     'DISK_GB': h.get('disk_gb', 2000)}
            inventory = {cls: ({'total': n, 'max_unit': n, 'reserved': 0,
                                'allocation_ratio': 1.0}
                               if ir.get('legacy', True) else None)
                         for cls, n in whole.items()}
            if ir.get('resource_class'):
                inventory[rc] = {'total': 1, 'max_unit': 1, 'reserved': 0}
            inventory.update(h.get('placement_inventory') or {})
            h['placement_inventory'] = inventory
            bare_metal[h['host']] = (node, ir)
        for s in desc.get('servers', []):
            if s.get('host') in bare_metal:
                s.setdefault('uuid', str(uuidlib.uuid4()))
        return desc, bare_metal

    # -- identity -------------------------------------------------------

    def steward_identity(self, steward_url=None, roles=('admin', 'service'),
                         app_cred_roles=None):
        """What steward logs in with: a `steward` user in project
        `service` with `roles`, an application credential (limited to
        `app_cred_roles` if given, else all the user's roles), the
        `scheduler-steward` endpoint at `steward_url` (if given), Ironic's
        `baremetal` endpoint when the cloud runs Ironic, and a
        clouds.yaml with the clouds `steward` (password) and
        `steward-appcred`. Returns (and keeps as .identity) a dict with
        user, app_credential and clouds_yaml (path)."""
        if self.keystone is None:
            raise ValueError('steward_identity() needs keystone=True')
        user = self.keystone.create_user('steward', project='service',
                                         roles=roles)
        cred = self.keystone.create_application_credential(
            user, name='steward', roles=app_cred_roles)
        if steward_url:
            self.keystone.register_service('scheduler-steward', steward_url,
                                           name='steward')
        if self.ironic is not None:
            self.keystone.register_service('baremetal', self.ironic.url,
                                           name='ironic')
        path = self.keystone.write_clouds_yaml({
            'steward': self.keystone.password_cloud(user),
            'steward-appcred': self.keystone.app_cred_cloud(cred)})
        self.identity = {'user': user, 'app_credential': cred,
                         'clouds_yaml': path}
        return self.identity

    # -- reports --------------------------------------------------------

    def log_paths(self):
        paths = {}
        for peer in ('keystone', 'placement', 'nova', 'prometheus',
                     'ironic'):
            obj = getattr(self, peer)
            if obj is not None:
                paths[peer] = obj.process.log_path
        if self.plane is not None:
            paths.update(self.plane.log_paths())
        return paths

    def failure_report(self, lines=30):
        """The tail of every peer's log, for a failed test's output."""
        out = []
        for peer, path in self.log_paths().items():
            try:
                with open(path, encoding='utf-8', errors='replace') as f:
                    tail = f.read().splitlines()[-lines:]
            except OSError:
                tail = ['(no log)']
            out.append('--- %s: %s (last %d lines)\n%s' % (
                peer, path, lines, '\n'.join(tail)))
        return '\n'.join(out)


def normalize_rc_name(name):
    """nova.utils.normalize_rc_name: non-alphanumeric runs to _, then
    upper case, then CUSTOM_ in front."""
    return 'CUSTOM_' + re.sub('[^0-9A-Za-z]+', '_', name).upper()


def _flavor_resources(server, flavor):
    """Nova's resources_from_flavor for a non-volume-backed server:
    VCPU, MEMORY_MB, DISK_GB from the sizes, then `resources:<RC>=<n>`
    extra specs override or add (0 drops a class)."""
    res = {'VCPU': server['vcpus'], 'MEMORY_MB': server['memory_mb'],
           'DISK_GB': server['disk_gb']}
    for key, value in (flavor.get('extra_specs') or {}).items():
        if key.startswith('resources:'):
            res[key.split(':', 1)[1]] = int(value)
    return {rc: n for rc, n in res.items() if n}


def _each(workers, items, fn):
    """fn(*item) for every item, `workers` at a time; the first error
    is raised once all are done."""
    if workers <= 1:
        for item in items:
            fn(*item)
        return
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        jobs = [pool.submit(fn, *item) for item in items]
        for j in jobs:
            j.result()


def mirror_to_placement(placement, seeded, description=None, workers=1):
    """What nova-compute's resource tracker reports (a provider per
    compute node, uuid = node uuid, with its VCPU/MEMORY_MB/DISK_GB
    inventory), what the aggregate API mirrors (host aggregates as
    provider aggregates) and what the scheduler claims (one allocation
    per server on its node, consumer_type INSTANCE).

    A host of the seed description may carry "placement_inventory":
    classes to add or replace (an Ironic node: {"CUSTOM_BAREMETAL_GOLD":
    {"total": 1, "max_unit": 1}}); a class given as None is left out.
    `workers` providers (then allocations) are written at a time."""
    extra = {h['host']: h.get('placement_inventory') or {}
             for h in (description or {}).get('hosts', [])}
    providers = {}
    for rc in sorted({rc for inv in extra.values() for rc in inv
                      if rc.startswith('CUSTOM_')}):
        placement.ensure_resource_class(rc)

    def provider(host, h):
        rp = placement.create_provider(h['node'], uuid=h['compute_node_uuid'])
        inventory = {
            'VCPU': {'total': h['vcpus'],
                     'allocation_ratio': h['cpu_allocation_ratio']},
            'MEMORY_MB': {'total': h['memory_mb'],
                          'allocation_ratio': h['ram_allocation_ratio']},
            'DISK_GB': {'total': h['disk_gb'],
                        'allocation_ratio': h['disk_allocation_ratio']}}
        inventory.update(extra.get(host, {}))
        placement.set_inventory(rp, {rc: inv for rc, inv in inventory.items()
                                     if inv is not None})
        aggs = [a['uuid'] for a in seeded['aggregates'].values()
                if host in a['hosts']]
        if aggs:
            placement.set_aggregates(rp, aggs)
        providers[host] = rp

    def allocate(s):
        resources = _flavor_resources(s, seeded['flavors'][s['flavor']])
        placement.allocate(s['uuid'], {providers[s['host']]: resources},
                           project_id=s['project_id'], user_id=s['user_id'])

    _each(workers, list(seeded['hosts'].items()), provider)
    _each(workers, [(s,) for s in seeded['servers'].values() if s['host']],
          allocate)
    return providers
