"""Seed Nova's databases with Nova's own objects, as its services would.

Runs inside Nova's venv with the nova.conf of the API under test:

    python nova_seed.py --config-file nova.conf setup CELL0_DB_URL
    python nova_seed.py --config-file nova.conf add-cell NAME DB_URL
    python nova_seed.py --config-file nova.conf seed SEED.json
    python nova_seed.py --config-file nova.conf heartbeat [--every 20]

`setup` runs nova-manage's own commands `api_db sync`, `cell_v2 map_cell0
--database_connection CELL0_DB_URL`, `cell_v2 create_cell --name cell1`
and `db sync` in one process (each nova-manage run spends seconds
importing Nova).

`add-cell` maps one more cell (`cell_v2 create_cell --name NAME
--database_connection DB_URL`) and runs `db sync` on its database.

`seed` writes what nova-compute, nova-conductor and the API would have
written for the described cloud (see SEED FORMAT) and prints a JSON
summary (uuids and ids) on stdout. `heartbeat` bumps report_count of the
nova-compute services seeded as up, as ServiceGroup's db driver does, so
they stay up (Nova counts a service up for service_down_time, 60 s, after
its last report); with --every it repeats until killed.

SEED FORMAT (plain JSON; every key but the names is optional):
  {"hosts": [{"host": "cmp-a1", "az": "az1", "vcpus": 64,
              "memory_mb": 262144, "disk_gb": 2000, "vcpus_used": 0,
              "cpu_allocation_ratio": 4.0, "ram_allocation_ratio": 1.0,
              "disk_allocation_ratio": 1.0, "hypervisor_type": "QEMU",
              "node": "cmp-a1", "uuid": "...", "host_ip": "10.0.0.11",
              "up": true, "disabled": false, "disabled_reason": null,
              "uptime_days": 93}],
   "aggregates": [{"name": "gpu", "metadata": {...}, "hosts": [...]}],
   "flavors": [{"name": "m1.small", "vcpus": 2, "memory_mb": 4096,
                "root_gb": 20, "ephemeral_gb": 0, "extra_specs": {}}],
   "server_groups": [{"name": "web-tier", "policy": "anti-affinity",
                      "rules": {"max_server_per_host": 1},
                      "project_id": "...", "user_id": "..."}],
   "servers": [{"name": "web-1", "uuid": "...", "host": "cmp-a1",
                "node": "cmp-a1", "flavor": "m1.small", "role": "web",
                "metadata": {}, "group": "web-tier",
                "requested_az": null, "vm_state": "active",
                "project_id": "...", "user_id": "..."}],
   "migrations": [{"uuid": "...", "server": "web-1", "source": "cmp-a1",
                   "dest": "cmp-a2", "status": "post-migrating",
                   "type": "resize"}],
   "role_key": "role", "cell": "cell2"}
"cell" names the cell the hosts and servers go to (default: the first
cell besides cell0); flavors already in the API database are reused.
Hosts in one "az" share an aggregate named after the zone with metadata
availability_zone=<az>; servers get their host's zone, as conductor sets
it. "role" becomes server metadata under role_key.
"""

import argparse
import datetime
import json
import os
import sys
import time
import uuid as uuidlib

os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', '1')
# First, as in every Nova entry point: native threads, eventlet poisoned.
from nova import monkey_patch  # noqa: E402, I001

monkey_patch.patch(backend='threading')

from nova import config  # noqa: E402
from nova import context as nova_context  # noqa: E402
from nova import exception  # noqa: E402
from nova import objects  # noqa: E402
from nova.compute import power_state  # noqa: E402
from nova.compute import vm_states  # noqa: E402
import nova.conf  # noqa: E402
from nova.network import model as network_model  # noqa: E402
from oslo_utils import timeutils  # noqa: E402

CONF = nova.conf.CONF
DEFAULT_PROJECT = 'e5c4f0a1b2c34d5e8f9a0b1c2d3e4f50'
DEFAULT_USER = 'a1b2c3d4e5f64718293a4b5c6d7e8f90'
DEFAULT_FLAVORS = [
    {'name': 'm1.small', 'vcpus': 2, 'memory_mb': 4096, 'root_gb': 20},
    {'name': 'm1.medium', 'vcpus': 4, 'memory_mb': 8192, 'root_gb': 40},
    {'name': 'm1.large', 'vcpus': 8, 'memory_mb': 16384, 'root_gb': 80},
]
IMAGE_REF = '155d900f-4e14-4e4c-a73d-069cbf4541e6'
# What `uptime` prints on a hypervisor; libvirt's driver hands it on as is.
_UPTIME = ' %s up %d days,  3:12,  0 users,  load average: 0.52, 0.58, 0.59'


def _cells(ctx, name=None):
    """The cell to seed: the one named `name`, else the first besides
    cell0."""
    cells = objects.CellMappingList.get_all(ctx)
    real = [c for c in cells if not c.is_cell0()]
    if not real:
        raise SystemExit('no cell besides cell0: run nova-manage cell_v2 '
                         'create_cell first')
    if name is None:
        return real[0]
    for c in real:
        if name in (c.name, c.uuid):
            return c
    raise SystemExit('no cell %r; cells: %s' % (
        name, ', '.join(sorted(c.name or c.uuid for c in real))))


def _flavor(ctx, spec, flavorid):
    # Flavors live in the API database: a second seed (another cell)
    # names the flavors it shares with the first.
    try:
        return objects.Flavor.get_by_name(ctx, spec['name'])
    except exception.FlavorNotFoundByName:
        pass
    flavor = objects.Flavor(
        ctx, name=spec['name'], flavorid=str(spec.get('flavorid', flavorid)),
        vcpus=spec['vcpus'], memory_mb=spec['memory_mb'],
        root_gb=spec.get('root_gb', 0),
        ephemeral_gb=spec.get('ephemeral_gb', 0), swap=spec.get('swap', 0),
        rxtx_factor=1.0, vcpu_weight=0, disabled=False,
        is_public=spec.get('is_public', True),
        description=spec.get('description'),
        extra_specs=dict(spec.get('extra_specs') or {}))
    flavor.create()
    return flavor


def seed(ctx, desc):
    cell = _cells(ctx, desc.get('cell'))
    role_key = desc.get('role_key', 'role')
    now = timeutils.utcnow()
    out = {'cell': cell.uuid, 'hosts': {}, 'aggregates': {}, 'flavors': {},
           'server_groups': {}, 'servers': {}}

    hosts = {}
    with nova_context.target_cell(ctx, cell) as cctx:
        for h in desc.get('hosts', []):
            name = h['host']
            up = h.get('up', True)
            svc = objects.Service(
                cctx, host=name, binary='nova-compute', topic='compute',
                report_count=0, disabled=bool(h.get('disabled', False)),
                disabled_reason=h.get('disabled_reason'),
                forced_down=bool(h.get('forced_down', False)))
            if not up:
                svc.last_seen_up = now - datetime.timedelta(days=1)
            svc.create()
            if up:
                # One report, as ServiceGroup's db driver makes: sets
                # last_seen_up.
                svc.report_count += 1
                svc.save()
            vcpus = h.get('vcpus', 64)
            memory_mb = h.get('memory_mb', 262144)
            disk_gb = h.get('disk_gb', 2000)
            node = h.get('node', name)
            cn = objects.ComputeNode(
                cctx, host=name, hypervisor_hostname=node,
                uuid=h.get('uuid') or str(uuidlib.uuid5(
                    uuidlib.NAMESPACE_URL, 'steward-node/' + node)),
                vcpus=vcpus, memory_mb=memory_mb, local_gb=disk_gb,
                vcpus_used=0, memory_mb_used=0, local_gb_used=0,
                free_ram_mb=memory_mb, free_disk_gb=disk_gb,
                disk_available_least=disk_gb, current_workload=0,
                running_vms=0,
                hypervisor_type=h.get('hypervisor_type', 'QEMU'),
                hypervisor_version=h.get('hypervisor_version', 8002000),
                host_ip=h.get('host_ip', '127.0.0.1'),
                cpu_info=json.dumps(h.get('cpu_info', {
                    'arch': 'x86_64', 'model': 'Icelake-Server',
                    'vendor': 'Intel', 'topology': {
                        'sockets': 2, 'cores': vcpus // 4 or 1,
                        'threads': 2}, 'features': []})),
                supported_hv_specs=[objects.HVSpec(
                    arch='x86_64', hv_type='kvm', vm_mode='hvm')],
                pci_device_pools=objects.PciDevicePoolList(objects=[]),
                numa_topology=None, metrics='[]',
                stats={'uptime': _UPTIME % (
                    now.strftime('%H:%M:%S'), h.get('uptime_days', 93)),
                    'io_workload': '0', 'num_instances': '0'},
                cpu_allocation_ratio=h.get('cpu_allocation_ratio', 4.0),
                ram_allocation_ratio=h.get('ram_allocation_ratio', 1.0),
                disk_allocation_ratio=h.get('disk_allocation_ratio', 1.0),
                mapped=1)
            cn.create()
            objects.HostMapping(ctx, host=name, cell_mapping=cell).create()
            hosts[name] = {'h': h, 'cn': cn, 'svc': svc, 'servers': []}
            out['hosts'][name] = {
                'node': node, 'compute_node_uuid': cn.uuid,
                'compute_node_id': cn.id, 'service_id': svc.id,
                'service_uuid': svc.uuid, 'az': h.get('az'), 'up': up,
                'vcpus': vcpus, 'memory_mb': memory_mb,
                'disk_gb': disk_gb,
                'cpu_allocation_ratio': cn.cpu_allocation_ratio,
                'ram_allocation_ratio': cn.ram_allocation_ratio,
                'disk_allocation_ratio': cn.disk_allocation_ratio}

    # Availability zones are host aggregates with availability_zone
    # metadata, in the API database.
    aggs = []
    zones = {}
    for name, entry in hosts.items():
        if entry['h'].get('az'):
            zones.setdefault(entry['h']['az'], []).append(name)
    for az, members in sorted(zones.items()):
        aggs.append({'name': az, 'metadata': {'availability_zone': az},
                     'hosts': members})
    aggs += desc.get('aggregates', [])
    for a in aggs:
        agg = objects.Aggregate(ctx, name=a['name'],
                                metadata=dict(a.get('metadata') or {}))
        agg.create()
        for host in a.get('hosts', []):
            agg.add_host(host)
        out['aggregates'][a['name']] = {
            'id': agg.id, 'uuid': agg.uuid, 'hosts': list(a.get('hosts', [])),
            'metadata': dict(agg.metadata)}

    flavors = {}
    # Flavor ids go on from those an earlier seed made.
    first_id = 100 + len(objects.FlavorList.get_all(ctx))
    for i, spec in enumerate(desc.get('flavors') or DEFAULT_FLAVORS):
        f = _flavor(ctx, spec, first_id + i)
        flavors[f.name] = f
        out['flavors'][f.name] = {'id': f.id, 'flavorid': f.flavorid,
                                  'extra_specs': dict(f.extra_specs)}

    groups = {}
    for g in desc.get('server_groups', []):
        grp = objects.InstanceGroup(
            ctx, name=g['name'], policy=g.get('policy', 'anti-affinity'),
            rules=dict(g.get('rules') or {}),
            project_id=g.get('project_id', DEFAULT_PROJECT),
            user_id=g.get('user_id', DEFAULT_USER))
        if g.get('uuid'):
            grp.uuid = g['uuid']
        grp.create()
        groups[g['name']] = grp
        out['server_groups'][g['name']] = {'uuid': grp.uuid, 'members': []}

    for i, s in enumerate(desc.get('servers', [])):
        _server(ctx, cell, s, i, hosts, flavors, groups, role_key, now, out)
    out['migrations'] = _migrations(ctx, cell, desc.get('migrations', []),
                                    out, flavors)

    # What the resource tracker reports for what now runs on each node.
    with nova_context.target_cell(ctx, cell) as cctx:
        for entry in hosts.values():
            cn = objects.ComputeNode.get_by_uuid(cctx, entry['cn'].uuid)
            used = entry['servers']
            cn.vcpus_used = sum(f.vcpus for f in used)
            cn.memory_mb_used = sum(f.memory_mb for f in used)
            cn.local_gb_used = sum(f.root_gb + f.ephemeral_gb for f in used)
            cn.free_ram_mb = cn.memory_mb - cn.memory_mb_used
            cn.free_disk_gb = cn.local_gb - cn.local_gb_used
            cn.disk_available_least = cn.free_disk_gb
            cn.running_vms = len(used)
            stats = dict(cn.stats)
            stats['num_instances'] = str(len(used))
            cn.stats = stats
            cn.save()
    return out


def _migrations(ctx, cell, migrations, out, flavors):
    """Migration records (nova_api's migrations table of the cell) as
    nova-conductor writes them for a move in flight; {uuid: server}."""
    made = {}
    with nova_context.target_cell(ctx, cell) as cctx:
        for m in migrations:
            server = out['servers'][m['server']]
            flavor = flavors[server['flavor']]
            hosts = out['hosts']
            src, dst = m.get('source'), m.get('dest')
            mig = objects.Migration(
                cctx, uuid=m.get('uuid') or str(uuidlib.uuid4()),
                instance_uuid=server['uuid'], source_compute=src,
                dest_compute=dst, dest_host='127.0.0.1',
                source_node=hosts[src]['node'] if src else None,
                dest_node=hosts[dst]['node'] if dst else None,
                dest_compute_id=hosts[dst]['compute_node_id'] if dst
                else None,
                old_instance_type_id=flavor.id,
                new_instance_type_id=flavor.id,
                status=m.get('status', 'post-migrating'),
                migration_type=m.get('type', 'resize'), hidden=False,
                cross_cell_move=False,
                project_id=server.get('project_id', DEFAULT_PROJECT),
                user_id=server.get('user_id', DEFAULT_USER))
            mig.create()
            made[mig.uuid] = m['server']
    return made


def _server(ctx, cell, s, index, hosts, flavors, groups, role_key, now,
            out):
    host = s.get('host')
    if host is not None and host not in hosts:
        raise SystemExit('server %r names host %r, which the seed does not '
                         'describe' % (s.get('name'), host))
    flavor = flavors.get(s.get('flavor', 'm1.small'))
    if flavor is None:
        raise SystemExit('server %r names flavor %r; seeded flavors: %s' % (
            s.get('name'), s.get('flavor'), sorted(flavors)))
    inst_uuid = s.get('uuid') or str(uuidlib.uuid4())
    name = s.get('name') or 'server-%d' % index
    project_id = s.get('project_id', DEFAULT_PROJECT)
    user_id = s.get('user_id', DEFAULT_USER)
    metadata = dict(s.get('metadata') or {})
    if s.get('role'):
        metadata[role_key] = s['role']
    az = s.get('az') or (hosts[host]['h'].get('az') if host else None)
    group = groups.get(s['group']) if s.get('group') else None
    if s.get('group') and group is None:
        raise SystemExit('server %r names server group %r, which the seed '
                         'does not describe' % (name, s['group']))
    image = objects.ImageMeta.from_dict({
        'id': IMAGE_REF, 'name': 'cirros', 'properties': {},
        'min_ram': 0, 'min_disk': 0, 'size': 0, 'status': 'active'})

    # RequestSpec as the API stores it at boot (the requested zone, not
    # the one the scheduler picked).
    hints = {'group': [group.uuid]} if group else {}
    spec = objects.RequestSpec.from_components(
        ctx, inst_uuid, image, flavor, None, None,
        {'scheduler_hints': hints}, group, s.get('requested_az'),
        project_id=project_id, user_id=user_id)
    spec.num_instances = 1
    spec.is_bfv = False
    spec.create()

    vm_state = s.get('vm_state', vm_states.ACTIVE)
    with nova_context.target_cell(ctx, cell) as cctx:
        inst = objects.Instance(cctx)
        inst.uuid = inst_uuid
        inst.update({
            'reservation_id': 'r-%s' % uuidlib.uuid4().hex[:8],
            'image_ref': IMAGE_REF, 'kernel_id': '', 'ramdisk_id': '',
            'power_state': (power_state.RUNNING if vm_state ==
                            vm_states.ACTIVE else power_state.SHUTDOWN),
            'vm_state': vm_state, 'task_state': None,
            'config_drive': '', 'user_id': user_id,
            'project_id': project_id, 'instance_type_id': flavor.id,
            'memory_mb': flavor.memory_mb, 'vcpus': flavor.vcpus,
            'root_gb': flavor.root_gb, 'ephemeral_gb': flavor.ephemeral_gb,
            'display_name': name, 'display_description': name,
            'hostname': name, 'locked': False, 'metadata': metadata,
            'availability_zone': az, 'root_device_name': '/dev/vda',
            'progress': 0, 'launch_index': 0, 'host': host,
            'node': s.get('node') or (
                hosts[host]['cn'].hypervisor_hostname if host else None),
            # Since 2023.2 an instance names its node by id too.
            'compute_id': hosts[host]['cn'].id if host else None,
            'launched_on': host, 'launched_at': now,
            'ephemeral_key_uuid': None, 'shutdown_terminate': False,
            'system_metadata': {'image_base_image_ref': IMAGE_REF,
                                'owner_user_name': 'demo',
                                'owner_project_name': 'demo'},
        })
        inst.flavor = flavor
        inst.old_flavor = None
        inst.new_flavor = None
        inst.keypairs = objects.KeyPairList(objects=[])
        inst.security_groups = objects.SecurityGroupList()
        inst.info_cache = objects.InstanceInfoCache(
            network_info=network_model.NetworkInfo([]))
        inst.create()
    objects.InstanceMapping(
        ctx, instance_uuid=inst_uuid, cell_mapping=cell,
        project_id=project_id, user_id=user_id,
        queued_for_delete=False).create()
    if group is not None:
        objects.InstanceGroup.add_members(ctx, group.uuid, [inst_uuid])
        out['server_groups'][group.name]['members'].append(inst_uuid)
    if host:
        hosts[host]['servers'].append(flavor)
    out['servers'][name] = {
        'uuid': inst_uuid, 'host': host, 'node': inst.node, 'az': az,
        'flavor': flavor.name, 'vcpus': flavor.vcpus,
        'memory_mb': flavor.memory_mb,
        'disk_gb': flavor.root_gb + flavor.ephemeral_gb,
        'project_id': project_id, 'user_id': user_id,
        'metadata': metadata, 'group': group.uuid if group else None}


def heartbeat(ctx, hosts=None):
    """One report per seeded-up nova-compute service (or the named
    hosts), as ServiceGroup's db driver makes every report_interval."""
    cell = _cells(ctx)
    n = 0
    with nova_context.target_cell(ctx, cell) as cctx:
        for svc in objects.ServiceList.get_by_binary(
                cctx, 'nova-compute', include_disabled=True):
            if hosts and svc.host not in hosts:
                continue
            if not hosts and svc.report_count == 0:
                continue  # seeded down: leave it down
            svc.report_count += 1
            svc.save()
            n += 1
    return n


def setup(cell0_url):
    """nova-manage api_db sync; cell_v2 map_cell0; cell_v2 create_cell
    --name cell1; db sync: the same command objects, one process."""
    from nova.cmd import manage
    steps = [
        ('api_db sync', lambda: manage.ApiDbCommands().sync()),
        ('cell_v2 map_cell0', lambda: manage.CellV2Commands().map_cell0(
            database_connection=cell0_url)),
        ('cell_v2 create_cell --name cell1',
         lambda: manage.CellV2Commands().create_cell(name='cell1')),
        ('db sync', lambda: manage.DbCommands().sync()),
    ]
    for name, step in steps:
        started = time.monotonic()
        code = step()
        print('nova-manage %s: exit %s in %.1fs' % (
            name, code or 0, time.monotonic() - started), flush=True)
        if code:
            return code
    return 0


def add_cell(name, url, sync):
    """nova-manage cell_v2 create_cell --name NAME --database_connection
    URL, then (with `sync`) nova-manage db sync on that cell's database
    (what `nova-manage --config-file cell.conf db sync --local_cell` does:
    Nova's alembic migrations, run through a context targeted at the
    cell)."""
    from nova.cmd import manage
    from nova.db import migration
    started = time.monotonic()
    # Every cell has a message queue of its own: create_cell refuses a
    # transport_url another cell has.
    code = manage.CellV2Commands().create_cell(
        name=name, database_connection=url,
        transport_url='fake://%s/' % name)
    print('nova-manage cell_v2 create_cell --name %s: exit %s in %.1fs' % (
        name, code or 0, time.monotonic() - started), flush=True)
    if code:
        return code
    if sync:
        started = time.monotonic()
        ctx = nova_context.get_admin_context()
        with nova_context.target_cell(ctx, _cells(ctx, name)) as cctx:
            migration.db_sync(context=cctx)
        print('nova-manage db sync (cell %s): %.1fs' % (
            name, time.monotonic() - started), flush=True)
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--config-file', required=True)
    sub = p.add_subparsers(dest='cmd', required=True)
    c = sub.add_parser('setup')
    c.add_argument('cell0_url')
    a = sub.add_parser('add-cell')
    a.add_argument('name')
    a.add_argument('url')
    a.add_argument('--schema-loaded', action='store_true',
                   help='the database already holds the schema db sync '
                   'makes (a dump of it): map the cell only')
    s = sub.add_parser('seed')
    s.add_argument('seed_file')
    h = sub.add_parser('heartbeat')
    h.add_argument('--hosts', default='')
    h.add_argument('--every', type=float, default=0)
    args = p.parse_args(argv)
    config.parse_args(['nova-seed'], default_config_files=[args.config_file])
    objects.register_all()
    if args.cmd == 'setup':
        return setup(args.cell0_url)
    if args.cmd == 'add-cell':
        return add_cell(args.name, args.url, not args.schema_loaded)
    ctx = nova_context.get_admin_context()
    if args.cmd == 'seed':
        with open(args.seed_file, encoding='utf-8') as f:
            desc = json.load(f)
        print(json.dumps(seed(ctx, desc), indent=1, sort_keys=True))
        return 0
    hosts = [x for x in args.hosts.split(',') if x]
    while True:
        n = heartbeat(ctx, hosts)
        print('%s heartbeat: %d nova-compute services reported' % (
            timeutils.utcnow().isoformat(), n), flush=True)
        if not args.every:
            return 0
        time.sleep(args.every)


if __name__ == '__main__':
    sys.exit(main())
