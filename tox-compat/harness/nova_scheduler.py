"""Nova's real scheduler code, run in-process without a database.

HostState and RequestSpec are built with Nova's own classes, and the
filter/weigher half of nova-scheduler's HostManager is assembled exactly
as HostManager.__init__ does it (get_matching_classes over
[filter_scheduler] available_filters, _choose_host_filters over
enabled_filters, weight_classes). Only the database half of __init__ (cell
and aggregate caches) is skipped: hosts come in as built here.
"""

import contextlib
import os
import uuid

os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', '1')

from nova import context as nova_context  # noqa: E402
from nova import objects  # noqa: E402
import nova.conf  # noqa: E402
from nova.scheduler import filters  # noqa: E402
from nova.scheduler import host_manager  # noqa: E402
from nova.scheduler import weights  # noqa: E402
from oslo_utils import timeutils  # noqa: E402

objects.register_all()
CONF = nova.conf.CONF
CELL_UUID = str(uuid.UUID(int=1))
_NS = uuid.UUID('3f8e5d0c-2a8b-4c71-9f3e-5c1a7b9d0e42')


def stable_uuid(*parts):
    """The same uuid for the same names, so runs are comparable."""
    return str(uuid.uuid5(_NS, '/'.join(str(p) for p in parts)))


@contextlib.contextmanager
def nova_flags(**groups):
    """Override nova.conf options, e.g.
    nova_flags(filter_scheduler={'enabled_filters': [...]},
               steward={'endpoint': url}); restored on exit."""
    done = []
    try:
        for group, opts in groups.items():
            for name, value in opts.items():
                CONF.set_override(name, value, group=group)
                done.append((name, group))
        yield CONF
    finally:
        for name, group in done:
            CONF.clear_override(name, group=group)


def make_aggregate(name, metadata, hosts=(), agg_id=None):
    return objects.Aggregate(
        id=agg_id or abs(hash(name)) % 100000, uuid=stable_uuid('agg', name),
        name=name, hosts=list(hosts), metadata=dict(metadata))


def az_aggregate(az, hosts=(), **metadata):
    """The host aggregate that puts `hosts` in availability zone `az`."""
    return make_aggregate('az-' + az, dict(metadata, availability_zone=az),
                          hosts)


def make_instance(instance_uuid, host, node=None):
    return objects.Instance(uuid=instance_uuid, host=host, node=node or host)


def make_host_state(host, nodename=None, aggregates=(), instances=(),
                    vcpus=64, vcpus_used=8, memory_mb=262144,
                    free_ram_mb=200000, disk_gb=2000, free_disk_gb=1500,
                    cpu_allocation_ratio=4.0, ram_allocation_ratio=1.0,
                    disk_allocation_ratio=1.0, hypervisor_type='QEMU',
                    service_up=True, disabled=False):
    """A HostState as HostManager builds it from a ComputeNode, the
    nova-compute Service (heartbeat now, so ComputeFilter passes it) and
    the host's aggregates and instances."""
    node = nodename or host
    now = timeutils.utcnow(with_timezone=True)
    compute = objects.ComputeNode(
        id=int(uuid.UUID(stable_uuid('cn-id', host, node))) % 10**9,
        uuid=stable_uuid('cn', host, node), host=host,
        hypervisor_hostname=node, host_ip='127.0.0.1',
        vcpus=vcpus, vcpus_used=vcpus_used, memory_mb=memory_mb,
        memory_mb_used=max(memory_mb - free_ram_mb, 0),
        free_ram_mb=free_ram_mb, local_gb=disk_gb,
        local_gb_used=max(disk_gb - free_disk_gb, 0),
        free_disk_gb=free_disk_gb, disk_available_least=free_disk_gb,
        updated_at=now, hypervisor_type=hypervisor_type,
        hypervisor_version=8002000, numa_topology=None,
        supported_hv_specs=[objects.HVSpec(arch='x86_64', hv_type='kvm',
                                           vm_mode='hvm')],
        pci_device_pools=None, cpu_info='{}',
        stats={'num_instances': str(len(instances)), 'io_workload': '0',
               'failed_builds': '0'},
        metrics=None, cpu_allocation_ratio=cpu_allocation_ratio,
        ram_allocation_ratio=ram_allocation_ratio,
        disk_allocation_ratio=disk_allocation_ratio)
    heartbeat = now if service_up else now.replace(year=now.year - 1)
    service = {
        'id': compute.id, 'uuid': stable_uuid('svc', host), 'host': host,
        'binary': 'nova-compute', 'topic': 'compute',
        'disabled': disabled, 'disabled_reason': None, 'forced_down': False,
        'report_count': 1, 'version': 70, 'created_at': heartbeat,
        'updated_at': heartbeat, 'last_seen_up': heartbeat,
    }
    inst_dict = {u: make_instance(u, host, node) for u in instances}
    hs = host_manager.HostState(host, node, CELL_UUID)
    hs.update(compute=compute, service=service,
              aggregates=list(aggregates), inst_dict=inst_dict)
    return hs


def make_flavor(name='m1.small', vcpus=2, memory_mb=4096, root_gb=20,
                ephemeral_gb=0, swap=0, extra_specs=None):
    return objects.Flavor(
        id=abs(hash(name)) % 10000, flavorid=name, name=name, vcpus=vcpus,
        memory_mb=memory_mb, root_gb=root_gb, ephemeral_gb=ephemeral_gb,
        swap=swap, rxtx_factor=1.0, vcpu_weight=0, disabled=False,
        is_public=True, extra_specs=dict(extra_specs or {}))


def make_server_group(name, policy='anti-affinity', members=(), hosts=()):
    return objects.InstanceGroup(
        uuid=stable_uuid('group', name), name=name, policy=policy,
        # The legacy list Nova still fills and ServerGroupAffinityFilter
        # still reads.
        policies=[policy],
        members=list(members), hosts=list(hosts), project_id='demo',
        user_id='demo')


def make_request_spec(instance_uuid=None, flavor=None, availability_zone=None,
                      hints=None, ignore_hosts=None, instance_group=None,
                      project_id='demo', request_id=None):
    """A RequestSpec as conductor hands it to the scheduler.

    `hints` are given as Nova stores them: a dict of lists of strings.
    """
    # is_admin given: otherwise RequestContext asks the policy engine,
    # which needs a parsed nova.conf the scheduler tests do not have.
    ctx = nova_context.RequestContext(
        user_id='demo', project_id=project_id, is_admin=False,
        request_id=request_id or 'req-' + str(uuid.uuid4()))
    return objects.RequestSpec(
        context=ctx, instance_uuid=instance_uuid or str(uuid.uuid4()),
        project_id=project_id, user_id='demo',
        flavor=flavor or make_flavor(),
        availability_zone=availability_zone,
        scheduler_hints=dict(hints or {}),
        ignore_hosts=list(ignore_hosts) if ignore_hosts else None,
        force_hosts=None, force_nodes=None, requested_destination=None,
        instance_group=instance_group, num_instances=1, is_bfv=False,
        image=objects.ImageMeta.from_dict({'properties': {}}),
        pci_requests=None, numa_topology=None, retry=None, limits=None)


class NovaScheduler:
    """The filter/weigh half of nova-scheduler, from the current CONF.

    Build it inside nova_flags(...) so the handlers see the overrides,
    like nova-scheduler reads nova.conf once at start.
    """

    def __init__(self):
        hm = host_manager.HostManager.__new__(host_manager.HostManager)
        hm.filter_handler = filters.HostFilterHandler()
        filter_classes = hm.filter_handler.get_matching_classes(
            CONF.filter_scheduler.available_filters)
        hm.filter_cls_map = {cls.__name__: cls for cls in filter_classes}
        hm.filter_obj_map = {}
        hm.enabled_filters = hm._choose_host_filters(hm._load_filters())
        hm.weight_handler = weights.HostWeightHandler()
        weigher_classes = hm.weight_handler.get_matching_classes(
            CONF.filter_scheduler.weight_classes)
        hm.weighers = [cls() for cls in weigher_classes]
        self.host_manager = hm

    @property
    def filters(self):
        return self.host_manager.enabled_filters

    @property
    def weighers(self):
        return self.host_manager.weighers

    def filter(self, host_states, spec_obj, index=0):
        """HostManager.get_filtered_hosts: strips ignore_hosts, then runs
        HostFilterHandler.get_filtered_objects over the enabled filters."""
        return list(self.host_manager.get_filtered_hosts(
            host_states, spec_obj, index) or [])

    def weigh(self, host_states, spec_obj):
        """HostWeightHandler.get_weighed_objects: WeighedHost list, best
        first, each weight the sum of multiplier * normalised weight."""
        return self.host_manager.get_weighed_hosts(host_states, spec_obj)

    def schedule(self, host_states, spec_obj):
        """What FilterScheduler._get_sorted_hosts does before its random
        pick among equals: filter, then weigh what is left."""
        passed = self.filter(host_states, spec_obj)
        return self.weigh(passed, spec_obj) if passed else []
